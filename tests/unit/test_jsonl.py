"""Atomic writers: readers never see half a file, and the file gets the umask's mode."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from conftest import REPO

from rewardflow.jsonl import (
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
    write_jsonl_shards_atomic,
    write_text_atomic,
)


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
        lambda path: write_jsonl_shards_atomic([path], [(0, {"a": 1})]),
    ],
    ids=["jsonl", "text", "json", "jsonl shards"],
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


# --- one stream into many files ----------------------------------------------------------

RECORDS = [{"i": i, "text": "é" * (i % 3), "nested": {"k": [i, None]}} for i in range(23)]


@pytest.mark.parametrize("buffer_chars", [1, 40, None], ids=["each line", "small", "default"])
def test_shards_hold_the_bytes_one_writer_per_file_would_write(tmp_path, buffer_chars):
    expected = [tmp_path / "one" / f"s{k}.jsonl" for k in range(4)]
    for shard, path in enumerate(expected):
        write_jsonl_atomic(path, RECORDS[shard::4])
    paths = [tmp_path / "many" / f"s{k}.jsonl" for k in range(4)]
    indexed = ((i % 4, record) for i, record in enumerate(RECORDS))
    assert write_jsonl_shards_atomic(paths, indexed, buffer_chars=buffer_chars) == len(RECORDS)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in expected]
    assert sorted(p.name for p in paths[0].parent.iterdir()) == [p.name for p in paths]


def test_a_shard_without_records_is_published_empty(tmp_path):
    paths = [tmp_path / f"s{k}.jsonl" for k in range(3)]
    assert write_jsonl_shards_atomic(paths, [(1, {"a": 1})]) == 1
    assert [p.read_text(encoding="utf-8") for p in paths] == ["", '{"a":1}\n', ""]


@pytest.mark.parametrize("buffer_chars", [1, None], ids=["appended already", "buffered"])
def test_an_error_in_the_stream_publishes_no_shard_and_keeps_the_old_ones(tmp_path, buffer_chars):
    paths = [tmp_path / f"s{k}.jsonl" for k in range(3)]
    for path in paths[:2]:
        write_jsonl_atomic(path, [{"old": path.name}])
    before = {path.name: path.read_bytes() for path in paths[:2]}

    def records():
        yield from ((i % 3, record) for i, record in enumerate(RECORDS))
        raise RuntimeError("producer crashed")

    with pytest.raises(RuntimeError, match="producer crashed"):
        write_jsonl_shards_atomic(paths, records(), buffer_chars=buffer_chars)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporaries


def test_more_shards_than_the_process_may_open_files(tmp_path):
    # Hundreds or thousands of shards: the writer holds at most one of their files open.
    code = (
        "import resource, sys\n"
        "from rewardflow.jsonl import write_jsonl_shards_atomic\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "paths = [f'{sys.argv[1]}/s{k:03d}.jsonl' for k in range(300)]\n"
        "records = ((i % 300, {'i': i}) for i in range(1200))\n"
        "print(write_jsonl_shards_atomic(paths, records, buffer_chars=2000))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1200"
    assert [data for _, data in read_jsonl(tmp_path / "s007.jsonl")] == [
        {"i": i} for i in range(7, 1200, 300)
    ]
    assert len(list(tmp_path.iterdir())) == 300
