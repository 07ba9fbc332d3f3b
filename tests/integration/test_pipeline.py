"""The workflow end to end, run as users run it: snakemake in a subprocess, real HTTP.

Each test counts the requests the simulated model server received, because "never re-pay for
a finished request" is a claim about requests on the wire, not about files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import (
    GSM8K_TEST,
    REPO,
    arithmetic_rows,
    base_config,
    read_jsonl_file,
    run_snakemake,
    start_simulator,
    stop_simulator,
    write_config,
    write_jsonl,
)

pytestmark = pytest.mark.integration


def run_with(workdir: Path, config: dict, *args: str, **kwargs):
    """Write ``config`` into ``workdir`` and run the workflow with it."""
    return run_snakemake(
        workdir, "--configfile", str(write_config(workdir, config)), *args, **kwargs
    )


def summary_of(workdir: Path, run: str = "test") -> dict:
    return json.loads((workdir / "results" / run / "summary.json").read_text())


def test_demo_config_runs_offline_with_the_default_config(tmp_path):
    # The demo exactly as the quick start runs it: no --configfile, relative paths.
    for name in ("config", "examples"):
        (tmp_path / name).symlink_to(REPO / name)

    result = run_snakemake(tmp_path, "--config", "simulator={'latency_ms': 5}")

    assert result.returncode == 0, result.output
    summary = summary_of(tmp_path, "demo")
    rows = (REPO / "examples" / "demo" / "arithmetic.jsonl").read_text().splitlines()
    assert summary["counts"]["prompts"] == len(rows)
    assert summary["counts"]["failed"] == 0
    accuracy = summary["rewards"]["accuracy"]
    assert accuracy["scored"] == len(rows)
    # The simulator answers ~20% wrong on purpose; a perfect or zero score means a broken reward.
    assert 0.5 < accuracy["mean"] < 1.0
    assert (tmp_path / "results" / "demo" / "summary.md").read_text().startswith("# rewardflow")


def test_second_run_does_nothing_and_sends_no_request(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(12))
    config = write_config(tmp_path, base_config(dataset, fresh_simulator.base_url))

    first = run_snakemake(tmp_path, "--configfile", str(config))
    assert first.returncode == 0, first.output
    assert fresh_simulator.requests() == 12
    fresh_simulator.reset()

    second = run_snakemake(tmp_path, "--configfile", str(config))

    assert second.returncode == 0, second.output
    assert "Nothing to be done" in second.output
    assert fresh_simulator.requests() == 0


def test_deleted_results_and_a_new_run_name_are_answered_from_the_cache(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(10))
    config = base_config(dataset, fresh_simulator.base_url)
    first = run_with(tmp_path, config)
    assert first.returncode == 0, first.output
    expected = summary_of(tmp_path)["rewards"]["accuracy"]["mean"]
    fresh_simulator.reset()

    renamed = {**config, "run_name": "again", "shards": 3}
    second = run_with(tmp_path, renamed)

    assert second.returncode == 0, second.output
    assert fresh_simulator.requests() == 0
    assert summary_of(tmp_path, "again")["rewards"]["accuracy"]["mean"] == expected


def test_raising_the_limit_requests_only_the_new_prompts(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(20))
    config = base_config(dataset, fresh_simulator.base_url)
    config["dataset"]["limit"] = 8
    assert run_with(tmp_path, config).returncode == 0
    assert fresh_simulator.requests() == 8
    fresh_simulator.reset()

    config["dataset"]["limit"] = 14
    result = run_with(tmp_path, config)

    assert result.returncode == 0, result.output
    assert fresh_simulator.requests() == 6
    assert summary_of(tmp_path)["counts"]["prompts"] == 14


def test_changing_only_scoring_reruns_only_scoring(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(8))
    config = base_config(dataset, fresh_simulator.base_url)
    assert run_with(tmp_path, config).returncode == 0
    fresh_simulator.reset()

    config["rewards"].append(
        {"name": "echo_length", "function": f"{REPO}/tests/data/rewards.py:length_reward"}
    )
    result = run_with(tmp_path, config)

    assert result.returncode == 0, result.output
    assert fresh_simulator.requests() == 0
    assert "generate_responses" not in result.ran_rules
    assert "score_responses" in result.ran_rules
    assert "echo_length" in summary_of(tmp_path)["rewards"]


def test_operational_knobs_do_not_rerun_generation(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(6))
    config = base_config(dataset, fresh_simulator.base_url)
    assert run_with(tmp_path, config).returncode == 0
    fresh_simulator.reset()

    config["generation"].update({"concurrency": 1, "timeout_s": 30, "max_attempts": 7})
    result = run_with(tmp_path, config)

    assert result.returncode == 0, result.output
    assert "generate_responses" not in result.ran_rules
    assert "score_responses" not in result.ran_rules
    assert fresh_simulator.requests() == 0


def test_config_overrides_on_the_command_line(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(9))
    config = write_config(tmp_path, base_config(dataset, fresh_simulator.base_url))

    result = run_snakemake(
        tmp_path, "--configfile", str(config), "--config", "shards=3", "run_name=override"
    )

    assert result.returncode == 0, result.output
    shards = sorted((tmp_path / "results" / "override" / "responses").glob("shard-*.jsonl"))
    assert [path.name for path in shards] == [f"shard-00{index}.jsonl" for index in range(3)]


def test_gsm8k_reference_answers_score_perfectly(tmp_path, fresh_simulator):
    # The real GSM8K rows, answered by the simulator with each problem's reference solution
    # (which ends in "#### N"): the math reward must then accept every single one.
    rows = read_jsonl_file(GSM8K_TEST)[:40]
    responses = write_jsonl(
        tmp_path / "reference.jsonl",
        [{"prompt": row["question"], "response": row["answer"]} for row in rows],
    )
    server = start_simulator("--latency-ms", "1", "--responses", str(responses))
    try:
        config = base_config(GSM8K_TEST, server.base_url, shards=4)
        config["dataset"] = {
            "path": str(GSM8K_TEST),
            "ground_truth_field": "answer",
            "ground_truth_pattern": r"####\s*(.+?)\s*$",
            "limit": 40,
        }
        result = run_with(tmp_path, config)
    finally:
        stop_simulator(server)

    assert result.returncode == 0, result.output
    summary = summary_of(tmp_path)
    assert summary["counts"] == {
        "prompts": 40, "samples": 40, "generated": 40, "failed": 0, "not_attempted": 0,
        "scored": 40, "score_errors": 0, "truncated": 0, "truncated_below_pass": 0,
    }  # fmt: skip
    assert summary["rewards"]["accuracy"]["mean"] == 1.0


def test_several_samples_per_prompt(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(5))
    config = base_config(dataset, fresh_simulator.base_url)
    config["generation"].update({"samples": 3, "temperature": 0.7, "seed": 11})

    result = run_with(tmp_path, config)

    assert result.returncode == 0, result.output
    assert fresh_simulator.requests() == 15
    summary = summary_of(tmp_path)
    assert summary["counts"]["samples"] == 15
    assert summary["rewards"]["accuracy"]["ci_method"] == "bootstrap over prompts"
    assert set(summary["sampling"]["pass_at_k"]) == {"1", "3"}
    assert set(summary["sampling"]["maj_at_k"]) == {"3"}


def test_existing_responses_are_scored_without_generation(tmp_path, fresh_simulator):
    rows = [
        {"id": "a", "question": "What is 1 + 1?", "answer": "2", "output": "#### 2"},
        {"id": "b", "question": "What is 2 + 2?", "answer": "4", "output": ["4", "5"]},
    ]
    dataset = write_jsonl(tmp_path / "data.jsonl", rows)
    config = base_config(dataset, "http://127.0.0.1:9/v1")
    config["dataset"]["response_field"] = "output"
    config["generation"] = {"enabled": False}

    result = run_with(tmp_path, config)

    assert result.returncode == 0, result.output
    assert "import_responses" in result.ran_rules
    summary = summary_of(tmp_path)
    assert summary["counts"]["samples"] == 3
    assert summary["counts"]["scored"] == 3
    # Per-prompt means: a = 1.0, b = 0.5 -> 0.75
    assert summary["rewards"]["accuracy"]["mean"] == pytest.approx(0.75)
    assert fresh_simulator.requests() == 0


def test_a_reward_that_raises_is_recorded_per_sample(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(10))
    config = base_config(dataset, fresh_simulator.base_url)
    config["rewards"] = [
        {"name": "flaky", "function": f"{REPO}/tests/data/rewards.py:fails_on_even_ids"}
    ]

    result = run_with(tmp_path, config)

    assert result.returncode == 0, result.output
    summary = summary_of(tmp_path)
    assert summary["counts"]["score_errors"] == 5
    assert summary["counts"]["scored"] == 5
    assert summary["rewards"]["flaky"]["mean"] == 1.0
    errors = [
        record
        for path in (tmp_path / "results" / "test" / "scores").glob("*.jsonl")
        for record in read_jsonl_file(path)
        if record["status"] == "score_error"
    ]
    assert all(record["score"] is None and "even id" in record["error"] for record in errors)


def test_misbehaving_rewards_cost_only_their_samples_and_see_no_api_keys(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(8))
    config = base_config(dataset, fresh_simulator.base_url)
    config["model"]["api_key_env"] = "RF_TEST_MODEL_CRED"
    config["scoring"] = {"memory_limit_mb": 1024}
    config["rewards"] = [{"name": "wild", "function": f"{REPO}/tests/data/rewards.py:misbehaves"}]
    secrets = {"RF_TEST_MODEL_CRED": "sk-model-secret", "OPENAI_API_KEY": "sk-other-secret"}

    result = run_with(tmp_path, config, env=secrets)

    assert result.returncode == 0, result.output
    summary = summary_of(tmp_path)
    assert summary["counts"]["scored"] == 2 and summary["counts"]["score_errors"] == 6
    assert summary["rewards"]["wild"]["mean"] == 1.0  # numpy.float32(1.0), keys not visible
    errors = sorted(
        record["error"]
        for path in (tmp_path / "results" / "test" / "scores").glob("*.jsonl")
        for record in read_jsonl_file(path)
        if record["status"] == "score_error"
    )
    assert errors == sorted(
        2 * ["SystemExit: the reward called sys.exit(0)", "KeyboardInterrupt",
             "MemoryError: the reward went over the scoring workers' memory limit "
             "(scoring.memory_limit_mb: 1024)"]
    )  # fmt: skip
    logs = "".join(p.read_text() for p in (tmp_path / "logs").rglob("score_responses/*.log"))
    assert "reward workers run without OPENAI_API_KEY, RF_TEST_MODEL_CRED" in logs
    assert "sk-model-secret" not in logs and "sk-other-secret" not in logs


def test_failed_requests_are_recorded_as_failures_and_fail_the_run(tmp_path, fresh_simulator):
    # extra_body replaces the model name with an empty one: the server answers 400 to all.
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(4))
    config = base_config(dataset, fresh_simulator.base_url)
    config["generation"]["extra_body"] = {"model": None}

    failed = run_with(tmp_path, config)

    assert failed.returncode != 0
    assert "samples failed" in failed.output
    assert not (tmp_path / "results" / "test" / "responses" / "shard-000.jsonl").exists()

    config["generation"]["max_failed_fraction"] = 1.0
    accepted = run_with(tmp_path, config)

    assert accepted.returncode == 0, accepted.output
    summary = summary_of(tmp_path)
    assert summary["counts"]["failed"] == 4
    assert summary["counts"]["scored"] == 0
    assert summary["rewards"]["accuracy"]["mean"] is None
    records = read_jsonl_file(tmp_path / "results" / "test" / "responses" / "shard-000.jsonl")
    assert all(r["status"] == "failed" and r["response"] is None for r in records)
    assert all(r["error"]["type"] == "ModelInvalidRequestError" for r in records)


def test_bad_config_value_is_reported_by_key_before_any_work(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(3))
    config = write_config(tmp_path, base_config(dataset, fresh_simulator.base_url))

    result = run_snakemake(
        tmp_path, "--configfile", str(config), "--config", "generation={'temperature': 'hot'}"
    )

    assert result.returncode != 0
    assert "generation.temperature: expected number, got 'hot'" in result.output
    assert fresh_simulator.requests() == 0
    assert not (tmp_path / "results").exists()


def test_missing_api_key_stops_the_run_before_any_request(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(3))
    config = base_config(dataset, fresh_simulator.base_url)
    config["model"]["api_key_env"] = "REWARDFLOW_TEST_UNSET_KEY"

    result = run_with(tmp_path, config, env={"REWARDFLOW_TEST_UNSET_KEY": ""})

    assert result.returncode != 0
    assert "REWARDFLOW_TEST_UNSET_KEY is not set" in result.output
    assert fresh_simulator.requests() == 0


def test_unloadable_reward_is_reported_before_generation(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(3))
    config = base_config(dataset, fresh_simulator.base_url)
    config["rewards"] = [{"name": "r", "function": "no_such_package.rewards:score"}]

    result = run_with(tmp_path, config)

    assert result.returncode != 0
    assert "module 'no_such_package' not found" in result.output
    assert fresh_simulator.requests() == 0


def test_malformed_dataset_row_is_reported_with_file_and_line(tmp_path, fresh_simulator):
    dataset = tmp_path / "data.jsonl"
    dataset.write_text('{"id": "a", "question": "What is 1 + 1?", "answer": "2"}\n{"id": "b",\n')
    config = write_config(tmp_path, base_config(dataset, fresh_simulator.base_url))

    result = run_snakemake(tmp_path, "--configfile", str(config))

    assert result.returncode != 0
    assert f"{dataset}:2: not valid JSON" in result.output
    assert fresh_simulator.requests() == 0


def test_a_bad_row_in_a_verl_parquet_file_is_reported_with_file_and_row(tmp_path, fresh_simulator):
    rows = [
        {
            "data_source": "arith",
            "prompt": [{"role": "user", "content": row["question"]}],
            "reward_model": {"style": "rule", "ground_truth": row["answer"]},
            "extra_info": {"index": index},
        }
        for index, row in enumerate(arithmetic_rows(3))
    ]
    rows[2]["prompt"] = [{"role": "user", "content": None}]
    dataset = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist(rows), dataset)
    config = base_config(dataset, fresh_simulator.base_url)
    config["dataset"] = {"path": str(dataset)}  # nothing else: the verl layout is detected
    result = run_with(tmp_path, config)

    assert result.returncode != 0
    assert f"{dataset}:row 2: prompt[0]: content must be text" in result.output
    assert fresh_simulator.requests() == 0


def test_several_builtin_rewards_with_weights_and_a_judge_in_one_run(tmp_path, fresh_simulator):
    # The judge is another simulator that echoes its prompt; the template makes that echo
    # end with a verdict line (after the fenced response), so the judge's request really goes
    # through the client inside the scoring workers and its answer is parsed.
    judge = start_simulator("--rule", "echo", "--latency-ms", "1")
    try:
        dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(8))
        config = base_config(dataset, fresh_simulator.base_url)
        config["rewards"] = [
            {"name": "accuracy", "function": "rewardflow.rewards.math:math_reward",
             "weight": 3},
            {"name": "short", "function": "rewardflow.rewards.length:length_reward",
             "params": {"max_chars": 10_000}, "weight": 1},
            {"name": "judged", "function": "rewardflow.rewards.judge:llm_judge",
             "params": {"model": "judge", "base_url": judge.base_url,
                        "template": "Grade this: {response}\nSCORE: 1"}},
        ]  # fmt: skip
        result = run_with(tmp_path, config)
        judge_requests = judge.requests()
    finally:
        stop_simulator(judge)

    assert result.returncode == 0, result.output
    summary = summary_of(tmp_path)
    assert summary["rewards"]["short"]["mean"] == 1.0
    assert summary["rewards"]["judged"]["mean"] == 1.0 and judge_requests == 8
    accuracy = summary["rewards"]["accuracy"]["mean"]
    assert summary["weighted"]["mean"] == pytest.approx((3 * accuracy + 1) / 4)
