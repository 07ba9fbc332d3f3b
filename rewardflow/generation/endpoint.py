"""Which endpoint a generation job sends its requests to, and the client that sends them.

For ``provider: openai`` the endpoint is the configured base URL, unless ``model.launch`` has
the generation jobs start a model server (:mod:`rewardflow.generation.launch`; jobs on one node
share it, :mod:`rewardflow.generation.shared_server`). For ``provider: simulator`` the jobs
launch the built-in simulated server the same way, so the offline demo needs no setup and still
goes through real HTTP. How the endpoint is identified in the cache keys is
:mod:`rewardflow.generation.identity`. ``provider: module:Class`` plugs in a user's
:class:`~rewardflow.generation.client.ModelClient`.

Each sample's request carries a ``seed`` only when the config sets ``generation.seed``, with
one exception: the built-in simulator at temperature > 0 is always sent one per sample (see
:func:`request_seed`), so that the offline demo's samples differ and reproduce.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rewardflow.config.generation import ModelSettings, ResponseIdentity, SimulatorSettings
from rewardflow.errors import ConfigError, MissingApiKeyError
from rewardflow.generation.client import (
    ChatRequest,
    ChatResponse,
    ModelClient,
    OpenAICompatibleClient,
)
from rewardflow.generation.identity import BUILTIN_PROVIDERS, SIMULATOR_SCHEME, simulator_identity
from rewardflow.generation.launch import LaunchedServer, LaunchSpec, launched_server
from rewardflow.redaction import register_secret
from rewardflow.rewards.loader import load_callable

_STARTUP_TIMEOUT_S = 60.0


def request_seed(settings: ResponseIdentity, sample_index: int) -> int | None:
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


def read_api_key(env_var: str | None) -> str | None:
    """The key from the environment variable ``env_var`` (``model.api_key_env``), if any."""
    if not env_var:
        return None
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise MissingApiKeyError(env_var)
    register_secret(key)  # from here on no log line or error message can show it
    return key


def simulator_command(model: ModelSettings, port: int | str = 0) -> list[str]:
    """The command that serves the built-in simulator as ``model.simulator`` describes it."""
    simulator = _simulator_of(model)
    command = [
        sys.executable, "-m", "rewardflow", "simulate",
        "--host", "127.0.0.1", "--port", str(port),
        "--model", model.name,
        "--rule", simulator.rule,
        "--wrong-rate", str(simulator.wrong_rate),
        "--latency-ms", str(simulator.latency_ms),
        "--latency-jitter-ms", str(simulator.latency_jitter_ms),
        "--latency-distribution", simulator.latency_distribution,
        "--latency-sigma", str(simulator.latency_sigma),
        "--seed", str(simulator.seed),
    ]  # fmt: skip
    if simulator.responses:
        command += ["--responses", simulator.responses]
    if model.api_key_env:
        command += ["--api-key-env", model.api_key_env]
    return command


def _simulator_of(model: ModelSettings) -> SimulatorSettings:
    if model.simulator is None:
        raise ConfigError(f"model.provider is {model.provider!r}, not the simulator")
    return model.simulator


def simulator_launch(model: ModelSettings) -> LaunchSpec:
    """``provider: simulator`` as a launched server, started like any ``model.launch``."""
    marker = "\0port\0"
    # Braces in a path or model name are literal: only the port is a placeholder here.
    template = tuple(
        "{port}" if token == marker else token.replace("{", "{{").replace("}", "}}")
        for token in simulator_command(model, marker)
    )
    return LaunchSpec(
        template=template,
        model=model.name,
        name=model.name,
        gpus=0,
        ready_path="/health",
        startup_timeout_s=_STARTUP_TIMEOUT_S,
        env_keys=_key_variables(model),
        # What decides its answers, as the cache keys say it: the canned responses file (read
        # once, at start), the rule, the wrong rate and the simulator's answer version.
        answers=simulator_identity(_simulator_of(model)),
    )


def _key_variables(model: ModelSettings) -> tuple[str, ...]:
    # A server checking the key from this variable must not be shared with a job holding
    # another key: the value (by digest) is part of the sharing identity.
    return (model.api_key_env,) if model.api_key_env else ()


def launch_spec(model: ModelSettings) -> LaunchSpec | None:
    """The server this model's generation jobs start, or None when they start none."""
    if model.simulator is not None:
        return simulator_launch(model)
    if model.launch is not None:
        spec = LaunchSpec.from_settings(model.launch, model.name)
        return dataclasses.replace(spec, env_keys=_key_variables(model))
    return None


