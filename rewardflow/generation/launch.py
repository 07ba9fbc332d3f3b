"""Model servers a generation job starts for itself, on the node it runs on.

``model.launch`` names a command that starts an OpenAI-compatible server (vLLM, SGLang,
llama.cpp, or the built-in simulator). Each generation job then:

1. picks a free loopback port and renders the command template (``{model}``, ``{name}``,
   ``{port}``, ``{gpus}``, and ``{python}``, the interpreter running the job; each token of the
   template is filled separately, so a path with spaces stays one argument);
2. starts it under a *guard*: ``python -m rewardflow.generation.launch -- <command>``, in a new
   process
   group whose leader is the guard. The guard holds the read end of a pipe from the job; when
   the job ends in any way (even ``kill -9``, which runs no cleanup) the pipe closes and the
   guard terminates the whole group, i.e. the server and every worker it forked (vLLM starts
   several). SIGTERM to the guard does the same;
3. polls the readiness path (``/health`` or ``/v1/models``) until it answers 200, failing the
   job with the server log's tail when the server exits first or ``startup_timeout_s`` passes;
4. generates, then closes the pipe and waits for the group to go (SIGKILL after a grace period).

The server's output goes to a log file beside the job's log. Why a guard process rather than
``PR_SET_PDEATHSIG`` or ``atexit``: a death signal reaches only the direct child, not the
server's own workers, and ``atexit`` does not run when the job is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rewardflow.errors import ModelServerError

if TYPE_CHECKING:
    from rewardflow.config.generation import LaunchSettings

logger = logging.getLogger(__name__)

#: Seconds the server group gets to exit after SIGTERM before it is killed.
STOP_GRACE_S = 10.0
_POLL_S = 0.25
_LOG_TAIL_CHARS = 3000
_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Preset:
    """A server's start command and readiness path; ``model.launch.args`` are appended."""

    command: str
    ready_path: str


#: Each preset binds to loopback only (the job is the one client) and serves the model
#: under ``model.name``, the name requests carry.
PRESETS: dict[str, Preset] = {
    "vllm": Preset(
        "vllm serve {model} --host 127.0.0.1 --port {port} --served-model-name {name} "
        "--tensor-parallel-size {gpus}",
        "/health",
    ),
    "sglang": Preset(
        "{python} -m sglang.launch_server --model-path {model} --host 127.0.0.1 --port {port} "
        "--served-model-name {name} --tp-size {gpus}",
        "/health",
    ),
    "llama.cpp": Preset(
        "llama-server -m {model} --host 127.0.0.1 --port {port} --alias {name} --n-gpu-layers 999",
        "/health",
    ),
}
_DEFAULT_READY_PATH = "/v1/models"
_PLACEHOLDERS = ("model", "name", "port", "gpus", "python")


@dataclass(frozen=True)
class LaunchSpec:
    """``model.launch`` resolved: the command template and how to wait for it."""

    template: tuple[str, ...]
    model: str
    name: str
    gpus: int
    ready_path: str
    startup_timeout_s: float

    @classmethod
    def from_settings(cls, launch: LaunchSettings, model_name: str) -> LaunchSpec:
        """``model.launch`` of a model served under ``model_name``."""
        preset = PRESETS.get(launch.preset or "")
        command = launch.command or (preset.command if preset else "")
        template = (*shlex.split(command), *shlex.split(launch.args))
        ready_path = launch.ready_path or (preset.ready_path if preset else _DEFAULT_READY_PATH)
        return cls(
            template=template,
            model=launch.model_path or model_name,
            name=model_name,
            gpus=launch.gpus,
            ready_path=ready_path,
            startup_timeout_s=launch.startup_timeout_s,
        )

    def render(
        self, port: int | str, gpus: int | str | None = None, python: str = sys.executable
    ) -> list[str]:
        values = {
            "model": self.model,
            "name": self.name,
            "port": port,
            "gpus": self.gpus if gpus is None else gpus,
            "python": python,
        }
        return [token.format(**values) for token in self.template]

    def identity(self) -> str:
        """The command as it decides answers: port, GPU count and interpreter left as
        placeholders, so neither another node nor another virtualenv changes a cache key."""
        return shlex.join(self.render("{port}", "{gpus}", "{python}"))


def template_problems(command: str, key: str = "model.launch.command") -> list[str]:
    """What is wrong with a command template, for config validation."""
    try:
        tokens = shlex.split(command)
    except ValueError as error:
        return [f"{key}: cannot split into arguments ({error})"]
    problems = []
    for token in tokens:
        try:
            token.format(**dict.fromkeys(_PLACEHOLDERS, "x"))
        except (KeyError, IndexError, ValueError) as error:
            allowed = ", ".join("{" + name + "}" for name in _PLACEHOLDERS)
            problems.append(f"{key}: bad placeholder in {token!r} ({error}); allowed: {allowed}")
    if not any("{port}" in token for token in tokens):
        problems.append(f"{key}: must contain {{port}} (the job picks a free port)")
    return problems


