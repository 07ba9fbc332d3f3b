"""model.launch: a generation job starts a model server, waits for it, uses it, lets it go.

The launched command is the built-in simulator (a real server process with the same
readiness endpoints as vLLM, SGLang and llama.cpp). Every test checks by process group that
nothing the job started outlives it: a shared server (the default) stops a couple of seconds
after its last job, so those checks poll. Sharing itself: test_shared_servers.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    LAUNCHED_SIMULATOR,
    REPO,
    arithmetic_rows,
    base_config,
    group_alive,
    wait_for,
    write_config,
    write_jsonl,
)

pytestmark = pytest.mark.integration

LOG = Path("logs/test/generate_responses")


def launch_config(tmp_path: Path, rows: int, command: str, **launch) -> Path:
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(rows))
    config = base_config(dataset, "unused", shards=1)
    config["model"] = {
        "provider": "openai",
        "name": "launched-model",
        "launch": {"command": command, "gpus": 0, "startup_timeout_s": 30, **launch},
    }
    config["generation"] = {"max_attempts": 1}
    return write_config(tmp_path, config)


def snakemake(tmp_path: Path, config: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(tmp_path), "--cores", "2", "--configfile", str(config),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def server_groups(job_log: Path) -> list[int]:
    return [
        int(pgid) for pgid in re.findall(r"model server: process group (\d+)", job_log.read_text())
    ]


def server_pid(server_log: Path) -> int | None:
    found = re.search(r"server pid (\d+)", server_log.read_text()) if server_log.exists() else None
    return int(found.group(1)) if found else None


def cached_lines(tmp_path: Path) -> int:
    journals = (tmp_path / "results" / "cache").glob("*/*.jsonl")
    return sum(len(path.read_text().splitlines()) for path in journals)


def test_a_launched_server_starts_serves_and_stops_with_its_job(tmp_path):
    config = launch_config(tmp_path, 12, LAUNCHED_SIMULATOR)

    code, output = finish(snakemake(tmp_path, config))

    assert code == 0, output
    job_log = tmp_path / LOG / "shard-000.log"
    assert "model server ready" in job_log.read_text()
    (pgid,) = server_groups(job_log)
    wait_for(lambda: not group_alive(pgid))  # the server's group does not outlive the job
    stats = json.loads((tmp_path / "results/test/responses/shard-000.stats.json").read_text())
    assert stats["requested"] == 12 and stats["failed"] == 0
    # No client-side limiter and launch.concurrency requests in flight: not rate limited.
    assert stats["rate_limited"] == 0
    settings = next((tmp_path / "results" / "cache").glob("*/settings.json")).read_text()
    assert "launched://" in settings  # the port is no part of the cache identity


def test_a_server_that_never_becomes_ready_fails_the_job_with_its_log_tail(tmp_path):
    never_ready = (
        "{python} -c \"import sys, time; print('loading shards of', sys.argv[1], flush=True); "
        'time.sleep(600)" {port}'
    )
    config = launch_config(tmp_path, 3, never_ready, startup_timeout_s=3)

    code, output = finish(snakemake(tmp_path, config))

    assert code != 0
    job_log = (tmp_path / LOG / "shard-000.log").read_text()
    assert "was not ready at http://127.0.0.1:" in job_log
    assert "model.launch.startup_timeout_s" in job_log
    assert "loading shards of" in job_log  # the server log's tail
    (pgid,) = server_groups(tmp_path / LOG / "shard-000.log")
    assert not group_alive(pgid)


def test_a_server_killed_mid_shard_keeps_finished_responses_and_the_rerun_asks_the_rest(tmp_path):
    rows = 40
    config = launch_config(tmp_path, rows, LAUNCHED_SIMULATOR + " --latency-ms 150", concurrency=2)
    run = snakemake(tmp_path, config)
    server_log = tmp_path / LOG / "shard-000.server.log"
    wait_for(lambda: server_pid(server_log) is not None)
    pid = server_pid(server_log)
    wait_for(lambda: cached_lines(tmp_path) >= 6)
    os.kill(pid, signal.SIGKILL)

    code, output = finish(run)

    assert code != 0, output
    job_log = (tmp_path / LOG / "shard-000.log").read_text()
    assert "the model server exited" in job_log and "a rerun requests only the rest" in job_log
    (pgid,) = server_groups(tmp_path / LOG / "shard-000.log")
    wait_for(lambda: not group_alive(pgid))
    kept = cached_lines(tmp_path)
    assert 6 <= kept < rows

    code, output = finish(snakemake(tmp_path, config))

    assert code == 0, output
    stats = json.loads((tmp_path / "results/test/responses/shard-000.stats.json").read_text())
    assert (stats["cached"], stats["requested"], stats["failed"]) == (kept, rows - kept, 0)
    assert cached_lines(tmp_path) == rows


def test_no_server_outlives_a_job_killed_with_sigkill(tmp_path):
    config = launch_config(tmp_path, 40, LAUNCHED_SIMULATOR + " --latency-ms 500", concurrency=1)
    run = snakemake(tmp_path, config)
    job_log = tmp_path / LOG / "shard-000.log"
    wait_for(lambda: job_log.exists() and "model server ready" in job_log.read_text())
    (pgid,) = server_groups(job_log)
    job_pid = int(re.search(r"job pid (\d+)", job_log.read_text()).group(1))

    os.kill(job_pid, signal.SIGKILL)  # no cleanup code of the job runs

    wait_for(lambda: not group_alive(pgid), timeout=20)
    finish(run)
