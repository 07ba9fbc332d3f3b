"""Fixtures shared by the test suite: paths, a real simulator process, and a snakemake runner.

Integration tests run the workflow exactly as a user would (``python -m snakemake`` in a
subprocess) against the simulated model server over real HTTP on 127.0.0.1, and count the
requests it received through its ``/_simulator/stats`` endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
#: model.launch.command serving the built-in simulator, as a user's own server command would.
LAUNCHED_SIMULATOR = (
    "{python} -m rewardflow simulate --port {port} --model-name {name} --wrong-rate 0"
)
# 50 GSM8K test problems shipped with the repository (examples/data/gsm8k/README.md).
GSM8K_TEST = REPO / "examples" / "data" / "gsm8k" / "test.jsonl"


@dataclass
class Simulator:
    """A running simulator subprocess."""

    base_url: str
    process: subprocess.Popen[str]

    def _call(self, method: str, path: str) -> dict[str, Any]:
        root = self.base_url.removesuffix("/v1")
        request = urllib.request.Request(root + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_simulator/stats")

    def requests(self) -> int:
        return int(self.stats()["requests"])

    def reset(self) -> None:
        self._call("POST", "/_simulator/reset")


def start_simulator(*args: str, env: dict[str, str] | None = None) -> Simulator:
    process = subprocess.Popen(
        [sys.executable, "-m", "rewardflow", "simulate", "--host", "127.0.0.1", "--port", "0"]
        + list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    line = process.stdout.readline().strip()
    assert "http://" in line, f"simulator did not announce its URL: {line!r}"
    return Simulator(line[line.index("http://") :], process)


def stop_simulator(simulator: Simulator) -> None:
    simulator.process.terminate()
    try:
        simulator.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        simulator.process.kill()


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    """One fast simulator for the whole session; tests reset its counters."""
    server = start_simulator("--latency-ms", "5", "--wrong-rate", "0.2")
    yield server
    stop_simulator(server)


@pytest.fixture
def fresh_simulator(simulator: Simulator) -> Simulator:
    simulator.reset()
    return simulator


@dataclass
class SnakemakeResult:
    returncode: int
    output: str

    @property
    def ran_rules(self) -> list[str]:
        """Names of rules that executed, from Snakemake's 'rule NAME:' job headers."""
        names = []
        for line in self.output.splitlines():
            stripped = line.strip()
            for prefix in ("localrule ", "rule "):
                if stripped.startswith(prefix) and stripped.endswith(":"):
                    names.append(stripped[len(prefix) : -1])
        return names


def write_config(workdir: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    path = workdir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    cores: str | None = "2",
) -> SnakemakeResult:
    """Run the repository's workflow in ``workdir`` and capture everything it printed.

    ``cores=None`` leaves ``--cores`` out, as the README's ``--unlock`` and ``--report`` do.
    """
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        *(["--cores", cores] if cores is not None else []),
        *args,
    ]  # fmt: skip
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return SnakemakeResult(completed.returncode, completed.stdout + completed.stderr)


def arithmetic_rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Small problems the simulator's arithmetic rule can answer."""
    return [
        {"id": f"q{i:04d}", "question": f"What is {i} + {2 * i + 1}?", "answer": str(3 * i + 1)}
        for i in range(start, start + count)
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def base_config(dataset_path: Path, base_url: str, **overrides: Any) -> dict[str, Any]:
    """A minimal config against a running simulator, as a user would write it."""
    config: dict[str, Any] = {
        "run_name": "test",
        "shards": 2,
        "dataset": {"path": str(dataset_path), "id_field": "id", "ground_truth_field": "answer"},
        "model": {"provider": "openai", "name": "sim-model", "base_url": base_url},
        "generation": {"concurrency": 4, "max_attempts": 2},
        "rewards": [{"name": "accuracy", "function": "rewardflow.rewards.math:math_reward"}],
    }
    config.update(overrides)
    return config


def run_against_simulator(
    tmp_path: Path,
    server_args: list[str],
    prompts: int = 16,
    env: dict[str, str] | None = None,
    latency_ms: int = 5,
    max_attempts: int = 8,
    **generation: Any,
) -> tuple[SnakemakeResult, dict[str, Any], dict[str, Any] | None]:
    """Run the workflow against a fresh simulator; return (result, server stats, summary).

    ``generation`` overrides generation keys; ``api_key_env`` among them goes to ``model``.
    """
    server = start_simulator("--latency-ms", str(latency_ms), *server_args, env=env)
    try:
        dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(prompts))
        config = base_config(dataset, server.base_url)
        config["generation"].update({"max_attempts": max_attempts, "timeout_s": 5, **generation})
        if "api_key_env" in generation:
            config["model"]["api_key_env"] = config["generation"].pop("api_key_env")
        result = run_snakemake(
            tmp_path, "--configfile", str(write_config(tmp_path, config)), env=env
        )
        stats = server.stats()
    finally:
        stop_simulator(server)
    summary_path = tmp_path / "results" / "test" / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return result, stats, summary


def read_jsonl_file(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def bubblewrap_or_skip() -> None:
    """Skip a test that needs the code reward's OS-level sandbox where it cannot run.

    Under CI (``CI=true``) it fails instead: a CI without bubblewrap must not go green by
    skipping every sandbox test.
    """
    from rewardflow.rewards.code_isolation import INSTALL_HINT, bubblewrap

    found, why = bubblewrap()
    if found is None:
        message = f"the code sandbox cannot run here: {why}; {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` (a launched server's) is still there."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
