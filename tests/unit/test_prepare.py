import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import GSM8K_TEST

from rewardflow.config import validate_config
from rewardflow.config.prompts import (
    DatasetSettings,
    FewShotExample,
    PrepareSettings,
    PromptSettings,
)
from rewardflow.errors import DatasetError
from rewardflow.jsonl import read_jsonl, write_jsonl_atomic
from rewardflow.prompts import prepare as prepare_module
from rewardflow.prompts.dataset import Row, iter_hub_rows, iter_local_rows, iter_rows
from rewardflow.prompts.prepare import (
    _SeenIds,
    build_messages,
    build_prompt_record,
    build_prompt_records,
    content_id,
    extract_ground_truth,
    prepare_prompts,
    render_template,
    split_into_shards,
    template_fields,
)

GSM8K_PATTERN = r"####\s*(.+?)\s*$"
CONTENT_ID = re.compile(r"^h-[0-9a-f]{16}$")


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def make_config(path, dataset=None, prompt=None, generation=None, shards=2):
    """The prepare step's settings for a config with these sections."""
    return PrepareSettings.from_config(validated(path, dataset, prompt, generation, shards))


def validated(path, dataset=None, prompt=None, generation=None, shards=2):
    raw = {
        "run_name": "unit",
        "shards": shards,
        "dataset": {"path": str(path), **(dataset or {})},
        "model": {"provider": "simulator", "name": "sim"},
        "rewards": [{"name": "accuracy", "function": "pkg.mod:fn"}],
    }
    if prompt is not None:
        raw["prompt"] = prompt
    if generation is not None:
        raw["generation"] = generation
    return validate_config(raw)


def settings_of(raw):
    return PrepareSettings.from_config(validate_config(raw))


def dataset_settings(path, **keys):
    return DatasetSettings.from_config(validated(path, dataset=keys))


def local_row(data, line=1, file="data.jsonl"):
    return Row(data=data, source={"file": file, "line": line})


# --- content ids -------------------------------------------------------------------------


def test_content_id_is_stable_and_has_known_shape():
    row = {"question": "What is 2+2?", "answer": "4"}
    first = content_id(row)
    assert first == content_id(dict(row))
    assert CONTENT_ID.match(first)
    assert len(first) == 2 + 16


def test_content_id_is_independent_of_key_order():
    assert content_id({"a": 1, "b": [1, 2], "c": {"x": 1, "y": 2}}) == content_id(
        {"c": {"y": 2, "x": 1}, "b": [1, 2], "a": 1}
    )


def test_content_id_differs_for_different_content():
    ids = {
        content_id({"question": "q1"}),
        content_id({"question": "q2"}),
        content_id({"question": "q1", "extra": None}),
        content_id({"question": ["q1"]}),
    }
    assert len(ids) == 4


def test_content_id_is_a_sha256_prefix_of_canonical_json():
    row = {"b": "é", "a": 2}
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    assert content_id(row) == "h-" + expected


def test_content_id_is_the_same_in_another_process_with_another_hash_seed():
    row = {"question": "How many eggs?", "answer": "#### 18"}
    code = (
        "import json, sys; from rewardflow.prompts.prepare import content_id; "
        "print(content_id(json.loads(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(row)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == content_id(row)


def test_rows_without_id_field_get_content_ids(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"question": "a"}, {"question": "b"}])
    config = make_config(path)
    records = build_prompt_records(iter_rows(config.dataset), config)
    assert [r.id for r in records] == [content_id({"question": "a"}), content_id({"question": "b"})]


def test_explicit_id_field_is_used_and_stringified(tmp_path):
    path = write_rows(
        tmp_path / "d.jsonl", [{"id": 7, "question": "a"}, {"id": "x", "question": "b"}]
    )
    config = make_config(path, dataset={"id_field": "id"})
    records = build_prompt_records(iter_rows(config.dataset), config)
    assert [r.id for r in records] == ["7", "x"]


def test_missing_explicit_id_names_location(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"id": "a", "question": "q"}, {"question": "q2"}])
    config = make_config(path, dataset={"id_field": "id"})
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2") + ".*missing id field 'id'"):
        build_prompt_records(iter_rows(config.dataset), config)


