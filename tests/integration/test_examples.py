"""The shipped configs and examples work as their READMEs say."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    GSM8K_TEST,
    REPO,
    bubblewrap_or_skip,
    read_jsonl_file,
    run_snakemake,
    start_simulator,
    stop_simulator,
    write_jsonl,
)

pytestmark = pytest.mark.integration


def test_math_example_runs_offline_as_its_readme_shows(tmp_path):
    (tmp_path / "examples").symlink_to(REPO / "examples")
    rows = read_jsonl_file(GSM8K_TEST)
    reference = write_jsonl(
        tmp_path / "reference.jsonl",
        [{"prompt": row["question"], "response": row["answer"]} for row in rows],
    )

    result = run_snakemake(
        tmp_path,
        "--configfile", str(REPO / "examples" / "math_example" / "config.yaml"),
        "--config",
        f"dataset={{'path': '{GSM8K_TEST}', 'huggingface': null, 'limit': 30}}",
        "model={'provider': 'simulator', 'api_key_env': null}",
        f"simulator={{'responses': '{reference}', 'latency_ms': 1}}",
    )  # fmt: skip

    assert result.returncode == 0, result.output
    summary = json.loads((tmp_path / "results" / "math_example" / "summary.json").read_text())
    accuracy = summary["rewards"]["accuracy"]
    assert accuracy["mean"] == 1.0 and accuracy["scored"] == 30
    assert accuracy["metrics"]["format"]["mean"] == 1.0


@pytest.mark.parametrize("config_file", ["config/math.yaml", "examples/math_example/config.yaml"])
def test_provider_configs_plan_the_gsm8k_run(tmp_path, config_file):
    # A dry run needs no network and no key: it shows the plan users will get.
    result = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / config_file))

    assert result.returncode == 0, result.output
    assert "generate_responses        8" in result.output
    assert "score_responses           8" in result.output


def test_verl_example_runs_offline_with_nothing_but_the_dataset_path(tmp_path):
    # As its header says: relative paths, the simulator started per job, no other dataset key.
    for name in ("config", "examples"):
        (tmp_path / name).symlink_to(REPO / name)

    result = run_snakemake(
        tmp_path,
        "--configfile", "config/verl-example.yaml",
        "--config", "simulator={'latency_ms': 5}",
    )  # fmt: skip

    assert result.returncode == 0, result.output
    results = tmp_path / "results" / "verl-example"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["counts"]["prompts"] == 40 and summary["counts"]["failed"] == 0
    accuracy = summary["rewards"]["accuracy"]
    assert accuracy["scored"] == 40
    # ~20% wrong on purpose: perfect or zero would mean the ground truth was not found.
    assert 0.5 < accuracy["mean"] < 1.0
    assert set(summary["breakdowns"]["data_source"]) == {"arithmetic/basic", "arithmetic/compound"}
    prompts = [
        record
        for shard in sorted((results / "prompts").glob("shard-*.jsonl"))
        for record in read_jsonl_file(shard)
    ]
    assert sorted(int(record["id"]) for record in prompts) == list(range(40))  # extra_info.index
    first = next(record for record in prompts if record["id"] == "0")
    assert [message["role"] for message in first["messages"]] == ["system", "user"]
    assert first["ground_truth"] == "107"
    assert first["source"] == {"file": "examples/verl/arithmetic.parquet", "row": 0}


# --- examples/<name>/: each runs offline as its README says, with a score strictly inside (0, 1)


def run_example(tmp_path: Path, name: str, config_file: str | None = None) -> dict[str, Any]:
    """Run examples/<name> from a directory holding the repository's examples, as a user would."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    result = run_snakemake(
        tmp_path,
        "--configfile", config_file or f"examples/{name}/config.yaml",
        "--config", "simulator={'latency_ms': 1}",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    summary = json.loads((tmp_path / "results" / name / "summary.json").read_text())
    assert summary["counts"]["failed"] == 0
    assert all(reward["errors"] == 0 for reward in summary["rewards"].values())
    return summary


