"""Benchmark: CPU per sample of the scoring stage, samples chunked per task vs one task each.

Writes one responses shard of ``--samples`` samples shaped like the built-in simulator's
answers (its own answer function, so worked arithmetic ending in "The answer is N", "#### N",
"\\boxed{N}" or "$N", 20 % of them wrong; plus ``--failed`` generation failures), then scores
it with ``score_shard`` and the math reward at ``--workers`` worker processes, side by side in
one session:

* ``chunked``: the default, several samples per ``pebble`` task, sized from the measured
  time per sample;
* ``one task per reward``: ``max_chunk=1``, one task per (sample, reward) as before chunking,
  through the new scheduler (which keeps a few tasks per worker queued, not all of them);
* ``baseline``: with ``--baseline PATH``, the same shard scored by the rewardflow package of
  another checkout, the old code itself (e.g.
  ``git archive <commit> rewardflow workflow/schemas | tar -x -C /tmp/old``).

For scale, it first times the reward alone: ``score_record`` on every sample in this process.

Each run is a fresh process, so its CPU is its own (the job's process) plus its workers'
(``getrusage`` of its children, reaped when the pool joins); the variants alternate
``--repeat`` times, so the machine's load weighs on all alike, and the load average is printed
before and after. It also checks that every variant wrote the same score records. Usage::

    .venv/bin/python bench/scoring_cpu.py [--samples 20000] [--workers 2] [--repeat 2]
    .venv/bin/python bench/scoring_cpu.py --baseline /tmp/old   # /tmp/old/rewardflow/...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rewardflow.jsonl import read_jsonl, write_jsonl_atomic
from rewardflow.records import GenerationError, ResponseRecord
from rewardflow.rewards.loader import load_rewards
from rewardflow.scoring.job import score_record
from rewardflow.simulator.answers import answer_for
from rewardflow.simulator.config import SimulatorConfig

REPO = Path(__file__).resolve().parents[1]
REWARDS = [{"name": "accuracy", "function": "rewardflow.rewards.math:math_reward", "primary": True}]

# Runs in a fresh interpreter whose PYTHONPATH picks the checkout; prints one JSON line.
RUN_ONE = """
import json, resource, sys, time
from rewardflow.config.scoring import ScoringSettings
from rewardflow.scoring.job import score_shard
responses, output, rewards, workers, max_chunk = sys.argv[1:6]
options = {}
if max_chunk != "default":
    options["max_chunk"] = int(max_chunk)
started = time.perf_counter()
counts = score_shard(responses, output, json.loads(rewards), ScoringSettings.defaults(),
                     workers=int(workers), **options)
wall = time.perf_counter() - started
own = resource.getrusage(resource.RUSAGE_SELF)
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "job_cpu_s": own.ru_utime + own.ru_stime,
                  "workers_cpu_s": children.ru_utime + children.ru_stime, "counts": counts,
                  "package": __import__("rewardflow").__file__}))
"""


def write_shard(path: Path, samples: int, failed: int) -> None:
    """``samples`` responses as the generation stage writes them; every ``samples // failed``-th
    one a generation failure."""
    config = SimulatorConfig()
    every = samples // failed if failed else 0
    records = []
    for index in range(samples):
        question = f"What is {index} * 3 + {index % 97}?"
        messages = [{"role": "user", "content": question}]
        common = {"id": f"b{index:06d}", "sample_index": 0, "messages": messages,
                  "ground_truth": str(index * 3 + index % 97), "model": "bench-model",
                  "cache_key": f"{index:064x}", "metadata": {"row": index}}  # fmt: skip
        if every and index % every == every - 1:
            error = GenerationError("ModelGenerationError", "HTTP 500", attempts=5)
            record = ResponseRecord(status="failed", response=None, error=error, **common)
        else:
            answer = answer_for(messages, None, 0, config)
            usage = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
            record = ResponseRecord(
                status="ok", response=answer, finish_reason="stop", usage=usage, **common
            )
        records.append(record.to_dict())
    write_jsonl_atomic(path, records)


def run_one(pythonpath: Path, responses: Path, output: Path, workers: int, max_chunk: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    command = [sys.executable, "-c", RUN_ONE, str(responses), str(output), json.dumps(REWARDS),
               str(workers), max_chunk]  # fmt: skip
    # Not in this checkout: ``python -c`` puts the working directory first on sys.path.
    done = subprocess.run(
        command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"scoring failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["package"].startswith(str(pythonpath)):
        sys.exit(f"expected rewardflow from {pythonpath}, got {result['package']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--failed", type=int, default=200, help="generation failures among them")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout's root, scored too")
    args = parser.parse_args()

    variants = [("chunked", REPO, "default"), ("one task per reward", REPO, "1")]
    if args.baseline:
        variants.append((f"baseline {args.baseline}", args.baseline.resolve(), "default"))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        responses = Path(tmp) / "responses.jsonl"
        write_shard(responses, args.samples, args.failed)
        records = [ResponseRecord.from_dict(data) for _, data in read_jsonl(responses)]
        rewards = load_rewards(REWARDS)
        score_record(records[0], rewards)  # math-verify's first call warms it up
        started = time.process_time()
        for record in records:
            score_record(record, rewards)
        alone_s = time.process_time() - started
        results: dict[str, list[dict]] = {label: [] for label, _, _ in variants}
        outputs: dict[str, bytes] = {}
        for _ in range(args.repeat):
            for label, root, max_chunk in variants:
                output = Path(tmp) / "scores.jsonl"
                result = run_one(root, responses, output, args.workers, max_chunk)
                results[label].append(result)
                outputs[label] = output.read_bytes()
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{args.samples} samples ({args.failed} generation failures), math reward, "
              f"{args.workers} workers; best of {args.repeat} (by total CPU)")  # fmt: skip
        print(f"{'variant':<28} {'wall s':>8} {'job CPU s':>10} {'workers CPU s':>14} "
              f"{'CPU ms/sample':>14}")  # fmt: skip
        print(f"{'reward alone, in-process':<28} {'':>8} {alone_s:10.2f} {'':>14} "
              f"{1000 * alone_s / args.samples:14.3f}")  # fmt: skip
        for label, runs in results.items():
            best = min(runs, key=lambda r: r["job_cpu_s"] + r["workers_cpu_s"])
            cpu = best["job_cpu_s"] + best["workers_cpu_s"]
            print(f"{label[:28]:<28} {best['wall_s']:8.2f} {best['job_cpu_s']:10.2f} "
                  f"{best['workers_cpu_s']:14.2f} {1000 * cpu / args.samples:14.3f}")  # fmt: skip
            print(
                f"{'':<28} all runs, CPU s: "
                + ", ".join(f"{r['job_cpu_s'] + r['workers_cpu_s']:.2f}" for r in runs)
            )
        same = len(set(outputs.values())) == 1
        print(f"score records identical across variants: {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
