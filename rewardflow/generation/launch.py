"""Model servers generation jobs start for themselves, on the node they run on.

``model.launch`` names a command that starts an OpenAI-compatible server (vLLM, SGLang,
llama.cpp, or the built-in simulator). A generation job with requests to send then:

1. picks a free loopback port and renders the command template (``{model}``, ``{name}``,
   ``{port}``, ``{gpus}``, and ``{python}``, the interpreter running the job; each token of the
   template is filled separately, so a path with spaces stays one argument);
2. starts it under a *guard*: ``python -m rewardflow.generation.launch [--lease ...] --
   <command>``, in a new process group whose leader is the guard, which terminates the whole
   group (the server and every worker it forked; vLLM starts several) when its server is no
   longer wanted, or exits by itself. SIGTERM to the guard does the same;
3. polls the readiness path (``/health`` or ``/v1/models``) until it answers 200, failing the
   job with the server log's tail when the server exits first or ``startup_timeout_s`` passes;
4. generates, then lets the server go.

*Shared* servers (the default, ``model.launch.share``; always for ``provider: simulator``): jobs
on one node that would start the identical server use one, so a 64-shard run loads the model
once instead of 64 times. :mod:`rewardflow.generation.shared_server` finds or starts it under a
lease that every user holds as a shared ``flock``; the guard stops the group once nobody has
held the lease for :data:`SHARE_LINGER_S` (the kernel drops a killed job's lock, so even
``kill -9`` cannot leave the server running). *Own* servers (``share: false``, or a filesystem
without ``flock``): the guard holds the read end of a pipe from the job; when the job ends in
any way (even ``kill -9``, which runs no cleanup) the pipe closes and the guard ends the group.

Why a guard process rather than ``PR_SET_PDEATHSIG`` or ``atexit``: a death signal reaches only
the direct child, not the server's own workers, and ``atexit`` does not run when the job is
killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
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
#: Seconds a shared server stays up with no job holding its lease: long enough for the next
#: job of the same run to pick it up. Between one generation job releasing the server and the
#: next one (scheduled by Snakemake, then starting its interpreter and reading the cache)
#: asking for it, 2-4 s passed on a 2-core machine at load average 11; a 2 s linger restarted
#: the simulator 3 times in 8 shards there. An idle server costs nothing but its memory.
SHARE_LINGER_S = 5.0
_POLL_S = 0.25
_LOG_TAIL_CHARS = 3000
_HOST = "127.0.0.1"
#: A shared server's port and guard, beside its lease (see shared_server).
STATE_FILE = "server.json"


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
    #: Jobs on one node that would start the same server use one (``model.launch.share``).
    share: bool = True
    #: Environment variables the server reads that decide whether another job may use it
    #: (the API key it checks): their values' digest is part of the sharing identity.
    env_keys: tuple[str, ...] = ()
    #: What decides the server's answers besides its command, such as the simulator's cache
    #: identity (the digest of its canned responses, its answer version): a server started
    #: before that file was edited, or by an older rewardflow, must not answer the next run's
    #: requests (part of the sharing identity, not of ``identity()``).
    answers: str = ""

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
            share=launch.share,
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
    #: The guard, when this job started it; None for a shared server another job started.
    guard: subprocess.Popen[bytes] | None = None

    def exit_status(self, wait_s: float = 0.0) -> str | None:
        """None while the guard runs (waiting up to ``wait_s`` for it to end), else how the
        server ended: ``status N`` when this job started it, ``gone`` otherwise."""
        deadline = time.monotonic() + wait_s
        while True:
            if self.guard is not None:
                if self.guard.poll() is not None:
                    return f"status {self.guard.returncode}"
            elif not guard_running(self.pgid):
                return "gone"
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(_POLL_S, max(deadline - time.monotonic(), 0.0)))

    def check_alive(self) -> None:
        """Raise :class:`ModelServerError` with the log's tail if the server has exited."""
        status = self.exit_status()
        if status is not None:
            raise ModelServerError(
                f"the model server exited ({status}) while the job was "
                f"using it; finished responses are cached, a rerun requests only the rest. "
                f"Last lines of {self.log_path}:\n{_log_tail(self.log_path)}"
            )


