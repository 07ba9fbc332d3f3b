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

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from rewardflow.config.summary import MetricsSettings
from rewardflow.summary.statistics import (
    bootstrap_mean_ci,
    estimate_mean,
    maj_at_k,
    pass_at_k,
    spread,
)
from rewardflow.summary.tally import ScoredSamples

BOOTSTRAP = "bootstrap over prompts"
_T = TypeVar("_T")


def _interval(per_prompt: Mapping[str, float], resamples: int, seed: int) -> dict[str, Any]:
    mean, low, high = bootstrap_mean_ci(
        {key: [value] for key, value in per_prompt.items()}, resamples=resamples, seed=seed
    )
    return {"mean": mean, "ci95": [low, high], "ci_method": BOOTSTRAP, "prompts": len(per_prompt)}


def _per_k(
    per_prompt_samples: Mapping[str, Sequence[_T]],
    ks: Sequence[int],
    estimate: Callable[[Sequence[_T], int], float | None],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """One figure per k: ``estimate`` per prompt with at least k samples, then an interval."""
    result: dict[str, Any] = {}
    for k in ks:
        per_prompt = {
            prompt: value
            for prompt, samples in per_prompt_samples.items()
            if len(samples) >= k and (value := estimate(samples, k)) is not None
        }
        if per_prompt:
            result[str(k)] = _interval(per_prompt, resamples, seed)
    return result


def pass_at_k_summary(
    scored: ScoredSamples, ks: Sequence[int], threshold: float, resamples: int, seed: int
) -> dict[str, Any]:
    """pass@k for each k, over the prompts with at least k scored samples."""
    passes = {
        prompt: [score >= threshold for score in scores] for prompt, scores in scored.scores.items()
    }
    return _per_k(
        passes, ks, lambda verdicts, k: pass_at_k(len(verdicts), sum(verdicts), k), resamples, seed
    )


def maj_at_k_summary(
    scored: ScoredSamples, ks: Sequence[int], threshold: float, resamples: int, seed: int
) -> dict[str, Any]:
    """maj@k: is the majority answer of the first k samples a passing one?"""
    answers = scored.answers or {}
    votes = {
        prompt: list(zip(answers[prompt], [score >= threshold for score in scores], strict=True))
        for prompt, scores in scored.scores.items()
    }
    return _per_k(votes, ks, lambda samples, k: maj_at_k({"": samples}, k), resamples, seed)


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
        labels = scored.labels[name]
        groups: dict[str, dict[str, Sequence[float]]] = defaultdict(dict)
        for prompt, scores in scored.scores.items():
            groups[labels[prompt]][prompt] = scores
        result[name] = {}
        for label, scores_by_prompt in sorted(groups.items()):
            estimate = estimate_mean(scores_by_prompt, resamples, seed)
            if estimate is not None:  # never None: every prompt here has a scored sample
                result[name][label] = estimate.to_dict()
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
        section["unparsable"] = sum(
            1 for answers in scored.answers.values() for answer in answers if answer is None
        )
        section["maj_at_k"] = maj_at_k_summary(
            scored, settings.maj_ks(samples_per_prompt), threshold, resamples, seed
        )
    return section
