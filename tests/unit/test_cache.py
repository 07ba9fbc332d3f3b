import asyncio
import dataclasses
import json
import logging
import os
import time

import pytest

from rewardflow.config import ResponseIdentity, validate_config
from rewardflow.config.generation import GenerationJobSettings
from rewardflow.generation import cache as cache_module
from rewardflow.generation.cache import (
    CachedResponse,
    GenerationSettings,
    ResponseCache,
    cache_key,
    normalize_endpoint,
)
from rewardflow.generation.fetch import GroupSync
from rewardflow.jsonl import SkippedLine, dumps, read_jsonl_tolerant, write_jsonl_atomic

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+2?"},
]


def make_settings(**changes):
    settings = GenerationSettings(
        model="acme/model-7b",
        endpoint="https://api.example.com/v1",
        temperature=0.0,
        top_p=1.0,
        max_tokens=256,
        stop=None,
        seed=None,
        extra_body={},
    )
    return dataclasses.replace(settings, **changes)


def append_entry(writer, key, response="4", sample_index=0):
    return writer.append(
        key=key,
        sample_index=sample_index,
        response=response,
        finish_reason="stop",
        usage={"prompt_tokens": 3, "completion_tokens": 1},
        model="acme/model-7b",
        latency_s=0.123456,
    )


# --- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"model": "acme/model-70b"},
        {"endpoint": "https://other.example.com/v1"},
        {"temperature": 0.7},
        {"top_p": 0.9},
        {"max_tokens": 512},
        {"stop": ("\n\n",)},
        {"seed": 1},
        {"extra_body": {"reasoning_effort": "low"}},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_cache_key_changes_with_each_output_affecting_setting(changes):
    base = cache_key(make_settings(), MESSAGES, 0)
    assert cache_key(make_settings(**changes), MESSAGES, 0) != base


def test_cache_key_changes_with_messages_and_sample_index():
    base = cache_key(make_settings(), MESSAGES, 0)
    other_messages = [*MESSAGES[:-1], {"role": "user", "content": "What is 2+3?"}]
    assert cache_key(make_settings(), other_messages, 0) != base
    assert cache_key(make_settings(), MESSAGES[1:], 0) != base
    assert cache_key(make_settings(), MESSAGES, 1) != base


def test_cache_key_is_deterministic_and_hex():
    first = cache_key(make_settings(), MESSAGES, 3)
    assert first == cache_key(make_settings(), [dict(m) for m in MESSAGES], 3)
    assert len(first) == 64
    int(first, 16)


def test_cache_key_does_not_depend_on_dict_key_order():
    settings_a = make_settings(extra_body={"a": 1, "b": {"x": 1, "y": 2}})
    settings_b = make_settings(extra_body={"b": {"y": 2, "x": 1}, "a": 1})
    reordered = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    assert cache_key(settings_a, MESSAGES, 0) == cache_key(settings_b, reordered, 0)


def test_settings_from_config_ignore_operational_keys_and_normalise_stop():
    def settings_for(generation):
        config = validate_config(
            {
                "run_name": "c",
                "dataset": {"path": "d.jsonl"},
                "model": {"provider": "simulator", "name": "m"},
                "generation": generation,
                "rewards": [{"name": "r", "function": "a:b"}],
            }
        )
        return ResponseIdentity.of(
            GenerationJobSettings.from_config(config), "m", "http://127.0.0.1:9/v1"
        )

    base = settings_for({"stop": "END"})
    assert base.stop == ("END",)
    assert settings_for({"stop": ["END"]}).fingerprint == base.fingerprint
    operational = {"stop": "END", "concurrency": 99, "timeout_s": 1, "max_attempts": 1}
    assert settings_for(operational).fingerprint == base.fingerprint
    assert settings_for({"stop": "END", "temperature": 0.5}).fingerprint != base.fingerprint


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://API.x.com/v1/", "https://api.x.com/v1"),
        ("HTTPS://Api.X.com/v1", "https://api.x.com/v1"),
        ("  http://localhost:8000/v1//  ", "http://localhost:8000/v1"),
        ("https://host.example.com", "https://host.example.com"),
    ],
)
def test_normalize_endpoint(raw, expected):
    assert normalize_endpoint(raw) == expected


def test_normalize_endpoint_keeps_path_case():
    assert normalize_endpoint("https://API.x.com/V1/Models") == "https://api.x.com/V1/Models"
    assert normalize_endpoint("https://API.x.com/v1/") == normalize_endpoint("https://api.x.com/v1")


def test_seed_for_gives_distinct_seeds_per_sample():
    settings = make_settings(seed=42)
    seeds = [settings.seed_for(index) for index in range(5)]
    assert seeds[0] == 42
    assert len(set(seeds)) == 5


def test_seed_for_is_none_without_a_seed():
    assert make_settings().seed_for(0) is None
    assert make_settings().seed_for(7) is None


