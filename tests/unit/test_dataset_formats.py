"""Dataset formats: verl Parquet, chat JSONL, CSV and Parquet, detection, dotted field paths.

Fixtures are written in each test with pyarrow and the csv module, so each test shows the exact
rows it reads; the shipped example (examples/verl/arithmetic.parquet) is checked against the
script that made it.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO

from rewardflow.config import load_schema, validate_config
from rewardflow.config.prompts import DatasetSettings, PrepareSettings
from rewardflow.errors import ConfigError, DatasetError
from rewardflow.jsonl import read_jsonl
from rewardflow.prompts.dataset import count_rows, iter_rows, resolve_dataset
from rewardflow.prompts.fields import MISSING, get_field
from rewardflow.prompts.formats import FORMATS, detect_format
from rewardflow.prompts.prepare import build_prompt_records, content_id, prepare_prompts


def make_config(path: Path | str, dataset=None, prompt=None, generation=None, shards=2):
    raw: dict[str, Any] = {
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
    return PrepareSettings.from_config(validate_config(raw))


def dataset_of(**keys) -> DatasetSettings:
    """The dataset settings of a config whose dataset section sets ``keys``."""
    raw = {
        "run_name": "unit",
        "dataset": keys,
        "model": {"provider": "simulator", "name": "sim"},
        "rewards": [{"name": "accuracy", "function": "pkg.mod:fn"}],
    }
    return DatasetSettings.from_config(validate_config(raw))


def records_of(config):
    return build_prompt_records(iter_rows(config.dataset), config)


def verl_row(index: int, question: str, answer: str, source: str = "gsm8k") -> dict[str, Any]:
    """A row as verl's examples/data_preprocess/gsm8k.py writes it."""
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": question}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"split": "test", "index": index, "answer": answer, "question": question},
    }


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


VERL_GT = {"style": "rule", "ground_truth": "1"}
VERL_ROWS = [
    verl_row(10, "What is 2 + 3?", "5", "arith"),
    verl_row(11, "What is 7 * 6?", "42", "arith"),
    verl_row(12, "What is 9 - 4?", "5", "gsm8k"),
]


# --- dotted field paths --------------------------------------------------------------------


def test_get_field_reaches_into_nested_objects_and_lists():
    row = {"reward_model": {"ground_truth": "5"}, "prompt": [{"content": "hi"}], "n": None}
    assert get_field(row, "reward_model.ground_truth") == "5"
    assert get_field(row, "prompt.0.content") == "hi"
    assert get_field(row, "n") is None  # present with null is not missing
    assert get_field(row, "reward_model.style") is MISSING
    assert get_field(row, "prompt.1.content") is MISSING
    assert get_field(row, "n.x") is MISSING


def test_get_field_prefers_a_key_that_contains_the_dot():
    assert get_field({"a.b": 1, "a": {"b": 2}}, "a.b") == 1


# --- verl Parquet --------------------------------------------------------------------------


def test_a_verl_file_runs_with_nothing_but_its_path(tmp_path):
    path = write_parquet(tmp_path / "test.parquet", VERL_ROWS)
    records = records_of(make_config(path))

    assert [r.id for r in records] == ["10", "11", "12"]
    assert records[1].messages == [{"role": "user", "content": "What is 7 * 6?"}]
    assert [r.ground_truth for r in records] == ["5", "42", "5"]
    assert records[2].source == {"file": str(path), "row": 2}
    metadata = records[0].metadata
    # Everything but the prompt messages passes through, for group_by and for rewards' readers.
    assert set(metadata) == {"data_source", "ability", "reward_model", "extra_info"}
    assert metadata["data_source"] == "arith"
    assert metadata["extra_info"]["index"] == 10


def test_a_verl_file_without_extra_info_index_gets_content_ids(tmp_path):
    rows = [{key: value for key, value in row.items() if key != "extra_info"} for row in VERL_ROWS]
    path = write_parquet(tmp_path / "test.parquet", rows)
    records = records_of(make_config(path))
    assert [r.id for r in records] == [content_id(row) for row in rows]


def test_configured_fields_win_over_the_verl_defaults(tmp_path):
    rows = [{**row, "uid": f"u{i}", "answer": f"a{i}"} for i, row in enumerate(VERL_ROWS)]
    path = write_parquet(tmp_path / "test.parquet", rows)
    config = make_config(path, dataset={"id_field": "uid", "ground_truth_field": "answer"})
    records = records_of(config)
    assert [(r.id, r.ground_truth) for r in records] == [("u0", "a0"), ("u1", "a1"), ("u2", "a2")]


