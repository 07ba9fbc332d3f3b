"""A synthetic finished run for the summary and report: shards of response and score records.

Deterministic (no randomness), built through the real record classes, and covering every case
the summary counts: several samples per prompt, failed and unsent generations, score errors,
answers cut off at ``max_tokens``, a second reward with a sub-metric, weighted scores, samples
sharing one response (coalesced, same cache key), metadata groups with a missing value, and
answers the default extractor cannot parse. Shared by ``tests/unit/test_summary_streaming.py``
and ``bench/summary_memory.py`` (which writes it at 10,000 and 100,000 samples).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rewardflow.jsonl import dumps
from rewardflow.records import GenerationError, ResponseRecord, ScoreRecord

QUESTION = "Solve the problem step by step and end with '#### <answer>'. " * 4
REASONING = "First we add the numbers, then we check the result carefully. " * 8


def settings_config(samples: int, resamples: int = 200) -> dict[str, Any]:
    """The aggregate rule's params for the synthetic run (``aggregate_params``' shape)."""
    return {
        "run_name": "synthetic",
        "model": {"name": "acme/model-7b"},
        "prices": {"acme/model-7b": {"prompt": 2.0, "completion": 10.0}},
        "generation": {"samples": samples},
        "metrics": {
            "pass_k": [],
            "maj_k": [],
            "pass_threshold": 1.0,
            "answer_extractor": "rewardflow.rewards.math:extract_final_answer",
            "group_by": ["level", "subject"],
            "bootstrap_resamples": resamples,
            "seed": 3,
        },
        "rewards": [
            {"name": "accuracy", "primary": True},
            {"name": "format", "primary": False},
        ],
    }


def sample_pair(prompt: int, index: int) -> tuple[ResponseRecord, ScoreRecord]:
    """Sample ``index`` of prompt ``prompt``: its response record and its score record."""
    serial = prompt * 7 + index
    prompt_id = f"p{prompt:07d}"
    metadata: dict[str, Any] = {"level": str(prompt % 3)}
    if prompt % 7:
        metadata["subject"] = ("algebra", "geometry")[prompt % 2]
    messages = [{"role": "user", "content": f"problem {prompt}: {QUESTION}"}]
    if serial % 23 == 5:
        error = GenerationError(("ModelGenerationError", "ModelUnusableResponseError")[prompt % 2],
                                "HTTP 503: down", attempts=3)  # fmt: skip
        status = "failed"
    elif serial % 29 == 7:
        error = GenerationError("BudgetExhausted", "not sent: the run's budget was reached")
        status = "not_attempted"
    else:
        error, status = None, "ok"
    answer = (prompt + index) % 3
    text = f"{REASONING}#### {answer}" if serial % 13 != 4 else f"{REASONING} no idea"
    truncated = serial % 9 == 3
    coalesced = index >= 2 and prompt % 5 == 0  # shares sample 1's response
    response = ResponseRecord(
        id=prompt_id,
        sample_index=index,
        status=status,  # type: ignore[arg-type]
        messages=messages,
        ground_truth=str(prompt % 3),
        response=text if status == "ok" else None,
        finish_reason=("length" if truncated else "stop") if status == "ok" else None,
        usage={"prompt_tokens": 20 + prompt % 5, "completion_tokens": 40 + (prompt % 11),
               "total_tokens": 60 + prompt % 5 + prompt % 11} if status == "ok" else None,
        model="acme/model-7b" if status == "ok" else None,
        cache_key=(f"key-{prompt}-{1 if coalesced else index}" if status == "ok" else None),
        error=error,
        metadata=metadata,
    )  # fmt: skip
    if status != "ok":
        score = ScoreRecord(
            id=prompt_id,
            sample_index=index,
            status="generation_failed" if status == "failed" else "not_attempted",
            score=None,
            rewards={},
            error=error.message if error else None,
            metadata=metadata,
        )
        return response, score
    graded = ((prompt + 2 * index) % 5) / 4
    hashed = {"hash": {"score": float(serial % 2)}}
    format_result = {"score": graded, "reason": "graded", "metrics": hashed}
    if serial % 17 == 4:  # the primary reward crashed
        rewards = {"accuracy": {"error": "ValueError: boom"}, "format": format_result}
        score = ScoreRecord(prompt_id, index, "score_error", None, rewards, "ValueError: boom",
                            metadata, None)  # fmt: skip
        return response, score
    correct = float("no idea" not in text and answer == prompt % 3)
    rewards = {"accuracy": {"score": correct, "reason": f"expected {prompt % 3}"}}
    if serial % 19 == 2:
        rewards["format"] = {"error": "RuntimeError: format reward broke"}
        weighted = None
    else:
        rewards["format"] = format_result
        weighted = 0.7 * correct + 0.3 * graded
    score = ScoreRecord(prompt_id, index, "scored", correct, rewards, None, metadata, weighted)
    return response, score


def pairs(prompts: int, samples: int) -> Iterator[tuple[ResponseRecord, ScoreRecord]]:
    for prompt in range(prompts):
        for index in range(samples):
            yield sample_pair(prompt, index)


def write_run(
    directory: Path, prompts: int, samples: int, shards: int
) -> tuple[list[Path], list[Path]]:
    """Write ``responses/shard-NNN.jsonl`` and ``scores/shard-NNN.jsonl`` (prompt i goes to
    shard i mod shards, as the workflow splits them), streaming, and return both path lists."""
    (directory / "responses").mkdir(parents=True, exist_ok=True)
    (directory / "scores").mkdir(parents=True, exist_ok=True)
    response_paths = [directory / "responses" / f"shard-{i:03d}.jsonl" for i in range(shards)]
    score_paths = [directory / "scores" / f"shard-{i:03d}.jsonl" for i in range(shards)]
    response_files = [open(path, "w", encoding="utf-8") for path in response_paths]  # noqa: SIM115
    score_files = [open(path, "w", encoding="utf-8") for path in score_paths]  # noqa: SIM115
    try:
        for prompt in range(prompts):
            for index in range(samples):
                response, score = sample_pair(prompt, index)
                response_files[prompt % shards].write(dumps(response.to_dict()) + "\n")
                score_files[prompt % shards].write(dumps(score.to_dict()) + "\n")
    finally:
        for handle in response_files + score_files:
            handle.close()
    return response_paths, score_paths