def test_duplicate_explicit_ids_name_both_locations(tmp_path):
    rows = [{"id": "p1", "question": "a"}, {"id": "p2", "question": "b"}]
    rows.append({"id": "p1", "question": "c"})
    path = write_rows(tmp_path / "d.jsonl", rows)
    config = make_config(path, dataset={"id_field": "id"})
    with pytest.raises(DatasetError) as excinfo:
        build_prompt_records(iter_rows(config.dataset), config)
    message = str(excinfo.value)
    assert message.startswith(f"{path}:3: duplicate id 'p1'")
    assert f"first at {path}:1" in message


def test_duplicate_identical_rows_without_id_field_get_suffixes(tmp_path):
    row = {"question": "same"}
    path = write_rows(tmp_path / "d.jsonl", [row, {"question": "other"}, row, row])
    config = make_config(path)
    records = build_prompt_records(iter_rows(config.dataset), config)
    base = content_id(row)
    assert [r.id for r in records] == [
        base,
        content_id({"question": "other"}),
        f"{base}~2",
        f"{base}~3",
    ]
    assert len({r.id for r in records}) == 4


def test_empty_dataset_is_an_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    config = make_config(path)
    with pytest.raises(DatasetError, match="no rows"):
        build_prompt_records(iter_rows(config.dataset), config)


# --- templates and messages --------------------------------------------------------------


def test_template_fields_lists_referenced_names():
    assert template_fields("Q: {question}\nContext: {context}") == ["question", "context"]
    assert template_fields("no fields") == []


def test_render_template_fills_fields():
    row = local_row({"question": "2+2?", "topic": "math"})
    assert render_template("[{topic}] {question}", row) == "[math] 2+2?"


def test_render_template_missing_field_names_location_and_field():
    row = local_row({"question": "2+2?"}, line=5, file="in.jsonl")
    with pytest.raises(DatasetError) as excinfo:
        render_template("{question} {context}", row)
    message = str(excinfo.value)
    assert message.startswith("in.jsonl:5:")
    assert "'context'" in message
    assert "question" in message  # the fields the row does have


def test_missing_template_field_in_file_names_line(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"question": "a"}, {"prompt": "b"}])
    config = make_config(path)
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2") + ".*'question'"):
        build_prompt_records(iter_rows(config.dataset), config)


@pytest.mark.parametrize("template", ["{question.nope}", "{question[x]}"])
def test_template_with_bad_attribute_or_index_is_a_dataset_error(template):
    with pytest.raises(DatasetError):
        render_template(template, local_row({"question": "q"}))


def test_build_messages_with_system_and_few_shot():
    prompt = PromptSettings(
        system="Be brief.",
        template="{question}",
        few_shot=(FewShotExample("1+1?", "2"), FewShotExample("2+3?", "5")),
        shuffle_options=None,
    )
    assert build_messages(prompt, "4+4?") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "4+4?"},
    ]


def test_build_messages_without_system_is_just_the_user_turn():
    prompt = PromptSettings(system=None, template="{question}", few_shot=(), shuffle_options=None)
    assert build_messages(prompt, "hi") == [{"role": "user", "content": "hi"}]


def test_prompt_record_uses_prompt_config(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"q": "3*3?", "answer": "9"}])
    config = make_config(
        path,
        dataset={"ground_truth_field": "answer"},
        prompt={
            "system": "sys",
            "template": "Solve: {q}",
            "few_shot": [{"user": "u", "assistant": "a"}],
        },
    )
    (record,) = build_prompt_records(iter_rows(config.dataset), config)
    assert [m["role"] for m in record.messages] == ["system", "user", "assistant", "user"]
    assert record.messages[-1]["content"] == "Solve: 3*3?"
    assert record.ground_truth == "9"
    assert record.metadata == {"q": "3*3?", "answer": "9"}
    assert record.source == {"file": str(path), "line": 1}
    assert "responses" not in record.to_dict()


