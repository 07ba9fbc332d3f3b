"""One launched model server for every generation job on a node that would start the same one.

Starting a server is the largest fixed cost of a generation job: ~0.65 s of CPU for the
built-in simulator (64 shards, 64 start-ups), minutes of model loading for vLLM. Jobs whose
server would be identical therefore share one, found through a *lease directory*::

    <cache>/.servers/<digest of the identity>/
        lease.lock    every job using the server holds a shared flock on it
        start.lock    an exclusive flock while a job starts (or replaces) the server
        server.json   port, guard pid and log of the running server

**Identity.** The rendered command without its port (so the model, served name, arguments,
GPU count and interpreter), the readiness path, the host name, ``CUDA_VISIBLE_DEVICES``,
``SLURM_JOB_ID``, a digest of the values of the variables the server reads a key from, and
what else decides its answers (``LaunchSpec.answers``: for the simulator, its cache identity,
which holds the content of its canned responses file and its answer version). Another node,
other GPUs, another SLURM allocation (whose processes SLURM kills when it ends), another key or
edited answers never share: each gets its own directory and server.

**Why under the cache root.** It is hidden (``.servers``, never taken for a partition, as
``.rates``), per user and per project like the cache, and removed with it; runs sharing a cache
share servers too. The host name in the identity keeps a cache on a cluster filesystem from
handing one node's loopback port to another. Where that filesystem has no ``flock`` the job
falls back to a server of its own, as before sharing.

**A job** takes its shared lock first and keeps it until it is done (the kernel drops it when
the job dies, however it dies). Holding it, the job reads ``server.json``: a live guard whose
server answers its readiness probe is reused. Otherwise it takes ``start.lock``, looks again
(another job may just have started one), and starts a server under a guard that watches the
lease (:mod:`rewardflow.generation.launch`), writing ``server.json`` once it is ready.

**The guard** stops the server when nobody has held the lease for ``SHARE_LINGER_S``: it takes
the lease exclusively, removes ``server.json``, ends the group and exits, which releases the
lock. A job arriving during that shutdown waits on its shared lock, finds no ``server.json``
and starts a fresh server. So no server outlives its last user by more than the linger plus
the stop grace, and a server that died (its guard gone) is replaced by the next job, while a
job using it when it dies fails with the log's tail as with a server of its own.

**Logs.** The server's output goes to the log of the job that started it
(``shard-NNN.server.log``); every job's log says whether it started or reused the server and
names that file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shlex
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from rewardflow.errors import ModelServerError
from rewardflow.generation.launch import (
    STATE_FILE,
    LaunchedServer,
    LaunchSpec,
    base_url,
    guard_running,
    launched_server,
    start_guarded,
    stop_group,
    wait_until_ready,
)
from rewardflow.jsonl import write_json_atomic

logger = logging.getLogger(__name__)

#: Errors of a filesystem without ``flock`` (some Lustre and NFS mounts).
_NO_FLOCK = frozenset({errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL})
_ENVIRONMENT_KEYS = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")


def share_identity(spec: LaunchSpec, env: Mapping[str, str] | None = None) -> str:
    """What two jobs must agree on to use one server (see the module docstring)."""
    env = os.environ if env is None else env
    secrets = hashlib.sha256(
        json.dumps({key: env.get(key) for key in spec.env_keys}, sort_keys=True).encode()
    ).hexdigest()
    return json.dumps(
        {
            "host": socket.gethostname(),
            "command": shlex.join(spec.render("{port}")),
            "ready_path": spec.ready_path,
            "environment": {key: env.get(key) for key in _ENVIRONMENT_KEYS},
            "secrets": secrets,
            "answers": spec.answers,
        },
        sort_keys=True,
    )


def lease_directory(lease_root: Path, spec: LaunchSpec, env: Mapping[str, str] | None) -> Path:
    """The lease directory of ``spec``'s server on this node, under ``lease_root``."""
    digest = hashlib.sha256(share_identity(spec, env).encode()).hexdigest()[:20]
    return lease_root / digest


@contextmanager
def _flocked(path: Path, operation: int) -> Iterator[None]:
    # Opened for writing: over NFS, flock is emulated by a byte-range lock that needs it.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_state(directory: Path) -> dict[str, object] | None:
    try:
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _attach(state: Mapping[str, object] | None, spec: LaunchSpec) -> LaunchedServer | None:
    """The server ``state`` describes if its guard still runs and it answers; None if gone."""
    if not state:
        return None
    try:
        port, pid = int(str(state["port"])), int(str(state["guard_pid"]))
        log = Path(str(state["log"]))
    except (KeyError, ValueError):
        return None
    server = LaunchedServer(base_url(port), port, pid, log)
    if not guard_running(pid):
        return None
    try:
        # It was ready when its state was written; a busy server may answer slowly.
        wait_until_ready(server, spec.ready_path, spec.startup_timeout_s)
    except ModelServerError:
        if server.exit_status() is not None:
            return None  # it died just now: the caller starts a new one
        raise
    return server


def _start(
    spec: LaunchSpec, directory: Path, log_path: Path, env: Mapping[str, str] | None
) -> LaunchedServer:
    guard, port, command = start_guarded(spec, log_path, env, lease=directory / "lease.lock")
    logger.info(
        "model server: process group %d, port %d, job pid %d, log %s, started (shared, "
        "lease %s): %s",
        guard.pid, port, os.getpid(), log_path, directory, shlex.join(command),
    )  # fmt: skip
    server = LaunchedServer(base_url(port), port, guard.pid, log_path, guard)
    started = time.monotonic()
    try:
        wait_until_ready(server, spec.ready_path, spec.startup_timeout_s)
    except BaseException:
        stop_group(guard)
        raise
    logger.info("model server ready after %.1fs", time.monotonic() - started)
    state = {"port": port, "guard_pid": guard.pid, "log": str(log_path), "job_pid": os.getpid()}
    write_json_atomic(directory / STATE_FILE, state)
    return server


@contextmanager
def shared_server(
    spec: LaunchSpec,
    lease_root: str | Path,
    log_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[LaunchedServer]:
    """Yield the node's running server for ``spec``, starting it if there is none; this job's
    use of it ends with the block (the guard stops the server once no job uses it)."""
    # Absolute: the guard and jobs of other runs (other working directories) read them too.
    directory = lease_directory(Path(lease_root).absolute(), spec, env)
    directory.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path).absolute() if log_path is not None else directory / "server.log"
    lease = os.open(directory / "lease.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lease, fcntl.LOCK_SH)
        except OSError as error:
            if error.errno not in _NO_FLOCK:
                raise
            logger.warning("no flock in %s (%s): this job starts its own server", directory, error)
            with launched_server(spec, log_path, env) as own:
                yield own
            return
        server = _attach(_read_state(directory), spec)
        if server is None:
            with _flocked(directory / "start.lock", fcntl.LOCK_EX):
                server = _attach(_read_state(directory), spec) or _start(
                    spec, directory, log_path, env
                )
        if server.guard is None:
            logger.info(
                "model server: process group %d, port %d, job pid %d, log %s, reused (shared, "
                "lease %s)",
                server.pgid, server.port, os.getpid(), server.log_path, directory,
            )  # fmt: skip
        yield server
    finally:
        os.close(lease)  # releases this job's share of the lease
    logger.info("model server released (process group %d)", server.pgid)