def test_prepare_writes_verl_prompts_into_shards_and_logs_the_format(tmp_path, caplog):
    path = write_parquet(tmp_path / "test.parquet", VERL_ROWS)
    shards = [tmp_path / "shard-0.jsonl", tmp_path / "shard-1.jsonl"]
    with caplog.at_level("INFO"):
        assert prepare_prompts(make_config(path), shards) == 3
    written = [data for shard in shards for _, data in read_jsonl(shard)]
    assert sorted(record["id"] for record in written) == ["10", "11", "12"]
    assert "format verl" in caplog.text and "extra_info.index" in caplog.text


def test_a_bad_verl_row_is_named_by_file_and_row(tmp_path):
    rows = [*VERL_ROWS[:2], {**VERL_ROWS[2], "prompt": [{"role": "robot", "content": "x"}]}]
    path = write_parquet(tmp_path / "test.parquet", rows)
    with pytest.raises(DatasetError, match=re.escape(f"{path}:row 2: prompt[0]: role must be")):
        records_of(make_config(path))


def test_a_verl_row_with_no_messages_is_named_by_file_and_row(tmp_path):
    rows = [VERL_ROWS[0], {**VERL_ROWS[1], "prompt": []}]
    path = write_parquet(tmp_path / "test.parquet", rows)
    with pytest.raises(DatasetError, match=re.escape(f"{path}:row 1: field 'prompt' must be")):
        records_of(make_config(path))


def test_parquet_null_message_keys_are_dropped(tmp_path):
    # Parquet gives every struct in a list the same keys: "name" becomes null where unset.
    rows = [
        {"prompt": [{"role": "user", "content": "hi", "name": "ann"}], "reward_model": VERL_GT},
        {"prompt": [{"role": "user", "content": "yo"}], "reward_model": VERL_GT},
    ]
    path = write_parquet(tmp_path / "test.parquet", rows)
    records = records_of(make_config(path))
    assert records[0].messages == [{"role": "user", "content": "hi", "name": "ann"}]
    assert records[1].messages == [{"role": "user", "content": "yo"}]


def test_system_or_few_shot_with_a_chat_dataset_is_an_error(tmp_path):
    path = write_parquet(tmp_path / "test.parquet", VERL_ROWS)
    config = make_config(path, prompt={"system": "Be brief."})
    with pytest.raises(DatasetError, match=r"prompt\.system / prompt\.few_shot: .*'prompt'"):
        records_of(config)


def test_format_parquet_reads_a_verl_file_as_plain_rows_through_the_template(tmp_path):
    path = write_parquet(tmp_path / "test.parquet", VERL_ROWS)
    config = make_config(
        path,
        dataset={"format": "parquet", "ground_truth_field": "reward_model.ground_truth"},
        prompt={"template": "Q: {extra_info[question]}"},
    )
    records = records_of(config)
    assert records[0].messages == [{"role": "user", "content": "Q: What is 2 + 3?"}]
    assert records[0].ground_truth == "5"
    assert "prompt" in records[0].metadata  # not a messages field here, so kept


def test_parquet_values_become_json_and_pandas_index_columns_are_dropped(tmp_path):
    table = pa.table(
        {
            "question": ["What is 1 + 1?"],
            "when": pa.array([datetime.datetime(2024, 5, 1, 12, 30)], pa.timestamp("s")),
            "price": pa.array([decimal.Decimal("1.10")], pa.decimal128(5, 2)),
            "blob": pa.array([b"\xff\x00"], pa.binary()),
            "__index_level_0__": [7],
        }
    )
    path = tmp_path / "plain.parquet"
    pq.write_table(table, path)
    (record,) = records_of(make_config(path))
    assert record.metadata == {
        "question": "What is 1 + 1?",
        "when": "2024-05-01T12:30:00",
        "price": "1.10",
        "blob": "base64:/wA=",
    }
    json.dumps(record.to_dict())  # a prompt record must be writable as JSON


def test_a_file_that_is_not_parquet_is_a_clear_error(tmp_path):
    path = write_text(tmp_path / "broken.parquet", "this is not parquet\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: not a readable Parquet file")):
        records_of(make_config(path))