# --- ground truth ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("She earns 5 * 14000 = 70000 dollars.\nSo the profit is 70000.\n#### 70000", "70000"),
        ("Total is 1,200.\n#### 1,200", "1,200"),
        ("step one\n####   42   \n", "42"),
        ("#### -3.5", "-3.5"),
    ],
)
def test_gsm8k_pattern_extracts_final_answer(answer, expected):
    row = local_row({"answer": answer})
    assert extract_ground_truth(row, "answer", GSM8K_PATTERN) == expected


def test_ground_truth_without_pattern_is_stripped_text():
    assert extract_ground_truth(local_row({"answer": "  9 \n"}), "answer", None) == "9"


def test_non_string_ground_truth_is_json_text():
    assert extract_ground_truth(local_row({"answer": 42}), "answer", None) == "42"
    assert extract_ground_truth(local_row({"answer": [1, 2]}), "answer", None) == "[1, 2]"


def test_no_ground_truth_field_gives_none():
    assert extract_ground_truth(local_row({"answer": "x"}), None, GSM8K_PATTERN) is None


def test_pattern_without_group_returns_whole_match():
    assert extract_ground_truth(local_row({"answer": "x = 17;"}), "answer", r"\d+") == "17"


def test_pattern_that_does_not_match_names_location():
    row = local_row({"answer": "no marker here"}, line=12, file="gsm.jsonl")
    with pytest.raises(DatasetError) as excinfo:
        extract_ground_truth(row, "answer", GSM8K_PATTERN)
    message = str(excinfo.value)
    assert message.startswith("gsm.jsonl:12:")
    assert "ground_truth_pattern" in message
    assert "'answer'" in message


def test_missing_ground_truth_field_names_location():
    row = local_row({"question": "q"}, line=4, file="d.jsonl")
    with pytest.raises(DatasetError, match=r"^d\.jsonl:4: missing ground truth field 'answer'"):
        extract_ground_truth(row, "answer", None)


def test_gsm8k_file_ground_truths_match_text_after_marker():
    assert GSM8K_TEST.is_file(), GSM8K_TEST
    config = make_config(
        GSM8K_TEST,
        dataset={
            "limit": 20,
            "ground_truth_field": "answer",
            "ground_truth_pattern": GSM8K_PATTERN,
        },
        shards=3,
    )
    records = build_prompt_records(iter_rows(config.dataset), config)
    assert len(records) == 20
    raw_rows = []
    with open(GSM8K_TEST, encoding="utf-8") as handle:
        for line in handle:
            raw_rows.append(json.loads(line))
            if len(raw_rows) == 20:
                break
    for record, raw in zip(records, raw_rows, strict=True):
        assert record.ground_truth == raw["answer"].rsplit("####", 1)[1].strip()
        assert record.messages == [{"role": "user", "content": raw["question"]}]
        assert record.id == content_id(raw)
        assert CONTENT_ID.match(record.id)
    assert [r.source["line"] for r in records] == list(range(1, 21))
    assert records[0].ground_truth == "18"


# --- reading rows ------------------------------------------------------------------------