def result_records(tmp_path: Path, name: str, stage: str) -> list[dict[str, Any]]:
    shards = sorted((tmp_path / "results" / name / stage).glob("shard-*.jsonl"))
    return [record for shard in shards for record in read_jsonl_file(shard)]


def test_competition_math_example_compares_latex_answers(tmp_path):
    summary = run_example(tmp_path, "competition_math")

    accuracy = summary["rewards"]["accuracy"]
    assert accuracy["scored"] == 30 and accuracy["mean"] == pytest.approx(22 / 30)
    assert accuracy["metrics"]["answer_found"]["mean"] == 1.0
    assert len(summary["breakdowns"]["subject"]) == 7
    scores = {record["id"]: record["score"] for record in result_records(tmp_path,
              "competition_math", "scores")}  # fmt: skip
    # Equal in another LaTeX form is right; another interval or a reversed pair is not.
    assert scores["pre-03"] == scores["cp-14"] == scores["ia-23"] == scores["alg-17"] == 1.0
    assert scores["alg-10"] == scores["alg-18"] == 0.0


def test_multiple_choice_example_scores_each_samples_letter_against_its_own_order(tmp_path):
    summary = run_example(tmp_path, "multiple_choice")

    accuracy = summary["rewards"]["accuracy"]
    assert accuracy["scored"] == 72 and accuracy["mean"] == pytest.approx(51 / 72)
    pass_at = summary["sampling"]["pass_at_k"]
    assert pass_at["1"]["mean"] < pass_at["3"]["mean"] < 1.0
    responses = result_records(tmp_path, "multiple_choice", "responses")
    orders: dict[str, set[tuple[int, ...]]] = {}
    for record in responses:
        shown = dict(re.findall(r"^([A-D])\. (.+)$", record["messages"][-1]["content"], re.M))
        options = record["metadata"]["options"]
        # The ground truth is the letter at which this sample's prompt shows the right option.
        assert shown[record["ground_truth"]] == record["metadata"]["answer"]
        assert [shown[letter] for letter in "ABCD"] == [
            options[k] for k in record["choices"]["order"]
        ]
        orders.setdefault(record["id"], set()).add(tuple(record["choices"]["order"]))
    assert sum(len(seen) > 1 for seen in orders.values()) >= 20  # shuffled per sample


def test_code_generation_example_runs_hidden_tests_with_pass_at_k(tmp_path):
    bubblewrap_or_skip()
    summary = run_example(tmp_path, "code_generation")

    tests_pass = summary["rewards"]["tests_pass"]
    assert tests_pass["scored"] == 64 and 0.0 < tests_pass["mean"] < 1.0
    pass_at = summary["sampling"]["pass_at_k"]
    assert pass_at["1"]["mean"] == pytest.approx(0.5625)
    assert pass_at["4"]["mean"] == pytest.approx(0.875)
    reasons = [record["rewards"]["tests_pass"]["reason"] for record in result_records(
        tmp_path, "code_generation", "scores")]  # fmt: skip
    assert any("assert fizzbuzz(15)[-1] == 'FizzBuzz'" in reason for reason in reasons)


def test_structured_output_example_checks_schema_and_field_values(tmp_path):
    summary = run_example(tmp_path, "structured_output")

    fields, schema = summary["rewards"]["fields"], summary["rewards"]["schema"]
    assert fields["mean"] == pytest.approx(19 / 24) and schema["mean"] == pytest.approx(19 / 24)
    assert fields["metrics"]["field.quantity"]["mean"] == pytest.approx(21 / 24)
    by_id = {record["id"]: record["rewards"] for record in result_records(
        tmp_path, "structured_output", "scores")}  # fmt: skip
    # Right values with an extra field fail the schema; a misread value fits it.
    assert (by_id["order-10"]["fields"]["score"], by_id["order-10"]["schema"]["score"]) == (1, 0)
    assert (by_id["order-14"]["fields"]["score"], by_id["order-14"]["schema"]["score"]) == (0, 1)