def guard_running(pid: int) -> bool:
    """Whether ``pid`` is a live guard (not a zombie, not a recycled PID), from any process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge, say alive
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs (macOS): the signal test is all there is
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False  # exited between the two looks
    return state != "Z" and b"rewardflow.generation.launch" in command


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


def wait_until_ready(server: LaunchedServer, ready_path: str, timeout_s: float) -> None:
    """Return once ``server`` answers its readiness probe; raise :class:`ModelServerError` with
    the log's tail if it exits first or ``timeout_s`` passes."""
    url = f"http://{_HOST}:{server.port}{ready_path}"
    log_path = server.log_path
    deadline = time.monotonic() + timeout_s
    while True:
        status = server.exit_status()
        if status is not None:
            raise ModelServerError(
                f"the model server exited ({status}) before it was ready "
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
    """End the guard's process group: the pipe closes (or SIGTERM to the guard of a shared
    server, which has no pipe), then SIGKILL to the group after ``grace_s``."""
    if guard.stdin is not None:
        with contextlib.suppress(OSError):
            guard.stdin.close()  # the guard's cue to terminate the group itself
    else:
        with contextlib.suppress(ProcessLookupError):
            guard.send_signal(signal.SIGTERM)
    try:
        guard.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(guard.pid, signal.SIGKILL)
        guard.wait()
    # The guard waits for the server, but a worker that ignored SIGTERM may linger.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(guard.pid, signal.SIGKILL)


def start_guarded(
    spec: LaunchSpec,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    lease: Path | None = None,
) -> tuple[subprocess.Popen[bytes], int, list[str]]:
    """Start ``spec``'s server on a free port under a guard; return the guard, port, command.

    Without ``lease`` the guard watches a pipe from this process (an own server); with it, the
    guard watches the lease file (a shared server, :mod:`rewardflow.generation.shared_server`).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = spec.render(port)
    options = [] if lease is None else ["--lease", str(lease), "--linger", str(SHARE_LINGER_S)]
    with open(log_path, "wb") as log:
        guard = subprocess.Popen(
            [sys.executable, "-m", "rewardflow.generation.launch", *options, "--", *command],
            # An own server: closed by the OS when this process dies (see module doc).
            stdin=subprocess.PIPE if lease is None else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else dict(env),
        )
    return guard, port, command


@contextmanager
def launched_server(
    spec: LaunchSpec,
    log_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[LaunchedServer]:
    """Start ``spec``'s server for this process alone under a guard, yield it once ready, and
    stop its group on exit."""
    with contextlib.ExitStack() as stack:
        if log_path is None:
            log_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rewardflow-"))
            log_path = Path(log_dir) / "server.log"
        log_path = Path(log_path)
        guard, port, command = start_guarded(spec, log_path, env)
        try:
            logger.info(
                "model server: process group %d, port %d, job pid %d, log %s, started for "
                "this job: %s",
                guard.pid, port, os.getpid(), log_path, shlex.join(command),
            )  # fmt: skip
            server = LaunchedServer(base_url(port), port, guard.pid, log_path, guard)
            started = time.monotonic()
            wait_until_ready(server, spec.ready_path, spec.startup_timeout_s)
            logger.info("model server ready after %.1fs", time.monotonic() - started)
            yield server
        finally:
            stop_group(guard)
            logger.info("model server stopped (process group %d)", guard.pid)


def base_url(port: int) -> str:
    """The OpenAI API root of a server on loopback ``port``."""
    return f"http://{_HOST}:{port}/v1"


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


class _LeaseWatch:
    """The guard's side of a shared server's lease: unused for ``linger_s`` means stop.

    Jobs hold the lease file with a shared ``flock`` while they use the server; a free lease
    is one this guard can lock exclusively. Only after finding it free for ``linger_s`` does
    the guard keep the exclusive lock, remove the state file (if it still names this guard),
    and stop the group; a job arriving meanwhile blocks on its shared lock, then finds no state
    and starts a fresh server. The lock is released when the guard exits, after the group.
    """

    def __init__(self, lease: Path, linger_s: float) -> None:
        # Opened for writing: over NFS, flock is emulated by a byte-range lock that needs it.
        self.fd = os.open(lease, os.O_RDWR | os.O_CREAT, 0o644)
        self.state = lease.with_name(STATE_FILE)
        self.linger_s = linger_s
        self.free_since: float | None = None
        self.starter = os.getppid()
        self.adopted = False

    def unused(self) -> bool:
        """Whether nobody has held the lease for ``linger_s``; if so, keep it locked.

        Also whether the job starting this server died before publishing it in the state
        file: no other job can find it, so it must not live on while they hold the lease
        (a second vLLM on the same GPU would not even fit).
        """
        if not self.adopted:
            self.adopted = self.names_me()
            if not self.adopted and os.getppid() != self.starter:
                return True
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.free_since = None
            return False
        now = time.monotonic()
        if self.free_since is None:
            self.free_since = now
        if now - self.free_since < self.linger_s:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            return False
        self.forget()
        return True

    def names_me(self) -> bool:
        """Whether the state file names this guard as the running server's."""
        try:
            return bool(json.loads(self.state.read_text()).get("guard_pid") == os.getpid())
        except (OSError, ValueError, AttributeError):
            return False

    def forget(self) -> None:
        """Remove the state file if it names this guard (a replacement may have taken it)."""
        if self.names_me():
            with contextlib.suppress(OSError):
                self.state.unlink()


def guard_main(
    command: Sequence[str],
    grace_s: float = STOP_GRACE_S,
    lease: Path | None = None,
    linger_s: float = SHARE_LINGER_S,
) -> int:
    """Run ``command`` in this process group until it exits or is no longer wanted: the job's
    pipe closes (an own server) or nobody holds ``lease`` for ``linger_s`` (a shared one)."""
    print(f"rewardflow-launch: guard pid {os.getpid()}: {shlex.join(command)}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    watch = None if lease is None else _LeaseWatch(lease, linger_s)
    try:
        server = subprocess.Popen(list(command), stdin=subprocess.DEVNULL)
    except OSError as error:
        print(f"rewardflow-launch: cannot start {command[0]!r}: {error}", flush=True)
        return 127
    print(f"rewardflow-launch: server pid {server.pid}", flush=True)
    if watch is None:
        threading.Thread(target=_watch_stdin, args=(stop, sys.stdin.buffer), daemon=True).start()
    while server.poll() is None and not stop.wait(_POLL_S):
        if watch is not None and watch.unused():
            print("rewardflow-launch: no job uses the server any more, stopping", flush=True)
            break
    # Also when the server exited by itself: workers it forked must not outlive it.
    _end_own_group(server, grace_s)
    print(f"rewardflow-launch: server exited with status {server.returncode}", flush=True)
    return int(server.returncode or 0)


def _parse_guard_arguments(arguments: list[str]) -> tuple[Path | None, float, list[str]]:
    lease: Path | None = None
    linger_s = SHARE_LINGER_S
    while arguments[:1] in (["--lease"], ["--linger"]):
        option, value, arguments = arguments[0], arguments[1], arguments[2:]
        if option == "--lease":
            lease = Path(value)
        else:
            linger_s = float(value)
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    return lease, linger_s, arguments


if __name__ == "__main__":
    lease_file, linger, server_command = _parse_guard_arguments(sys.argv[1:])
    if not server_command:
        sys.exit(
            "usage: python -m rewardflow.generation.launch [--lease FILE [--linger S]] -- "
            "COMMAND [ARG...]"
        )
    sys.exit(guard_main(server_command, lease=lease_file, linger_s=linger))