def test_malformed_json_line_names_path_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "a"}\n{"question": \n', encoding="utf-8")
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2: not valid JSON")):
        list(iter_local_rows(path))


def test_non_object_line_names_path_line_and_type(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "a"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(
        DatasetError, match=re.escape(f"{path}:2: expected a JSON object, got list")
    ):
        list(iter_local_rows(path))


def test_a_line_that_is_not_utf8_names_path_line_and_byte(tmp_path):
    path = tmp_path / "d.jsonl"
    # Line 3 was saved as Latin-1 (0xe9 is "é"); lines 1-2 are fine, one with real UTF-8.
    path.write_bytes(b'{"question": "a"}\r\n{"question": "caf\xc3\xa9"}\n{"question": "caf\xe9"}\n')
    with pytest.raises(DatasetError) as raised:
        list(iter_local_rows(path))
    assert str(raised.value).startswith(f"{path}:3: not valid UTF-8 (byte 0xe9 at column 18)")


def test_a_non_utf8_dataset_fails_prepare_with_one_clear_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"question": "1 + 1", "answer": "2"}\n{"question": "\xff"}\n')
    script = (
        "import sys\n"
        "from rewardflow.config.prompts import PrepareSettings\n"
        "from rewardflow.prompts.prepare import prepare_prompts\n"
        "from rewardflow.rule_script import run_rule\n"
        f"settings = PrepareSettings.from_config({validated(path)!r})\n"
        "run_rule(None, prepare_prompts, settings, [sys.argv[1]])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "shard-0.jsonl")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"ERROR {path}:2: not valid UTF-8" in result.stderr
    assert "a bug in rewardflow" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "shard-0.jsonl").exists()


def test_missing_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        list(iter_local_rows(tmp_path / "absent.jsonl"))


def test_blank_lines_are_skipped_but_line_numbers_are_real(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "a"}\n\n   \n{"question": "b"}\n', encoding="utf-8")
    rows = list(iter_local_rows(path))
    assert [row.data["question"] for row in rows] == ["a", "b"]
    assert [row.location for row in rows] == [f"{path}:1", f"{path}:4"]


def test_limit_stops_before_reading_later_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"question": "a"}\n{"question": "b"}\n{"question": "c"}\nthis is not json\n',
        encoding="utf-8",
    )
    rows = list(iter_rows(dataset_settings(path, limit=3)))
    assert [row.data["question"] for row in rows] == ["a", "b", "c"]
    with pytest.raises(DatasetError, match=":4:"):
        list(iter_rows(dataset_settings(path, limit=None)))


# --- sharding ----------------------------------------------------------------------------


def test_split_into_shards_is_round_robin(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"question": str(i)} for i in range(7)])
    config = make_config(path)
    records = build_prompt_records(iter_rows(config.dataset), config)
    shards = split_into_shards(records, 3)
    assert [[r.messages[-1]["content"] for r in shard] for shard in shards] == [
        ["0", "3", "6"],
        ["1", "4"],
        ["2", "5"],
    ]


def test_raising_the_limit_keeps_existing_prompts_in_their_shard(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"question": f"q{i}"} for i in range(25)])

    def shard_of_each_id(limit):
        config = make_config(path, dataset={"limit": limit}, shards=4)
        paths = [tmp_path / f"limit{limit}" / f"shard-{i:03d}.jsonl" for i in range(4)]
        assert prepare_prompts(config, paths) == limit
        return {
            data["id"]: index
            for index, shard_path in enumerate(paths)
            for _, data in read_jsonl(shard_path)
        }

    small = shard_of_each_id(10)
    large = shard_of_each_id(25)
    assert len(small) == 10
    assert len(large) == 25
    for prompt_id, shard in small.items():
        assert large[prompt_id] == shard


def test_prepare_prompts_writes_every_prompt_once_across_shards(tmp_path):
    rows = [{"id": f"p{i}", "question": f"q{i}", "answer": str(i)} for i in range(11)]
    path = write_rows(tmp_path / "d.jsonl", rows)
    config = make_config(path, dataset={"id_field": "id", "ground_truth_field": "answer"}, shards=4)
    paths = [tmp_path / "out" / f"shard-{i:03d}.jsonl" for i in range(4)]
    assert prepare_prompts(config, paths) == 11
    assert all(p.is_file() for p in paths)
    per_shard = [[data for _, data in read_jsonl(p)] for p in paths]
    assert [len(shard) for shard in per_shard] == [3, 3, 3, 2]
    written = [data for shard in per_shard for data in shard]
    assert sorted(data["id"] for data in written) == sorted(row["id"] for row in rows)
    by_id = {data["id"]: data for data in written}
    assert by_id["p5"]["ground_truth"] == "5"
    assert by_id["p5"]["messages"] == [{"role": "user", "content": "q5"}]
    assert by_id["p5"]["source"] == {"file": str(path), "line": 6}
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_prepare_prompts_with_more_shards_than_prompts_writes_empty_shards(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"question": "only"}])
    config = make_config(path, shards=3)
    paths = [tmp_path / f"s{i}.jsonl" for i in range(3)]
    assert prepare_prompts(config, paths) == 1
    assert [p.read_text(encoding="utf-8").count("\n") for p in paths] == [1, 0, 0]


# --- streaming into shards ----------------------------------------------------------------