def test_llm_judge_example_is_graded_by_a_simulated_judge(tmp_path):
    # The README starts the judge on port 8799; here it gets a free port and the config a copy
    # with that URL, all else unchanged.
    config = yaml.safe_load((REPO / "examples" / "llm_judge" / "config.yaml").read_text())
    verdicts = REPO / "examples" / "llm_judge" / "judge_verdicts.jsonl"
    judge = start_simulator("--responses", str(verdicts), "--latency-ms", "1")
    try:
        (params,) = [reward["params"] for reward in config["rewards"]]
        assert params["base_url"] == "http://127.0.0.1:8799/v1"
        params["base_url"] = judge.base_url
        config_file = tmp_path / "llm_judge.yaml"
        config_file.write_text(yaml.safe_dump(config))
        summary = run_example(tmp_path, "llm_judge", str(config_file))
        judge_requests = judge.requests()
    finally:
        stop_simulator(judge)

    judged = summary["rewards"]["judged"]
    assert judged["scored"] == 20 and judged["mean"] == pytest.approx(12.5 / 20)
    assert judge_requests == 20
    reasons = {record["id"]: record["rewards"]["judged"]["reason"] for record in result_records(
        tmp_path, "llm_judge", "scores")}  # fmt: skip
    assert reasons["q-02"].endswith("SCORE: 0") and "axial tilt" in reasons["q-02"]


def test_reasoning_format_example_combines_format_and_accuracy_by_weight(tmp_path):
    summary = run_example(tmp_path, "reasoning_format")

    accuracy, format_ = summary["rewards"]["accuracy"], summary["rewards"]["format"]
    assert summary["primary_reward"] == "accuracy"
    assert accuracy["mean"] == pytest.approx(19 / 24) and format_["mean"] == pytest.approx(18 / 24)
    assert summary["weighted"]["mean"] == pytest.approx(0.8 * 19 / 24 + 0.2 * 18 / 24)
    by_id = {record["id"]: record for record in result_records(
        tmp_path, "reasoning_format", "scores")}  # fmt: skip
    chatter = by_id["wp-02"]  # right answer, text after </answer>
    assert (
        chatter["rewards"]["accuracy"]["score"] == 1 and chatter["rewards"]["format"]["score"] == 0
    )
    assert chatter["weighted_score"] == pytest.approx(0.8)


def test_completions_client_example_runs_through_snakemake_as_its_readme_shows(tmp_path):
    # A custom client (legacy /v1/completions) against a server the jobs launch and share.
    (tmp_path / "examples").symlink_to(REPO / "examples")
    config = "examples/completions_client/config.yaml"

    result = run_snakemake(tmp_path, "--configfile", config)

    assert result.returncode == 0, result.output
    results = tmp_path / "results" / "completions-client"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["counts"]["prompts"] == 40 and summary["counts"]["failed"] == 0
    assert 0.7 < summary["rewards"]["accuracy"]["mean"] < 1.0  # wrong_rate 0.1 on purpose
    logs = [
        path.read_text()
        for path in sorted((tmp_path / "logs/completions-client/generate_responses").glob("*.log"))
        if not path.name.endswith(".server.log")
    ]
    assert len(logs) == 2  # one per shard
    # One job started the server and waited for it; every job used it and let it go.
    assert sum("started (shared" in log and "model server ready" in log for log in logs) == 1
    assert all("model server released" in log for log in logs)
    settings = next((tmp_path / "results" / "cache").glob("*/settings.json")).read_text()
    assert "#client=examples/completions_client/completions_client.py:CompletionsClient" in settings

    rerun = run_snakemake(tmp_path, "--configfile", config, "--forcerun", "generate_responses")

    assert rerun.returncode == 0, rerun.output
    stats = json.loads((results / "responses" / "shard-000.stats.json").read_text())
    assert stats["requested"] == 0 and stats["cached"] == stats["samples"]
    assert (
        "model server"
        not in (tmp_path / "logs/completions-client/generate_responses/shard-000.log").read_text()
    )  # a fully cached shard starts no server
