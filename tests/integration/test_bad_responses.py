"""Answers that arrive but cannot be used, and keys that come back in error bodies.

Each case runs the real workflow against the simulator over HTTP: a 200 whose body is not
UTF-8 is retried like any malformed body; a well-formed 200 without a usable answer (null
content, a tool call only, no choices) becomes that sample's failure record at once, without
paid retries; an answer cut off at ``max_tokens`` is counted in the summary and flagged in the
report; and a provider that quotes the key in its 401 body gets it redacted everywhere.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import (
    arithmetic_rows,
    read_jsonl_file,
    run_against_simulator,
    start_simulator,
    stop_simulator,
    write_jsonl,
)

from rewardflow.simulator import SimulatorConfig, fault_for

pytestmark = pytest.mark.integration


def run_against(tmp_path: Path, server_args: list[str], **options):
    options = {"latency_ms": 2, "max_attempts": 5, **options}
    return run_against_simulator(tmp_path, server_args, **options)


def responses(tmp_path: Path) -> list[dict]:
    shards = sorted((tmp_path / "results" / "test" / "responses").glob("shard-*.jsonl"))
    return [record for path in shards for record in read_jsonl_file(path)]


def test_a_200_that_is_not_utf8_is_retried_like_a_malformed_body(tmp_path):
    result, stats, summary = run_against(tmp_path, ["--non-utf8-rate", "0.4", "--fault-seed", "3"])

    assert result.returncode == 0, result.output
    assert stats["faults"]["non_utf8"] > 0, "the fault was never injected: the test proves nothing"
    assert "UnicodeDecodeError" not in result.output
    assert summary["counts"]["failed"] == 0
    assert summary["generation"]["retries"] == stats["faults"]["non_utf8"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("null_content", "content is null"),
        ("tool_calls_only", "only tool calls (calculator)"),
        ("empty_choices", "empty choices"),
    ],
)
def test_an_unusable_answer_is_a_failure_record_at_once_not_five_paid_retries(
    tmp_path, fault, reason
):
    rate = "0.3"
    result, stats, summary = run_against(
        tmp_path, [f"--{fault.replace('_', '-')}-rate", rate, "--fault-seed", "2"],
        max_failed_fraction=0.9,
    )  # fmt: skip

    assert result.returncode == 0, result.output
    records = responses(tmp_path)
    config = SimulatorConfig(**{f"{fault}_rate": float(rate)}, fault_seed=2)
    expected = {r["id"] for r in records if fault_for(r["messages"], 0, config) == fault}
    assert expected, "no prompt draws the fault: the test proves nothing"
    failed = [r for r in records if r["status"] == "failed"]
    assert {r["id"] for r in failed} == expected
    for record in failed:
        assert record["response"] is None
        assert record["error"]["type"] == "ModelUnusableResponseError"
        assert reason in record["error"]["message"]
        assert record["error"]["attempts"] == 1
    # One request per sample: nothing was retried.
    assert stats["requests"] == 16
    assert summary["generation"]["retries"] == 0
    assert summary["counts"]["failed"] == len(expected)
    assert summary["failure_types"] == {"ModelUnusableResponseError": len(expected)}


def test_answers_cut_off_at_max_tokens_are_counted_and_flagged_in_the_report(tmp_path):
    # Canned answers: even prompts answer at once, odd ones ramble first, so max_tokens=12
    # cuts the odd ones off before their (right) answer.
    canned = [
        {
            "prompt": row["question"],
            "response": (
                f"The answer is {row['answer']}."
                if i % 2 == 0
                else f"Let me think about this very carefully, step by step. The answer is "
                f"{row['answer']}."
            ),
        }
        for i, row in enumerate(arithmetic_rows(16))
    ]
    canned_path = write_jsonl(tmp_path / "canned.jsonl", canned)
    result, _, summary = run_against(tmp_path, ["--responses", str(canned_path)], max_tokens=12)

    assert result.returncode == 0, result.output
    records = responses(tmp_path)
    cut = [r for r in records if r["finish_reason"] == "length"]
    assert len(cut) == len(records) // 2
    counts = summary["counts"]
    assert counts["truncated"] == len(cut)
    score_shards = sorted((tmp_path / "results" / "test" / "scores").glob("shard-*.jsonl"))
    scores = {(s["id"], s["sample_index"]): s for p in score_shards for s in read_jsonl_file(p)}
    cut_and_wrong = [r for r in cut if scores[(r["id"], r["sample_index"])]["score"] < 1]
    assert cut_and_wrong, "no cut-off answer scored wrong: the test proves nothing"
    assert counts["truncated_below_pass"] == len(cut_and_wrong)
    markdown = (tmp_path / "results" / "test" / "summary.md").read_text()
    assert f"{len(cut)} of {len(records)} generated samples were cut off" in markdown
    lowest = (tmp_path / "results" / "test" / "report" / "lowest_samples.html").read_text()
    assert "cut off at max_tokens (finish_reason: length)" in lowest


def test_a_key_echoed_in_a_401_body_appears_in_no_file_and_not_on_the_terminal(tmp_path):
    key = "sk-echoed-7c4e1f0a9b2d55"
    env = {"SIMULATOR_KEY": "sk-the-right-key-000", "CLIENT_KEY": key}
    server = start_simulator("--api-key-env", "SIMULATOR_KEY", "--echo-key-on-401", env=env)
    try:
        request = urllib.request.Request(
            server.base_url + "/chat/completions",
            data=b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}',
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as echoed:
            urllib.request.urlopen(request, timeout=10)
        assert key in echoed.value.read().decode(), "no echo: the test would prove nothing"
    finally:
        stop_simulator(server)

    result, stats, _ = run_against(
        tmp_path, ["--api-key-env", "SIMULATOR_KEY", "--echo-key-on-401"], prompts=8, env=env,
        api_key_env="CLIENT_KEY", concurrency=2,
    )  # fmt: skip

    assert result.returncode != 0
    assert stats["requests"] > 0
    assert "HTTP 401" in result.output and "Incorrect API key provided" in result.output
    assert "[REDACTED]" in result.output
    assert key not in result.output
    written = [p for d in ("results", "logs", ".snakemake") for p in (tmp_path / d).rglob("*")]
    assert any(p.name.endswith(".log") for p in written)
    leaks = [p for p in written if p.is_file() and key.encode() in p.read_bytes()]
    assert leaks == []
