"""The scoring stage: run every configured reward on every response of one shard.

A reward is user code, so the stage assumes it can fail: an exception (or an unusable return
value) on one sample is recorded as that reward's error for that sample, and scoring goes on.
Samples whose generation failed are carried through as ``generation_failed`` with no score,
never as a zero.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rewardflow.jsonl import read_jsonl, write_jsonl_atomic
from rewardflow.progress import Progress
from rewardflow.records import ResponseRecord, ScoreRecord
from rewardflow.rewards.loader import RewardSpec
from rewardflow.rewards.result import to_reward_result

logger = logging.getLogger(__name__)


def run_reward(spec: RewardSpec, record: ResponseRecord) -> dict[str, Any]:
    """One reward on one response: its result as a dict, or ``{"error": ...}``."""
    conversation = [*record.messages, {"role": "assistant", "content": record.response or ""}]
    try:
        raw = spec.function(conversation, record.ground_truth, **spec.params)
        return to_reward_result(raw).to_dict()
    except Exception as error:  # user code: any failure is data about this sample
        return {"error": f"{type(error).__name__}: {error}"}


def score_record(record: ResponseRecord, rewards: Sequence[RewardSpec]) -> ScoreRecord:
    if record.status != "ok":
        return ScoreRecord(
            id=record.id,
            sample_index=record.sample_index,
            status="generation_failed",
            score=None,
            rewards={},
            error=record.error.message if record.error else "generation failed",
            metadata=record.metadata,
        )
    results = {spec.name: run_reward(spec, record) for spec in rewards}
    primary = next(spec.name for spec in rewards if spec.primary)
    primary_result = results[primary]
    failed = "error" in primary_result
    return ScoreRecord(
        id=record.id,
        sample_index=record.sample_index,
        status="score_error" if failed else "scored",
        score=None if failed else primary_result["score"],
        rewards=results,
        error=primary_result["error"] if failed else None,
        metadata=record.metadata,
    )


def iter_responses(path: str | Path) -> Iterator[ResponseRecord]:
    for _, data in read_jsonl(path):
        yield ResponseRecord.from_dict(data)


def score_shard(
    responses_path: str | Path, output_path: str | Path, rewards: Sequence[RewardSpec]
) -> dict[str, int]:
    """Score one shard's responses into ``output_path``; return counts by status."""
    records = list(iter_responses(responses_path))
    progress = Progress(f"scoring {Path(responses_path).stem}", total=len(records))
    counts = {"scored": 0, "score_error": 0, "generation_failed": 0}
    scored: list[dict[str, Any]] = []
    for record in records:
        result = score_record(record, rewards)
        counts[result.status] += 1
        if result.status == "score_error":
            logger.warning("%s sample %d: %s", result.id, result.sample_index, result.error)
        scored.append(result.to_dict())
        progress.advance(failed=result.status != "scored")
    write_jsonl_atomic(output_path, scored)
    progress.finish()
    return counts
