"""The headline figures of one run beyond per-reward means: pass@k, maj@k, spread, breakdowns.

Computed from the primary reward's scores (a sample *passes* when its score reaches
``metrics.pass_threshold``) and, for majority voting, from the final answer each response
states, as found by ``metrics.answer_extractor``. Every figure comes with a 95% interval from
a bootstrap over prompts, because samples of one prompt are not independent.

The functions take :class:`~rewardflow.summary.tally.ScoredSamples`, the per-prompt scores
(and answers and group labels) that :class:`~rewardflow.summary.tally.RunTally` keeps while
it streams the records, never the records themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from rewardflow.config.summary import MetricsSettings
from rewardflow.summary.statistics import (
    Clusters,
    bootstrap_of_means,
    estimate_mean,
    maj_at_k,
    pass_at_k,
    spread,
)
from rewardflow.summary.tally import ScoredSamples

BOOTSTRAP = "bootstrap over prompts"
_T = TypeVar("_T")


def _interval(
    keys: Sequence[str], values: Sequence[float], resamples: int, seed: int
) -> dict[str, Any]:
    """One value per prompt (keys sorted): its mean and bootstrap interval over prompts."""
    mean, low, high = bootstrap_of_means(
        Clusters.single(keys, values).means(), resamples=resamples, seed=seed
    )
    return {"mean": mean, "ci95": [low, high], "ci_method": BOOTSTRAP, "prompts": len(keys)}


def _per_k(
    keys: Sequence[str],
    per_prompt_samples: Callable[[], Iterator[Sequence[_T]]],
    ks: Sequence[int],
    estimate: Callable[[Sequence[_T], int], float | None],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """One figure per k: ``estimate`` per prompt with at least k samples, then an interval."""
    result: dict[str, Any] = {}
    for k in ks:
        kept: list[str] = []
        values: list[float] = []
        for key, samples in zip(keys, per_prompt_samples(), strict=True):
            if len(samples) >= k and (value := estimate(samples, k)) is not None:
                kept.append(key)
                values.append(value)
        if kept:
            result[str(k)] = _interval(kept, values, resamples, seed)
    return result


def _passes(scored: ScoredSamples, threshold: float) -> Iterator[list[bool]]:
    """Each prompt's pass/fail verdicts, in sample order."""
    passed = (scored.scores.values >= threshold).tolist()
    offsets = scored.scores.offsets.tolist()
    for start, end in zip(offsets, offsets[1:], strict=False):
        yield passed[start:end]


def pass_at_k_summary(
    scored: ScoredSamples, ks: Sequence[int], threshold: float, resamples: int, seed: int
) -> dict[str, Any]:
    """pass@k for each k, over the prompts with at least k scored samples."""
    return _per_k(
        scored.scores.keys,
        lambda: _passes(scored, threshold),
        ks,
        lambda verdicts, k: pass_at_k(len(verdicts), sum(verdicts), k),
        resamples,
        seed,
    )


def maj_at_k_summary(
    scored: ScoredSamples, ks: Sequence[int], threshold: float, resamples: int, seed: int
) -> dict[str, Any]:
    """maj@k: is the majority answer of the first k samples a passing one?"""

    def votes() -> Iterator[list[tuple[str | None, bool]]]:
        answers = iter(scored.answer_lists())
        for verdicts in _passes(scored, threshold):
            yield list(zip(next(answers, [None] * len(verdicts)), verdicts, strict=True))

    return _per_k(
        scored.scores.keys,
        votes,
        ks,
        lambda samples, k: maj_at_k({"": samples}, k),
        resamples,
        seed,
    )


def breakdowns(
    scored: ScoredSamples, fields: Sequence[str], resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Mean primary score per value of each metadata field, with 95% intervals.

    Estimated exactly as the headline means are
    (:func:`~rewardflow.summary.statistics.estimate_mean`), so a
    group holding the whole run shows the headline figure; the report draws these, computed
    once, rather than estimating the groups again.
    """
    result: dict[str, dict[str, Any]] = {}
    for name in fields:
        codes, names = scored.labels[name], scored.label_names[name]
        result[name] = {}
        for code in sorted(set(codes.tolist()), key=names.__getitem__):
            group = scored.scores.select(np.flatnonzero(codes == code))
            estimate = estimate_mean(group, resamples, seed)
            if estimate is not None:  # never None: every prompt here has a scored sample
                result[name][names[code]] = estimate.to_dict()
    return result


def sampling_summary(
    settings: MetricsSettings, samples_per_prompt: int, scored: ScoredSamples
) -> dict[str, Any]:
    """pass@k, maj@k, spread and unparsable answers, as configured in ``metrics``."""
    resamples, seed = settings.bootstrap_resamples, settings.seed
    threshold = settings.pass_threshold
    section: dict[str, Any] = {
        "pass_threshold": threshold,
        "pass_at_k": pass_at_k_summary(
            scored, settings.pass_ks(samples_per_prompt), threshold, resamples, seed
        ),
        "spread": spread(scored.scores),
    }
    if scored.answers is not None:
        section["unparsable"] = int(np.count_nonzero(scored.answers < 0))
        section["maj_at_k"] = maj_at_k_summary(
            scored, settings.maj_ks(samples_per_prompt), threshold, resamples, seed
        )
    return section
