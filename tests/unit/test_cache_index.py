"""The cache index: a look-up reads only the entries it needs, and the journals stay the truth."""

from __future__ import annotations

import hashlib
import json
import os
import stat

from test_cache import append_entry, make_settings

from rewardflow.generation import cache_index
from rewardflow.generation.cache import ResponseCache
from rewardflow.generation.cache_admin import prune


def key(number: int) -> str:
    return hashlib.sha256(f"prompt-{number}".encode()).hexdigest()


def fill(cache: ResponseCache, writer_name: str, numbers: range) -> None:
    with cache.writer(writer_name) as writer:
        for number in numbers:
            append_entry(writer, key(number), response=f"answer {number} " + "x" * 200)


def journal_bytes(cache: ResponseCache) -> int:
    return sum(path.stat().st_size for path in cache.journals())


def segments(cache: ResponseCache) -> list:
    return sorted((cache.partition / cache_index.INDEX_DIR).glob("*.idx"))


def write_old_layout_journal(cache: ResponseCache, name: str, numbers: range) -> None:
    """A journal as a cache written before the index existed leaves it: no segment beside it."""
    cache.partition.mkdir(parents=True, exist_ok=True)
    with open(cache.partition / name, "a", encoding="utf-8") as handle:
        for number in numbers:
            entry = {"key": key(number), "sample_index": 0, "response": f"old {number}",
                     "finish_reason": "stop", "usage": None, "model": "m",
                     "created_at": 1.0}  # fmt: skip
            handle.write(json.dumps(entry) + "\n")


