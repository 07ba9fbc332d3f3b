"""Benchmark: CPU seconds the built-in simulator spends per chat-completion request (issue 15).

The simulator runs on the same machine as the pipeline, so every millisecond of CPU it spends
per request is taken from the generation client and the scoring workers. This starts
``rewardflow simulate`` at 0 ms latency as its own process (as a generation job does), sends
it ``--requests`` chat completions shaped like the pipeline's (an arithmetic question as the
one user message, ``temperature`` 1 and a ``seed`` per request, as the generation job sends
them) at ``--concurrency`` from an aiohttp client in this process, and reads the server's
CPU time (user + system, ``/proc/PID/stat``) before and after, so start-up is not counted;
a short warm-up comes first. The server's CPU per request also depends on how many requests
each turn of its event loop handles (more when the machine is busy), so the bench also times
the part that is the simulator's own -- building the answer bodies of the same requests
(``parse_chat_request``, ``generate_choices``, ``completion_body``) -- in a fresh process of
each checkout (``answer ms``, CPU time).

With ``--baseline PATH`` the simulator of another checkout (its ``rewardflow`` package, e.g.
``git clone -q . /tmp/old-sim && git -C /tmp/old-sim checkout -q c11cf76``) runs too; the
variants alternate ``--repeat`` times so that the load of the shared machine weighs on both
alike, and the load average is printed before and after. Every run must answer the same
(choices and usage of every request; ids and timestamps differ by design), else it exits 1.
Usage::

    .venv/bin/python bench/simulator_cpu.py [--requests 20000] [--concurrency 64] [--repeat 2]
    .venv/bin/python bench/simulator_cpu.py --baseline /tmp/old-sim
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
WARM_UP = 500


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (fields 14 and 15 of ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def start_simulator(checkout: Path) -> tuple[subprocess.Popen[str], str]:
    """``rewardflow simulate`` of ``checkout`` on a free port; the process and its base URL."""
    command = [sys.executable, "-m", "rewardflow", "simulate", "--port", "0"]
    command += ["--latency-ms", "0", "--latency-jitter-ms", "0", "--model", "bench-model"]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    # In ``checkout``: ``-m`` and ``-c`` put the working directory first on sys.path.
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=checkout)
    assert server.stdout is not None
    line = server.stdout.readline()
    if "listening on" not in line:
        server.kill()
        raise SystemExit(f"simulator of {checkout} did not start: {line!r}")
    return server, line.rsplit(" ", 1)[1].strip()


def request_body(index: int) -> dict[str, object]:
    question = f"What is {index} * 3 + 7?"  # as bench/cache_reuse.py's dataset
    messages = [{"role": "user", "content": question}]
    return {"model": "bench-model", "messages": messages, "temperature": 1.0, "seed": index}


async def send_all(url: str, indices: range, concurrency: int) -> list[object]:
    """POST every request, ``concurrency`` at a time; the (choices, usage) of each, in order."""
    answers: list[object] = [None] * len(indices)
    queue = iter(enumerate(indices))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for position, index in queue:
                async with session.post(f"{url}/chat/completions", json=request_body(index)) as r:
                    body = await r.json()
                    if r.status != 200:
                        raise SystemExit(f"request {index}: HTTP {r.status}: {body}")
                    answers[position] = [body["choices"], body["usage"]]

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


# Runs in a fresh interpreter whose PYTHONPATH picks the checkout; prints CPU s per request.
ANSWERS_ONLY = """
import sys, time
from rewardflow.simulator.config import SimulatorConfig
from rewardflow.simulator.wire import completion_body, generate_choices, parse_chat_request
sys.path.insert(0, sys.argv[2])
from simulator_cpu import request_body
config, requests = SimulatorConfig(), int(sys.argv[1])
bodies = [request_body(index) for index in range(requests)]
started = time.process_time()
for body in bodies:
    chat = parse_chat_request(body)
    completion_body(chat, generate_choices(chat, config), completion_id="x", created=0)
print((time.process_time() - started) / requests)
"""


def answer_ms(checkout: Path, requests: int) -> float:
    """CPU ms per request of building the answers alone, by ``checkout``'s package."""
    command = [sys.executable, "-c", ANSWERS_ONLY, str(requests), str(Path(__file__).parent)]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(command, env=env, cwd=checkout, capture_output=True, text=True)
    done.check_returncode()
    return float(done.stdout) * 1000


def run_one(checkout: Path, requests: int, concurrency: int) -> dict[str, float | str]:
    server, url = start_simulator(checkout)
    try:
        asyncio.run(send_all(url, range(-WARM_UP, 0), concurrency))
        cpu_before, started = cpu_seconds(server.pid), time.perf_counter()
        answers = asyncio.run(send_all(url, range(requests), concurrency))
        wall_s = time.perf_counter() - started
        cpu_s = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=10)
    digest = hashlib.sha256(json.dumps(answers).encode()).hexdigest()[:16]
    return {
        "cpu_ms": cpu_s * 1000 / requests,
        "answer_ms": answer_ms(checkout, requests),
        "rps": requests / wall_s,
        "answers": digest,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each variant, alternating")
    parser.add_argument("--baseline", type=Path, help="another checkout's root, measured too")
    args = parser.parse_args()
    variants = [("this checkout", REPO)]
    if args.baseline:
        variants.append((f"baseline {args.baseline}", args.baseline.resolve()))
    print(f"load average before: {os.getloadavg()}")
    results: dict[str, list[dict[str, float | str]]] = {label: [] for label, _ in variants}
    for _ in range(args.repeat):
        for label, checkout in variants:
            result = run_one(checkout, args.requests, args.concurrency)
            results[label].append(result)
            print(f"{label}: {json.dumps(result)}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print("\n| simulator | server CPU ms / request | answer ms / request | requests/s | answers |")
    print("|---|---|---|---|---|")
    for label, runs in results.items():
        cells = [
            ", ".join(f"{run[name]:{spec}}" for run in runs)
            for name, spec in (("cpu_ms", ".3f"), ("answer_ms", ".3f"), ("rps", ".0f"))
        ]
        print(f"| {label} | {' | '.join(cells)} | {runs[0]['answers']} |")
    digests = {run["answers"] for runs in results.values() for run in runs}
    if len(digests) != 1:
        print(f"answers differ between runs: {sorted(digests)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
