"""Benchmark: generation at a provider's rate limit, clean and with injected faults.

Runs the real workflow (``python -m snakemake``) against the simulated server over real HTTP
and prints, side by side from one run, each divided by the ideal ``prompts / server limit``:

* ``wall``: the whole pipeline, Snakemake start-up, prepare, scoring and summary included;
* ``jobs``: the longest generation job, process start-up included (Snakemake's benchmark);
* ``requests``: the longest generation job's request phase, first request to last response;
* ``span``: the server's request phase, all jobs together (polled from its counters);

and the number of HTTP requests the server saw, how many it refused with 429, and
* the share of requests the server refused with 429;
* with faults (5% HTTP 500, 2% dropped connections, 2% malformed bodies): whether every
  sample was still answered and whether accuracy equals the clean run's.

More rows configure no client-side limit: with the adaptive pacer (the default), which
learns the limit from the server's ``x-ratelimit-*`` headers, the same again under a new run
name (it starts from the rate the first run persisted next to the cache), against a server
whose 429s carry only ``Retry-After`` (no headers: the limit has to be found from the 429s),
and with the pacer switched off, to show what honouring the limit saves.

Two more rows start ``--together`` generation jobs (4 by default, ``parallel_jobs`` as many) at
once against the limited server with nothing learned (a fresh cache), once with the limit in
headers and once with 429s carrying only ``Retry-After``: the jobs have to share what the first
of them finds out, or each finds the limit on its own and the 429s grow with the job count.

The last two rows talk to a fast server with no limit at all (``--unlimited-prompts`` prompts,
5±5 ms, 4 shards, concurrency 64), with the default settings and with ``adaptive_rate: false``:
the default must not be slower than switching the pacer off. The closing lines print each
ratio next to its target. ``--latency lognormal`` swaps the uniform 300±100 ms latency for a
log-normal one with the same 300 ms mean and a long tail of stragglers, as real providers have.
Usage::

    .venv/bin/python bench/generation_limits.py [--prompts 300] [--rps 20] [--latency lognormal]
        [--together 4] [--only SUBSTRING]
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
import threading
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
    span_s: float
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


class RequestSpan:
    """The server's request phase, all jobs together: first request to last answer.

    Polls the simulator's counters from a thread (every 50 ms) while the pipeline runs, so it
    measures the old and the new code alike; a job's own request phase (``request_s``) misses
    the jobs around it when several run side by side.
    """

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._stop = threading.Event()
        self.first: float | None = None
        self.last: float | None = None
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        answered = -1
        while not self._stop.wait(0.05):
            try:
                stats = simulator_stats(self._base_url)
            except OSError:
                continue
            now = time.monotonic()
            if stats["requests"] and self.first is None:
                self.first = now
            done = sum(int(stats.get(name, 0)) for name in ("completions", "errors"))
            if done != answered:
                answered, self.last = done, now

    def seconds(self) -> float:
        self._stop.set()
        self._thread.join()
        return 0.0 if self.first is None or self.last is None else self.last - self.first


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
    concurrency: int = 32,
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
                    "concurrency": concurrency,
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
            span = RequestSpan(base_url)
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
            span_s = span.seconds()
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
                span_s=span_s,
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
    parser.add_argument(
        "--together", type=int, default=4, help="jobs starting at once, nothing learned"
    )
    parser.add_argument("--unlimited-prompts", type=int, default=1319)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--only", help="run only the rows whose label contains this")
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
    unlimited = ["--latency-ms", "5", "--latency-jitter-ms", "5", "--wrong-rate", "0.2"]
    limited = {"requests_per_minute": args.rps * 60}
    # The reuse rows talk to the same address, as a second run against one provider would.
    shared_cache = Path(tempfile.mkdtemp(prefix="rewardflow-bench-cache-"))
    same_server = [*server, "--port", str(free_port())]
    fast = {"prompts": args.unlimited_prompts, "jobs": 4, "concurrency": 64}
    limited_rows = {"prompts": args.prompts, "jobs": args.jobs}
    runs: list[tuple[str, list[str], dict[str, Any], dict[str, Any]]] = [
        ("clean, limit configured", server, limited, limited_rows),
        ("faults, limit configured", server + faults, limited, limited_rows),
        (
            "clean, no limit: adaptive",
            same_server,
            {},
            {**limited_rows, "cache_dir": shared_cache},
        ),
        (
            "same again, new run name",
            same_server,
            {},
            {**limited_rows, "cache_dir": shared_cache, "run_name": "new"},
        ),
        (
            "Retry-After only, no limit: adaptive",
            [*server, "--rate-limit-retry-after-only"],
            {},
            limited_rows,
        ),
    ]
    together = {"prompts": args.prompts, "jobs": args.together}
    runs += [
        (f"{args.together} jobs together, nothing learned: headers", server, {}, together),
        (
            f"{args.together} jobs together, nothing learned: Retry-After",
            [*server, "--rate-limit-retry-after-only"],
            {},
            together,
        ),
    ]
    if not args.skip_baseline:
        runs.append(
            ("clean, no limit, adaptive off", server, {"adaptive_rate": False}, limited_rows)
        )
    runs += [
        ("unlimited server: default", unlimited, {}, fast),
        ("unlimited server: adaptive off", unlimited, {"adaptive_rate": False}, fast),
    ]
    if args.only:
        runs = [run for run in runs if args.only in run[0]]
    ideal = args.prompts / args.rps
    print(
        f"{args.prompts} prompts, server limit {args.rps:g} req/s, "
        f"latency {'300±100 ms' if args.latency == 'uniform' else 'lognormal, mean 300 ms'}, "
        f"{args.jobs} generation jobs ({args.together} in the 'together' rows); "
        f"ideal {ideal:.1f} s. Unlimited rows: "
        f"{args.unlimited_prompts} prompts, 5±5 ms, 4 jobs, concurrency 64 (ratios vs ideal n/a)"
    )
    columns = (
        "wall", "/ideal", "jobs", "/ideal", "requests", "/ideal", "span", "/ideal",
        "HTTP", "429s", "429 %",
    )  # fmt: skip
    header = (
        f"{'run':<38} "
        + " ".join(f"{name:>7}" for name in columns)
        + f" {'failed':>7}  accuracy exit"
    )
    print(header)
    outcomes: dict[str, Outcome] = {}
    for label, server_args, generation, options in runs:
        outcome = run_pipeline(label, server_args, generation, **options)
        outcomes[label] = outcome
        share = 100.0 * outcome.rate_limited / max(outcome.requests, 1)
        accuracy = "n/a" if outcome.accuracy is None else f"{outcome.accuracy:.4f}"
        print(
            f"{label:<38} {outcome.wall_s:7.1f} {outcome.wall_s / ideal:7.2f} "
            f"{outcome.job_s:7.1f} {outcome.job_s / ideal:7.2f} "
            f"{outcome.request_s:7.1f} {outcome.request_s / ideal:7.2f} "
            f"{outcome.span_s:7.1f} {outcome.span_s / ideal:7.2f} "
            f"{outcome.requests:7d} {outcome.rate_limited:7d} {share:7.1f} "
            f"{outcome.failed:7d}  {accuracy:>8} {outcome.exit_code:4d}",
            flush=True,
        )
    print_targets(outcomes, ideal)


def print_targets(outcomes: dict[str, Outcome], ideal: float) -> None:
    """Each of issue 15's ratios, measured in this run, next to its target."""
    clean, faulty = (
        outcomes.get("clean, limit configured"),
        outcomes.get("faults, limit configured"),
    )
    if clean and faulty:
        print(
            f"faults: every sample answered: {faulty.failed == 0}; "
            f"accuracy equal to the clean run: {faulty.accuracy == clean.accuracy}"
        )
    default, off = (
        outcomes.get("unlimited server: default"),
        outcomes.get("unlimited server: adaptive off"),
    )
    if default and off:
        print(
            f"unlimited server, default / adaptive off: wall {default.wall_s / off.wall_s:.2f}x, "
            f"requests {default.request_s / max(off.request_s, 1e-9):.2f}x (target wall <= 1.10x)"
        )
    targets = [
        ("clean, no limit: adaptive", 1.15, None),
        ("Retry-After only, no limit: adaptive", 1.15, 5.0),
        ("clean, limit configured", 1.05, None),
    ]
    targets += [
        (label, 1.15, 5.0) for label in outcomes if "jobs together, nothing learned" in label
    ]
    for label, factor, max_429 in targets:
        outcome = outcomes.get(label)
        if outcome is None:
            continue
        share = 100.0 * outcome.rate_limited / max(outcome.requests, 1)
        limit_429 = f", 429s {share:.1f} % (target < {max_429:g} %)" if max_429 else ""
        print(
            f"{label}: wall {outcome.wall_s:.1f} s vs target {factor * ideal + 4:.1f} s "
            f"({factor:g}x ideal + 4 s); request phase {outcome.request_s / ideal:.2f}x ideal "
            f"(all jobs: {outcome.span_s / ideal:.2f}x){limit_429}"
        )


if __name__ == "__main__":
    main()
