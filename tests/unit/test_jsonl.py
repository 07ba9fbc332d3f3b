"""Atomic writers: readers never see half a file, and the file gets the umask's mode."""

from __future__ import annotations

import os
import stat

import pytest

from rewardflow.jsonl import read_jsonl, write_json_atomic, write_jsonl_atomic, write_text_atomic


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize(
    "write",
    [
        lambda path: write_jsonl_atomic(path, [{"a": 1}]),
        lambda path: write_text_atomic(path, "summary\n"),
        lambda path: write_json_atomic(path, {"a": 1}),
    ],
    ids=["jsonl", "text", "json"],
)
def test_written_files_take_the_umask_mode_not_mkstemps_0600(tmp_path, umask_022, write):
    # Results and summaries are meant to be read by others (a team, a web server): a file only
    # its owner can read would be a surprise next to every other file a run writes.
    path = tmp_path / "out" / "file"
    write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [entry.name for entry in path.parent.iterdir()] == ["file"]  # no temporary left


def test_jsonl_round_trips_and_counts(tmp_path):
    path = tmp_path / "records.jsonl"
    assert write_jsonl_atomic(path, ({"i": i, "text": "é"} for i in range(3))) == 3
    assert [data for _, data in read_jsonl(path)] == [{"i": i, "text": "é"} for i in range(3)]
