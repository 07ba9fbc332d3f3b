"""Scoring runs rewards in worker processes: errors, hangs and crashes stay with one sample."""

from __future__ import annotations

import textwrap
import time

import pytest

from rewardflow.errors import RewardLoadError
from rewardflow.jsonl import read_jsonl, write_jsonl_atomic
from rewardflow.records import GenerationError, ResponseRecord, ScoreRecord
from rewardflow.score import score_shard

REWARDS = textwrap.dedent(
    """
    import os, time

    def exact(messages, ground_truth, **kwargs):
        text = messages[-1]["content"]
        if text == "raise":
            raise ValueError("cannot parse")
        if text == "hang":
            time.sleep(60)
        if text == "crash":
            os._exit(7)
        return text.strip() == ground_truth

    def length(messages, ground_truth, **kwargs):
        return {"score": min(1.0, len(messages[-1]["content"]) / 10), "reason": "chars/10"}
    """
)


def response(prompt_id: str, text: str, status: str = "ok") -> ResponseRecord:
    return ResponseRecord(
        id=prompt_id,
        sample_index=0,
        status=status,
        messages=[{"role": "user", "content": "q"}],
        ground_truth="4",
        response=text if status == "ok" else None,
        error=None if status == "ok" else GenerationError("ModelGenerationError", "HTTP 500"),
    )


@pytest.fixture
def reward_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARDS)
    return path


def score(tmp_path, reward_file, texts, timeout_s=30.0, workers=2, second=False):
    responses = tmp_path / "responses.jsonl"
    records = [
        response(f"p{i}", text, status="failed" if text is None else "ok")
        for i, text in enumerate(texts)
    ]
    write_jsonl_atomic(responses, [record.to_dict() for record in records])
    configs = [{"name": "accuracy", "function": f"{reward_file}:exact", "primary": True}]
    if second:
        configs.append({"name": "length", "function": f"{reward_file}:length"})
    output = tmp_path / "scores.jsonl"
    counts = score_shard(responses, output, configs, workers=workers, timeout_s=timeout_s)
    return counts, [ScoreRecord.from_dict(data) for _, data in read_jsonl(output)]


def test_scores_every_sample_in_order_and_keeps_failures_apart(tmp_path, reward_file):
    counts, written = score(tmp_path, reward_file, ["4", "raise", None, "3"])

    assert counts == {"scored": 2, "score_error": 1, "generation_failed": 1, "not_attempted": 0}
    assert [(r.id, r.status, r.score) for r in written] == [
        ("p0", "scored", 1.0),
        ("p1", "score_error", None),
        ("p2", "generation_failed", None),
        ("p3", "scored", 0.0),
    ]
    assert "ValueError: cannot parse" in written[1].error


def test_a_hanging_reward_is_stopped_and_only_its_sample_fails(tmp_path, reward_file):
    started = time.monotonic()
    counts, written = score(tmp_path, reward_file, ["4", "hang", "4"], timeout_s=1.0)

    assert time.monotonic() - started < 30
    assert counts["scored"] == 2
    assert written[1].status == "score_error"
    assert "timed out after 1s" in written[1].error


def test_a_reward_that_kills_its_worker_costs_only_that_sample(tmp_path, reward_file):
    counts, written = score(tmp_path, reward_file, ["crash", "4", "crash", "4", "4"])

    assert [r.status for r in written] == [
        "score_error", "scored", "score_error", "scored", "scored",
    ]  # fmt: skip
    assert "worker process died (exit code 7)" in written[0].error


def test_a_second_reward_is_scored_even_when_the_primary_fails(tmp_path, reward_file):
    _, written = score(tmp_path, reward_file, ["raise", "4"], second=True)

    assert written[0].status == "score_error"
    assert written[0].rewards["length"]["score"] == pytest.approx(0.5)
    assert written[1].rewards["length"] == {
        "score": pytest.approx(0.1), "reason": "chars/10", "is_score_valid": True, "metrics": {},
    }  # fmt: skip


def test_an_unloadable_reward_fails_before_any_work(tmp_path):
    responses = tmp_path / "responses.jsonl"
    write_jsonl_atomic(responses, [response("p0", "4").to_dict()])
    with pytest.raises(RewardLoadError, match="no_such_module"):
        score_shard(
            responses, tmp_path / "out.jsonl", [{"name": "x", "function": "no_such_module:f"}]
        )
    assert not (tmp_path / "out.jsonl").exists()
