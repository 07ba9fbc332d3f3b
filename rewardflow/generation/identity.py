"""How a run's endpoint is identified in the cache keys (see :mod:`rewardflow.generation.endpoint`).

The identity is computed by every generation job before it looks anything up, so this module
imports nothing of the request phase: a job whose samples are all cached never loads the HTTP
client, the launcher or asyncio (``tests/unit/test_import_costs.py``). A launched server's port
changes every time, so its identity is derived from the command that decides its answers; the
simulator's from the settings that decide them (rule, responses file content, wrong rate and
the simulator's answer version; not its ``seed``, which only seeds latency), not from its URL.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rewardflow.config.generation import ModelSettings, SimulatorSettings
from rewardflow.errors import ConfigError
from rewardflow.generation.cache import normalize_endpoint

#: How the built-in simulator appears as the endpoint in cache keys and settings.json.
SIMULATOR_SCHEME = "simulator://"
#: How a server started from ``model.launch`` appears there (its port changes every job).
LAUNCHED_SCHEME = "launched://"
#: Providers served by the built-in OpenAI-compatible client; anything else is ``module:Class``.
BUILTIN_PROVIDERS = frozenset({"openai", "simulator"})


def _file_digest(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise ConfigError(f"simulator.responses: file not found: {path}") from None


def endpoint_identity(model: ModelSettings) -> str:
    """The endpoint part of every cache key for this config.

    ``openai`` with a base URL: the normalized URL (as it always was, so existing caches keep
    answering). A launched server: ``launched://`` + a digest of its command as it decides
    answers (model path, served name, preset or command and extra args; not the port, GPU count
    or timeouts). A custom client adds ``#client=module:Class`` (and its options' digest), since
    another client at the same URL (a completions API, another prompt template) answers
    differently.
    """
    if model.simulator is not None:
        return simulator_identity(model.simulator)
    if model.launch is not None:
        # Imported here: the launcher (subprocess, urllib, sockets) is for a job that sends.
        from rewardflow.generation.launch import LaunchSpec

        command = LaunchSpec.from_settings(model.launch, model.name).identity()
        endpoint = f"{LAUNCHED_SCHEME}{_digest({'command': command})}"
    else:
        endpoint = normalize_endpoint(model.base_url or "")
    if model.provider in BUILTIN_PROVIDERS:
        return endpoint
    options = f";options={_digest(dict(model.options))}" if model.options else ""
    return f"{endpoint}#client={model.provider}{options}"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def simulator_identity(simulator: SimulatorSettings) -> str:
    """The built-in simulator's endpoint identity: a digest of what decides its answers."""
    # Imported here: the simulator pulls in aiohttp's server, which every snakemake start
    # would otherwise pay for through the preflight checks.
    from rewardflow.simulator import ANSWER_VERSION

    # The answer-deciding keys (SIMULATOR_ANSWER_KEYS), the responses file by its content.
    answers = {
        "rule": simulator.rule,
        "responses_sha256": _file_digest(simulator.responses),
        "wrong_rate": simulator.wrong_rate,
        # Not ``seed``: it seeds the latency draws only, and answers come from the request's.
        # A simulator that answers differently must not be served its predecessor's answers.
        "answer_version": ANSWER_VERSION,
    }
    return f"{SIMULATOR_SCHEME}{_digest(answers)}"
