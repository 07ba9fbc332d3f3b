"""The run's statistics: sampling metrics, intervals and paired comparisons, as pure functions.

Everything here treats the *prompt* as the unit: samples of one prompt are correlated (same
question, same difficulty), so averages weight each prompt once and resampling draws prompts,
never individual samples. The arithmetic is the standard library's (numpy only stores the
values); p-values that have closed forms (binomial, chi-square with one degree of freedom) are
computed exactly rather than through an approximation library.

Estimators and their sources:

* ``pass_at_k``: the unbiased estimator of Chen et al. (2021), "Evaluating Large Language Models
  Trained on Code" (the Codex paper), section 2.1.
* ``maj_at_k``: majority voting / self-consistency, Wang et al. (2023), "Self-Consistency
  Improves Chain of Thought Reasoning in Language Models"; maj@k as reported by Lewkowycz et al.
  (2022), "Solving Quantitative Reasoning Problems with Language Models" (Minerva).
* ``bootstrap_mean_ci`` / ``paired_bootstrap_diff``: the percentile bootstrap (Efron &
  Tibshirani, 1993, "An Introduction to the Bootstrap", ch. 13 and 16), resampling clusters as in
  Field & Welsh (2007), "Bootstrapping clustered data".
* ``mcnemar``: McNemar (1947), "Note on the sampling error of the difference between correlated
  proportions or percentages", with Edwards' (1948) continuity correction; the exact variant is
  the two-sided sign (binomial) test on the discordant pairs.
* ``wilson_interval`` / ``estimate_mean``: the interval next to each headline number. With one
  sample per prompt and pass/fail scores it is Wilson's score interval (the normal approximation
  gives [1, 1] for 20/20; Wilson's does not); anything else (graded scores, several samples per
  prompt) is the bootstrap over prompts above, with a fixed seed so the interval is reproducible.

The estimators take the per-prompt values either as a mapping (small data, tests, compare) or
as :class:`Clusters`, the same values in two flat numpy arrays: a run's summary holds one
float per scored sample at 8 bytes instead of a list entry and a float object at 32, so a
million samples fit in tens of MB. Both give the same numbers to the bit.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

#: Below this many discordant pairs McNemar uses the exact binomial test: the chi-square
#: approximation is poor for small counts (a common rule of thumb; the exact test is always
#: valid, the threshold only keeps the reported method familiar for large counts).
EXACT_MCNEMAR_BELOW = 25


# --- values grouped by prompt -----------------------------------------------------------------


@dataclass(frozen=True)
class Clusters:
    """Values grouped by cluster (prompt), flat: cluster ``i`` is named ``keys[i]`` and holds
    ``values[offsets[i]:offsets[i + 1]]``. Keys are sorted and no cluster is empty, which is
    the order every bootstrap here draws in.

    A value costs 8 bytes and a cluster 16 (its offset and a reference to its key), against
    ~32 bytes per value and ~150 per key for a dict of lists.
    """

    keys: Sequence[str]
    offsets: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    @classmethod
    def from_mapping(cls, values_by_cluster: Mapping[str, Sequence[float]]) -> Clusters:
        keys = sorted(key for key, values in values_by_cluster.items() if len(values))
        sizes = np.fromiter((len(values_by_cluster[key]) for key in keys), np.int64, len(keys))
        offsets = np.zeros(len(keys) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        values = np.fromiter(
            chain.from_iterable(values_by_cluster[key] for key in keys),
            np.float64,
            int(offsets[-1]),
        )
        return cls(keys, offsets, values)

    def __len__(self) -> int:
        return len(self.keys)

    def sizes(self) -> npt.NDArray[np.int64]:
        return np.diff(self.offsets)

    def lists(self) -> Iterator[list[float]]:
        """Each cluster's values as a list, in key order (one list alive at a time)."""
        values, offsets = self.values, self.offsets.tolist()
        for start, end in zip(offsets, offsets[1:], strict=False):
            yield values[start:end].tolist()

    def means(self) -> list[float]:
        """Each cluster's mean, exactly as :func:`statistics.fmean` computes it."""
        return [statistics.fmean(values) for values in self.lists()]

    def select(self, chosen: npt.NDArray[np.intp]) -> Clusters:
        """The clusters at the (ascending) positions ``chosen``, still sorted by key."""
        starts, ends = self.offsets[chosen], self.offsets[chosen + 1]
        sizes = ends - starts
        offsets = np.zeros(len(chosen) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        # Each kept value's position: its cluster's start plus its rank within the cluster.
        within = np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], sizes)
        positions = np.repeat(starts, sizes) + within
        return Clusters([self.keys[i] for i in chosen.tolist()], offsets, self.values[positions])

    @classmethod
    def single(cls, keys: Sequence[str], values: Sequence[float]) -> Clusters:
        """One value per key (keys already sorted)."""
        offsets = np.arange(len(keys) + 1, dtype=np.int64)
        return cls(keys, offsets, np.asarray(values, dtype=np.float64))


