"""Benchmark: reusing the response cache under a new run name, at two shard counts and padded.

Runs the real workflow (``python -m snakemake``, the built-in simulator at 0 ms, so requests
cost nothing and what is left is the pipeline and the cache) in one working directory with one
shared cache, side by side:

* ``first run``: ``--prompts`` prompts, 16 shards, nothing cached (the reference);
* ``reuse, 16 shards`` and ``reuse, 128 shards``: the same prompts under new run names, so
  every response comes from the cache and only the cache look-up differs from a no-op;
* ``small run`` (``--small`` of the prompts, new name, all cached) before and after the
  cache partition is padded with ``--pad`` unrelated entries, twice after: the first padded run
  may index a journal it finds without an index (an old-layout cache), the second shows the
  steady state.

Prints wall times (``snakemake`` start to exit), the summed generation job time (from the
workflow's benchmark files) and the issue-15 ratios: reuse ≤ 25 % of the first run, 128 shards
≤ 1.3 × 16 shards, padded small run ≈ unpadded.

``--lookup-only`` measures the cache look-up alone, in one process, without Snakemake (whose
per-job start-up dominates the wall time of a 128-shard run on a loaded machine): a cache of
``--prompts`` responses written by 16 writers, the summed look-up time of every shard's keys
at 16 and 128 shards, then a ``--small``-key look-up before and after ``--pad`` unrelated
entries are added (twice: the first look-up may index the padding). It uses only the public
cache API, so it runs unchanged against older versions of the package. Usage::

    .venv/bin/python bench/cache_reuse.py [--prompts 5000] [--small 1000] [--pad 1000000]
    .venv/bin/python bench/cache_reuse.py --lookup-only [--prompts 20000]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    label: str
    wall_s: float
    generation_job_s: float
    cached: int
    requested: int
    exit_code: int


def write_dataset(path: Path, prompts: int) -> None:
    with open(path, "w") as handle:
        for index in range(prompts):
            row = {"id": f"b{index:06d}", "question": f"What is {index} * 3 + 7?",
                   "answer": str(index * 3 + 7)}  # fmt: skip
            handle.write(json.dumps(row) + "\n")


def write_config(workdir: Path, run_name: str, shards: int, dataset: Path) -> Path:
    config = {
        "run_name": run_name,
        "shards": shards,
        "cache": {"dir": str(workdir / "cache")},
        "dataset": {"path": str(dataset), "id_field": "id", "ground_truth_field": "answer"},
        "model": {"provider": "simulator", "name": "bench-model"},
        "simulator": {"latency_ms": 0, "latency_jitter_ms": 0},
        "generation": {"concurrency": 64, "parallel_jobs": 2},
        "rewards": [{"name": "accuracy", "function": "rewardflow.rewards.math:math_reward"}],
    }
    path = workdir / f"{run_name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def job_seconds(workdir: Path, run_name: str) -> float:
    """Summed wall time of the run's generation jobs, from Snakemake's benchmark files."""
    total = 0.0
    for tsv in (workdir / "benchmarks" / run_name / "generate_responses").glob("*.tsv"):
        with open(tsv) as handle:
            total += float(next(csv.DictReader(handle, delimiter="\t"))["s"])
    return total


def run(workdir: Path, label: str, run_name: str, shards: int, dataset: Path) -> Run:
    config = write_config(workdir, run_name, shards, dataset)
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(workdir), "--cores", "2", "--configfile", str(config)],
        capture_output=True, text=True, env=os.environ.copy(),
    )  # fmt: skip
    wall = time.monotonic() - started
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-3000:] + completed.stderr[-3000:])
    summary_path = workdir / "results" / run_name / "summary.json"
    generation = json.loads(summary_path.read_text())["generation"] if summary_path.exists() else {}
    return Run(label, wall, job_seconds(workdir, run_name), int(generation.get("cached", -1)),
               int(generation.get("requested", -1)), completed.returncode)  # fmt: skip


def pad_cache(cache_root: Path, entries: int) -> Path:
    """Append ``entries`` unrelated responses to the run's partition, as one journal.

    Written in the journal format (docs/records.md) by this process, not through a cache
    writer, so it is what an old-layout cache or a crashed writer leaves: no index beside it.
    """
    (partition,) = [path for path in cache_root.iterdir() if path.is_dir()]
    journal = partition / "padding.jsonl"
    with open(journal, "w", encoding="utf-8") as handle:
        for index in range(entries):
            key = hashlib.sha256(f"pad-{index}".encode()).hexdigest()
            entry = {"key": key, "sample_index": 0,
                     "response": f"Step 1: compute {index} * 3. Step 2: add 7. Answer: {index}",
                     "finish_reason": "stop", "usage": {"prompt_tokens": 40,
                     "completion_tokens": 20, "total_tokens": 60}, "model": "bench-model",
                     "created_at": 1764547200.0, "latency_s": 0.0}  # fmt: skip
            handle.write(json.dumps(entry, separators=(",", ":")) + "\n")
    return journal


def lookup_only(prompts: int, small: int, pad: int) -> None:
    from rewardflow.generation.cache import GenerationSettings, ResponseCache

    settings = GenerationSettings("bench-model", "simulator://bench", 0.0, 1.0, 256)
    keys = [hashlib.sha256(f"prompt-{index}".encode()).hexdigest() for index in range(prompts)]

    def look_up(root: Path, wanted: list[str]) -> float:
        started = time.perf_counter()
        found = ResponseCache(root, settings).load(wanted)
        assert len(found) == len(wanted), (len(found), len(wanted))
        return time.perf_counter() - started

    def per_shard(root: Path, shards: int) -> float:
        return sum(look_up(root, keys[shard::shards]) for shard in range(shards))

    with tempfile.TemporaryDirectory(prefix="rewardflow-cache-lookup-") as tmp:
        root = Path(tmp)
        for shard in range(16):
            with ResponseCache(root, settings).writer(f"first.shard-{shard:03d}") as writer:
                for key in keys[shard::16]:
                    writer.append(key, 0, "Step 1: compute. Step 2: add. Answer: 42", "stop",
                                  {"prompt_tokens": 40}, "m", 0.0)  # fmt: skip
        at16, at128 = per_shard(root, 16), per_shard(root, 128)
        unpadded = look_up(root, keys[:small])
        pad_cache(root, pad)
        padded1, padded2 = look_up(root, keys[:small]), look_up(root, keys[:small])
    print(f"look-up of {prompts:,} cached keys, summed over shards: 16 shards {at16:.2f} s, "
          f"128 shards {at128:.2f} s ({at128 / at16:.2f}x)")  # fmt: skip
    print(f"look-up of {small:,} keys: {unpadded:.3f} s; with +{pad:,} unrelated entries "
          f"{padded1:.3f} s (1st), {padded2:.3f} s (2nd)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=5000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--pad", type=int, default=1_000_000)
    parser.add_argument("--lookup-only", action="store_true")
    args = parser.parse_args()
    if args.lookup_only:
        lookup_only(args.prompts, args.small, args.pad)
        return
    with tempfile.TemporaryDirectory(prefix="rewardflow-cache-bench-") as tmp:
        workdir = Path(tmp)
        full, small = workdir / "data.jsonl", workdir / "small.jsonl"
        write_dataset(full, args.prompts)
        write_dataset(small, args.small)
        runs = [
            run(workdir, "first run, 16 shards", "first", 16, full),
            run(workdir, "reuse, 16 shards", "reuse16", 16, full),
            run(workdir, "reuse, 128 shards", "reuse128", 128, full),
            run(workdir, f"small run ({args.small}), unpadded", "small", 16, small),
        ]
        started = time.monotonic()
        pad_cache(workdir / "cache", args.pad)
        pad_s = time.monotonic() - started
        runs.append(run(workdir, f"small run, +{args.pad:,} entries (1st)", "padded1", 16, small))
        runs.append(run(workdir, f"small run, +{args.pad:,} entries (2nd)", "padded2", 16, small))
    print(f"{'case':<42} {'wall s':>8} {'gen jobs s':>10} {'cached':>7} {'requested':>9} exit")
    for item in runs:
        print(f"{item.label:<42} {item.wall_s:8.1f} {item.generation_job_s:10.1f} "
              f"{item.cached:7d} {item.requested:9d} {item.exit_code:4d}")  # fmt: skip
    first, reuse16, reuse128, small_run, padded1, padded2 = runs
    print(f"(writing the padding journal took {pad_s:.1f} s, not counted)")
    print(f"reuse 16 / first run:   {reuse16.wall_s / first.wall_s:6.1%}  (target <= 25 %)")
    print(f"reuse 128 / first run:  {reuse128.wall_s / first.wall_s:6.1%}  (target <= 25 %)")
    print(f"reuse 128 / reuse 16:   {reuse128.wall_s / reuse16.wall_s:6.2f}x (target <= 1.3x)")
    print(f"padded / unpadded small: {padded1.wall_s / small_run.wall_s:5.2f}x (1st), "
          f"{padded2.wall_s / small_run.wall_s:.2f}x (2nd)  (target ~1x)")  # fmt: skip


if __name__ == "__main__":
    main()
