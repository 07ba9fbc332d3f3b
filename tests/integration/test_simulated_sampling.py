"""Several samples per prompt from the built-in simulator, end to end: snakemake, real HTTP.

The multi-sample demo (``config/demo-samples.yaml``) must show what sampling adds -- pass@k
rising with k, maj@k between, samples of a prompt disagreeing -- and give the same records on
every run, although each job sends its samples concurrently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, read_jsonl_file, run_snakemake

from rewardflow.simulator import SimulatorConfig, answer_for, apply_stop_and_max_tokens

pytestmark = pytest.mark.integration

FAST = "simulator={'latency_ms': 5}"


def demo_workdir(path: Path) -> Path:
    """A working directory that sees the repository's config/ and examples/, as a clone does."""
    path.mkdir()
    for name in ("config", "examples"):
        (path / name).symlink_to(REPO / name)
    return path


def run_demo(workdir: Path, config_file: str, *overrides: str) -> tuple[dict, list[dict]]:
    """Run a repository config in ``workdir``; its summary and response records."""
    result = run_snakemake(workdir, "--configfile", config_file, "--config", FAST, *overrides)
    assert result.returncode == 0, result.output
    [run_dir] = (workdir / "results").glob("demo*")
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [
        record
        for shard in sorted((run_dir / "responses").glob("shard-*.jsonl"))
        for record in read_jsonl_file(shard)
    ]
    return summary, records


def metric(summary: dict[str, Any], name: str, k: int) -> float:
    return summary["sampling"][name][str(k)]["mean"]


def test_the_multi_sample_demo_rises_with_k_and_reproduces(tmp_path):
    summary, records = run_demo(demo_workdir(tmp_path / "first"), "config/demo-samples.yaml")

    assert summary["counts"]["samples"] == 200 and summary["counts"]["failed"] == 0
    pass_1, pass_5 = metric(summary, "pass_at_k", 1), metric(summary, "pass_at_k", 5)
    maj_5 = metric(summary, "maj_at_k", 5)
    assert pass_1 < metric(summary, "pass_at_k", 2) < pass_5
    assert pass_1 < maj_5 < pass_5
    assert 0.45 < pass_1 < 0.75  # each sample is wrong with probability 0.4
    spread = summary["sampling"]["spread"]
    assert spread["mean_within_prompt_std"] > 0 and spread["disagreement_rate"] > 0

    # Another clone, another (empty) cache, another simulator process: the same records.
    again, records_again = run_demo(demo_workdir(tmp_path / "second"), "config/demo-samples.yaml")
    assert records_again == records
    assert again["sampling"] == summary["sampling"]


def test_at_temperature_zero_the_samples_of_a_prompt_agree(tmp_path):
    summary, records = run_demo(
        demo_workdir(tmp_path / "greedy"),
        "config/demo-samples.yaml",
        "generation={'temperature': 0.0, 'seed': 7}",  # greedy decoding ignores the seed
        "dataset={'limit': 10}",
    )

    assert summary["counts"]["samples"] == 50
    spread = summary["sampling"]["spread"]
    assert spread["mean_within_prompt_std"] == 0 and spread["disagreement_rate"] == 0
    by_prompt: dict[str, set[str]] = {}
    for record in records:
        by_prompt.setdefault(record["id"], set()).add(record["response"])
    assert all(len(answers) == 1 for answers in by_prompt.values())
    assert metric(summary, "pass_at_k", 1) == metric(summary, "pass_at_k", 5)


def test_max_tokens_cuts_the_answer_with_finish_reason_length(tmp_path):
    max_tokens = 6
    summary, records = run_demo(
        demo_workdir(tmp_path / "short"),
        "config/config.yaml",
        f"generation={{'max_tokens': {max_tokens}}}",
        "dataset={'limit': 4}",
    )

    assert summary["counts"]["generated"] == 4
    config = SimulatorConfig(wrong_rate=0.2)
    for record in records:
        full = answer_for(record["messages"], None, 0, config)
        assert record["status"] == "ok"
        assert record["finish_reason"] == "length"
        assert record["response"] == apply_stop_and_max_tokens(full, (), max_tokens)[0]
        assert full.startswith(record["response"]) and len(record["response"]) < len(full)
        assert record["usage"]["completion_tokens"] == max_tokens
