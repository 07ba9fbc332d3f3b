"""Generation against a misbehaving provider: every fault is retried or recorded, never scored.

The simulator injects each fault kind at a high rate, decided by a seeded hash of the prompt
and the attempt number, so these runs are reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import (
    arithmetic_rows,
    base_config,
    run_against_simulator,
    run_snakemake,
    start_simulator,
    stop_simulator,
    write_config,
    write_jsonl,
)

pytestmark = pytest.mark.integration


def run_against(tmp_path: Path, server_args: list[str], **options):
    options = {"latency_ms": 5, "max_attempts": 8, **options}
    return run_against_simulator(tmp_path, server_args, **options)


@pytest.mark.parametrize(
    ("flag", "fault"),
    [
        ("--error-500-rate", "error_500"),
        ("--error-503-rate", "error_503"),
        ("--drop-rate", "drop"),
        ("--malformed-rate", "malformed"),
    ],
)
def test_transient_faults_are_retried_until_every_sample_is_answered(tmp_path, flag, fault):
    result, stats, summary = run_against(tmp_path, [flag, "0.4", "--fault-seed", "3"])

    assert result.returncode == 0, result.output
    assert stats["faults"][fault] > 0, "the fault was never injected: the test proves nothing"
    assert summary["counts"]["failed"] == 0
    assert summary["counts"]["scored"] == 16
    assert summary["generation"]["retries"] == stats["faults"][fault]
    assert summary["generation"]["attempts"] == stats["requests"]


def test_a_hung_request_times_out_and_is_retried(tmp_path):
    result, stats, summary = run_against(
        tmp_path,
        ["--hang-rate", "0.3", "--hang-s", "60", "--fault-seed", "5"],
        prompts=10,
        timeout_s=0.5,
    )

    assert result.returncode == 0, result.output
    assert stats["faults"]["hang"] > 0
    assert summary["counts"]["failed"] == 0
    assert summary["generation"]["retries"] >= stats["faults"]["hang"]


def test_rate_limited_requests_honour_retry_after_and_all_succeed(tmp_path):
    # Far more concurrency than the server's 5 requests/s and no client-side pacing at all:
    # the server answers 429 often, and the client must wait as told instead of failing.
    result, stats, summary = run_against(
        tmp_path, ["--rate-limit-rps", "5"], prompts=20, concurrency=10, max_attempts=2,
        adaptive_rate=False,
    )  # fmt: skip

    assert result.returncode == 0, result.output
    assert stats["rate_limited"] > 0
    assert summary["generation"]["rate_limited"] == stats["rate_limited"]
    assert summary["counts"]["failed"] == 0


def test_without_a_configured_limit_the_client_learns_it_from_the_headers(tmp_path):
    result, stats, summary = run_against(
        tmp_path, ["--rate-limit-rps", "5"], prompts=12, concurrency=10, parallel_jobs=2
    )

    assert result.returncode == 0, result.output
    assert summary["generation"]["adaptive_rate_rpm"] == pytest.approx(300.0)
    assert stats["rate_limited"] <= 1  # at most the very first burst before any answer
    assert summary["counts"]["failed"] == 0


def test_client_limit_keeps_requests_under_the_server_limit(tmp_path):
    result, stats, summary = run_against(
        tmp_path, ["--rate-limit-rps", "5"], prompts=12, concurrency=10,
        requests_per_minute=240, parallel_jobs=2,
    )  # fmt: skip

    assert result.returncode == 0, result.output
    assert stats["rate_limited"] == 0
    assert summary["counts"]["failed"] == 0


def test_exhausted_retries_fail_the_run_and_a_rerun_requests_only_those(tmp_path):
    # 60% of attempts fail and only two are allowed: some samples fail, the run exits
    # non-zero, and nothing it obtained is lost. Then the provider recovers (same address,
    # no faults) and a plain rerun requests exactly the samples that had failed.
    server = start_simulator("--latency-ms", "1", "--error-500-rate", "0.6", "--fault-seed", "1")
    port = server.base_url.rsplit(":", 1)[1].split("/")[0]
    try:
        dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(20))
        config = base_config(dataset, server.base_url)
        config["generation"]["max_attempts"] = 2
        config_path = write_config(tmp_path, config)
        first = run_snakemake(tmp_path, "--configfile", str(config_path))
    finally:
        stop_simulator(server)

    assert first.returncode != 0
    assert "samples failed" in first.output and "rerun to retry" in first.output
    assert not (tmp_path / "results" / "test" / "summary.json").exists()

    recovered = start_simulator("--latency-ms", "1", "--port", port)
    try:
        second = run_snakemake(tmp_path, "--configfile", str(config_path))
        rerun_requests = recovered.requests()
    finally:
        stop_simulator(recovered)

    assert second.returncode == 0, second.output
    summary = json.loads((tmp_path / "results" / "test" / "summary.json").read_text())
    assert summary["counts"]["failed"] == 0
    failed_before = summary["generation"]["requested"]
    assert 0 < failed_before < 20
    assert rerun_requests == failed_before
    assert summary["generation"]["cached"] == 20 - failed_before


def test_a_wrong_key_stops_the_run_at_once_and_names_the_variable(tmp_path):
    env = {"SIMULATOR_KEY": "sk-right-key-0123456789", "CLIENT_KEY": "sk-wrong-key-9876543210"}
    result, stats, _ = run_against(
        tmp_path, ["--api-key-env", "SIMULATOR_KEY"], prompts=40, env=env,
        api_key_env="CLIENT_KEY", concurrency=4, max_attempts=5,
    )  # fmt: skip

    assert result.returncode != 0
    assert "HTTP 401" in result.output and "$CLIENT_KEY" in result.output
    # No retry storm: at most the requests already in flight when the first 401 came back.
    assert stats["requests"] <= 2 * 4
    assert env["CLIENT_KEY"] not in result.output


def test_the_api_key_appears_in_no_file_the_run_writes(tmp_path):
    key = "sk-secret-4f1c9e0b7d2a"
    env = {"SIMULATOR_KEY": key, "CLIENT_KEY": key}
    result, stats, summary = run_against(
        tmp_path, ["--api-key-env", "SIMULATOR_KEY"], prompts=8, env=env,
        api_key_env="CLIENT_KEY",
    )  # fmt: skip

    assert result.returncode == 0, result.output
    assert stats["completions"] == 8, "the key was not used, so the search below proves nothing"
    assert key not in result.output
    leaks = [
        path for path in tmp_path.rglob("*") if path.is_file() and key.encode() in path.read_bytes()
    ]
    assert leaks == []
