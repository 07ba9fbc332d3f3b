"""The aggregate stage: one summary of a run, as ``summary.json`` and ``summary.md``.

Failures are counted apart from scores: a failed generation or a crashing reward has no score
and is excluded from every mean, and the counts say so, so "80% accuracy" always states what
it is 80% of. Answers cut off at ``max_tokens`` are scored like any other, but counted too,
with how many of them failed: a "wrong" answer that simply never finished is a setting to
fix, not a model error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rewardflow.config.summary import SummarySettings
from rewardflow.jsonl import write_json_atomic, write_text_atomic
from rewardflow.records import ResponseRecord, ScoreRecord, read_records
from rewardflow.rewards.loader import load_callable
from rewardflow.summary.run_metrics import breakdowns, sampling_summary
from rewardflow.summary.statistics import estimate_mean
from rewardflow.summary.tally import RunTally

SUMMARY_VERSION = 1


def _reward_summary(tally: RunTally, name: str, resamples: int, seed: int) -> dict[str, Any]:
    reward = tally.rewards[name]
    scores = tally.clusters(reward.scores)
    estimate = estimate_mean(scores, resamples, seed)
    summary: dict[str, Any] = {"scored": len(scores.values), "errors": reward.errors}
    del scores
    summary.update(estimate.to_dict() if estimate else {"mean": None, "ci95": None})
    summary["metrics"] = {}
    for metric, rows in sorted(reward.metrics.items()):
        metric_estimate = estimate_mean(tally.clusters(rows), resamples, seed)
        if metric_estimate is not None:
            summary["metrics"][metric] = metric_estimate.to_dict()
    return summary


def tally_run(
    settings: SummarySettings,
    responses: Iterable[ResponseRecord],
    scores: Iterable[ScoreRecord],
) -> RunTally:
    """Stream the score records, then the response records, into a :class:`RunTally`; each
    iterable is consumed once, and no record is kept."""
    extractor_ref = settings.metrics.answer_extractor
    tally = RunTally(settings, load_callable(extractor_ref) if extractor_ref else None)
    for score in scores:
        tally.add_score(score)
    for response in responses:
        tally.add_response(response)
    tally.finish()
    return tally


def summarize(
    settings: SummarySettings,
    responses: Iterable[ResponseRecord],
    scores: Iterable[ScoreRecord],
) -> dict[str, Any]:
    """The content of summary.json (without the generation section), from one pass over the
    scores and one over the responses."""
    tally = tally_run(settings, responses, scores)
    usage = tally.usage
    price = settings.price
    cost = (
        round(price.cost(usage["prompt_tokens"], usage["completion_tokens"]), 6) if price else None
    )
    metrics = settings.metrics
    # Every interval of the summary uses the configured bootstrap, so all of them reproduce.
    resamples, seed = metrics.bootstrap_resamples, metrics.seed
    truncated, truncated_below_pass = tally.truncation_counts()
    weighted_estimate = estimate_mean(tally.clusters(tally.weighted), resamples, seed)
    scored = tally.scored_samples()
    return {
        "summary_version": SUMMARY_VERSION,
        "run_name": settings.run_name,
        "model": settings.model,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": {
            "prompts": tally.prompts_with_responses,
            "samples": tally.responses.total(),
            "generated": tally.responses["ok"],
            "failed": tally.responses["failed"],
            "not_attempted": tally.responses["not_attempted"],
            "scored": tally.statuses["scored"],
            "score_errors": tally.statuses["score_error"],
            "truncated": truncated,
            "truncated_below_pass": truncated_below_pass,
        },
        "failure_types": dict(tally.failure_types.most_common()),
        "primary_reward": settings.primary_reward,
        "rewards": {name: _reward_summary(tally, name, resamples, seed) for name in tally.rewards},
        "weighted": weighted_estimate.to_dict() if weighted_estimate else None,
        "sampling": sampling_summary(metrics, settings.samples, scored),
        "breakdowns": breakdowns(scored, metrics.group_by, resamples, seed),
        "usage": usage,
        "cost_usd": cost,
    }


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _sampling_lines(sampling: Mapping[str, Any]) -> list[str]:
    rows = [
        (f"{name}@{k}", value)
        for name, key in (("pass", "pass_at_k"), ("maj", "maj_at_k"))
        for k, value in (sampling.get(key) or {}).items()
    ]
    lines: list[str] = []
    if rows:
        lines += [
            "",
            f"A sample passes when its primary score is at least {sampling['pass_threshold']}.",
            "",
            "| metric | value | 95% interval | method | prompts |",
            "|---|---:|---|---|---:|",
        ]
        lines += [
            f"| {name} | {_percent(value['mean'])} | {_percent(value['ci95'][0])} – "
            f"{_percent(value['ci95'][1])} | {value['ci_method']} | {value['prompts']} |"
            for name, value in rows
        ]
    spread = sampling.get("spread") or {}
    if spread.get("disagreement_rate") is not None:
        lines.append(
            f"\nSamples of a prompt disagree on {_percent(spread['disagreement_rate'])} of the "
            f"{spread['prompts_with_repeats']} prompts with several samples (mean within-prompt "
            f"standard deviation {spread['mean_within_prompt_std']:.3f})."
        )
    if sampling.get("unparsable") is not None:
        lines.append(
            f"\nUnparsable answers (no final answer found): {sampling['unparsable']} of the "
            "scored samples, counted as wrong by the reward."
        )
    return lines


def _generation_caveats(summary: Mapping[str, Any]) -> list[str]:
    """Lines on why samples failed and how many answers were cut off, when there are any."""
    counts = summary["counts"]
    lines: list[str] = []
    failure_types = summary.get("failure_types") or {}
    if failure_types:
        by_type = ", ".join(f"{name} {count}" for name, count in failure_types.items())
        lines += ["", f"Failed generations by error: {by_type}."]
    if counts.get("truncated"):
        lines += [
            "",
            f"**{counts['truncated']} of {counts['generated']} generated samples were cut off "
            "at `generation.max_tokens`** (finish_reason `length`); "
            f"{counts['truncated_below_pass']} of them scored below the pass threshold, so "
            "some wrong answers may just be unfinished. Raise `generation.max_tokens` to check.",
        ]
    return lines


def render_markdown(summary: Mapping[str, Any]) -> str:
    counts = summary["counts"]
    lines = [
        f"# rewardflow summary: {summary['run_name']}",
        "",
        f"Model `{summary['model']}`, primary reward `{summary['primary_reward']}`.",
        "",
        "| prompts | samples | generated | failed | not attempted | scored | score errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        "| {prompts} | {samples} | {generated} | {failed} | {not_attempted} | {scored} "
        "| {score_errors} |".format(**counts),
        "",
        "Failed or unsent generations and score errors have no score and are not in any mean.",
        *_generation_caveats(summary),
        "",
        "| reward | mean | 95% interval | method | scored | errors |",
        "|---|---:|---|---|---:|---:|",
    ]
    for name, reward in summary["rewards"].items():
        interval = (
            f"{_percent(reward['ci95'][0])} – {_percent(reward['ci95'][1])}"
            if reward.get("ci95")
            else "n/a"
        )
        lines.append(
            f"| {name} | {_percent(reward['mean'])} | {interval} | "
            f"{reward.get('ci_method', 'n/a')} | {reward['scored']} | {reward['errors']} |"
        )
        for metric, value in reward["metrics"].items():
            lines.append(
                f"| {name} / {metric} | {_percent(value['mean'])} | "
                f"{_percent(value['ci95'][0])} – {_percent(value['ci95'][1])} | "
                f"{value['ci_method']} | {value['samples']} | |"
            )
    if summary.get("weighted"):
        weighted = summary["weighted"]
        lines.append(
            f"| weighted | {_percent(weighted['mean'])} | {_percent(weighted['ci95'][0])} – "
            f"{_percent(weighted['ci95'][1])} | {weighted['ci_method']} | "
            f"{weighted['samples']} | |"
        )
    lines += _sampling_lines(summary.get("sampling") or {})
    for field, groups in (summary.get("breakdowns") or {}).items():
        lines += [
            "",
            f"By `{field}` (primary reward):",
            "",
            "| value | mean | 95% interval | prompts | samples |",
            "|---|---:|---|---:|---:|",
        ]
        for label, group in groups.items():
            lines.append(
                f"| {label} | {_percent(group['mean'])} | {_percent(group['ci95'][0])} – "
                f"{_percent(group['ci95'][1])} | {group['prompts']} | {group['samples']} |"
            )
    generation = summary.get("generation")
    if generation:
        lines += [
            "",
            f"Generation (latest jobs): {generation['requested']} samples requested, "
            f"{generation['cached']} from the cache; {generation['attempts']} HTTP attempts, "
            f"{generation['retries']} retries, {generation['rate_limited']} rate-limited (429).",
        ]
        if generation.get("not_attempted"):
            lines.append(
                f"**Budget reached: {generation['not_attempted']} samples were not sent** "
                f"(this run spent {generation['spent_prompt_tokens']} prompt + "
                f"{generation['spent_completion_tokens']} completion tokens). Raise `budget` "
                "and rerun to complete the run; only the unsent samples will be requested."
            )
        if generation.get("coalesced"):
            lines.append(
                f"{generation['coalesced']} requests saved by coalescing: samples that needed the "
                f"same response shared one request ({generation.get('coalesced_other_jobs', 0)} "
                "of them waited for another job's or run's)."
            )
        if generation.get("greedy_shared"):
            lines.append(
                f"At temperature 0, {generation['greedy_shared']} samples beyond the first of "
                "their prompt repeat its greedy answer without a request of their own; set "
                "`generation.independent_samples: true` to request each."
            )
        if generation.get("adaptive_rate_rpm"):
            lines.append(
                f"Adaptive rate settled at {generation['adaptive_rate_rpm']:.0f} requests/minute "
                "for the run; set `generation.requests_per_minute` to pin it."
            )
    usage = summary["usage"]
    lines += [
        "",
        f"Tokens: {usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion "
        f"= {usage['total_tokens']}"
        + (
            f", estimated cost ${summary['cost_usd']:.4f}."
            if summary.get("cost_usd") is not None
            else " (no price for this model in `prices`, so no cost estimate)."
        ),
        "",
    ]
    return "\n".join(lines)


GENERATION_COUNTERS = (
    "cached",
    "requested",
    "attempts",
    "retries",
    "rate_limited",
    "not_attempted",
    "spent_prompt_tokens",
    "spent_completion_tokens",
    "coalesced",
    "coalesced_other_jobs",
    "greedy_shared",
)


def summarize_generation(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What the latest generation jobs did: requests sent, retries, 429s, time spent."""
    if not reports:
        return None
    totals: dict[str, Any] = {
        name: sum(int(report.get(name, 0)) for report in reports) for name in GENERATION_COUNTERS
    }
    totals["request_seconds_max"] = max(float(r.get("request_seconds", 0)) for r in reports)
    totals["budget_notes"] = [r["budget_note"] for r in reports if r.get("budget_note")]
    rates = [r["adaptive_rate_rpm"] for r in reports if r.get("adaptive_rate_rpm")]
    totals["adaptive_rate_rpm"] = round(sum(rates) / len(rates), 1) if rates else None
    return totals


def aggregate_run(
    settings: SummarySettings,
    response_paths: Sequence[str | Path],
    score_paths: Sequence[str | Path],
    generation_stats_paths: Sequence[str | Path],
    summary_json: str | Path,
    summary_md: str | Path,
) -> dict[str, Any]:
    """Write summary.json and summary.md, reading the shards lazily, one record at a time."""
    summary = summarize(
        settings,
        read_records(response_paths, ResponseRecord.from_dict),
        read_records(score_paths, ScoreRecord.from_dict),
    )
    reports = [json.loads(Path(path).read_text()) for path in generation_stats_paths]
    summary["generation"] = summarize_generation(reports)
    write_json_atomic(summary_json, summary)
    write_text_atomic(summary_md, render_markdown(summary))
    return summary
