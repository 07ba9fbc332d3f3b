"""Benchmark: peak memory (and time) of the prepare_prompts step as the number of prompts grows.

Writes the scale benchmark's dataset (bench/cache_reuse.py: explicit ids, a ground truth) at
each size, then runs the step as its rule script does (``prepare_prompts(settings,
shard_paths)``, ``--shards`` shards) in a fresh interpreter and prints the step's peak resident
memory (``ru_maxrss`` of that process), wall and CPU time (user + system, interpreter start and
imports included). ``imports only`` is the same interpreter stopping before it reads a row: the
floor a flat step stays near. With ``--baseline PATH`` (another checkout's root, e.g.
``git archive <commit> rewardflow workflow/schemas | tar -x -C /tmp/old``) each size also runs
against that package, alternately, and the two runs' shard files must be identical. Usage::

    python bench/prepare_memory.py [--sizes 20000 100000] [--shards 64] [--baseline /tmp/old]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from cache_reuse import write_config, write_dataset  # same prompts and config as that bench

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys, yaml
from rewardflow.config import validate_config
from rewardflow.config.prompts import PrepareSettings
from rewardflow.prompts.prepare import prepare_prompts
with open(sys.argv[1]) as handle:
    settings = PrepareSettings.from_config(validate_config(yaml.safe_load(handle)))
paths = [f"{sys.argv[2]}/shard-{index:03d}.jsonl" for index in range(int(sys.argv[3]))]
if sys.argv[4] == "run":
    prepare_prompts(settings, paths)
"""


def run_step(root: Path, config: Path, out: Path, shards: int, mode: str) -> tuple[float, float]:
    """Peak RSS (MB) and CPU seconds of one fresh interpreter running the step."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config), str(out), str(shards), mode],
        env=env,
        cwd=out,  # not this checkout: ``-c`` puts the working directory first on sys.path
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, for its rusage
    if process.returncode:
        raise SystemExit(f"the step failed under {root} (exit {process.returncode})")
    return usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--baseline", type=Path, help="another checkout's root, run too")
    args = parser.parse_args()
    variants = [("this checkout", REPO)]
    if args.baseline:
        variants.append((f"baseline {args.baseline}", args.baseline.resolve()))
    with tempfile.TemporaryDirectory(prefix="prepare-memory-") as tmp:
        work = Path(tmp)
        print("| prompts | code | peak RSS MB | CPU s |\n|---:|---|---:|---:|")
        for label, root in variants:
            config = write_config(work, "floor", args.shards, work / "unused.jsonl")
            rss, cpu = run_step(root, config, work / "floor", args.shards, "imports")
            print(f"| imports only | {label} | {rss:.1f} | {cpu:.2f} |", flush=True)
        for size in args.sizes:
            dataset = work / f"data-{size}.jsonl"
            write_dataset(dataset, size)
            config = write_config(work, f"run-{size}", args.shards, dataset)
            outputs = []
            for index, (label, root) in enumerate(variants):
                out = work / f"out-{size}-{index}"
                rss, cpu = run_step(root, config, out, args.shards, "run")
                outputs.append(out)
                print(f"| {size:,} | {label} | {rss:.1f} | {cpu:.2f} |", flush=True)
            for out in outputs[1:]:
                names = [f"shard-{index:03d}.jsonl" for index in range(args.shards)]
                match, mismatch, errors = filecmp.cmpfiles(outputs[0], out, names, shallow=False)
                if mismatch or errors:
                    raise SystemExit(f"shard files differ at {size}: {mismatch + errors}")
            for out in outputs:
                for path in out.iterdir():
                    path.unlink()
            dataset.unlink()


if __name__ == "__main__":
    main()
