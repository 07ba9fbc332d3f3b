"""Benchmark: generation at a provider's rate limit, clean and with injected faults.

Runs the real workflow (``python -m snakemake``) against the simulated server over real HTTP
and prints, side by side from one run, each divided by the ideal ``prompts / server limit``:

* ``wall``: the whole pipeline, Snakemake start-up, prepare, scoring and summary included;
* ``jobs``: the longest generation job, process start-up included (Snakemake's benchmark);
* ``requests``: the generation jobs' request phase, first request to last response;

and the number of HTTP requests the server saw, how many it refused with 429, and
* the share of requests the server refused with 429;
* with faults (5% HTTP 500, 2% dropped connections, 2% malformed bodies): whether every
  sample was still answered and whether accuracy equals the clean run's.

Two more rows configure no client-side limit: with the adaptive pacer (the default), which
learns the limit from the server's headers and 429s, and with it switched off, to show what
honouring the limit saves. ``--latency lognormal`` swaps the uniform 300±100 ms latency for a
log-normal one with the same 300 ms mean and a long tail of stragglers, as real providers have.
Usage::

    .venv/bin/python bench/generation_limits.py [--prompts 300] [--rps 20] [--latency lognormal]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    label: str
    wall_s: float
    job_s: float
    request_s: float
    requests: int
    rate_limited: int
    failed: int
    accuracy: float | None
    exit_code: int


def start_simulator(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "rewardflow", "simulate", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline().strip()
    if "http://" not in line:
        raise RuntimeError(f"simulator did not start: {line!r}")
    return process, line[line.index("http://") :]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def simulator_stats(base_url: str) -> dict[str, Any]:
    url = base_url.removesuffix("/v1") + "/_simulator/stats"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def write_dataset(path: Path, prompts: int) -> None:
    with open(path, "w") as handle:
        for index in range(prompts):
            row = {
                "id": f"b{index:05d}",
                "question": f"What is {index} * 3 + 7?",
                "answer": str(index * 3 + 7),
            }
            handle.write(json.dumps(row) + "\n")


def generation_seconds(workdir: Path, run: str) -> float:
    """Longest generation job (they run side by side), from Snakemake's benchmark files."""
    longest = 0.0
    for tsv in (workdir / "benchmarks" / run / "generate_responses").glob("*.tsv"):
        with open(tsv) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
            longest = max(longest, float(row["s"]))
    return longest


