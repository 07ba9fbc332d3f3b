"""Issue 15: what one generation job learns about the endpoint's rate, the next job starts from.

Real Snakemake runs against the simulator over HTTP: the first job of a run finds the limit
from the server's headers and keeps it next to the cache; the next job (``parallel_jobs: 1``,
so they run one after the other) starts from it, and so does a later run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import (
    arithmetic_rows,
    base_config,
    run_snakemake,
    start_simulator,
    stop_simulator,
    write_config,
    write_jsonl,
)

pytestmark = pytest.mark.integration

STARTED_FROM = "starting from the rate learned earlier: 3000/minute (headers)"


def shard_logs(workdir: Path, run: str) -> dict[str, str]:
    logs = workdir / "logs" / run / "generate_responses"
    return {path.stem: path.read_text() for path in sorted(logs.glob("shard-*.log"))}


def test_the_learned_rate_is_kept_next_to_the_cache_and_read_by_the_next_job(tmp_path):
    server = start_simulator("--latency-ms", "5", "--rate-limit-rps", "50")
    try:
        dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(40))
        config = base_config(dataset, server.base_url)
        config["generation"].update({"parallel_jobs": 1, "max_attempts": 8, "timeout_s": 5})
        first = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, config)))
        assert first.returncode == 0, first.output[-3000:]
        (kept,) = (tmp_path / "results" / "cache" / ".rates").glob("*.json")
        learned = json.loads(kept.read_text())
        assert (learned["source"], learned["limit_per_minute"]) == ("headers", 3000)
        logs = shard_logs(tmp_path, "test")
        assert [STARTED_FROM in text for text in logs.values()].count(True) == 1, logs

        # A later run with new prompts: both of its jobs start from what the first one kept.
        write_jsonl(dataset, arithmetic_rows(40, start=100))
        later = {**config, "run_name": "later"}
        second = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, later)))
        assert second.returncode == 0, second.output[-3000:]
        assert all(STARTED_FROM in text for text in shard_logs(tmp_path, "later").values())
    finally:
        stop_simulator(server)
