"""The scoring stage: run every configured reward on every response of one shard.

A reward is user code, so the stage assumes it can fail in every way: an exception (or an
unusable return value) is recorded as that reward's error for that sample; a reward that hangs
is stopped after ``timeout_s``; one that crashes its process (a segfault, ``os._exit``, the
OOM killer) costs only that sample's result for that reward. To make the last two possible,
rewards run in worker processes (``pebble``'s process pool, which kills a timed-out worker and
replaces a dead one), never in the job's own process. The workers also use all of the job's
cores, and each runs rewards in its main thread, where math-verify's alarm-based timeout works.

Samples whose generation failed are carried through as ``generation_failed`` with no score,
never as a zero.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, TimeoutError
from pathlib import Path
from typing import Any

from pebble import ProcessExpired, ProcessPool

from rewardflow.jsonl import read_jsonl, write_jsonl_atomic
from rewardflow.progress import Progress
from rewardflow.records import ResponseRecord, ScoreRecord
from rewardflow.rewards.loader import RewardSpec, load_rewards
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


def weighted_score(
    results: Mapping[str, dict[str, Any]], weights: Mapping[str, float]
) -> float | None:
    """Weighted mean of the weighted rewards; None without weights or if one has no score."""
    if not weights or any("score" not in results.get(name, {}) for name in weights):
        return None
    total = sum(weights.values())
    if total <= 0:
        return None
    return sum(results[name]["score"] * weight for name, weight in weights.items()) / total


def combine(
    record: ResponseRecord,
    results: Mapping[str, dict[str, Any]],
    primary: str,
    weights: Mapping[str, float] | None = None,
) -> ScoreRecord:
    """The score record of one sample from its rewards' results."""
    if record.status != "ok":
        return ScoreRecord(
            id=record.id,
            sample_index=record.sample_index,
            status="not_attempted" if record.status == "not_attempted" else "generation_failed",
            score=None,
            rewards={},
            error=record.error.message if record.error else "generation failed",
            metadata=record.metadata,
        )
    primary_result = results[primary]
    failed = "error" in primary_result
    return ScoreRecord(
        id=record.id,
        sample_index=record.sample_index,
        status="score_error" if failed else "scored",
        score=None if failed else primary_result["score"],
        rewards=dict(results),
        error=primary_result["error"] if failed else None,
        metadata=record.metadata,
        weighted_score=weighted_score(results, weights or {}),
    )


def _primary(rewards: Sequence[RewardSpec]) -> str:
    return next(spec.name for spec in rewards if spec.primary)


def _weights(rewards: Sequence[RewardSpec]) -> dict[str, float]:
    return {spec.name: float(spec.weight) for spec in rewards if spec.weight is not None}


def score_record(record: ResponseRecord, rewards: Sequence[RewardSpec]) -> ScoreRecord:
    """Score one sample in this process (for tests and tools; the stage uses workers)."""
    ok = record.status == "ok"
    results = {spec.name: run_reward(spec, record) for spec in rewards} if ok else {}
    return combine(record, results, _primary(rewards), _weights(rewards))


# --- worker side: each worker process loads the rewards once --------------------------------

_WORKER_REWARDS: dict[str, RewardSpec] = {}


def _load_worker_rewards(reward_configs: Sequence[Mapping[str, Any]]) -> None:
    _WORKER_REWARDS.clear()
    _WORKER_REWARDS.update({spec.name: spec for spec in load_rewards(reward_configs)})


def _run_in_worker(reward_name: str, record: dict[str, Any]) -> dict[str, Any]:
    return run_reward(_WORKER_REWARDS[reward_name], ResponseRecord.from_dict(record))


def _outcome(future: Future[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    """A worker's result, or the error that stands for it."""
    try:
        return future.result()
    except TimeoutError:
        return {"error": f"timed out after {timeout_s:g}s"}
    except ProcessExpired as error:
        return {"error": f"the reward's worker process died (exit code {error.exitcode})"}
    except Exception as error:  # e.g. a result that could not be sent back (unpicklable)
        return {"error": f"{type(error).__name__}: {error}"}


def iter_responses(path: str | Path) -> Iterator[ResponseRecord]:
    for _, data in read_jsonl(path):
        yield ResponseRecord.from_dict(data)


def score_shard(
    responses_path: str | Path,
    output_path: str | Path,
    reward_configs: Sequence[Mapping[str, Any]],
    workers: int = 1,
    timeout_s: float = 60.0,
) -> dict[str, int]:
    """Score one shard's responses into ``output_path``; return counts by status.

    Each (sample, reward) pair is one task in a pool of ``workers`` processes, so a timeout
    or a crash is pinned to exactly that pair.
    """
    rewards = load_rewards(reward_configs)  # in this process too: fail fast, before any work
    primary, weights = _primary(rewards), _weights(rewards)
    records = list(iter_responses(responses_path))
    progress = Progress(f"scoring {Path(responses_path).stem}", total=len(records))
    counts = {"scored": 0, "score_error": 0, "generation_failed": 0, "not_attempted": 0}
    scored: list[dict[str, Any]] = []
    with ProcessPool(
        max_workers=max(1, workers), initializer=_load_worker_rewards, initargs=(reward_configs,)
    ) as pool:
        pending = [
            {
                spec.name: pool.schedule(
                    _run_in_worker, args=(spec.name, record.to_dict()), timeout=timeout_s
                )
                for spec in rewards
            }
            if record.status == "ok"
            else {}
            for record in records
        ]
        for record, futures in zip(records, pending, strict=True):
            results = {name: _outcome(future, timeout_s) for name, future in futures.items()}
            result = combine(record, results, primary, weights)
            counts[result.status] += 1
            if result.status == "score_error":
                logger.warning("%s sample %d: %s", result.id, result.sample_index, result.error)
            scored.append(result.to_dict())
            progress.advance(failed=result.status != "scored")
    write_jsonl_atomic(output_path, scored)
    progress.finish()
    return counts