# --- partitions and journals -------------------------------------------------------------


def test_appended_entries_are_found_by_a_new_cache_object(tmp_path):
    settings = make_settings()
    key = cache_key(settings, MESSAGES, 0)
    with ResponseCache(tmp_path, settings).writer("run.shard-000") as writer:
        written = append_entry(writer, key, response="The answer is 4.")
    loaded = ResponseCache(tmp_path, make_settings()).load()
    assert set(loaded) == {key}
    hit = loaded[key]
    assert isinstance(hit, CachedResponse)
    assert hit == written
    assert hit.response == "The answer is 4."
    assert hit.usage == {"prompt_tokens": 3, "completion_tokens": 1}
    assert hit.latency_s == 0.1235
    assert cache_key(settings, MESSAGES, 1) not in loaded


def test_entries_are_readable_before_the_writer_closes(tmp_path):
    settings = make_settings()
    cache = ResponseCache(tmp_path, settings)
    with cache.writer("live") as writer:
        append_entry(writer, "k1")
        assert set(ResponseCache(tmp_path, settings).load()) == {"k1"}


def test_load_of_an_empty_cache_is_empty(tmp_path):
    cache = ResponseCache(tmp_path / "never-created", make_settings())
    assert cache.journals() == []
    assert cache.load() == {}


def test_wanted_restricts_what_is_loaded(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    with cache.writer("w") as writer:
        for key in ("k1", "k2", "k3"):
            append_entry(writer, key, response=f"resp {key}")
    assert set(cache.load(wanted=["k1", "k3", "absent"])) == {"k1", "k3"}
    assert cache.load(wanted=[]) == {}
    assert set(cache.load()) == {"k1", "k2", "k3"}


def test_settings_json_describes_the_partition(tmp_path):
    settings = make_settings(stop=("END",), seed=3, extra_body={"x": 1})
    cache = ResponseCache(tmp_path, settings)
    with cache.writer("w"):
        pass
    stored = json.loads((cache.partition / "settings.json").read_text(encoding="utf-8"))
    assert stored == settings.to_dict()
    assert stored["stop"] == ["END"]
    assert stored["model"] == "acme/model-7b"
    assert cache.partition.parent == tmp_path
    assert cache.partition.name.startswith("acme_model-7b-")
    assert cache.partition.name.endswith(settings.fingerprint[:16])


def test_different_settings_use_different_partitions(tmp_path):
    first = ResponseCache(tmp_path, make_settings())
    second = ResponseCache(tmp_path, make_settings(temperature=1.0))
    assert first.partition != second.partition
    with first.writer("w") as writer:
        append_entry(writer, "shared-key")
    assert second.load() == {}
    assert set(first.load()) == {"shared-key"}


def test_torn_last_line_is_skipped_and_next_writer_terminates_it(tmp_path, caplog):
    cache = ResponseCache(tmp_path, make_settings())
    with cache.writer("w") as writer:
        append_entry(writer, "before")
        journal = writer.path
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write('{"key":"torn","sample_index":0,"resp')  # killed mid-write
    with caplog.at_level(logging.WARNING, logger="rewardflow.generation.cache"):
        assert set(cache.load()) == {"before"}
    assert any(f"{journal}:2" in record.getMessage() for record in caplog.records)

    with cache.writer("w") as writer:
        assert writer.path == journal
        append_entry(writer, "after")
    loaded = cache.load()
    assert set(loaded) == {"before", "after"}
    lines = journal.read_text(encoding="utf-8").split("\n")
    assert lines[1] == '{"key":"torn","sample_index":0,"resp'
    assert json.loads(lines[2])["key"] == "after"


def test_corrupted_middle_lines_are_skipped_and_logged(tmp_path, caplog):
    cache = ResponseCache(tmp_path, make_settings())
    with cache.writer("w") as writer:
        append_entry(writer, "k1")
        journal = writer.path
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write("garbage{{\n")
        handle.write('["not", "an", "object"]\n')
        handle.write('{"key": "k-incomplete"}\n')
    with cache.writer("w") as writer:
        append_entry(writer, "k2")
    with caplog.at_level(logging.WARNING, logger="rewardflow.generation.cache"):
        loaded = cache.load()
    assert set(loaded) == {"k1", "k2"}
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"{journal}:2" in message for message in messages)
    assert any(f"{journal}:3" in message and "not a JSON object" in message for message in messages)
    assert any("lacks required fields" in message for message in messages)
    assert len(messages) == 3


