"""Benchmark: peak memory (and time) of the aggregate, report and viewer steps as N grows.

Writes a synthetic finished run (tests/data/summary_support.py: the real record classes,
every status, ~1.3 kB per sample, 4 samples per prompt, 64 shards) at each size, and a
response cache partition with each cache key's latency (which the workflow's viewer reads),
then runs each step as the workflow's rule script does (the report and the viewer need the
summary: without ``aggregate`` in ``--steps`` it is written first, unmeasured), each in a
fresh interpreter, and prints the step's peak resident memory (``ru_maxrss``), wall time and
CPU time (user + system, the figure to compare on a busy machine; it includes the
interpreter's start and imports).
Memory that stays flat as N grows is the point (issue 15: at most 300 MB at 100,000 samples).

Usage::

    python bench/summary_memory.py [--sizes 10000 100000] [--steps aggregate report]
                                   [--resamples 2000] [--keep DIR]

After the table it prints, per step, the growth of peak RSS from the smallest to the largest
size (1.0 is flat).

Measured on the shared 2-core machine (heavily loaded by other jobs, so wall times mean
little; peak RSS; CPU seconds of the step at ``--resamples 100``, so that the bootstrap,
unchanged, does not hide the rest), ``python bench/summary_memory.py --sizes 10000 100000
1000000 --steps aggregate report --resamples 100``:

| samples | step | in-memory records | streamed (0eedbfc) | flat columns |
|---:|---|---:|---:|---:|
| 10,000 | aggregate | 79 MB | 36 MB | 46 MB |
| 10,000 | report | 138 MB | 88 MB | 87 MB |
| 100,000 | aggregate | 532 MB, 18.1 s CPU | 102 MB, 13.6 s CPU | 68 MB, 14.2 s CPU |
| 100,000 | report | 592 MB, 13.5 s CPU | 127 MB, 9.8 s CPU | 95 MB, 8.7 s CPU |
| 1,000,000 | aggregate | | 713 MB, 188 s CPU | 270 MB (94 s CPU at ``--resamples 1``) |
| 1,000,000 | report | | 490 MB, 91 s CPU | 208 MB, 62 s CPU |

What still grows is inherently per sample or per prompt. The aggregate keeps, in typed
columns, every number a statistic resamples or joins (here ~130 bytes a sample: three reward
values, the weighted score, the scored sample's index, score and two group labels, its
extracted answer, its cache key's 64-bit digest) and each prompt's id once (~150 bytes a
prompt: the bootstrap draws prompts in id order); numpy adds ~10 MB to its start. The
report keeps per sample the five numbers its figures plot and an 8-byte hash of its key
(~56 bytes), and matplotlib's scatter of a million points costs about as much again while
it draws. Growth of peak RSS from 10,000 to 1,000,000 samples: aggregate 19.8x -> 5.9x,
report 5.6x -> 2.4x.

The viewer, ``python bench/summary_memory.py --sizes 10000 100000 1000000 --steps viewer``
(same machine, lightly loaded; the 1,000,000-sample run was not measured loaded):

| samples | run loaded (5ac6647) | streamed |
|---:|---:|---:|
| 10,000 | 90 MB, 0.7 s CPU | 44 MB, 0.8 s CPU |
| 100,000 | 533 MB, 6.5 s CPU | 55 MB, 5.8 s CPU |
| 1,000,000 | | 154 MB, 58 s CPU |

Loaded, it held every record to write the samples sorted by key; streamed, it reads the
responses twice (the prompts, then each sample joined with its score) and writes the samples
in file order, which the page sorts itself. What still grows: each prompt id's position
(~120 bytes a prompt), the cache keys' hashes and latencies (~25 bytes a sample), the keys'
8-byte hashes that refuse a repeated one, and one score shard at a time (1/64 of the run
here). Growth of peak RSS from 10,000 to 1,000,000 samples: 3.5x.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from rewardflow.generation.cache import _slug
from rewardflow.jsonl import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "tests" / "data" / "summary_support.py"
SAMPLES_PER_PROMPT = 4
SHARDS = 64
STEPS = ("aggregate", "report", "viewer")

# Run in a child interpreter, so each step's peak memory is its own.
_CHILD = f"""
import json, resource, sys, time
from pathlib import Path
step, root, resamples, support_path = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
import importlib.util
spec = importlib.util.spec_from_file_location("summary_support", support_path)
support = importlib.util.module_from_spec(spec)
spec.loader.exec_module(support)
responses = sorted((root / "responses").glob("shard-*.jsonl"))
scores = sorted((root / "scores").glob("shard-*.jsonl"))
started = time.perf_counter()
if step == "aggregate":
    from rewardflow.config.summary import SummarySettings
    from rewardflow.summary.aggregate import aggregate_run
    settings = SummarySettings.from_config(support.settings_config({SAMPLES_PER_PROMPT}, resamples))
    aggregate_run(settings, responses, scores, [], root / "summary.json", root / "summary.md")