def run_pipeline(
    label: str,
    server_args: list[str],
    generation: dict[str, Any],
    prompts: int,
    jobs: int,
    cache_dir: Path | None = None,
    run_name: str = "bench",
) -> Outcome:
    process, base_url = start_simulator(*server_args)
    try:
        with tempfile.TemporaryDirectory(prefix="rewardflow-bench-") as tmp:
            workdir = Path(tmp)
            write_dataset(workdir / "data.jsonl", prompts)
            config = {
                "run_name": run_name,
                "cache": {"dir": str(cache_dir or workdir / "results" / "cache")},
                "shards": jobs,
                "dataset": {
                    "path": str(workdir / "data.jsonl"),
                    "id_field": "id",
                    "ground_truth_field": "answer",
                },
                "model": {"provider": "openai", "name": "bench-model", "base_url": base_url},
                "generation": {
                    "concurrency": 32,
                    "parallel_jobs": jobs,
                    "max_attempts": 8,
                    "timeout_s": 10,
                    **generation,
                },
                "rewards": [
                    {"name": "accuracy", "function": "rewardflow.rewards.math:math_reward"}
                ],
            }
            (workdir / "config.yaml").write_text(yaml.safe_dump(config))
            started = time.monotonic()
            completed = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "snakemake",
                    "--snakefile",
                    str(REPO / "Snakefile"),
                    "--directory",
                    str(workdir),
                    "--cores",
                    str(jobs),
                    "--configfile",
                    str(workdir / "config.yaml"),
                ],
                capture_output=True,
                text=True,
                env=os.environ.copy(),
            )
            wall = time.monotonic() - started
            stats = simulator_stats(base_url)
            summary_path = workdir / "results" / run_name / "summary.json"
            summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
            if completed.returncode != 0:
                sys.stderr.write(completed.stdout[-3000:] + completed.stderr[-3000:])
            return Outcome(
                label=label,
                wall_s=wall,
                job_s=generation_seconds(workdir, run_name),
                request_s=summary["generation"]["request_seconds_max"] if summary else 0.0,
                requests=int(stats["requests"]),
                rate_limited=int(stats.get("rate_limited", 0)),
                failed=summary["counts"]["failed"] if summary else -1,
                accuracy=summary["rewards"]["accuracy"]["mean"] if summary else None,
                exit_code=completed.returncode,
            )
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--rps", type=float, default=20.0, help="server-side limit")
    parser.add_argument("--jobs", type=int, default=2, help="generation jobs side by side")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--latency",
        choices=("uniform", "lognormal"),
        default="uniform",
        help="uniform: 300±100 ms; lognormal: mean 300 ms, sigma 1 (stragglers)",
    )
    args = parser.parse_args()

    latency = {
        "uniform": ["--latency-jitter-ms", "100"],
        "lognormal": ["--latency-distribution", "lognormal", "--latency-sigma", "1"],
    }[args.latency]
    server = [
        "--latency-ms",
        "300",
        *latency,
        "--wrong-rate",
        "0.2",
        "--rate-limit-rps",
        str(args.rps),
    ]
    faults = [
        "--error-500-rate",
        "0.05",
        "--drop-rate",
        "0.02",
        "--malformed-rate",
        "0.02",
        "--fault-seed",
        "7",
    ]
    limited = {"requests_per_minute": args.rps * 60}
    # The reuse rows talk to the same address, as a second run against one provider would.
    shared_cache = Path(tempfile.mkdtemp(prefix="rewardflow-bench-cache-"))
    same_server = [*server, "--port", str(free_port())]
    runs = [
        ("clean, limit configured", server, limited, {}),
        ("faults, limit configured", server + faults, limited, {}),
        ("clean, no limit: adaptive", same_server, {}, {"cache_dir": shared_cache}),
        (
            "same again, new run name",
            same_server,
            {},
            {"cache_dir": shared_cache, "run_name": "new"},
        ),
    ]
    if not args.skip_baseline:
        runs.append(("clean, no limit, adaptive off", server, {"adaptive_rate": False}, {}))
    ideal = args.prompts / args.rps
    print(
        f"{args.prompts} prompts, server limit {args.rps:g} req/s, "
        f"latency {'300±100 ms' if args.latency == 'uniform' else 'lognormal, mean 300 ms'}, "
        f"{args.jobs} generation jobs; ideal {ideal:.1f} s"
    )
    columns = ("wall", "/ideal", "jobs", "/ideal", "requests", "/ideal", "HTTP", "429s", "429 %")
    header = (
        f"{'run':<36} "
        + " ".join(f"{name:>7}" for name in columns)
        + f" {'failed':>7}  accuracy exit"
    )
    print(header)
    outcomes = []
    for label, server_args, generation, options in runs:
        outcome = run_pipeline(label, server_args, generation, args.prompts, args.jobs, **options)
        outcomes.append(outcome)
        share = 100.0 * outcome.rate_limited / max(outcome.requests, 1)
        accuracy = "n/a" if outcome.accuracy is None else f"{outcome.accuracy:.4f}"
        print(
            f"{label:<36} {outcome.wall_s:7.1f} {outcome.wall_s / ideal:7.2f} "
            f"{outcome.job_s:7.1f} {outcome.job_s / ideal:7.2f} "
            f"{outcome.request_s:7.1f} {outcome.request_s / ideal:7.2f} "
            f"{outcome.requests:7d} {outcome.rate_limited:7d} {share:7.1f} "
            f"{outcome.failed:7d}  {accuracy:>8} {outcome.exit_code:4d}",
            flush=True,
        )
    clean, faulty = outcomes[0], outcomes[1]
    print(
        f"faults: every sample answered: {faulty.failed == 0}; "
        f"accuracy equal to the clean run: {faulty.accuracy == clean.accuracy}"
    )


if __name__ == "__main__":
    main()