def in_memory_shards(config, out, shard_count):
    """The shard files as the step wrote them before it streamed: all records, then split."""
    records = build_prompt_records(iter_rows(config.dataset), config)
    paths = [out / f"shard-{k:03d}.jsonl" for k in range(shard_count)]
    for path, shard in zip(paths, split_into_shards(records, shard_count), strict=True):
        write_jsonl_atomic(path, (record.to_dict() for record in shard))
    return paths


MC_OPTIONS = ["Paris", "Rome", "Madrid", "Berlin"]


@pytest.mark.parametrize("buffer_chars", [1, None], ids=["append each line", "buffered"])
@pytest.mark.parametrize("case", ["content ids", "explicit ids", "shuffled options"])
def test_streamed_shards_are_the_bytes_of_the_in_memory_split(
    tmp_path, monkeypatch, case, buffer_chars
):
    if case == "shuffled options":
        rows = [
            {"id": f"q{i}", "question": f"Capital {i}? é", "options": MC_OPTIONS, "answer": "Rome"}
            for i in range(13)
        ]
        dataset = {"id_field": "id"}
        prompt = {"template": "{question}\n{options}", "shuffle_options": {"seed": 3}}
    else:
        rows = [{"question": f"q{i} ∑", "answer": str(i)} for i in range(13)]
        rows[5] = rows[9] = rows[12] = rows[2]  # repeated rows: ~2, ~3, ~4 with content ids
        if case == "explicit ids":
            rows = [{**row, "id": f"p{i}"} for i, row in enumerate(rows)]
        dataset = {
            "ground_truth_field": "answer",
            **({"id_field": "id"} if "explicit" in case else {}),
        }
        prompt = {"system": "Be brief.", "template": "Q: {question}"}
    path = write_rows(tmp_path / "d.jsonl", rows)
    config = make_config(path, dataset=dataset, prompt=prompt, shards=5)
    expected = in_memory_shards(config, tmp_path / "old", 5)
    if buffer_chars is not None:
        monkeypatch.setattr("rewardflow.jsonl.SHARD_BUFFER_CHARS", buffer_chars)
    paths = [tmp_path / "new" / f"shard-{k:03d}.jsonl" for k in range(5)]
    assert prepare_prompts(config, paths) == 13
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in expected]
    assert [p.stat().st_mode for p in paths] == [p.stat().st_mode for p in expected]
    if case == "content ids":
        ids = [data["id"] for p in paths for _, data in read_jsonl(p)]
        assert sorted(i[-2:] for i in ids if "~" in i) == ["~2", "~3", "~4"]


def shard_files_after_failed_prepare(tmp_path, rows, dataset=None):
    """Prepare over ``rows`` into shards that already hold an earlier run's prompts."""
    out = tmp_path / "out"
    earlier = write_rows(tmp_path / "earlier.jsonl", [{"question": f"old {i}"} for i in range(9)])
    paths = [out / f"shard-{k:03d}.jsonl" for k in range(3)]
    prepare_prompts(make_config(earlier, shards=3), paths)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    path = write_rows(tmp_path / "d.jsonl", rows)
    with pytest.raises(DatasetError) as raised:
        prepare_prompts(make_config(path, dataset=dataset, shards=3), paths)
    return str(raised.value), path, before, {p.name: p.read_bytes() for p in out.iterdir()}


def test_a_bad_row_late_in_the_dataset_publishes_no_shard(tmp_path, monkeypatch):
    monkeypatch.setattr("rewardflow.jsonl.SHARD_BUFFER_CHARS", 1)  # earlier rows are on disk
    rows = [{"question": f"q{i}"} for i in range(20)] + [{"prompt": "no question"}]
    message, path, before, after = shard_files_after_failed_prepare(tmp_path, rows)
    assert message.startswith(f"{path}:21: prompt.template uses field 'question'")
    assert after == before  # the earlier shards untouched, no temporary left


def test_a_repeated_explicit_id_names_both_lines_and_publishes_no_shard(tmp_path):
    rows = [{"id": f"p{i}", "question": "q"} for i in range(30)] + [{"id": "p17", "question": "q"}]
    message, path, before, after = shard_files_after_failed_prepare(
        tmp_path, rows, dataset={"id_field": "id"}
    )
    assert message == f"{path}:31: duplicate id 'p17' (first at {path}:18)"
    assert after == before


