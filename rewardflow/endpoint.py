"""Which endpoint a run talks to, and how it is identified in the cache.

For ``provider: openai`` the endpoint is the configured base URL. For ``provider: simulator``
each generation job starts the built-in simulated server as a subprocess on a free loopback
port, so the offline demo needs no setup and still goes through real HTTP. The port changes
every time, so the simulator's cache identity is derived from the settings that decide its
answers (rule, responses file content, wrong rate, seed, and the simulator's answer version),
not from its URL.

Each sample's request carries a ``seed`` only when the config sets ``generation.seed``, with
one exception: the built-in simulator at temperature > 0 is always sent one per sample (see
:func:`request_seed`), so that the offline demo's samples differ and reproduce.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rewardflow.cache import GenerationSettings, normalize_endpoint
from rewardflow.errors import ConfigError, MissingApiKeyError
from rewardflow.redaction import register_secret

_STARTUP_TIMEOUT_S = 60.0
#: How the built-in simulator appears as the endpoint in cache keys and settings.json.
SIMULATOR_SCHEME = "simulator://"


def _file_digest(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise ConfigError(f"simulator.responses: file not found: {path}") from None


def endpoint_identity(config: Mapping[str, Any]) -> str:
    """The endpoint part of every cache key for this config."""
    model = config["model"]
    if model["provider"] != "simulator":
        return normalize_endpoint(model["base_url"])
    # Imported here: the simulator pulls in aiohttp's server, which every snakemake start
    # would otherwise pay for through the preflight checks.
    from rewardflow.simulator import ANSWER_VERSION

    simulator = config["simulator"]
    answers = {
        "rule": simulator["rule"],
        "responses_sha256": _file_digest(simulator.get("responses")),
        "wrong_rate": simulator["wrong_rate"],
        "seed": simulator["seed"],
        # A simulator that answers differently must not be served its predecessor's answers.
        "answer_version": ANSWER_VERSION,
    }
    digest = hashlib.sha256(json.dumps(answers, sort_keys=True).encode()).hexdigest()
    return f"{SIMULATOR_SCHEME}{digest[:16]}"


def request_seed(settings: GenerationSettings, sample_index: int) -> int | None:
    """The ``seed`` to send with sample ``sample_index``'s request, or None to send none.

    With ``generation.seed`` set, sample i gets ``seed + i``. Without it, a real provider is
    sent no seed (the user asked for none, and some OpenAI-compatible servers reject the
    field). The built-in simulator at temperature > 0 is sent ``i``, as if the seed were 0: it
    answers a request by (messages, seed, choice), and unseeded requests would get their
    samples in arrival order, which concurrency makes differ from run to run. The seed is not
    in the cache key (``generation.seed`` is), so existing cache entries are unaffected.
    """
    seed = settings.seed_for(sample_index)
    if seed is None and settings.temperature > 0 and settings.endpoint.startswith(SIMULATOR_SCHEME):
        return sample_index
    return seed


def read_api_key(config: Mapping[str, Any]) -> str | None:
    """The key from the environment variable named by ``model.api_key_env``, if any."""
    env_var = config["model"].get("api_key_env")
    if not env_var:
        return None
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise MissingApiKeyError(env_var)
    register_secret(key)  # from here on no log line or error message can show it
    return key


def simulator_command(config: Mapping[str, Any]) -> list[str]:
    simulator = config["simulator"]
    command = [
        sys.executable, "-m", "rewardflow.simulator",
        "--host", "127.0.0.1", "--port", "0",
        "--model-name", config["model"]["name"],
        "--rule", simulator["rule"],
        "--wrong-rate", str(simulator["wrong_rate"]),
        "--latency-ms", str(simulator["latency_ms"]),
        "--latency-jitter-ms", str(simulator["latency_jitter_ms"]),
        "--latency-distribution", simulator["latency_distribution"],
        "--latency-sigma", str(simulator["latency_sigma"]),
        "--seed", str(simulator["seed"]),
        "--exit-on-stdin-eof",
    ]  # fmt: skip
    if simulator.get("responses"):
        command += ["--responses", simulator["responses"]]
    if config["model"].get("api_key_env"):
        command += ["--api-key-env", config["model"]["api_key_env"]]
    return command


@contextmanager
def launched_simulator(config: Mapping[str, Any]) -> Iterator[str]:
    """Start the simulator on a free port, yield its base URL, stop it on exit."""
    # stderr goes to a file, not a pipe: an unread pipe would fill up and stall the server.
    with tempfile.TemporaryFile(mode="w+") as stderr_file:
        process = subprocess.Popen(
            simulator_command(config),
            stdin=subprocess.PIPE,  # closed by the OS when this process dies: the server exits
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        )
        try:
            yield _announced_url(process, stderr_file)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _announced_url(process: subprocess.Popen[str], stderr_file: IO[str]) -> str:
    """The URL from the simulator's first stdout line, waiting at most a minute for it."""
    first_line: list[str] = []
    reader = threading.Thread(
        target=lambda: first_line.append(process.stdout.readline()), daemon=True
    )
    reader.start()
    reader.join(_STARTUP_TIMEOUT_S)
    announced = first_line[0].strip() if first_line else ""
    if "http://" not in announced:
        process.kill()
        process.wait(timeout=10)
        stderr_file.seek(0)
        raise RuntimeError(f"the simulator did not start: {stderr_file.read()[-2000:]}")
    return announced[announced.index("http://") :]


@contextmanager
def model_base_url(config: Mapping[str, Any]) -> Iterator[str]:
    """The base URL to send requests to, starting the simulator when the config asks for it."""
    if config["model"]["provider"] == "simulator":
        with launched_simulator(config) as base_url:
            yield base_url
    else:
        yield config["model"]["base_url"]