def test_a_look_up_reads_only_the_wanted_entries(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    for shard in range(4):
        fill(cache, f"run.shard-{shard:03d}", range(shard * 250, shard * 250 + 250))
    wanted = [key(3), key(260), key(999), key(5000)]  # the last one is not cached

    tail = ResponseCache(tmp_path, make_settings()).tail(wanted)
    found = tail.read_new()

    assert set(found) == set(wanted[:3])
    assert found[key(260)].response.startswith("answer 260 ")
    assert tail.stats.entries == 3
    assert tail.stats.journal_bytes < journal_bytes(cache) / 100


def test_many_unrelated_entries_do_not_change_what_a_look_up_reads(tmp_path):
    small = ResponseCache(tmp_path / "small", make_settings())
    big = ResponseCache(tmp_path / "big", make_settings())
    for cache in (small, big):
        fill(cache, "wanted", range(20))
    fill(big, "unrelated", range(1000, 11_000))
    wanted = [key(number) for number in range(0, 20, 2)]

    reads = []
    for cache in (small, big):
        tail = cache.tail(wanted)
        assert set(tail.read_new()) == set(wanted)
        reads.append(tail.stats)
    assert reads[1].entries == reads[0].entries == 10
    assert reads[1].journal_bytes < 1.1 * reads[0].journal_bytes  # the same lines
    # A binary search: about log2(10,000) = 14 probes per key and segment, not 60,000.
    assert reads[1].index_probes <= len(wanted) * 2 * 20


def test_entries_appended_after_the_index_was_written_are_found(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    fill(cache, "w", range(100))
    with cache.writer("w") as writer:  # the same journal, reopened by a rerun
        append_entry(writer, key(100), response="late")
        with cache.writer("live") as live:  # not closed yet: no index covers it
            append_entry(live, key(101), response="live")
            tail = cache.tail([key(5), key(100), key(101)])
            assert {k: e.response[:4] for k, e in tail.read_new().items()} == {
                key(5): "answ",
                key(100): "late",
                key(101): "live",
            }
    assert tail.stats.entries == 3  # the covered part of "w" was not scanned


def test_an_old_layout_cache_is_found_and_indexed_by_its_first_look_up(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    write_old_layout_journal(cache, "old-run.shard-000.jsonl", range(300))
    assert segments(cache) == []

    first = cache.tail([key(7), key(299)])
    assert {k: e.response for k, e in first.read_new().items()} == {
        key(7): "old 7",
        key(299): "old 299",
    }
    assert first.stats.entries == 300  # it had to scan the journal once ...
    assert len(segments(cache)) == 1  # ... and indexed it for the next look-up

    second = ResponseCache(tmp_path, make_settings()).tail([key(7), key(299)])
    assert set(second.read_new()) == {key(7), key(299)}
    assert second.stats.entries == 2


def test_a_journal_a_writer_holds_is_not_indexed_by_a_reader(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    with cache.writer("live") as writer:
        append_entry(writer, key(1))
        assert set(cache.load([key(1)])) == {key(1)}
        assert segments(cache) == []
    assert len(segments(cache)) == 1  # the writer indexed it when it closed


def test_a_torn_last_line_is_ignored_and_stays_outside_the_index(tmp_path, caplog):
    cache = ResponseCache(tmp_path, make_settings())
    write_old_layout_journal(cache, "w.jsonl", range(3))
    with open(cache.partition / "w.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"key": "' + key(3) + '", "sample_')  # killed mid-write
    assert set(cache.load([key(0), key(2), key(3)])) == {key(0), key(2)}  # indexes it
    with cache.writer("w") as writer:  # the rerun terminates the torn line, then appends
        append_entry(writer, key(3), response="retried")
    caplog.clear()
    tail = ResponseCache(tmp_path, make_settings()).tail([key(0), key(3)])
    assert {k: e.response for k, e in tail.read_new().items()} == {
        key(0): "old 0",
        key(3): "retried",
    }
    assert "torn or corrupted line" in caplog.text


def test_a_damaged_or_half_written_segment_is_ignored(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    fill(cache, "w", range(50))
    (segment,) = segments(cache)
    segment.write_bytes(segment.read_bytes()[:-7])  # a crash before the data reached the disk
    (segment.parent / "seg-garbage.idx").write_bytes(b"\x00" * 64)
    tail = cache.tail([key(1), key(49)])
    assert set(tail.read_new()) == {key(1), key(49)}


def test_an_index_that_disagrees_with_its_journal_is_not_trusted(tmp_path, caplog):
    cache = ResponseCache(tmp_path, make_settings())
    fill(cache, "w", range(10))
    journal = cache.partition / "w.jsonl"
    lines = journal.read_bytes().split(b"\n")
    lines[0], lines[1] = lines[1], lines[0]  # same file, same size, other offsets
    with open(journal, "r+b") as handle:  # in place: same inode, so the index still claims it
        handle.write(b"\n".join(lines))
    tail = cache.tail([key(0), key(1)])
    assert set(tail.read_new()) == {key(0), key(1)}
    assert "does not match" in caplog.text


def test_a_journal_rewritten_by_prune_is_read_again_not_through_the_stale_index(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    write_old_layout_journal(cache, "w.jsonl", range(5))  # created_at 1.0: all old
    with cache.writer("w") as writer:
        append_entry(writer, key(10), response="new")  # indexes the journal, 6 entries
    report = prune(tmp_path, older_than_s=3600)
    assert report.entries_removed == 5
    tail = cache.tail([key(0), key(10)])
    assert {k: e.response for k, e in tail.read_new().items()} == {key(10): "new"}


def test_segments_are_merged_and_every_entry_stays_findable(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    writers = 3 * cache_index.MAX_SEGMENTS
    for shard in range(writers):
        fill(cache, f"run.shard-{shard:03d}", range(shard * 10, shard * 10 + 10))
    assert len(segments(cache)) <= cache_index.MAX_SEGMENTS + 1
    wanted = [key(number) for number in range(writers * 10)]
    tail = ResponseCache(tmp_path, make_settings()).tail(wanted)
    assert set(tail.read_new()) == set(wanted)
    assert tail.stats.entries == len(wanted)


def test_index_files_take_the_cache_roots_permissions(tmp_path):
    old = os.umask(0o077)
    try:
        root = tmp_path / "cache"
        root.mkdir()
        os.chmod(root, 0o2770)
        cache = ResponseCache(root, make_settings())
        fill(cache, "w", range(3))
    finally:
        os.umask(old)
    index_dir = cache.partition / cache_index.INDEX_DIR
    assert stat.S_IMODE(index_dir.stat().st_mode) == 0o2770
    assert {stat.S_IMODE(path.stat().st_mode) for path in segments(cache)} == {0o660}