# --- pass@k and maj@k -----------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n is correct.

    Why not ``1 - (1 - c/n) ** k``: that plug-in estimate is biased (Chen et al. 2021, sec. 2.1).
    The unbiased estimator is ``1 - C(n - c, k) / C(n, k)``. The binomial coefficients overflow
    floats for large n, so this uses the equivalent product form from the paper,
    ``1 - prod_{i = n - c + 1}^{n} (1 - k / i)``; when fewer than k samples are wrong
    (``n - c < k``) every k-subset contains a correct one and the value is exactly 1.

    Raises ValueError unless ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(correct_by_prompt: Mapping[str, Sequence[bool]], k: int) -> float | None:
    """Mean of per-prompt pass@k over the prompts that have at least k samples.

    Prompts with fewer than k samples are skipped rather than padded: pass@k is undefined for
    them (the estimator needs ``k <= n``). Returns None when no prompt qualifies.
    """
    _require_positive_k(k)
    values = [
        pass_at_k(len(samples), sum(bool(flag) for flag in samples), k)
        for samples in correct_by_prompt.values()
        if len(samples) >= k
    ]
    return statistics.fmean(values) if values else None


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """Most frequent non-None answer; ties go to the answer that appeared first.

    None stands for "no answer could be extracted" and never wins a vote: an unparseable sample
    should not outvote a real answer. Ties are broken by first occurrence so the result is
    deterministic and does not depend on hash order. Returns None if every answer is None.
    """
    counts: dict[str, int] = {}
    for answer in answers:
        if answer is not None:
            counts[answer] = counts.get(answer, 0) + 1
    if not counts:
        return None
    # dicts keep insertion (= first occurrence) order and max() returns the first maximum.
    return max(counts, key=counts.__getitem__)


def maj_at_k(
    samples_by_prompt: Mapping[str, Sequence[tuple[str | None, bool]]], k: int
) -> float | None:
    """Fraction of prompts whose majority answer over the first k samples is correct.

    Each sample is ``(extracted_answer, is_correct)``. For every prompt with at least k samples,
    the first k (in the given order, so results are reproducible) are majority-voted with
    :func:`majority_vote`; the prompt counts as correct if the first of those k samples whose
    answer equals the majority answer is marked correct. Samples with equal answers share a
    verdict in practice, so the first one stands for all. A prompt whose k answers are all None
    counts as wrong. Prompts with fewer than k samples are skipped; None if none qualify.
    """
    _require_positive_k(k)
    verdicts = [
        _majority_is_correct(samples[:k])
        for samples in samples_by_prompt.values()
        if len(samples) >= k
    ]
    return statistics.fmean(verdicts) if verdicts else None


def _majority_is_correct(samples: Sequence[tuple[str | None, bool]]) -> float:
    winner = majority_vote([answer for answer, _ in samples])
    if winner is None:
        return 0.0
    return next(float(bool(correct)) for answer, correct in samples if answer == winner)


def _require_positive_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"need k >= 1, got k={k}")


# --- bootstrap ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedDiff:
    """Run B minus run A over the prompts both runs scored.

    ``diff = mean_b - mean_a``; ``[low, high]`` is the percentile bootstrap interval of the mean
    per-prompt difference; ``p_value`` is the two-sided bootstrap p-value described in
    :func:`paired_bootstrap_diff`.
    """

    shared: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p_value: float