def test_the_shipped_verl_example_is_what_its_script_makes(tmp_path):
    output = tmp_path / "made.parquet"
    subprocess.run(
        [sys.executable, str(REPO / "examples/verl/make_dataset.py"), "--output", str(output)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    shipped = pq.read_table(REPO / "examples/verl/arithmetic.parquet")
    assert shipped.equals(pq.read_table(output))
    assert shipped.num_rows == 40


# --- chat JSONL ----------------------------------------------------------------------------


def test_chat_jsonl_messages_are_the_prompt_as_is(tmp_path):
    messages = [
        {"role": "system", "content": "You add."},
        {"role": "user", "content": "2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3 + 3?"},
    ]
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": messages, "answer": "6"}])
    # The default template "{question}" would fail on this row: it must not be used.
    (record,) = records_of(make_config(path, dataset={"ground_truth_field": "answer"}))
    assert record.messages == messages
    assert record.metadata == {"answer": "6"}
    assert record.source == {"file": str(path), "line": 1}


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ("hello", "field 'messages' must be a non-empty list"),
        ([{"role": "user", "content": "a"}, "b"], "messages[1]: a message must be an object"),
        ([{"role": "user", "content": 5}], "messages[0]: content must be text, got int"),
        ([{"content": "a"}], "messages[0]: role must be one of"),
    ],
)
def test_bad_chat_messages_are_named_by_file_line_and_position(tmp_path, messages, message):
    good = {"messages": [{"role": "user", "content": "fine"}]}
    path = write_jsonl(tmp_path / "chat.jsonl", [good, {"messages": messages}])
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2: {message}")):
        records_of(make_config(path))


def test_a_chat_row_without_messages_is_named(tmp_path):
    path = write_jsonl(
        tmp_path / "chat.jsonl",
        [{"messages": [{"role": "user", "content": "a"}]}, {"question": "b"}],
    )
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2: missing messages field")):
        records_of(make_config(path))


# --- CSV -----------------------------------------------------------------------------------


def test_csv_rows_map_columns_and_name_the_line_each_record_starts_on(tmp_path):
    path = write_text(
        tmp_path / "data.csv",
        "\ufeffid,question,answer\n"  # a spreadsheet's byte-order mark
        'a1,"What is 1 + 1?",2\n'
        "\n"
        'a2,"A question\nover two lines",3\n'
        "a3,What is 2 + 2?,4\n",
    )
    config = make_config(path, dataset={"id_field": "id", "ground_truth_field": "answer"})
    records = records_of(config)
    assert [r.id for r in records] == ["a1", "a2", "a3"]
    assert records[1].messages[-1]["content"] == "A question\nover two lines"
    assert [r.source["line"] for r in records] == [2, 4, 6]
    assert records[2].metadata == {"id": "a3", "question": "What is 2 + 2?", "answer": "4"}


def test_a_csv_record_with_the_wrong_number_of_values_is_named_by_line(tmp_path):
    path = write_text(tmp_path / "data.csv", "question,answer\nq1,1\nq2,2,extra\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}:3: 3 value(s), but the header")):
        records_of(make_config(path))


@pytest.mark.parametrize(
    ("header", "message"),
    [("question,,answer", "empty column name"), ("question,answer,answer", "repeats column")],
)
def test_a_bad_csv_header_is_named_by_line_1(tmp_path, header, message):
    path = write_text(tmp_path / "data.csv", f"{header}\nq,1,2\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}:1: ") + f".*{message}"):
        records_of(make_config(path))


def test_a_csv_quote_left_open_is_named_by_line(tmp_path):
    path = write_text(tmp_path / "data.csv", 'question,answer\nq1,1\n"q2,2\n')
    with pytest.raises(DatasetError, match=re.escape(f"{path}:") + r"\d+: not valid CSV"):
        records_of(make_config(path))


def test_a_csv_line_that_is_not_utf8_is_named_by_line(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"question,answer\nq1,1\ncaf\xe9,2\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}:3: not valid UTF-8")):
        records_of(make_config(path))


# --- nested fields in JSONL ----------------------------------------------------------------


def test_jsonl_mapping_keys_take_dotted_paths(tmp_path):
    rows = [
        {"meta": {"uid": "x1"}, "q": "What is 1 + 1?", "reward_model": {"ground_truth": "2"}},
        {"meta": {"uid": "x2"}, "q": "What is 2 + 2?", "reward_model": {"ground_truth": "4"}},
    ]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    config = make_config(
        path,
        dataset={"id_field": "meta.uid", "ground_truth_field": "reward_model.ground_truth"},
        prompt={"template": "{q}"},
    )
    assert [(r.id, r.ground_truth) for r in records_of(config)] == [("x1", "2"), ("x2", "4")]


