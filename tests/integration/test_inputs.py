"""Results follow their inputs: editing a local file a run reads reruns what depends on it.

Each test runs the workflow, edits one input file, reruns with the same command and checks that
the summary changed and that the cache answered every request whose content did not change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import (
    arithmetic_rows,
    base_config,
    run_snakemake,
    write_config,
    write_jsonl,
)

pytestmark = pytest.mark.integration


def accuracy(workdir: Path) -> float:
    summary = json.loads((workdir / "results" / "test" / "summary.json").read_text())
    return summary["rewards"]["accuracy"]["mean"]


def run(workdir: Path, config: dict, *args: str, **kwargs):
    return run_snakemake(
        workdir, "--configfile", str(write_config(workdir, config)), *args, **kwargs
    )


def test_editing_the_ground_truths_rescores_without_a_request(tmp_path, fresh_simulator):
    rows = arithmetic_rows(12)
    dataset = write_jsonl(tmp_path / "data.jsonl", rows)
    config = base_config(dataset, fresh_simulator.base_url)
    first = run(tmp_path, config)
    assert first.returncode == 0, first.output
    assert accuracy(tmp_path) > 0
    fresh_simulator.reset()

    write_jsonl(dataset, [{**row, "answer": "-1"} for row in rows])
    second = run(tmp_path, config)

    assert second.returncode == 0, second.output
    assert "prepare_prompts" in second.ran_rules, second.output
    assert accuracy(tmp_path) == 0.0
    assert fresh_simulator.requests() == 0


def test_editing_a_reward_file_rescores_without_a_request(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(8))
    reward = tmp_path / "my_reward.py"
    reward.write_text("def evaluate(messages, ground_truth, **kwargs):\n    return 1.0\n")
    config = base_config(dataset, fresh_simulator.base_url)
    config["rewards"] = [{"name": "accuracy", "function": "my_reward.py:evaluate"}]
    first = run(tmp_path, config)
    assert first.returncode == 0, first.output
    assert accuracy(tmp_path) == 1.0
    fresh_simulator.reset()

    reward.write_text("def evaluate(messages, ground_truth, **kwargs):\n    return 0.0\n")
    second = run(tmp_path, config)

    assert second.returncode == 0, second.output
    assert set(second.ran_rules) >= {"score_responses", "aggregate_scores"}
    assert "generate_responses" not in second.ran_rules
    assert accuracy(tmp_path) == 0.0
    assert fresh_simulator.requests() == 0


def test_editing_a_reward_module_on_the_python_path_rescores(tmp_path, fresh_simulator):
    # A reward named package.module:function, from the user's own code (not site-packages).
    package = tmp_path / "code" / "myrewards"
    package.mkdir(parents=True)
    module = package / "scoring.py"
    module.write_text("def evaluate(messages, ground_truth, **kwargs):\n    return 1.0\n")
    (package / "__init__.py").write_text("")
    paths = [str(tmp_path / "code"), os.environ.get("PYTHONPATH", "")]
    env = {"PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(6))
    config = base_config(dataset, fresh_simulator.base_url)
    config["rewards"] = [{"name": "accuracy", "function": "myrewards.scoring:evaluate"}]
    first = run(tmp_path, config, env=env)
    assert first.returncode == 0, first.output
    assert accuracy(tmp_path) == 1.0
    fresh_simulator.reset()

    module.write_text("def evaluate(messages, ground_truth, **kwargs):\n    return 0.0\n")
    second = run(tmp_path, config, env=env)

    assert second.returncode == 0, second.output
    assert "generate_responses" not in second.ran_rules
    assert accuracy(tmp_path) == 0.0
    assert fresh_simulator.requests() == 0


def test_editing_the_simulator_responses_regenerates(tmp_path):
    rows = arithmetic_rows(6)
    dataset = write_jsonl(tmp_path / "data.jsonl", rows)
    answers = tmp_path / "answers.jsonl"

    def answer_with(offset: int) -> None:
        write_jsonl(
            answers,
            [
                {"prompt": row["question"], "response": f"#### {int(row['answer']) + offset}"}
                for row in rows
            ],
        )

    answer_with(0)
    config = base_config(dataset, "unused")
    config["model"] = {"provider": "simulator", "name": "sim-model"}
    config["simulator"] = {"responses": str(answers), "latency_ms": 1}
    first = run(tmp_path, config)
    assert first.returncode == 0, first.output
    assert accuracy(tmp_path) == 1.0

    answer_with(1)
    second = run(tmp_path, config)

    assert second.returncode == 0, second.output
    assert "generate_responses" in second.ran_rules
    assert accuracy(tmp_path) == 0.0


def test_unchanged_inputs_rerun_nothing(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(4))
    reward = tmp_path / "my_reward.py"
    reward.write_text("def evaluate(messages, ground_truth, **kwargs):\n    return 1.0\n")
    config = base_config(dataset, fresh_simulator.base_url)
    config["rewards"] = [{"name": "accuracy", "function": "my_reward.py:evaluate"}]
    assert run(tmp_path, config).returncode == 0

    again = run(tmp_path, config)

    assert again.returncode == 0, again.output
    assert again.ran_rules == []
    assert "Nothing to be done" in again.output


@pytest.mark.parametrize(
    ("rows", "shards", "limit", "expected"),
    [(5, 1000, None, 5), (20, 8, 3, 3)],
)
def test_more_shards_than_prompts_are_capped(tmp_path, rows, shards, limit, expected):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(rows))
    config = base_config(dataset, "http://127.0.0.1:9/v1", shards=shards)
    config["dataset"]["limit"] = limit

    plan = run(tmp_path, config, "-n")

    assert plan.returncode == 0, plan.output
    assert f"generate_responses{' ' * 8}{expected}\n" in plan.output, plan.output
    assert f"score_responses{' ' * 11}{expected}\n" in plan.output
    assert f"shards: {shards} is more than the {expected} prompts" in plan.output


def test_reordering_the_config_file_reruns_nothing(tmp_path, fresh_simulator):
    # Snakemake compares params by repr(), in which a dict's key order shows.
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(4))
    config = base_config(dataset, fresh_simulator.base_url)
    assert run(tmp_path, config).returncode == 0

    def reversed_keys(value):
        if isinstance(value, dict):
            return {key: reversed_keys(value[key]) for key in reversed(list(value))}
        if isinstance(value, list):
            return [reversed_keys(item) for item in value]
        return value

    again = run(tmp_path, reversed_keys(config))

    assert again.returncode == 0, again.output
    assert again.ran_rules == [], again.output


def test_changing_concurrency_or_timeouts_reruns_nothing(tmp_path, fresh_simulator):
    # docs/workflow.md: operational settings never rerun a finished step, the summary included.
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(4))
    config = base_config(dataset, fresh_simulator.base_url)
    assert run(tmp_path, config).returncode == 0
    config["generation"].update({"concurrency": 7, "timeout_s": 33})

    plan = run(tmp_path, config, "-n")

    assert plan.returncode == 0, plan.output
    assert plan.ran_rules == [], plan.output
    assert "Nothing to be done" in plan.output
