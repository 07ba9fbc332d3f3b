"""Benchmark: requests saved by coalescing identical requests, on a duplicate-heavy dataset.

Runs the real workflow against the simulated server and counts the requests the server saw:

* ``duplicates``: ``--rows`` rows drawn (seeded) from ``--distinct`` questions, so many
  questions appear several times, as in scraped benchmarks or templated prompts;
* ``greedy samples``: the distinct questions once each with ``samples: 3`` at temperature 0;
* ``two runs at once``: the duplicate dataset, two runs of the same config started together
  against one shared cache.

Each row prints the requests an uncoalesced client sends (one per sample, per run), the
requests the server saw, the requests saved, the pipeline's wall time and whether every sample
was answered. Usage::

    .venv/bin/python bench/coalescing.py [--rows 600] [--distinct 300]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generation_limits import REPO, simulator_stats, start_simulator  # noqa: E402


def write_rows(path: Path, rows: int, distinct: int, seed: int = 0) -> None:
    picks = random.Random(seed).choices(range(distinct), k=rows - distinct) + list(range(distinct))
    with open(path, "w") as handle:
        for index, question in enumerate(picks):
            row = {"id": f"r{index:05d}", "question": f"What is {question} * 3 + 7?",
                   "answer": str(question * 3 + 7)}  # fmt: skip
            handle.write(json.dumps(row) + "\n")


def config_for(workdir: Path, base_url: str, cache: Path, **generation: Any) -> Path:
    config = {
        "run_name": "bench",
        "shards": 3,
        "cache": {"dir": str(cache)},
        "dataset": {
            "path": str(workdir.parent / "data.jsonl"),
            "id_field": "id",
            "ground_truth_field": "answer",
        },  # fmt: skip
        "model": {"provider": "openai", "name": "bench-model", "base_url": base_url},
        "generation": {"concurrency": 16, "parallel_jobs": 3, **generation},
        "rewards": [{"name": "accuracy", "function": "rewardflow.rewards.math:math_reward"}],
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_run(workdir: Path, config: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "3",
               "--configfile", str(config)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def measure(label: str, tmp: Path, runs: int, samples: int, without: int, **generation: Any) -> str:
    process, base_url = start_simulator("--latency-ms", "150", "--wrong-rate", "0.2")
    try:
        cache = tmp / f"cache-{label.replace(' ', '-')}"
        workdirs = [tmp / f"{label.replace(' ', '-')}-{index}" for index in range(runs)]
        started = time.monotonic()
        running = []
        for workdir in workdirs:
            workdir.mkdir()
            config = config_for(workdir, base_url, cache, samples=samples, **generation)
            running.append(start_run(workdir, config))
        outputs = [run.communicate()[0] for run in running]
        wall = time.monotonic() - started
        requests = int(simulator_stats(base_url)["requests"])
    finally:
        process.terminate()
        process.wait(timeout=10)
    answered = True
    for workdir, run, output in zip(workdirs, running, outputs, strict=True):
        if run.returncode != 0:
            sys.stderr.write(output[-3000:])
            answered = False
            continue
        counts = json.loads((workdir / "results/bench/summary.json").read_text())["counts"]
        answered &= counts["generated"] == counts["samples"]
    saved = without - requests
    return (
        f"| {label} | {without} | {requests} | {saved} ({100 * saved / without:.0f}%) "
        f"| {wall:.1f} s | {'yes' if answered else 'NO'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--distinct", type=int, default=300)
    args = parser.parse_args()
    print("| case | requests without coalescing | requests sent | saved | wall | all answered |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory(prefix="rewardflow-bench-") as name:
        tmp = Path(name)
        write_rows(tmp / "data.jsonl", args.rows, args.distinct)
        print(measure("duplicates", tmp, 1, 1, args.rows), flush=True)
        print(measure("two runs at once", tmp, 2, 1, 2 * args.rows), flush=True)
        write_rows(tmp / "data.jsonl", args.distinct, args.distinct)
        print(measure("greedy samples", tmp, 1, 3, 3 * args.distinct), flush=True)


if __name__ == "__main__":
    main()