def test_two_writers_with_the_same_name_get_different_files(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    with cache.writer("run.shard-001") as first, cache.writer("run.shard-001") as second:
        assert first.path != second.path
        assert first.path.name == "run.shard-001.jsonl"
        assert second.path.name == "run.shard-001-2.jsonl"
        append_entry(first, "from-first")
        append_entry(second, "from-second")
    assert set(cache.load()) == {"from-first", "from-second"}
    assert [p.name for p in cache.journals()] == ["run.shard-001-2.jsonl", "run.shard-001.jsonl"]


def test_writer_name_reused_after_close(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    with cache.writer("w") as writer:
        first_path = writer.path
    with cache.writer("w") as writer:
        assert writer.path == first_path


def test_writer_name_is_slugged_into_the_partition(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    with cache.writer("../escape me") as writer:
        assert writer.path.parent == cache.partition
        assert "/" not in writer.path.name
        assert " " not in writer.path.name


# --- jsonl helpers -----------------------------------------------------------------------


def test_write_jsonl_atomic_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "out.jsonl"
    assert write_jsonl_atomic(target, [{"a": 1}, {"b": "é"}, {"c": None}]) == 3
    assert target.read_text(encoding="utf-8") == '{"a":1}\n{"b":"é"}\n{"c":null}\n'
    assert write_jsonl_atomic(target, iter([{"z": 0}])) == 1
    assert target.read_text(encoding="utf-8") == '{"z":0}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.jsonl"]


def test_write_jsonl_atomic_keeps_old_file_when_records_fail(tmp_path):
    target = tmp_path / "out.jsonl"
    write_jsonl_atomic(target, [{"old": True}])

    def records():
        yield {"new": 1}
        raise RuntimeError("producer crashed")

    with pytest.raises(RuntimeError, match="producer crashed"):
        write_jsonl_atomic(target, records())
    assert target.read_text(encoding="utf-8") == '{"old":true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_read_jsonl_tolerant_records_skipped_lines(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"a":1}\n\n"just a string"\n{"b":2}\n{"c":', encoding="utf-8")
    skipped = []
    assert list(read_jsonl_tolerant(path, skipped)) == [{"a": 1}, {"b": 2}]
    assert [(s.path, s.line_number) for s in skipped] == [(path, 3), (path, 5)]
    assert all(isinstance(s, SkippedLine) for s in skipped)
    assert skipped[0].reason == "not a JSON object"
    assert skipped[1].reason  # the JSON decoder's message


def test_read_jsonl_tolerant_without_a_skipped_list(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"a":1}\nbroken\n', encoding="utf-8")
    assert list(read_jsonl_tolerant(path)) == [{"a": 1}]


# --- the write path ----------------------------------------------------------------------


def test_a_journal_line_is_the_entry_with_its_fields_in_order(tmp_path):
    with ResponseCache(tmp_path, make_settings()).writer("w") as writer:
        entry = append_entry(writer, "k1")
        path = writer.path
    line = path.read_text(encoding="utf-8")
    assert line == dumps(dataclasses.asdict(entry)) + "\n"


def test_group_sync_releases_each_caller_only_after_a_sync_that_started_after_its_append(
    tmp_path, monkeypatch
):
    """Concurrent finishers share fdatasyncs, yet none returns before its line was synced."""
    syncs: list[dict] = []
    real_fdatasync = os.fdatasync

    def recording_fdatasync(fd):
        sync = {"size_at_start": os.fstat(fd).st_size, "done": False}
        syncs.append(sync)
        time.sleep(0.05)  # the others finish their requests meanwhile
        real_fdatasync(fd)
        sync["done"] = True

    monkeypatch.setattr(cache_module.os, "fdatasync", recording_fdatasync)

    async def finish_requests(writer, count):
        group = GroupSync(writer)

        async def one(index):
            append_entry(writer, f"k{index}")
            appended_up_to = os.fstat(writer._handle.fileno()).st_size
            await group.synced()
            assert any(s["done"] and s["size_at_start"] >= appended_up_to for s in syncs)

        await asyncio.gather(*(one(index) for index in range(count)))

    with ResponseCache(tmp_path, make_settings()).writer("w") as writer:
        asyncio.run(finish_requests(writer, 20))
    # The first caller's sync, then one for the 19 that finished while it ran.
    assert len(syncs) == 2
    assert len(ResponseCache(tmp_path, make_settings()).load()) == 20


def test_a_tail_lists_the_journals_as_a_sorted_glob_would(tmp_path):
    settings = make_settings()
    cache = ResponseCache(tmp_path, settings)
    names = ["run.shard-010", "run.shard-002", "Run.shard-001", "a-2", "a"]
    for name in names:
        with cache.writer(name) as writer:
            append_entry(writer, f"key-{name}")
    (cache.partition / "notes.txt").write_text("not a journal")
    tail = cache.tail([f"key-{name}" for name in names])
    assert tail._journals() == sorted(cache.partition.glob("*.jsonl"))
    assert set(tail.read_new()) == {f"key-{name}" for name in names}
    assert ResponseCache(tmp_path / "missing", settings).tail(["k"])._journals() == []
