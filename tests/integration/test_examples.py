"""The shipped configs and examples work as their READMEs say."""

from __future__ import annotations

import json

import pytest
from conftest import GSM8K_TEST, REPO, read_jsonl_file, run_snakemake, write_jsonl

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


def test_completions_client_example_runs_through_snakemake_as_its_readme_shows(tmp_path):
    # A custom client (legacy /v1/completions) against a server each job launches itself.
    (tmp_path / "examples").symlink_to(REPO / "examples")
    config = "examples/completions_client/config.yaml"

    result = run_snakemake(tmp_path, "--configfile", config)

    assert result.returncode == 0, result.output
    results = tmp_path / "results" / "completions-client"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["counts"]["prompts"] == 40 and summary["counts"]["failed"] == 0
    assert 0.7 < summary["rewards"]["accuracy"]["mean"] < 1.0  # wrong_rate 0.1 on purpose
    log = (tmp_path / "logs/completions-client/generate_responses/shard-000.log").read_text()
    assert "model server ready" in log and "model server stopped" in log
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