def test_a_missing_nested_field_is_named_with_its_path(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [{"question": "q", "reward_model": {}}])
    config = make_config(path, dataset={"ground_truth_field": "reward_model.ground_truth"})
    with pytest.raises(DatasetError, match=re.escape(f"{path}:1: missing ground truth field")):
        records_of(config)


def test_nested_response_field_in_score_only_mode(tmp_path):
    rows = [{"question": "q", "out": {"text": ["a", "b"]}}]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    config = make_config(
        path, dataset={"response_field": "out.text"}, generation={"enabled": False}
    )
    (record,) = records_of(config)
    assert record.responses == ["a", "b"]


# --- detection and the override --------------------------------------------------------------


def test_detection_by_extension_and_content(tmp_path):
    assert detect_format(write_parquet(tmp_path / "v.parquet", VERL_ROWS)) == "verl"
    assert detect_format(write_parquet(tmp_path / "p.parquet", [{"question": "q"}])) == "parquet"
    assert detect_format(write_parquet(tmp_path / "v.data", VERL_ROWS)) == "verl"  # magic bytes
    assert detect_format(write_text(tmp_path / "d.csv", "question\nq\n")) == "csv"
    assert detect_format(write_jsonl(tmp_path / "d.jsonl", [{"question": "q"}])) == "jsonl"
    chat = [{"messages": [{"role": "user", "content": "q"}]}]
    assert detect_format(write_jsonl(tmp_path / "c.jsonl", chat)) == "chat_jsonl"
    assert detect_format(write_jsonl(tmp_path / "c.txt", chat)) == "chat_jsonl"  # starts with {


def test_an_undetectable_file_asks_for_dataset_format(tmp_path):
    path = write_text(tmp_path / "export.data", "question,answer\nWhat is 1 + 1?,2\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: cannot tell the format") + ".*"):
        records_of(make_config(path))
    (record,) = records_of(make_config(path, dataset={"format": "csv"}))
    assert record.metadata == {"question": "What is 1 + 1?", "answer": "2"}


def test_the_format_override_reads_a_jsonl_file_with_another_extension(tmp_path):
    path = write_text(tmp_path / "data.log", "\n" + json.dumps({"question": "q"}) + "\n")
    config = make_config(path, dataset={"format": "jsonl"})
    (record,) = records_of(config)
    assert record.source == {"file": str(path), "line": 2}


def test_an_unknown_format_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset\.format: expected one of"):
        make_config(tmp_path / "d.jsonl", dataset={"format": "xml"})


def test_a_file_format_with_a_hub_dataset_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset\.format: 'verl' describes a dataset\.path"):
        resolve_dataset(dataset_of(huggingface={"repo": "x"}, format="verl"))


def test_resolving_twice_gives_the_same_settings(tmp_path):
    path = write_parquet(tmp_path / "test.parquet", VERL_ROWS)
    once = resolve_dataset(make_config(path).dataset)
    assert once.format == "verl"
    assert resolve_dataset(once) == once


# --- counting rows ahead of reading them -----------------------------------------------------


def test_count_rows_for_each_format_and_limit(tmp_path):
    jsonl = write_text(tmp_path / "d.jsonl", '{"q": 1}\n\n{"q": 2}\n  \n{"q": 3}\n')
    csv_file = write_text(tmp_path / "d.csv", 'q,a\n"two\nlines",1\n\nx,2\n')
    parquet = write_parquet(tmp_path / "d.parquet", VERL_ROWS)
    assert count_rows(dataset_of(path=str(jsonl))) == 3
    assert count_rows(dataset_of(path=str(csv_file))) == 2
    assert count_rows(dataset_of(path=str(parquet))) == 3
    assert count_rows(dataset_of(path=str(parquet), limit=2)) == 2
    assert count_rows(dataset_of(path=str(parquet), limit=10)) == 3
    assert count_rows(dataset_of(huggingface={"repo": "x"})) is None


def test_count_rows_matches_the_prompts_prepared(tmp_path):
    path = write_parquet(tmp_path / "test.parquet", VERL_ROWS)
    config = make_config(path)
    assert count_rows(config.dataset) == len(records_of(config))


def test_count_rows_of_a_missing_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        count_rows(dataset_of(path=str(tmp_path / "nope.parquet")))


def test_the_schema_offers_exactly_the_formats_there_are():
    enum = load_schema()["properties"]["dataset"]["properties"]["format"]["enum"]
    assert enum == ["auto", *FORMATS]