def test_an_empty_dataset_publishes_no_shard(tmp_path):
    message, _, before, after = shard_files_after_failed_prepare(tmp_path, [])
    assert message == "the dataset has no rows"
    assert after == before


def test_explicit_ids_sharing_a_fingerprint_are_not_duplicates(tmp_path, monkeypatch):
    # Explicit ids are kept as 64-bit hashes: a repeated hash is confirmed on the rows first.
    monkeypatch.setattr(_SeenIds, "fingerprint", staticmethod(lambda prompt_id, explicit: 7))
    rows = [{"id": f"p{i}", "question": "q"} for i in range(6)]
    path = write_rows(tmp_path / "d.jsonl", rows)
    paths = [tmp_path / f"s{k}.jsonl" for k in range(2)]
    assert prepare_prompts(make_config(path, dataset={"id_field": "id"}), paths) == 6
    path = write_rows(tmp_path / "d.jsonl", [*rows, {"id": "p4", "question": "q"}])
    with pytest.raises(
        DatasetError, match=re.escape(f"{path}:7: duplicate id 'p4' (first at {path}:5)")
    ):
        prepare_prompts(make_config(path, dataset={"id_field": "id"}), paths)


def test_seen_ids_answer_as_a_set_does_across_growth():
    seen, reference = _SeenIds(), set()
    values = [0, 1, 2**64 - 1, *(int(content_id({"n": n})[2:], 16) for n in range(5000))]
    for value in values + values[::7]:
        assert seen.add(value) == (value not in reference)
        reference.add(value)


def test_prepare_keeps_no_list_of_records(tmp_path, monkeypatch):
    # The step streams: it never builds the whole list (the memory it costs is in bench/).
    monkeypatch.setattr(prepare_module, "build_prompt_records", None)
    monkeypatch.setattr(prepare_module, "split_into_shards", None)
    path = write_rows(tmp_path / "d.jsonl", [{"question": "a"}, {"question": "b"}])
    paths = [tmp_path / f"s{k}.jsonl" for k in range(2)]
    assert prepare_prompts(make_config(path), paths) == 2


# --- score-only mode ---------------------------------------------------------------------


def test_score_only_mode_reads_string_and_list_responses(tmp_path):
    rows = [
        {"question": "a", "completion": "answer a"},
        {"question": "b", "completion": ["b1", "b2"]},
    ]
    path = write_rows(tmp_path / "d.jsonl", rows)
    config = make_config(
        path, dataset={"response_field": "completion"}, generation={"enabled": False}
    )
    records = build_prompt_records(iter_rows(config.dataset), config)
    assert [r.responses for r in records] == [["answer a"], ["b1", "b2"]]
    assert records[0].metadata == {"question": "a"}
    assert records[1].to_dict()["responses"] == ["b1", "b2"]


@pytest.mark.parametrize("bad", [None, [], [1, 2], 3])
def test_score_only_mode_rejects_missing_or_bad_response_field(tmp_path, bad):
    row = {"question": "a"}
    if bad is not None:
        row["completion"] = bad
    path = write_rows(tmp_path / "d.jsonl", [{"question": "ok", "completion": "x"}, row])
    config = make_config(
        path, dataset={"response_field": "completion"}, generation={"enabled": False}
    )
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2") + ".*'completion'"):
        build_prompt_records(iter_rows(config.dataset), config)


def test_response_field_is_ignored_when_generation_is_enabled(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"question": "a"}])
    config = make_config(path, dataset={"response_field": "completion"})
    record = build_prompt_record(next(iter_rows(config.dataset)), config)
    assert record.responses is None
    assert "responses" not in record.to_dict()


# --- hub datasets (offline, local folder stands in for a hub repo) -----------------------


