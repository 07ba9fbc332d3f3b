"""The parse-time helpers that declare a run's local files as rule inputs and size its shards."""

from __future__ import annotations

import sys

import pytest

from rewardflow.config import (
    aggregate_files,
    callable_source_file,
    capped_shards,
    dataset_files,
    generation_files,
    module_source_file,
    reward_files,
    validate_config,
)


def make_config(**overrides):
    config = {
        "run_name": "t",
        "dataset": {"path": "data.jsonl"},
        "model": {"provider": "simulator", "name": "m"},
        "rewards": [{"name": "a", "function": "rewardflow.rewards.math:math_reward"}],
    }
    config.update(overrides)
    return validate_config(config)


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A package of the user's own on sys.path whose __init__ must never run here."""
    package = tmp_path / "code" / "userpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported while resolving')\n")
    (package / "scoring.py").write_text("def evaluate(messages, ground_truth):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    yield package
    sys.modules.pop("userpkg", None)


def test_a_user_module_resolves_to_its_file_without_being_imported(user_package):
    assert module_source_file("userpkg.scoring") == (user_package / "scoring.py").resolve()
    assert "userpkg" not in sys.modules
    assert callable_source_file("userpkg.scoring:evaluate") == str(
        (user_package / "scoring.py").resolve()
    )


@pytest.mark.parametrize(
    "reference",
    [
        "rewardflow.rewards.math:math_reward",  # rewardflow's own: changes only with it
        "yaml:safe_load",  # site-packages
        "json:loads",  # the standard library
        "no_such_module.anywhere:f",  # reported by the preflight check, not here
        "userpkg.missing:f",
    ],
)
def test_installed_or_missing_modules_are_not_tracked(reference, user_package):
    assert callable_source_file(reference) is None


def test_file_references_are_tracked_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_reward.py").write_text("def evaluate(m, g):\n    return 1\n")
    assert callable_source_file("my_reward.py:evaluate") == "my_reward.py"
    assert callable_source_file("absent.py:evaluate") is None


def test_every_local_file_of_a_run_is_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("data.jsonl", "answers.jsonl", "my_reward.py", "schema.json", "extract.py"):
        (tmp_path / name).write_text("{}\n")
    config = make_config(
        simulator={"responses": "answers.jsonl"},
        rewards=[
            {"name": "a", "function": "my_reward.py:evaluate"},
            {
                "name": "b",
                "function": "rewardflow.rewards.json_rewards:json_schema_reward",
                "params": {"schema_path": "schema.json", "note": "not a file", "n": 3},
            },
            {"name": "c", "function": "my_reward.py:other"},
        ],
        metrics={"answer_extractor": "extract.py:find"},
    )

    assert dataset_files(config) == ["data.jsonl"]
    assert generation_files(config) == ["answers.jsonl"]
    assert reward_files(config) == ["my_reward.py", "schema.json"]
    assert aggregate_files(config) == ["extract.py"]


def test_simulator_answers_are_no_input_of_a_real_endpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "answers.jsonl").write_text("{}\n")
    config = make_config(
        model={"provider": "openai", "name": "m", "base_url": "http://x/v1"},
        simulator={"responses": "answers.jsonl"},
    )
    assert generation_files(config) == []


def test_blank_lines_are_not_prompts(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n   \n{"a": 3}')
    config = make_config(shards=8, dataset={"path": str(path)})
    assert capped_shards(config) == (3, 3)


def test_shards_are_capped_for_every_file_format(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('question,answer\n"What is\n1 + 1?",2\nWhat is 2 + 2?,4\n')
    config = make_config(shards=8, dataset={"path": str(path)})
    assert capped_shards(config) == (2, 2)


@pytest.mark.parametrize(
    ("rows", "shards", "limit", "expected"),
    [
        (5, 1000, None, (5, 5)),
        (20, 8, 3, (3, 3)),
        (20, 4, None, (4, 20)),
        (2, 8, 50, (2, 2)),
        (0, 4, None, (1, 0)),  # an empty file: one shard, and prepare reports the problem
    ],
)
def test_shards_are_capped_at_the_prompt_count(tmp_path, rows, shards, limit, expected):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(f'{{"i": {i}}}\n' for i in range(rows)))
    config = make_config(shards=shards, dataset={"path": str(path), "limit": limit})
    assert capped_shards(config) == expected


def test_a_hub_dataset_is_capped_only_by_its_limit():
    hub = {"huggingface": {"repo": "openai/gsm8k"}, "path": None}
    assert capped_shards(make_config(shards=16, dataset=hub)) == (16, None)
    assert capped_shards(make_config(shards=16, dataset={**hub, "limit": 10})) == (10, 10)


def test_a_missing_dataset_file_is_left_for_prepare_to_report(tmp_path):
    config = make_config(shards=8, dataset={"path": str(tmp_path / "absent.jsonl")})
    assert capped_shards(config) == (8, None)
    assert dataset_files(config) == []
