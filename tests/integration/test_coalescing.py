"""Never pay twice within a run either: identical requests coalesce, in a job and across jobs.

Requests are counted where they are paid: at the simulated server (``/_simulator/stats``).
"""

from __future__ import annotations

import json
import os
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


def responses_of(workdir: Path, run: str = "test") -> list[dict]:
    return [
        record
        for path in sorted((workdir / "results" / run / "responses").glob("*.jsonl"))
        for record in read_jsonl_file(path)
    ]


def journal_keys(cache: Path) -> list[str]:
    """The key of every usable line of every journal: a key twice is a response paid twice."""
    keys = []
    for journal in cache.glob("*/*.jsonl"):
        for line in journal.read_text().splitlines():
            if line.strip().endswith("}"):
                keys.append(json.loads(line)["key"])
    return keys


def snakemake_command(workdir: Path, config_path: Path) -> list[str]:
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--cores", "2", "--configfile", str(config_path),
    ]  # fmt: skip


def test_each_prompt_three_times_is_requested_once(tmp_path, fresh_simulator):
    distinct = arithmetic_rows(12)
    rows = [
        {**row, "id": f"{row['id']}-copy{copy}"} for copy in range(3) for row in distinct
    ]  # the copies land in different shards and in the same one
    dataset = write_jsonl(tmp_path / "data.jsonl", rows)
    config = base_config(dataset, fresh_simulator.base_url, shards=2)
    config_path = write_config(tmp_path, config)

    result = run_snakemake(tmp_path, "--configfile", str(config_path))

    assert result.returncode == 0, result.output
    assert fresh_simulator.requests() == 12
    responses = responses_of(tmp_path)
    assert len(responses) == 36 and all(record["status"] == "ok" for record in responses)
    by_question: dict[str, set[str]] = {}
    for record in responses:
        by_question.setdefault(record["messages"][-1]["content"], set()).add(record["response"])
    assert all(len(answers) == 1 for answers in by_question.values())
    summary = summary_of(tmp_path)
    assert summary["generation"]["requested"] == 12
    assert summary["generation"]["coalesced"] == 24
    # Usage is what was paid: each distinct response once.
    one_each = {record["cache_key"]: record["usage"] for record in responses}
    assert summary["usage"]["total_tokens"] == sum(u["total_tokens"] for u in one_each.values())
    assert "24 requests saved by coalescing" in (tmp_path / "results/test/summary.md").read_text()


def test_greedy_samples_share_one_request_unless_independent_ones_are_asked_for(
    tmp_path, fresh_simulator
):
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(5))
    config = base_config(dataset, fresh_simulator.base_url)
    config["generation"].update({"samples": 3, "temperature": 0.0})

    result = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, config)))

    assert result.returncode == 0, result.output
    assert fresh_simulator.requests() == 5
    summary = summary_of(tmp_path)
    assert summary["counts"]["samples"] == 15 and summary["counts"]["generated"] == 15
    assert summary["generation"]["greedy_shared"] == 10
    assert "temperature 0" in (tmp_path / "results/test/summary.md").read_text()

    fresh_simulator.reset()
    config["generation"]["independent_samples"] = True
    rerun = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, config)))

    assert rerun.returncode == 0, rerun.output
    assert fresh_simulator.requests() == 10  # sample 0 of each prompt is in the cache
    assert summary_of(tmp_path)["generation"]["greedy_shared"] == 0


def test_two_concurrent_runs_of_one_config_send_each_request_once(tmp_path):
    server = start_simulator("--latency-ms", "500")
    try:
        cache = tmp_path / "shared-cache"
        dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(40))
        runs = []
        for name in ("first", "second"):
            workdir = tmp_path / name
            workdir.mkdir()
            config = base_config(dataset, server.base_url, cache={"dir": str(cache)})
            config["generation"]["concurrency"] = 2
            command = snakemake_command(workdir, write_config(workdir, config))
            runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        outputs = [run.communicate(timeout=300)[0].decode() for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs

        assert server.requests() == 40
        assert len(journal_keys(cache)) == 40
        first, second = summary_of(tmp_path / "first"), summary_of(tmp_path / "second")
        assert first["rewards"] == second["rewards"]
        requested = first["generation"]["requested"] + second["generation"]["requested"]
        assert requested == 40
        waited = first["generation"]["coalesced"] + second["generation"]["coalesced"]
        assert waited > 0, "the runs did not overlap, so this test proved nothing"
    finally:
        stop_simulator(server)


def waiting_jobs(workdir: Path) -> int:
    """Generation jobs of a run that have looked up the cache and started on what is missing."""
    logs = (workdir / "logs" / "test" / "generate_responses").glob("*.log")
    return sum("to request" in log.read_text() for log in logs)


def test_killing_the_claiming_run_lets_the_other_take_over(tmp_path):
    prompts, jobs, concurrency = 60, 2, 2
    server = start_simulator("--latency-ms", "1000")
    try:
        cache = tmp_path / "shared-cache"
        dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(prompts))
        workdirs = [tmp_path / "claimer", tmp_path / "waiter"]
        commands = []
        for workdir in workdirs:
            workdir.mkdir()
            config = base_config(dataset, server.base_url, cache={"dir": str(cache)})
            config["generation"]["concurrency"] = concurrency
            commands.append(snakemake_command(workdir, write_config(workdir, config)))
        claimer = subprocess.Popen(
            commands[0], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not journal_keys(cache) and time.monotonic() < deadline:
            time.sleep(0.05)
        waiter = subprocess.Popen(commands[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # Kill the claimer once both of the waiter's jobs wait on the claimer's requests.
        while waiting_jobs(workdirs[1]) < jobs and time.monotonic() < deadline:
            time.sleep(0.05)
        assert claimer.poll() is None, "the claiming run finished before it could be killed"
        os.killpg(claimer.pid, signal.SIGKILL)
        claimer.wait(timeout=60)
        output = waiter.communicate(timeout=300)[0].decode()

        assert waiter.returncode == 0, output
        responses = responses_of(workdirs[1])
        assert len(responses) == prompts and all(r["status"] == "ok" for r in responses)
        keys = journal_keys(cache)
        assert len(keys) == len(set(keys)) == prompts, "a response was received twice"
        # Beyond one request per prompt, only those the killed run had in flight were sent.
        assert prompts <= server.requests() <= prompts + jobs * concurrency
    finally:
        stop_simulator(server)