elif step == "report":
    from rewardflow.reporting.report import build_report
    build_report(root / "summary.json", responses, scores, root / "report", ["level", "subject"])
else:
    from rewardflow.reporting.viewer import build_viewer
    model = support.settings_config(1)["model"]["name"]
    build_viewer(root, root / "viewer.html", ["level", "subject"], root / "cache", model)
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({{"peak_mb": usage.ru_maxrss / 1024, "seconds": seconds, "cpu": cpu}}))
"""


def load_support() -> ModuleType:
    spec = importlib.util.spec_from_file_location("summary_support", SUPPORT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_cache(run: Path, model: str) -> None:
    """A response cache partition holding a latency for each of the run's cache keys, as the
    generation stage leaves it: the workflow's build_viewer reads the latencies from there."""
    partition = run / "cache" / f"{_slug(model)}-0123456789abcdef"
    if partition.is_dir():
        return
    partition.mkdir(parents=True)
    with open(partition / "bench.jsonl", "w", encoding="utf-8") as journal:
        for path in sorted((run / "responses").glob("shard-*.jsonl")):
            for _, response in read_jsonl(path):
                if response.get("cache_key"):
                    fields = ("sample_index", "response", "finish_reason", "usage", "model")
                    entry = {"key": response["cache_key"], **{f: response[f] for f in fields}}
                    entry["latency_s"] = 0.5 + (len(entry["key"]) % 7) / 10
                    journal.write(json.dumps(entry) + "\n")


def run_step(step: str, run: Path, resamples: int) -> dict[str, float]:
    command = [sys.executable, "-c", _CHILD, step, str(run), str(resamples), str(SUPPORT)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--resamples", type=int, default=2000, help="metrics.bootstrap_resamples")
    parser.add_argument("--keep", type=Path, help="write the runs here and keep them")
    args = parser.parse_args()
    support = load_support()
    peaks: dict[str, list[float]] = {step: [] for step in args.steps}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        print(f"{'samples':>9} {'step':<10} {'peak RSS':>10} {'wall':>8} {'CPU':>8}")
        for size in args.sizes:
            run = root / f"run-{size}"
            if not (run / "scores").is_dir():
                support.write_run(run, size // SAMPLES_PER_PROMPT, SAMPLES_PER_PROMPT, SHARDS)
            if "aggregate" not in args.steps and not (run / "summary.json").is_file():
                run_step("aggregate", run, 1)  # the report and the viewer read the summary
            if "viewer" in args.steps:
                write_cache(run, support.settings_config(1)["model"]["name"])
            for step in args.steps:
                result = run_step(step, run, args.resamples)
                peak, wall, cpu = result["peak_mb"], result["seconds"], result["cpu"]
                peaks[step].append(peak)
                line = f"{size:>9,} {step:<10} {peak:>7.0f} MB {wall:>7.1f}s {cpu:>7.1f}s"
                print(line, flush=True)
    if len(args.sizes) > 1:
        growth = f"{min(args.sizes):,} -> {max(args.sizes):,} samples"
        for step, values in peaks.items():
            print(f"peak RSS growth of {step}, {growth}: {values[-1] / values[0]:.2f}x")


if __name__ == "__main__":
    main()