def free_port() -> int:
    """A port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class LaunchedServer:
    """A running server: where to send requests, and the process group to account for."""

    base_url: str
    port: int
    #: The guard's PID, which is also the process group of the server and its workers.
    pgid: int
    log_path: Path
    guard: subprocess.Popen[bytes]

    def check_alive(self) -> None:
        """Raise :class:`ModelServerError` with the log's tail if the server has exited."""
        if self.guard.poll() is not None:
            raise ModelServerError(
                f"the model server exited (status {self.guard.returncode}) while the job was "
                f"using it; finished responses are cached, a rerun requests only the rest. "
                f"Last lines of {self.log_path}:\n{_log_tail(self.log_path)}"
            )


def _log_tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(encoding="utf-8", errors="replace")[-_LOG_TAIL_CHARS:].strip()
    return ""


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 -- our own loopback URL
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait_until_ready(
    guard: subprocess.Popen[bytes], url: str, timeout_s: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if guard.poll() is not None:
            raise ModelServerError(
                f"the model server exited with status {guard.returncode} before it was ready "
                f"({url}); last lines of {log_path}:\n{_log_tail(log_path)}"
            )
        if _is_ready(url):
            return
        if time.monotonic() >= deadline:
            raise ModelServerError(
                f"the model server was not ready at {url} after {timeout_s:g}s "
                f"(model.launch.startup_timeout_s); last lines of {log_path}:\n"
                f"{_log_tail(log_path)}"
            )
        time.sleep(_POLL_S)


def stop_group(guard: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """End the guard's process group: the pipe closes, then SIGTERM, then SIGKILL."""
    if guard.stdin is not None:
        with contextlib.suppress(OSError):
            guard.stdin.close()  # the guard's cue to terminate the group itself
    try:
        guard.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(guard.pid, signal.SIGKILL)
        guard.wait()
    # The guard waits for the server, but a worker that ignored SIGTERM may linger.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(guard.pid, signal.SIGKILL)


@contextmanager
def launched_server(
    spec: LaunchSpec,
    log_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[LaunchedServer]:
    """Start ``spec``'s server under a guard, yield it once ready, and stop its group on exit."""
    with contextlib.ExitStack() as stack:
        if log_path is None:
            log_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rewardflow-"))
            log_path = Path(log_dir) / "server.log"
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        port = free_port()
        command = spec.render(port)
        with open(log_path, "wb") as log:
            guard = subprocess.Popen(
                [sys.executable, "-m", "rewardflow.generation.launch", "--", *command],
                stdin=subprocess.PIPE,  # closed by the OS when this process dies: see module doc
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if env is None else dict(env),
            )
        try:
            logger.info(
                "model server: process group %d, port %d, job pid %d, log %s: %s",
                guard.pid, port, os.getpid(), log_path, shlex.join(command),
            )  # fmt: skip
            ready_url = f"http://{_HOST}:{port}{spec.ready_path}"
            started = time.monotonic()
            _wait_until_ready(guard, ready_url, spec.startup_timeout_s, log_path)
            logger.info("model server ready after %.1fs", time.monotonic() - started)
            yield LaunchedServer(f"http://{_HOST}:{port}/v1", port, guard.pid, log_path, guard)
        finally:
            stop_group(guard)
            logger.info("model server stopped (process group %d)", guard.pid)


# --------------------------------------------------------------------------------------------
# The guard: ``python -m rewardflow.generation.launch -- <command...>``
# --------------------------------------------------------------------------------------------


def _end_own_group(server: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the guard's group (the server and its workers), SIGKILL what is left after
    ``grace_s``; the guard itself ignores the SIGTERM and dies with the SIGKILL, if sent."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=grace_s)
    if server.poll() is None:
        os.killpg(0, signal.SIGKILL)


def _watch_stdin(stop: threading.Event, stdin: IO[bytes]) -> None:
    while stdin.read(4096):
        pass
    stop.set()


def guard_main(command: Sequence[str], grace_s: float = STOP_GRACE_S) -> int:
    """Run ``command`` in this process group until it exits or the job goes away."""
    print(f"rewardflow-launch: guard pid {os.getpid()}: {shlex.join(command)}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server = subprocess.Popen(list(command), stdin=subprocess.DEVNULL)
    except OSError as error:
        print(f"rewardflow-launch: cannot start {command[0]!r}: {error}", flush=True)
        return 127
    print(f"rewardflow-launch: server pid {server.pid}", flush=True)
    threading.Thread(target=_watch_stdin, args=(stop, sys.stdin.buffer), daemon=True).start()
    while server.poll() is None and not stop.wait(_POLL_S):
        pass
    # Also when the server exited by itself: workers it forked must not outlive it.
    _end_own_group(server, grace_s)
    print(f"rewardflow-launch: server exited with status {server.returncode}", flush=True)
    return int(server.returncode or 0)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    if not arguments:
        sys.exit("usage: python -m rewardflow.generation.launch -- COMMAND [ARG...]")
    sys.exit(guard_main(arguments))
