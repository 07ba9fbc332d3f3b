"""Benchmark: the whole pipeline at 1k / 10k / 100k prompts, as a user runs it (issue 15).

For each size it times the ``snakemake`` command a user types (``python -m snakemake`` against
the built-in simulator at 0 ms, so requests cost only the CPU of both ends and what is left is
the pipeline itself), in one working directory with one cache:

* ``first run``: every prompt requested, ``--shards`` shards;
* ``no-op rerun``: the same command again, nothing to do;
* ``dry run``: ``snakemake -n`` for a new run name (plans every job, runs none);
* ``reuse``: new run names at each of ``--reuse-shards`` (16 and 128 by default), every
  response from the cache.

While a command runs, a sampler walks its process tree every ``--sample-s`` seconds and keeps
each process's peak RSS and last CPU time, grouped by step: the Snakemake process itself, each
rule's script (``.snakemake/scripts/tmpXXXX.<script>.py``, or ``rewardflow.run_script
<script>`` for the per-shard rules), and the simulator servers the generation jobs launch with
their guards (followed by PID once seen, since a shared server outlives the job that started it
and leaves the tree). From that come the peak RSS per step, how many simulators were started,
and the client and server CPU per request (summed over the generation jobs, or the simulators,
/ requests sent).

``--baseline PATH`` runs the same cases against another checkout of rewardflow (e.g. a clone of
an older commit) alternately with this one, in the same session, and prints both and their
ratio: the machine's load then weighs on both alike. Usage::

    .venv/bin/python bench/scale.py [--sizes 1000,10000,100000] [--baseline /tmp/old-clone]
    .venv/bin/python bench/scale.py --sizes 1000 --json results.json

Targets printed beside the numbers are the issue's: reuse at 16 shards ≤ 25 % of the first run,
128 shards ≤ 1.3 × 16 shards, ≥ 1,000 prompts/s end to end at 100,000 prompts, peak RSS of the
aggregate and report steps ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
from cache_reuse import write_config, write_dataset  # same prompts and config as that bench

REPO = Path(__file__).resolve().parents[1]
# A once-per-run rule's script (Snakemake's script:), or a per-shard one (rewardflow.run_script).
SCRIPT_STEP = re.compile(
    r"\.snakemake/scripts/tmp[^/]*?\.([a-z_]+)\.py|rewardflow\.run_script ([a-z_]+) "
)
MB = 1024 * 1024


@dataclass
class Step:
    """One step's processes over one command: how many, peak RSS of any one, summed CPU."""

    processes: int = 0
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0


@dataclass
class Command:
    label: str
    wall_s: float
    exit_code: int
    steps: dict[str, Step] = field(default_factory=dict)
    requested: int = 0


def step_of(process: psutil.Process, root_pid: int) -> str | None:
    """Which step a process belongs to, from its command line."""
    if process.pid == root_pid:
        return "snakemake"
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return None
    if "rewardflow.generation.launch" in command:  # before: its command names the server's
        return "server guard"
    if "rewardflow simulate" in command or "rewardflow.simulator" in command:
        return "simulator"
    match = SCRIPT_STEP.search(command)
    return (match.group(1) or match.group(2)) if match else None