@pytest.fixture
def offline_hf(tmp_path, monkeypatch):
    hf_home = tmp_path / "hf-home"
    cache = hf_home / "datasets"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    import datasets.config
    import huggingface_hub.constants

    # Both libraries read these at import time; patch the values too in case they were imported.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_CACHE_HOME", str(hf_home))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", hf_home / "modules")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", cache / "downloads")
    monkeypatch.setattr(
        datasets.config, "EXTRACTED_DATASETS_PATH", cache / "downloads" / "extracted"
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    return hf_home


def make_local_hub_dataset(tmp_path):
    folder = tmp_path / "gsm-mini"
    folder.mkdir()
    rows = [
        {"question": "1+1?", "answer": "one plus one\n#### 2"},
        {"question": "2+3?", "answer": "two plus three\n#### 5"},
        {"question": "9-4?", "answer": "nine minus four\n#### 5"},
    ]
    write_rows(folder / "test.jsonl", rows)
    return folder, rows


def test_iter_hub_rows_loads_a_local_dataset_folder(tmp_path, offline_hf):
    folder, rows = make_local_hub_dataset(tmp_path)
    loaded = list(iter_hub_rows(str(folder), None, "test"))
    assert [row.data for row in loaded] == rows
    assert [row.source for row in loaded] == [
        {"dataset": str(folder), "split": "test", "row": index} for index in range(3)
    ]
    assert loaded[1].location == f"{folder}[test]#1"
    assert offline_hf.is_dir()  # the cache went to tmp_path


def test_hub_rows_flow_through_prepare_with_limit(tmp_path, offline_hf):
    folder, rows = make_local_hub_dataset(tmp_path)
    config = settings_of(
        {
            "run_name": "hub",
            "shards": 2,
            "dataset": {
                "huggingface": {"repo": str(folder), "split": "test"},
                "ground_truth_field": "answer",
                "ground_truth_pattern": GSM8K_PATTERN,
                "limit": 2,
            },
            "model": {"provider": "simulator", "name": "sim"},
            "rewards": [{"name": "accuracy", "function": "pkg.mod:fn"}],
        }
    )
    records = build_prompt_records(iter_rows(config.dataset), config)
    assert [r.ground_truth for r in records] == ["2", "5"]
    assert [r.id for r in records] == [content_id(rows[0]), content_id(rows[1])]
    assert records[1].source == {"dataset": str(folder), "split": "test", "row": 1}


def test_hub_row_errors_name_dataset_split_and_row(tmp_path, offline_hf):
    folder, _ = make_local_hub_dataset(tmp_path)
    row = next(iter_hub_rows(str(folder), None, "test"))
    with pytest.raises(DatasetError, match=re.escape(f"{folder}[test]#0") + ".*'context'"):
        render_template("{context}", row)


def test_unknown_hub_dataset_is_a_dataset_error_pointing_at_dataset_path(offline_hf):
    with pytest.raises(DatasetError) as excinfo:
        list(iter_hub_rows("rewardflow-no-such-org/no-such-dataset", None, "test"))
    message = str(excinfo.value)
    assert "rewardflow-no-such-org/no-such-dataset" in message
    assert "dataset.path" in message


def test_hub_rows_take_nested_mapping_keys_and_their_own_messages(tmp_path, offline_hf):
    folder = tmp_path / "chat-mini"
    folder.mkdir()
    rows = [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + 1?"}],
            "reward_model": {"ground_truth": str(i + 1)},
            "extra_info": {"index": i},
        }
        for i in range(3)
    ]
    write_rows(folder / "test.jsonl", rows)
    config = settings_of(
        {
            "run_name": "hub",
            "dataset": {
                "huggingface": {"repo": str(folder), "split": "test"},
                "messages_field": "prompt",
                "ground_truth_field": "reward_model.ground_truth",
                "id_field": "extra_info.index",
            },
            "model": {"provider": "simulator", "name": "sim"},
            "rewards": [{"name": "accuracy", "function": "pkg.mod:fn"}],
        }
    )
    records = build_prompt_records(iter_rows(config.dataset), config)
    assert [(r.id, r.ground_truth) for r in records] == [("0", "1"), ("1", "2"), ("2", "3")]
    assert records[2].messages == [{"role": "user", "content": "What is 2 + 1?"}]
    assert "prompt" not in records[2].metadata
