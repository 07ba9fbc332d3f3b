"""More shards than jobs_per_step: each job runs a group of shards (docs/workflow.md).

Real Snakemake runs against the session's simulator over HTTP. A group's job must write exactly
the files one job per shard writes, rerun nothing when nothing changed, and rebuild a deleted
shard file from the cache without a request.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import (
    arithmetic_rows,
    base_config,
    read_jsonl_file,
    run_snakemake,
    write_config,
    write_jsonl,
)

pytestmark = pytest.mark.integration

#: Fields that differ between two runs of the same requests (timings, run and file names).
VOLATILE = {"latency_s", "created_at", "run_name"}


def run_with(workdir: Path, config: dict, *args: str):
    # Targets first: --configfile takes every word after it.
    return run_snakemake(workdir, *args, "--configfile", str(write_config(workdir, config)))


def stable(records: list[dict]) -> list[dict]:
    return [
        {key: value for key, value in record.items() if key not in VOLATILE} for record in records
    ]


def shard_records(workdir: Path, kind: str, shards: int) -> list[list[dict]]:
    return [
        stable(read_jsonl_file(workdir / "results" / "test" / kind / f"shard-{index:03d}.jsonl"))
        for index in range(shards)
    ]


def test_groups_write_what_one_job_per_shard_writes_in_fewer_jobs(tmp_path, fresh_simulator):
    grouped, per_shard = tmp_path / "grouped", tmp_path / "per_shard"
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(14))
    config = base_config(dataset, fresh_simulator.base_url, shards=5)
    for workdir, jobs in ((grouped, 2), (per_shard, None)):
        workdir.mkdir()
        result = run_with(workdir, {**config, "jobs_per_step": jobs})
        assert result.returncode == 0, result.output
        if jobs:
            assert sorted(set(result.ran_rules) - {"prepare_prompts", "aggregate_scores",
                          "build_report", "build_viewer_data", "build_viewer", "check_run",
                          "all"}) == [
                "generate_responses_000_002", "generate_responses_003_004",
                "score_responses_000_002", "score_responses_003_004",
            ]  # fmt: skip

    # Every request once: the second run (its own cache) asked the same 14 again, no more.
    assert fresh_simulator.requests() == 28
    for kind in ("responses", "scores"):
        assert shard_records(grouped, kind, 5) == shard_records(per_shard, kind, 5)
    logs = sorted(path.name for path in (grouped / "logs" / "test" / "score_responses").iterdir())
    assert logs == ["shards-000-002.log", "shards-003-004.log"]
    log = (grouped / "logs" / "test" / "score_responses" / "shards-000-002.log").read_text()
    assert all(f"scoring shard-{index:03d}" in log for index in range(3))


def test_a_groups_deleted_shard_is_rebuilt_from_the_cache(tmp_path, fresh_simulator):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(12))
    config = base_config(dataset, fresh_simulator.base_url, shards=6, jobs_per_step=3)
    assert run_with(tmp_path, config).returncode == 0
    responses = tmp_path / "results" / "test" / "responses"
    before = stable(read_jsonl_file(responses / "shard-003.jsonl"))
    fresh_simulator.reset()

    unchanged = run_with(tmp_path, config)
    assert unchanged.returncode == 0, unchanged.output
    assert "Nothing to be done" in unchanged.output

    # Snakemake rebuilds a deleted intermediate file when it is asked for (or something after
    # it is out of date), as with one job per shard.
    (responses / "shard-003.jsonl").unlink()
    rebuilt = run_with(tmp_path, config, "results/test/responses/shard-003.jsonl")
    assert rebuilt.returncode == 0, rebuilt.output
    assert rebuilt.ran_rules == ["generate_responses_002_003"]
    assert stable(read_jsonl_file(responses / "shard-003.jsonl")) == before
    assert fresh_simulator.requests() == 0

    # The rebuilt file holds the same records, so Snakemake (comparing checksums) rescores
    # nothing; only the summary, whose generation report changed, is made again.
    after = run_with(tmp_path, config)
    assert after.returncode == 0, after.output
    assert not [rule for rule in after.ran_rules if rule.startswith(("generate", "score"))]
    assert "aggregate_scores" in after.ran_rules
    assert fresh_simulator.requests() == 0


def test_imported_responses_are_read_in_groups_too(tmp_path, fresh_simulator):
    rows = [
        {"id": f"q{index}", "question": "What is 1 + 1?", "answer": "2", "output": f"#### {answer}"}
        for index, answer in enumerate([2, 2, 3, 2, 5])
    ]
    dataset = write_jsonl(tmp_path / "data.jsonl", rows)
    config = base_config(dataset, "http://127.0.0.1:9/v1", shards=5, jobs_per_step=2)
    config["dataset"]["response_field"] = "output"
    config["generation"] = {"enabled": False}

    result = run_with(tmp_path, config)

    assert result.returncode == 0, result.output
    assert {"import_responses_000_002", "import_responses_003_004"} <= set(result.ran_rules)
    scores = [record for shard in shard_records(tmp_path, "scores", 5) for record in shard]
    assert sorted((record["id"], record["score"]) for record in scores) == [
        ("q0", 1.0), ("q1", 1.0), ("q2", 0.0), ("q3", 1.0), ("q4", 0.0),
    ]  # fmt: skip
    assert fresh_simulator.requests() == 0