class TreeSampler(threading.Thread):
    """Samples a process tree's RSS and CPU per step until stopped.

    A process's CPU is its last sampled ``cpu_times``: the time after the last sample is lost,
    at most ``interval`` per process, which is small next to what the steps measured here use.
    """

    def __init__(self, root_pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.interval = root_pid, interval
        self.seen: dict[int, tuple[str, float, float]] = {}  # pid -> (step, peak rss, cpu)
        self.servers: dict[int, psutil.Process] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
            processes = {root, *root.children(recursive=True)}
        except psutil.Error:
            return
        # A shared model server outlives the job that started it and leaves the tree (its
        # guard is re-parented): keep sampling every server process once seen.
        # The same Process objects: is_running() tells a recycled PID (busy machines reuse
        # them within seconds) from the server itself.
        processes.update(server for server in self.servers.values() if server.is_running())
        for process in processes:
            try:
                known = self.seen.get(process.pid)
                # A server seen between the guard's fork and exec carries the guard's command
                # line: look again until it shows its own.
                settled = known and known[0] != "server guard"
                step = known[0] if settled else step_of(process, self.root_pid)
                if step is None:
                    continue
                rss = process.memory_info().rss / MB
                times = process.cpu_times()
                # Own CPU only: reaped children (the jobs, for Snakemake; the simulator, for a
                # generation job) are sampled as processes of their own.
                cpu = times.user + times.system
            except psutil.Error:
                continue
            _, peak, _ = self.seen.get(process.pid, (step, 0.0, 0.0))
            self.seen[process.pid] = (step, max(peak, rss), cpu)
            if step in ("simulator", "server guard"):
                self.servers[process.pid] = process

    def steps(self) -> dict[str, Step]:
        steps: dict[str, Step] = {}
        for step_name, peak, cpu in self.seen.values():
            step = steps.setdefault(step_name, Step())
            step.processes += 1
            step.peak_rss_mb = max(step.peak_rss_mb, round(peak, 1))
            step.cpu_s = round(step.cpu_s + cpu, 2)
        return steps


def requests_sent(workdir: Path, run_name: str) -> int:
    """Requests the run sent, from the generation jobs' per-shard reports."""
    total = 0
    for stats in (workdir / "results" / run_name / "responses").glob("*.stats.json"):
        total += int(json.loads(stats.read_text()).get("requested", 0))
    return total


def snakemake(checkout: Path, workdir: Path, config: Path, cores: int, label: str,
              run_name: str, interval: float, extra: tuple[str, ...] = ()) -> Command:  # fmt: skip
    """Runs one ``snakemake`` command against ``checkout``'s workflow and package."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(checkout / "Snakefile"),
               "--directory", str(workdir), "--cores", str(cores), "--configfile", str(config),
               *extra]  # fmt: skip
    log = workdir / f"{label.replace(' ', '-')}.log"
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        sampler = TreeSampler(process.pid, interval)
        sampler.start()
        exit_code = process.wait()
        sampler.done.set()
        sampler.join()
    wall = time.monotonic() - started
    if exit_code != 0:
        sys.stderr.write(f"{label} in {workdir} exited {exit_code}; see {log}\n")
    requested = requests_sent(workdir, run_name)
    return Command(label, round(wall, 2), exit_code, sampler.steps(), requested)


def run_size(checkouts: dict[str, Path], root: Path, dataset: Path, prompts: int,
             args: argparse.Namespace) -> dict[str, list[Command]]:  # fmt: skip
    """Every case at one size, each case run for every checkout in turn (old, new, old, ...).

    Alternating case by case puts a change in the machine's load on both checkouts alike.
    """
    workdirs = {label: root / f"{label}-{prompts}" for label in checkouts}
    results: dict[str, list[Command]] = {label: [] for label in checkouts}
    cases = [("first run", "first", args.shards, ()), ("no-op rerun", "first", args.shards, ()),
             ("dry run", "planned", args.shards, ("-n",))]  # fmt: skip
    cases += [
        (f"reuse {shards} shards", f"reuse{shards}", shards, ()) for shards in args.reuse_shards
    ]
    for name, run_name, shards, extra in cases:
        for label, checkout in checkouts.items():
            workdir = workdirs[label]
            workdir.mkdir(exist_ok=True)
            config = write_config(workdir, run_name, shards, dataset)
            results[label].append(
                snakemake(
                    checkout, workdir, config, args.cores, name, run_name, args.sample_s, extra
                )
            )
    if not args.keep:
        for workdir in workdirs.values():
            shutil.rmtree(workdir)
    return results


def per_request_ms(command: Command, step: str) -> float | None:
    if not command.requested or step not in command.steps:
        return None
    return 1000 * command.steps[step].cpu_s / command.requested


def print_size(prompts: int, results: dict[str, list[Command]]) -> None:
    """One markdown table: a row per measure, a column per checkout (and new / old)."""
    labels = list(results)
    compare = len(labels) == 2

    def command(label: str, name: str) -> Command:
        return next(item for item in results[label] if item.label == name)

    def row(name: str, values: list[float | None], fmt: str = "{:.1f}") -> None:
        cells = [fmt.format(value) if value is not None else "-" for value in values]
        if compare:
            old, new = values
            cells.append(f"{new / old:.2f}" if old and new is not None else "-")
        print(f"| {name:<40} | " + " | ".join(f"{cell:>10}" for cell in cells) + " |")

    print(f"\n## {prompts:,} prompts\n")
    print(f"| {'measure':<40} | " + " | ".join(f"{label:>10}" for label in labels)
          + (f" | {'new / old':>10}" if compare else "") + " |")  # fmt: skip
    print("|---" * (len(labels) + 1 + compare) + "|")
    names = [item.label for item in results[labels[0]]]
    for name in names:
        row(f"{name}: wall s", [command(label, name).wall_s for label in labels])
    first = [command(label, "first run") for label in labels]
    row("first run: prompts/s", [prompts / item.wall_s for item in first], "{:.0f}")
    reuses = [name for name in names if name.startswith("reuse")]

    def ratio(name: str, reference: str) -> list[float | None]:
        return [command(label, name).wall_s / command(label, reference).wall_s for label in labels]

    for reuse in reuses[:1]:
        row(f"{reuse} / first run", ratio(reuse, "first run"), "{:.0%}")
    for reuse in reuses[1:]:
        row(f"{reuse} / {reuses[0]}", ratio(reuse, reuses[0]), "{:.2f}")
    row(
        "first run: simulators started",
        [step_value(item, "simulator", "processes") for item in first],
        "{:.0f}",
    )
    for name, step in (("client", "generate_responses"), ("simulator", "simulator")):
        row(f"{name} CPU per request, ms", [per_request_ms(item, step) for item in first], "{:.2f}")
    steps = sorted({step for item in first for step in item.steps})
    for step in steps:
        row(
            f"first run peak RSS MB: {step}",
            [step_value(item, step, "peak_rss_mb") for item in first],
        )
    for step in steps:
        row(f"first run CPU s: {step}", [step_value(item, step, "cpu_s") for item in first])
    failed = [(label, item.label) for label in labels for item in results[label] if item.exit_code]
    if failed:
        print(f"\nFAILED commands: {failed}")


def step_value(command: Command, step: str, measure: str) -> float | None:
    return getattr(command.steps[step], measure) if step in command.steps else None


def compile_bytecode(checkout: Path) -> None:
    """Write the checkout's ``.pyc`` files, as ``pip install`` or a first import would.

    With ``PYTHONDONTWRITEBYTECODE`` set (as on the project's machines) an editable checkout
    never gets them, and every job compiles rewardflow from source again: about 0.12 s of CPU
    per job, which a user's install does not pay. Reading ``.pyc`` files is not affected by it.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(checkout / "rewardflow")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="prompt counts, comma list")
    parser.add_argument("--shards", type=int, default=64, help="shards of the first run")
    parser.add_argument("--reuse-shards", default="16,128", help="shard counts of the reuse runs")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another rewardflow checkout to compare")
    parser.add_argument("--sample-s", type=float, default=0.1, help="process sampling interval")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--keep", action="store_true", help="keep the working directories")
    args = parser.parse_args()
    args.reuse_shards = [int(value) for value in args.reuse_shards.split(",") if value]
    checkouts = {"new": REPO}
    if args.baseline:
        checkouts = {"old": args.baseline.resolve(), "new": REPO}
    for checkout in checkouts.values():
        compile_bytecode(checkout)
    everything: dict[str, dict[str, list[dict]]] = {}
    root = Path(tempfile.mkdtemp(prefix="rewardflow-scale-"))
    for prompts in [int(value) for value in args.sizes.split(",")]:
        dataset = root / f"prompts-{prompts}.jsonl"
        write_dataset(dataset, prompts)
        results = run_size(checkouts, root, dataset, prompts, args)
        print_size(prompts, results)
        sys.stdout.flush()
        everything[str(prompts)] = {
            label: [asdict(command) for command in commands] for label, commands in results.items()
        }
    if args.keep:
        print(f"\n(working directories kept under {root})")
    else:
        shutil.rmtree(root)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2) + "\n")


if __name__ == "__main__":
    main()
