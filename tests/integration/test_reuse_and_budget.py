"""Never pay twice, never overspend: the shared cache across runs, and the spend guard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
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


def summary_of(workdir: Path, run: str = "test") -> dict:
    return json.loads((workdir / "results" / run / "summary.json").read_text())


def test_two_runs_writing_the_shared_cache_at_once_corrupt_nothing(tmp_path, fresh_simulator):
    shared_cache = tmp_path / "shared-cache"
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(20))
    runs = []
    for name in ("first", "second"):
        workdir = tmp_path / name
        workdir.mkdir()
        config = base_config(dataset, fresh_simulator.base_url, run_name=name)
        config["cache"] = {"dir": str(shared_cache)}
        config_path = write_config(workdir, config)
        runs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "snakemake",
                    "--snakefile",
                    str(REPO / "Snakefile"),
                    "--directory",
                    str(workdir),
                    "--cores",
                    "2",
                    "--configfile",
                    str(config_path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )
    assert [run.wait(timeout=300) for run in runs] == [0, 0]

    entries = [
        json.loads(line)  # every line of every journal must parse
        for journal in shared_cache.glob("*/*.jsonl")
        for line in journal.read_text().splitlines()
    ]
    by_key: dict[str, set[str]] = {}
    for entry in entries:
        by_key.setdefault(entry["key"], set()).add(entry["response"])
    assert len(by_key) == 20
    assert all(len(responses) == 1 for responses in by_key.values())
    first, second = (
        summary_of(tmp_path / "first", "first"),
        summary_of(tmp_path / "second", "second"),
    )
    assert first["rewards"] == second["rewards"]

    fresh_simulator.reset()
    third = tmp_path / "third"
    third.mkdir()
    config = base_config(dataset, fresh_simulator.base_url, run_name="third", shards=5)
    config["cache"] = {"dir": str(shared_cache)}
    result = run_snakemake(third, "--configfile", str(write_config(third, config)))
    assert result.returncode == 0, result.output
    assert fresh_simulator.requests() == 0


def test_a_private_cache_neither_reuses_nor_feeds_the_shared_one(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(6))
    config = base_config(dataset, fresh_simulator.base_url)
    assert (
        run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, config))).returncode == 0
    )
    fresh_simulator.reset()

    private = {**config, "run_name": "private", "cache": {"shared": False}}
    result = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, private)))

    assert result.returncode == 0, result.output
    assert fresh_simulator.requests() == 6
    assert list((tmp_path / "results" / "private" / "cache").glob("*/private.shard-*.jsonl"))
    assert not list((tmp_path / "results" / "cache").glob("*/private.*"))


@pytest.mark.parametrize(
    ("cache", "where"),
    [({"dir": "elsewhere"}, "elsewhere"), ({"shared": False}, "results/test/cache")],
    ids=["cache.dir", "cache.shared"],
)
def test_the_judge_keeps_its_verdicts_where_the_run_keeps_its_cache(
    tmp_path, fresh_simulator, cache, where
):
    judge = start_simulator("--rule", "echo", "--latency-ms", "1")
    try:
        dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(4))
        config = base_config(dataset, fresh_simulator.base_url, cache=cache)
        config["rewards"] = [
            {"name": "judged", "function": "rewardflow.rewards.judge:llm_judge",
             "params": {"model": "judge", "base_url": judge.base_url,
                        "template": "Grade this: {response}\nSCORE: 1"}},
        ]  # fmt: skip
        result = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, config)))
    finally:
        stop_simulator(judge)

    assert result.returncode == 0, result.output
    assert summary_of(tmp_path)["rewards"]["judged"]["mean"] == 1.0
    verdicts = list((tmp_path / where).glob("*/judge-*.jsonl"))
    assert verdicts and sum(len(read_jsonl_file(path)) for path in verdicts) == 4
    assert not list((tmp_path / "results" / "cache").glob("*/judge-*.jsonl"))


def test_the_budget_stops_the_run_and_raising_it_resumes_only_the_rest(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(12))
    config = base_config(dataset, fresh_simulator.base_url, shards=1)
    config["generation"].update({"concurrency": 1, "max_tokens": 64})
    config["budget"] = {"max_tokens": 200}

    stopped = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, config)))

    assert stopped.returncode != 0
    assert "budget was reached" in stopped.output and "Raise budget" in stopped.output
    summary = summary_of(tmp_path)
    sent = fresh_simulator.requests()
    assert 0 < sent < 12
    assert summary["counts"]["not_attempted"] == 12 - sent
    assert summary["counts"]["failed"] == 0
    spent = (
        summary["generation"]["spent_prompt_tokens"]
        + summary["generation"]["spent_completion_tokens"]
    )
    assert spent <= 200
    records = read_jsonl_file(tmp_path / "results" / "test" / "responses" / "shard-000.jsonl")
    unsent = [record for record in records if record["status"] == "not_attempted"]
    assert len(unsent) == 12 - sent and all(r["response"] is None for r in unsent)
    assert summary["rewards"]["accuracy"]["scored"] == sent

    fresh_simulator.reset()
    config["budget"] = {"max_tokens": 100_000}
    resumed = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, config)))

    assert resumed.returncode == 0, resumed.output
    assert fresh_simulator.requests() == 12 - sent
    assert summary_of(tmp_path)["counts"]["not_attempted"] == 0


def test_a_cost_budget_needs_a_price_for_the_model(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(2))
    config = base_config(dataset, fresh_simulator.base_url)
    config["budget"] = {"max_cost_usd": 1.0}

    result = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, config)))

    assert result.returncode != 0
    assert "budget.max_cost_usd: needs a price for model 'sim-model'" in result.output
