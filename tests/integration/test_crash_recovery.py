"""Killing a run at any moment loses no finished response and pays for none twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    REPO,
    arithmetic_rows,
    base_config,
    group_alive,
    read_jsonl_file,
    run_snakemake,
    start_simulator,
    stop_simulator,
    write_config,
    write_jsonl,
)

pytestmark = pytest.mark.integration

PROMPTS = 60
# Seeds the moment each run is killed: fixed, so a failure replays; set it to try others.
KILL_SEED = int(os.environ.get("REWARDFLOW_KILL_SEED", "1201"))


def cached_entries(workdir: Path) -> int:
    """Usable lines in every cache journal (a torn last line does not count)."""
    count = 0
    for journal in (workdir / "results" / "cache").glob("*/*.jsonl"):
        for line in journal.read_text().splitlines():
            if line.strip().endswith("}"):
                count += 1
    return count


def start_run_in_background(
    tmp_path: Path, base_url: str, **layout: int
) -> tuple[Path, subprocess.Popen]:
    """Start the workflow on PROMPTS prompts in its own process group; return (config, run).

    ``layout``: shards and jobs_per_step (2 shards, one job each, unless given).
    """
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(PROMPTS))
    config = base_config(dataset, base_url, **{"shards": 2, **layout})
    config["generation"]["concurrency"] = 2
    config_path = write_config(tmp_path, config)
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(tmp_path), "--cores", "2", "--configfile", str(config_path),
    ]  # fmt: skip
    run = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    return config_path, run


def wait_until_cached(tmp_path: Path, count: int, run: subprocess.Popen) -> None:
    """Wait until ``count`` responses are cached, with the run still going."""
    deadline = time.monotonic() + 120
    while cached_entries(tmp_path) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "the run finished before it could be interrupted"


def published_responses(tmp_path: Path) -> list[dict]:
    return [
        record
        for path in (tmp_path / "results" / "test" / "responses").glob("*.jsonl")
        for record in read_jsonl_file(path)
    ]


@pytest.mark.parametrize(
    "layout",
    [{}, {"shards": 6, "jobs_per_step": 2}],
    ids=["one job per shard", "shards in groups"],
)
@pytest.mark.parametrize("kill_signal", [signal.SIGKILL, signal.SIGINT])
def test_rerun_after_a_kill_requests_only_what_is_missing(tmp_path, kill_signal, layout):
    seed = KILL_SEED
    kill_after = random.Random(seed).randint(1, PROMPTS - 10)
    # Shown with a failure (pytest prints what the test printed), so the run can be replayed.
    print(f"REWARDFLOW_KILL_SEED={seed}: killing after {kill_after} cached responses")
    server = start_simulator("--latency-ms", "150", "--latency-jitter-ms", "50")
    try:
        config_path, run = start_run_in_background(tmp_path, server.base_url, **layout)
        wait_until_cached(tmp_path, kill_after, run)
        # Ctrl-C reaches every process of the terminal's group; kill -9 spares nothing.
        os.killpg(run.pid, kill_signal)
        run.wait(timeout=60)
        if kill_signal == signal.SIGKILL:
            # The README's recovery, exactly: no --cores.
            unlock = run_snakemake(
                tmp_path, "--unlock", "--configfile", str(config_path), cores=None
            )
            assert unlock.returncode == 0, unlock.output

        kept = cached_entries(tmp_path)
        assert kill_after <= kept < PROMPTS, f"seed {seed}"
        server.reset()

        rerun = run_snakemake(tmp_path, "--configfile", str(config_path))

        assert rerun.returncode == 0, rerun.output
        assert server.requests() == PROMPTS - kept, f"seed {seed}, killed after {kept}"
        responses = published_responses(tmp_path)
        assert len(responses) == PROMPTS
        assert all(record["status"] == "ok" for record in responses)
        assert cached_entries(tmp_path) == PROMPTS
    finally:
        stop_simulator(server)


def test_plain_rerun_after_killing_snakemake_alone(tmp_path):
    """kill -9 of the snakemake process only: its jobs are orphaned and still finish.

    A job that publishes its shard after Snakemake died leaves the shard marked incomplete;
    the workflow profile's rerun-incomplete makes the README's plain rerun redo it (from the
    cache) instead of stopping with IncompleteFilesException.
    """
    server = start_simulator("--latency-ms", "100", "--latency-jitter-ms", "30")
    try:
        config_path, run = start_run_in_background(tmp_path, server.base_url)
        wait_until_cached(tmp_path, 5, run)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
        # The orphaned generation jobs finish their shards; wait for the last of them.
        deadline = time.monotonic() + 120
        while group_alive(run.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(run.pid), "orphaned jobs did not finish"
        assert list((tmp_path / "results" / "test" / "responses").glob("shard-*.jsonl"))

        unlock = run_snakemake(tmp_path, "--unlock", "--configfile", str(config_path), cores=None)
        assert unlock.returncode == 0, unlock.output
        kept = cached_entries(tmp_path)
        server.reset()
        rerun = run_snakemake(tmp_path, "--configfile", str(config_path))

        assert rerun.returncode == 0, rerun.output
        assert server.requests() == PROMPTS - kept
        assert (tmp_path / "results" / "test" / "summary.json").is_file()
        responses = published_responses(tmp_path)
        assert len(responses) == PROMPTS
        assert all(record["status"] == "ok" for record in responses)
    finally:
        stop_simulator(server)


def test_unlock_and_report_need_no_cores(tmp_path, fresh_simulator):
    """The README's `snakemake --unlock` and `snakemake --report` commands, without --cores."""
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(6))
    config_path = write_config(tmp_path, base_config(dataset, fresh_simulator.base_url))
    assert run_snakemake(tmp_path, "--configfile", str(config_path)).returncode == 0

    unlock = run_snakemake(tmp_path, "--unlock", "--configfile", str(config_path), cores=None)
    report = run_snakemake(
        tmp_path, "--report", "report.html", "--configfile", str(config_path), cores=None
    )

    assert unlock.returncode == 0, unlock.output
    assert report.returncode == 0, report.output
    assert (tmp_path / "report.html").stat().st_size > 10_000
