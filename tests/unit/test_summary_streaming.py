"""The summary is computed by streaming the shards, and is the one the in-memory code wrote.

``tests/data/summary_golden.json`` (and ``.md``) were written by the aggregate step as it was
before streaming (lists of every record in memory) from the synthetic run of
``tests/data/summary_support.py``; the streaming aggregate must reproduce them exactly, every
float to the bit, since summary.json is a contract (docs/records.md).
"""

from __future__ import annotations

import importlib.util
import json
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import pytest

from rewardflow.config.summary import SummarySettings
from rewardflow.records import ResponseRecord, ScoreRecord, read_records
from rewardflow.summary.aggregate import aggregate_run, summarize

DATA = Path(__file__).resolve().parents[1] / "data"
_T = TypeVar("_T")


def support() -> ModuleType:
    spec = importlib.util.spec_from_file_location("summary_support", DATA / "summary_support.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_streaming_summary_equals_the_in_memory_one(tmp_path):
    synthetic = support()
    responses, scores = synthetic.write_run(tmp_path, prompts=40, samples=4, shards=3)
    settings = SummarySettings.from_config(synthetic.settings_config(samples=4))

    aggregate_run(settings, responses, scores, [], tmp_path / "s.json", tmp_path / "s.md")

    written = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    del written["created_at"]
    expected = json.loads((DATA / "summary_golden.json").read_text(encoding="utf-8"))
    expected["generation"] = None
    assert written == expected
    assert (tmp_path / "s.md").read_text(encoding="utf-8") == (
        DATA / "summary_golden.md"
    ).read_text(encoding="utf-8")


def reshuffle(paths: list[Path], duplicate_line: int | None) -> list[Path]:
    """Each shard's lines in reverse order (a prompt's samples from the last to the first),
    the shards listed last first; optionally one line of each shard repeated at its end."""
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        lines.reverse()
        if duplicate_line is not None:
            lines.append(lines[duplicate_line])
        path.write_text("".join(lines), encoding="utf-8")
    return list(reversed(paths))


# Written by the aggregate before its per-sample values were stored in flat arrays (main at
# 0eedbfc): records out of order with a repeated sample, pass@k and maj@k at several k, one
# sample per prompt (the Wilson interval), one prompt.
@pytest.mark.parametrize(
    ("case", "prompts", "samples", "shards", "pass_k", "maj_k", "shuffled", "duplicate"),
    [
        ("shuffled", 37, 4, 3, [1, 2, 4], [1, 3], True, 5),
        ("one_sample", 60, 1, 2, [1], [1], False, None),
        ("one_prompt", 1, 5, 1, [1, 2], [3], True, None),
    ],
)
def test_flat_summary_equals_the_one_from_per_prompt_lists(
    tmp_path, case, prompts, samples, shards, pass_k, maj_k, shuffled, duplicate
):
    synthetic = support()
    responses, scores = synthetic.write_run(tmp_path, prompts, samples, shards)
    if shuffled:
        responses, scores = reshuffle(responses, duplicate), reshuffle(scores, duplicate)
    config = synthetic.settings_config(samples, resamples=150)
    config["metrics"] |= {"pass_k": pass_k, "maj_k": maj_k}

    aggregate_run(
        SummarySettings.from_config(config), responses, scores, [], tmp_path / "s.json",
        tmp_path / "s.md",
    )  # fmt: skip

    written = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    del written["created_at"]
    golden = DATA / f"summary_golden_{case}"
    assert written == json.loads(golden.with_suffix(".json").read_text(encoding="utf-8"))
    assert (tmp_path / "s.md").read_text(encoding="utf-8") == golden.with_suffix(".md").read_text(
        encoding="utf-8"
    )


class Tracked:
    """Records handed out one at a time, counting how many are still alive at each step."""

    def __init__(self) -> None:
        self.alive = 0
        self.most_alive = 0
        self.handed_out = 0

    def _gone(self) -> None:
        self.alive -= 1

    def __call__(self, records: Iterator[_T]) -> Iterator[_T]:
        for record in records:
            self.most_alive = max(self.most_alive, self.alive)
            weakref.finalize(record, self._gone)
            self.alive += 1
            self.handed_out += 1
            yield record
            del record
        self.most_alive = max(self.most_alive, self.alive)


def test_the_aggregate_keeps_no_record_once_counted(tmp_path):
    synthetic = support()
    response_paths, score_paths = synthetic.write_run(tmp_path, prompts=30, samples=4, shards=2)
    settings = SummarySettings.from_config(synthetic.settings_config(samples=4))
    tracked_responses, tracked_scores = Tracked(), Tracked()
    responses = tracked_responses(read_records(response_paths, ResponseRecord.from_dict))
    scores = tracked_scores(read_records(score_paths, ScoreRecord.from_dict))

    summary = summarize(settings, responses, scores)

    assert summary["counts"]["samples"] == tracked_responses.handed_out == 120
    assert tracked_scores.handed_out == 120
    # Each record is gone before the next one is read: nothing holds the run's records.
    assert tracked_responses.most_alive <= 1
    assert tracked_scores.most_alive <= 1
    assert next(responses, None) is None and next(scores, None) is None  # each read once