def bootstrap_mean_ci(
    values_by_cluster: Mapping[str, Sequence[float]],
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Mean of per-cluster means with a cluster (prompt) percentile bootstrap interval.

    Returns ``(mean, low, high)``. Each cluster is first reduced to its mean so that a prompt
    with 100 samples weighs the same as a prompt with one; the bootstrap then draws clusters with
    replacement. Resampling individual samples instead would treat correlated samples of one
    prompt as independent evidence and give intervals that are too narrow.

    The interval is the percentile interval (Efron & Tibshirani 1993, ch. 13) of the resampled
    means, using linearly interpolated quantiles. ``random.Random(seed)`` makes it
    deterministic. With one cluster every resample equals the mean, so the interval collapses
    to it: one prompt carries no information about prompt-to-prompt variation. Empty clusters
    are skipped; ValueError if no cluster has a value. The clusters are taken in key order, so
    the interval does not depend on the mapping's order.
    """
    _check_bootstrap_args(resamples, confidence)
    # In key order: the draws then depend on the scores only, not on the order the records
    # were read in, so the same clusters always get the same interval wherever it is computed.
    means = [
        statistics.fmean(values_by_cluster[key])
        for key in sorted(values_by_cluster)
        if values_by_cluster[key]
    ]
    return bootstrap_of_means(means, resamples, seed, confidence)


def bootstrap_of_means(
    means: Sequence[float], resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """:func:`bootstrap_mean_ci` from the cluster means, already in key order."""
    _check_bootstrap_args(resamples, confidence)
    if not means:
        raise ValueError("bootstrap_mean_ci needs at least one non-empty cluster")
    replicates = _bootstrap_means(means, resamples, random.Random(seed))
    low, high = _percentile_interval(replicates, confidence)
    return statistics.fmean(means), low, high


def paired_bootstrap_diff(
    a: Mapping[str, float],
    b: Mapping[str, float],
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDiff:
    """Compare two runs on the prompts both scored, resampling prompts jointly (paired).

    ``a`` and ``b`` map prompt id to that run's per-prompt score. Only shared keys are used, so
    a prompt one run failed to score cannot shift the comparison. Pairing matters: prompt
    difficulty dominates score variance, and the per-prompt difference ``b - a`` cancels it, so
    the paired interval is usually much narrower than one built from two independent means.

    Each bootstrap replicate draws the shared prompts with replacement and takes the mean of
    their differences ``diff*``. The interval is the percentile interval of ``diff*``. The
    two-sided p-value is

        ``p = min(1, 2 * min(P(diff* <= 0), P(diff* >= 0)))``

    with the probabilities taken as fractions of the ``resamples`` replicates. This is
    (up to quantile interpolation) the smallest alpha at which the (1 - alpha) percentile
    interval excludes 0, so the p-value and the interval agree. Its resolution is
    ``1 / resamples``; a value of 0 means no replicate reached zero, i.e. ``p < 1 / resamples``
    rather than a literal zero. Identical runs give ``p = 1``.

    ValueError if the runs share no key.
    """
    _check_bootstrap_args(resamples, confidence)
    keys = [key for key in a if key in b]
    if not keys:
        raise ValueError("paired_bootstrap_diff needs at least one prompt scored by both runs")
    mean_a = statistics.fmean(a[key] for key in keys)
    mean_b = statistics.fmean(b[key] for key in keys)
    diffs = [b[key] - a[key] for key in keys]
    replicates = _bootstrap_means(diffs, resamples, random.Random(seed))
    low, high = _percentile_interval(replicates, confidence)
    return PairedDiff(
        shared=len(keys),
        mean_a=mean_a,
        mean_b=mean_b,
        diff=mean_b - mean_a,
        low=low,
        high=high,
        p_value=_bootstrap_p_value(replicates),
    )


def _check_bootstrap_args(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ValueError(f"need resamples >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"need 0 < confidence < 1, got {confidence}")


def _bootstrap_means(values: Sequence[float], resamples: int, rng: random.Random) -> list[float]:
    """Means of ``resamples`` same-size draws with replacement from ``values``."""
    size = len(values)
    return [statistics.fmean(rng.choices(values, k=size)) for _ in range(resamples)]


def _percentile_interval(replicates: Sequence[float], confidence: float) -> tuple[float, float]:
    ordered = sorted(replicates)
    tail = (1.0 - confidence) / 2.0
    return _quantile(ordered, tail), _quantile(ordered, 1.0 - tail)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linearly interpolated quantile of sorted data (Hyndman & Fan 1996, type 7)."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


def _bootstrap_p_value(replicates: Sequence[float]) -> float:
    count = len(replicates)
    at_most_zero = sum(1 for value in replicates if value <= 0.0) / count
    at_least_zero = sum(1 for value in replicates if value >= 0.0) / count
    return min(1.0, 2.0 * min(at_most_zero, at_least_zero))


# --- McNemar --------------------------------------------------------------------------------


@dataclass(frozen=True)
class McNemar:
    """McNemar's test for two runs' pass/fail verdicts on the same prompts.

    ``a_only``: prompts A got right and B got wrong; ``b_only``: the reverse. ``statistic`` is
    the smaller discordant count for the exact test and the continuity-corrected chi-square
    value otherwise; ``method`` names which.
    """

    shared: int
    a_only: int
    b_only: int
    statistic: float
    p_value: float
    method: str


def mcnemar(a: Mapping[str, bool], b: Mapping[str, bool]) -> McNemar:
    """McNemar's test on the prompts both runs scored (McNemar 1947).

    Why McNemar and not a two-proportion test: both runs answer the same prompts, so their
    verdicts are paired. Prompts both runs get right (or both wrong) say nothing about which
    run is better; only the discordant prompts do. Under the null each discordant prompt is
    equally likely to favour either run, so ``a_only ~ Binomial(a_only + b_only, 1/2)``.

    * Fewer than 25 discordant prompts: exact two-sided binomial (sign) test,
      ``p = min(1, 2 * sum_{i <= min(a_only, b_only)} C(n, i) / 2**n)`` with
      ``n = a_only + b_only``, computed with exact integers.
    * Otherwise: ``(|a_only - b_only| - 1)**2 / (a_only + b_only)`` (Edwards' continuity
      correction) against chi-square with one degree of freedom, whose survival function is
      exactly ``erfc(sqrt(x / 2))`` (a chi-square(1) variable is a squared standard normal).

    No discordant prompt gives ``p = 1``. ValueError if the runs share no key.
    """
    keys = [key for key in a if key in b]
    if not keys:
        raise ValueError("mcnemar needs at least one prompt scored by both runs")
    a_only = sum(1 for key in keys if a[key] and not b[key])
    b_only = sum(1 for key in keys if b[key] and not a[key])
    discordant = a_only + b_only
    if discordant < EXACT_MCNEMAR_BELOW:
        smaller = min(a_only, b_only)
        p_value = _exact_binomial_two_sided(smaller, discordant)
        return McNemar(len(keys), a_only, b_only, float(smaller), p_value, "exact binomial")
    statistic = (abs(a_only - b_only) - 1) ** 2 / discordant
    p_value = math.erfc(math.sqrt(statistic / 2.0))
    return McNemar(
        len(keys), a_only, b_only, statistic, p_value, "chi-square, continuity-corrected"
    )


def _exact_binomial_two_sided(smaller: int, total: int) -> float:
    """Two-sided p of seeing ``smaller`` or fewer in Binomial(total, 1/2), doubled and capped."""
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, i) for i in range(smaller + 1))
    return min(1.0, 2 * tail / 2**total)


# --- spread ---------------------------------------------------------------------------------


def spread(
    values_by_cluster: Mapping[str, Sequence[float]] | Clusters,
) -> dict[str, float | int | None]:
    """How much a prompt's repeated samples disagree with each other.

    A headline mean hides whether the model is consistent: 50% can mean half the prompts are
    always solved, or every prompt is solved half the time. Over prompts with at least two
    samples (one sample cannot disagree with itself) this reports:

    * ``prompts_with_repeats``: how many prompts qualified;
    * ``mean_within_prompt_std``: mean of each prompt's population standard deviation (divisor
      n, describing the samples actually drawn rather than estimating a wider population;
      computed exactly by :func:`statistics.pstdev`, so identical samples give exactly 0);
    * ``disagreement_rate``: fraction of those prompts whose samples are not all equal.

    The two float values are None when no prompt has at least two samples.
    """
    clusters = (
        values_by_cluster.lists()
        if isinstance(values_by_cluster, Clusters)
        else values_by_cluster.values()
    )
    stds: list[float] = []
    disagreeing = 0
    for values in clusters:
        if len(values) >= 2:
            stds.append(statistics.pstdev(values))
            disagreeing += len(set(values)) > 1
    if not stds:
        return {
            "prompts_with_repeats": 0,
            "mean_within_prompt_std": None,
            "disagreement_rate": None,
        }
    return {
        "prompts_with_repeats": len(stds),
        "mean_within_prompt_std": statistics.fmean(stds),
        "disagreement_rate": disagreeing / len(stds),
    }


Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    method: str
    prompts: int
    samples: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Estimate:
        """An estimate as :meth:`to_dict` wrote it (in summary.json)."""
        low, high = data["ci95"]
        return cls(
            float(data["mean"]),
            float(low),
            float(high),
            str(data["ci_method"]),
            int(data["prompts"]),
            int(data["samples"]),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean,
            "ci95": [self.low, self.high],
            "ci_method": self.method,
            "prompts": self.prompts,
            "samples": self.samples,
        }


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def estimate_mean(
    scores_by_prompt: Mapping[str, Sequence[float]] | Clusters,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate | None:
    """Mean score over prompts (each prompt weighted once) with a 95% interval."""
    clusters = (
        scores_by_prompt
        if isinstance(scores_by_prompt, Clusters)
        else Clusters.from_mapping(scores_by_prompt)
    )
    count = len(clusters)
    if not count:
        return None
    samples = int(clusters.offsets[-1])
    values = clusters.values
    single_binary = samples == count and bool(np.all((values == 0.0) | (values == 1.0)))
    if single_binary:
        # One 0/1 value per prompt: the sum is an exact integer in any order.
        mean = sum(values.tolist()) / count
        low, high = wilson_interval(round(mean * count), count)
        return Estimate(mean, low, high, "wilson", count, samples)
    if count == 1:
        # Variation between prompts cannot be estimated from one prompt: say so, honestly wide.
        only = values.tolist()
        mean = sum(only) / len(only)
        return Estimate(mean, 0.0, 1.0, "bootstrap over prompts (one prompt)", 1, samples)
    mean, low, high = bootstrap_of_means(clusters.means(), resamples=resamples, seed=seed)
    return Estimate(mean, low, high, "bootstrap over prompts", count, samples)