@contextmanager
def launched_simulator(model: ModelSettings) -> Iterator[str]:
    """Start the simulator on a free port, yield its base URL, stop it on exit."""
    with launched_server(simulator_launch(model)) as server:
        yield server.base_url


@dataclass(frozen=True)
class Endpoint:
    """Where a job sends its requests: the base URL, and the server it launched, if any.

    ``base_url`` is None for a custom client configured without one (it knows its endpoint).
    """

    base_url: str | None
    server: LaunchedServer | None = None


@contextmanager
def model_endpoint(
    model: ModelSettings,
    server_log: str | Path | None = None,
    lease_root: str | Path | None = None,
) -> Iterator[Endpoint]:
    """The endpoint to send requests to, starting the model server when the config asks.

    With ``lease_root`` (the cache's ``.servers``) and a shareable server, the node's running
    server is reused (:mod:`rewardflow.generation.shared_server`); ``server_log`` receives the
    output of a server this job starts.
    """
    spec = launch_spec(model)
    if spec is None:
        yield Endpoint(model.base_url)
        return
    if spec.share and lease_root is not None:
        from rewardflow.generation.shared_server import shared_server

        with shared_server(spec, lease_root, server_log) as server:
            yield Endpoint(server.base_url, server)
        return
    with launched_server(spec, server_log) as server:
        yield Endpoint(server.base_url, server)


#: How long a failed request waits for the guard to report a dead server (it polls at 4 Hz).
_SERVER_EXIT_GRACE_S = 2.0


class WatchedServerClient(ModelClient):
    """Any client talking to a launched server: a failure while that server is dead stops the
    job (:class:`ModelServerError`, with the server log's tail) rather than failing, and
    retrying, every remaining sample against a port nobody listens on."""

    def __init__(self, inner: ModelClient, server: LaunchedServer) -> None:
        self.inner = inner  # first: the base class sets rate_observer, forwarded to it
        super().__init__(inner.settings)
        self.server = server

    @property  # type: ignore[override]
    def rate_observer(self) -> Callable[[int, Mapping[str, str]], None] | None:
        return self.inner.rate_observer

    @rate_observer.setter
    def rate_observer(self, observer: Callable[[int, Mapping[str, str]], None] | None) -> None:
        self.inner.rate_observer = observer

    async def complete(self, request: ChatRequest) -> ChatResponse:
        # Not at the top: a job whose samples are all cached imports this module, never aiohttp.
        import aiohttp

        try:
            return await self.inner.complete(request)
        except (aiohttp.ClientConnectionError, ConnectionError):
            # Refused or cut: the server may be dying right now; give the guard time to see it.
            await asyncio.to_thread(self.server.exit_status, _SERVER_EXIT_GRACE_S)
            self.server.check_alive()
            raise
        except Exception:
            self.server.check_alive()
            raise

    async def aclose(self) -> None:
        await self.inner.aclose()


def client_class(provider: str) -> type[ModelClient]:
    """The :class:`ModelClient` subclass ``model.provider`` names (built-in or ``module:Class``)."""
    if provider in BUILTIN_PROVIDERS:
        return OpenAICompatibleClient
    loaded = load_callable(provider, "model.provider", ConfigError)
    if not (isinstance(loaded, type) and issubclass(loaded, ModelClient)):
        raise ConfigError(
            f"model.provider {provider!r}: not a subclass of "
            "rewardflow.generation.client.ModelClient "
            "(see docs/clients.md)"
        )
    return loaded
