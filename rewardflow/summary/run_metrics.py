"""The headline figures of one run beyond per-reward means: pass@k, maj@k, spread, breakdowns.

Computed from the primary reward's scores (a sample *passes* when its score reaches
``metrics.pass_threshold``) and, for majority voting, from the final answer each response
states, as found by ``metrics.answer_extractor``. Every figure comes with a 95% interval from
a bootstrap over prompts, because samples of one prompt are not independent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from rewardflow.records import ResponseRecord, ScoreRecord
from rewardflow.rewards.loader import load_callable
from rewardflow.summary.statistics import (
    bootstrap_mean_ci,
    estimate_mean,
    maj_at_k,
    pass_at_k,
    spread,
)

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


def scored_samples(records: Sequence[ScoreRecord]) -> dict[str, list[ScoreRecord]]:
    """Scored samples by prompt, in sample order: the population every estimate is over."""
    by_prompt: dict[str, list[ScoreRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.id, r.sample_index)):
        if record.status == "scored" and record.score is not None:
            by_prompt[record.id].append(record)
    return by_prompt


def pass_at_k_summary(
    by_prompt: Mapping[str, Sequence[ScoreRecord]],
    ks: Sequence[int],
    threshold: float,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """pass@k for each k, over the prompts with at least k scored samples."""
    passes = {
        prompt: [(s.score or 0) >= threshold for s in samples]
        for prompt, samples in by_prompt.items()
    }
    return _per_k(
        passes, ks, lambda verdicts, k: pass_at_k(len(verdicts), sum(verdicts), k), resamples, seed
    )


def maj_at_k_summary(
    by_prompt: Mapping[str, Sequence[ScoreRecord]],
    answers: Mapping[tuple[str, int], str | None],
    ks: Sequence[int],
    threshold: float,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """maj@k: is the majority answer of the first k samples a passing one?"""
    votes = {
        prompt: [
            (answers.get((s.id, s.sample_index)), (s.score or 0) >= threshold) for s in samples
        ]
        for prompt, samples in by_prompt.items()
    }
    return _per_k(votes, ks, lambda samples, k: maj_at_k({"": samples}, k), resamples, seed)


def breakdowns(
    records: Sequence[ScoreRecord], fields: Sequence[str], resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Mean primary score per value of each metadata field, with 95% intervals.

    Estimated exactly as the headline means are
    (:func:`~rewardflow.summary.statistics.estimate_mean`), so a
    group holding the whole run shows the headline figure; the report draws these, computed
    once, rather than estimating the groups again.
    """
    result: dict[str, dict[str, Any]] = {}
    by_prompt = scored_samples(records)
    for field in fields:
        groups: dict[str, dict[str, list[float]]] = defaultdict(dict)
        for prompt, samples in by_prompt.items():
            value = samples[0].metadata.get(field)
            label = "(missing)" if value is None else str(value)
            groups[label][prompt] = [float(s.score or 0) for s in samples]
        result[field] = {}
        for label, scores in sorted(groups.items()):
            estimate = estimate_mean(scores, resamples, seed)
            if estimate is not None:  # never None: every prompt here has a scored sample
                result[field][label] = estimate.to_dict()
    return result


def extract_answers(
    responses: Sequence[ResponseRecord], extractor: Callable[[str], str | None]
) -> dict[tuple[str, int], str | None]:
    return {
        (record.id, record.sample_index): extractor(record.response or "")
        for record in responses
        if record.status == "ok"
    }


def sampling_summary(
    settings: Mapping[str, Any],
    samples_per_prompt: int,
    responses: Sequence[ResponseRecord],
    scores: Sequence[ScoreRecord],
) -> dict[str, Any]:
    """pass@k, maj@k, spread and unparsable answers, as configured in ``metrics``."""
    resamples, seed = int(settings["bootstrap_resamples"]), int(settings["seed"])
    threshold = float(settings["pass_threshold"])
    # With one sample per prompt pass@1 is just the mean score, reported already.
    default_ks = [1, samples_per_prompt] if samples_per_prompt > 1 else []
    pass_ks = sorted(set(settings["pass_k"] or default_ks))
    maj_ks = sorted(
        set(settings["maj_k"] or ([samples_per_prompt] if samples_per_prompt > 1 else []))
    )
    by_prompt = scored_samples(scores)
    section: dict[str, Any] = {
        "pass_threshold": threshold,
        "pass_at_k": pass_at_k_summary(by_prompt, pass_ks, threshold, resamples, seed),
        "spread": spread({p: [float(s.score or 0) for s in v] for p, v in by_prompt.items()}),
    }
    extractor_ref = settings.get("answer_extractor")
    if extractor_ref:
        answers = extract_answers(responses, load_callable(extractor_ref))
        scored_keys = [(s.id, s.sample_index) for v in by_prompt.values() for s in v]
        section["unparsable"] = sum(1 for key in scored_keys if answers.get(key) is None)
        section["maj_at_k"] = maj_at_k_summary(
            by_prompt, answers, maj_ks, threshold, resamples, seed
        )
    return section
