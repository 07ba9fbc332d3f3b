"""The OS-level sandbox of the code reward: bubblewrap, and the parent's own protection.

Model-written code must never see the user's secrets or files, whoever runs rewardflow. The
in-process layers of :mod:`rewardflow.rewards.code_runner` (the audit hook) can be switched
off from inside Python, and unprivileged users cannot create a network namespace with a plain
``unshare``. bubblewrap (``bwrap``, packaged by every major distribution) can: it builds user,
mount, PID, network, IPC and UTS namespaces without privileges, so the code sees

* a read-only ``/usr`` and the Python installation, and nothing else of the host's files
  (no ``$HOME``, no project dir, no ``/etc`` beyond the dynamic linker's cache);
* an empty network namespace (not even 127.0.0.1), and a ``/proc`` of its own PID namespace,
  so no other process's ``environ`` or ``mem``;
* a size-capped tmpfs as its scratch dir, cwd, ``HOME`` and ``TMPDIR``, with its files copied
  in from memory (``--file``), and an environment built from scratch (``--clearenv``);
* ``--die-with-parent`` and the PID namespace: every process it started, ``setsid`` or not,
  is killed when the sample ends, times out, or the scoring process dies.

As root, bubblewrap runs privileged without a user namespace (root's own files are the ones
to protect) and ``setpriv`` switches to ``nobody`` with no capabilities before Python starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import os
import pwd
import select
import shutil
import subprocess
import sys
from dataclasses import dataclass

__all__ = [
    "SCRATCH",
    "Bubblewrap",
    "SandboxUnavailableError",
    "await_sandbox_exit",
    "bubblewrap",
    "make_non_dumpable",
]

logger = logging.getLogger(__name__)

SCRATCH = "/sandbox"
RUNNER = "/rewardflow/code_runner.py"
# The scratch tmpfs lives in memory: this caps what the code can store there in total.
SCRATCH_BYTES = 64 * 2**20
UNPRIVILEGED_USER = "nobody"
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: "
    "dnf install bubblewrap; Arch: pacman -S bubblewrap)"
)
USERNS_HINT = (
    "bubblewrap needs unprivileged user namespaces: check `sysctl user.max_user_namespaces` "
    "(must be > 0), `kernel.unprivileged_userns_clone` (Debian before 11: must be 1) and, on "
    "Ubuntu 23.10+, that AppArmor allows bwrap (`kernel.apparmor_restrict_unprivileged_userns`)"
)
ROOT_HINT = (
    "as root bubblewrap needs CAP_SYS_ADMIN to create namespaces (in a container: grant it, "
    "or run rewardflow as an ordinary user where unprivileged user namespaces are allowed)"
)
# Top-level names that are symlinks into /usr on merged-/usr systems, or real dirs elsewhere.
_ROOT_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Host files the interpreter may need to start: the dynamic linker's cache. Nothing secret.
_HOST_FILES = ("/etc/ld.so.cache",)
# Options a bwrap build may lack (Ubuntu 22.04 has 0.6): used only where present.
_OPTIONAL_OPTIONS = ("--disable-userns", "--size", "--perms")
_PR_SET_DUMPABLE = 4


class SandboxUnavailableError(RuntimeError):
    """No OS-level sandbox can run here, and the config did not opt into weaker isolation."""


@dataclass(frozen=True)
class Bubblewrap:
    """A bwrap that was seen to build a working sandbox on this machine."""

    path: str
    options: frozenset[str]
    setpriv: str | None  # used as root, to become nobody inside the sandbox
    identity: tuple[int, int] | None  # (uid, gid) of nobody when we are root

    def command(
        self, files: list[tuple[str, int, str]], argv: list[str], info_fd: int | None = None
    ) -> list[str]:
        """The bwrap command line that runs ``python argv`` in a fresh sandbox.

        ``files`` are ``(mode, fd, path in the sandbox)``: bwrap copies each fd's content in.
        bwrap writes the sandbox's PID 1 to ``info_fd`` (see :func:`await_sandbox_exit`).
        """
        command = [self.path]
        if info_fd is not None:
            command += ["--info-fd", str(info_fd)]
        if self.identity is not None:
            command += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
            command += ["--unshare-cgroup-try"]
        else:
            command += ["--unshare-all", "--unshare-user"]
            if "--disable-userns" in self.options:
                command.append("--disable-userns")
        command += ["--die-with-parent", "--new-session", "--clearenv"]
        command += ["--ro-bind", "/usr", "/usr"]
        for name in _ROOT_DIRS:
            host = "/" + name
            if os.path.islink(host):
                command += ["--symlink", os.readlink(host), host]
            elif os.path.isdir(host):
                command += ["--ro-bind", host, host]
        for path in _HOST_FILES:
            command += ["--ro-bind-try", path, path]
        made: set[str] = set()
        for directory in _python_dirs():
            # The dirs bwrap makes on the way to a mount point are not always searchable by
            # others (as root /root came out 0700 and stopped nobody): make them first.
            for parent in _ancestors(directory):
                if parent not in made:
                    made.add(parent)
                    command += [*self._perms("0755"), "--dir", parent]
            command += ["--ro-bind", directory, directory]
        command += ["--proc", "/proc", "--dev", "/dev"]
        size = ["--size", str(SCRATCH_BYTES)] if "--size" in self.options else []
        command += [*self._perms("0777"), *size, "--tmpfs", SCRATCH]
        for sub in ("home", "tmp"):
            command += [*self._perms("0777"), "--dir", f"{SCRATCH}/{sub}"]
        for mode, fd, path in files:
            verb = "--ro-bind-data" if path == RUNNER else "--file"
            command += [*self._perms(mode), verb, str(fd), path]
        command += ["--chdir", SCRATCH]
        for name, value in child_env(SCRATCH).items():
            command += ["--setenv", name, value]
        command.append("--")
        if self.identity is not None and self.setpriv is not None:
            uid, gid = self.identity
            command += [self.setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
            command += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return [*command, sys.executable, *argv]

    def _perms(self, mode: str) -> list[str]:
        return ["--perms", mode] if "--perms" in self.options else []


def child_env(scratch: str) -> dict[str, str]:
    """A fresh environment for the code: nothing of ours (API keys!) is inherited."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.path.join(scratch, "home"),
        "TMPDIR": os.path.join(scratch, "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # One thread per numeric library: threads count against RLIMIT_NPROC and RLIMIT_AS.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]``."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


@functools.cache
def _python_dirs() -> tuple[str, ...]:
    """The Python installation (and venv) to bind read-only, outermost dirs only.

    Refuses a prefix that would expose the user's files: ``/``, or the home or current dir
    or one of their parents (a Python installed straight into ``$HOME``).
    """
    executable = os.path.abspath(sys.executable)
    candidates = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.dirname(executable)),
        os.path.dirname(os.path.dirname(os.path.realpath(executable))),
    }
    dirs = sorted(
        {os.path.abspath(path) for path in candidates if os.path.isdir(path)},
        key=lambda path: (path.count("/"), path),
    )
    private = [os.path.expanduser("~"), os.getcwd()]
    chosen: list[str] = []
    for directory in dirs:
        if _inside(directory, "/usr") or any(_inside(directory, kept) for kept in chosen):
            continue
        if directory == "/" or any(_inside(other, directory) for other in private):
            raise SandboxUnavailableError(
                f"the Python installation at {directory} contains your home or working "
                "directory, so the code sandbox cannot show it to the code without exposing "
                "your files; use a Python installed in its own directory (a venv, pyenv, uv)"
            )
        chosen.append(directory)
    return tuple(chosen)


def _nobody() -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _find(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")


@functools.cache
def bubblewrap() -> tuple[Bubblewrap | None, str]:
    """A bwrap seen to start Python in a sandbox here, or ``None`` and why not.

    Probed once per process, by running the interpreter in exactly the sandbox the code gets.
    """
    path = _find("bwrap")
    if path is None:
        return None, "bubblewrap (bwrap) is not installed"
    identity = None
    setpriv = None
    if os.geteuid() == 0:
        identity = _nobody()
        setpriv = _find("setpriv")
        if identity is None:
            return None, f"there is no user {UNPRIVILEGED_USER!r} to run the code as"
        if setpriv is None:
            return None, "setpriv (util-linux) is not installed"
    try:
        shown = subprocess.run(
            [path, "--help"], capture_output=True, text=True, timeout=30, env={}, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"{path} cannot run: {error}"
    options = frozenset(option for option in _OPTIONAL_OPTIONS if option in shown.stdout)
    if identity is not None and "--perms" not in options:
        # Without it the scratch dir would belong to root, and nobody could not use it.
        return None, f"{path} is too old to run the code as nobody (bubblewrap 0.5+ needed)"
    found = Bubblewrap(path, options, setpriv, identity)
    try:
        probe = subprocess.run(
            found.command([], ["-I", "-c", "pass"]),
            capture_output=True,
            text=True,
            timeout=60,
            env={},
            cwd="/",
            check=False,
        )
    except SandboxUnavailableError as error:
        return None, str(error)
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"{path} cannot run: {error}"
    if probe.returncode != 0:
        why = probe.stderr.strip()[-500:] or f"exit status {probe.returncode}"
        hint = USERNS_HINT if identity is None else ROOT_HINT
        return None, f"bubblewrap cannot build a sandbox here ({why}); {hint}"
    return found, ""


def await_sandbox_exit(info_fd: int, timeout_s: float = 5.0) -> None:
    """Wait until every process of a sandbox is gone, not only bwrap; ``info_fd`` as given.

    bwrap's ``--info-fd`` names the sandbox's PID 1 as we see it. The kernel reports PID 1's
    exit only after it has killed and reaped the rest of its PID namespace, so once it is
    gone, so are the ``setsid`` grandchildren: nothing of the sample outlives the call.
    """
    os.set_blocking(info_fd, False)
    try:
        info = json.loads(os.read(info_fd, 65536))
        pidfd = os.pidfd_open(int(info["child-pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return  # bwrap never got that far, or PID 1 is already gone
    try:
        select.select([pidfd], [], [], timeout_s)
    finally:
        os.close(pidfd)


def make_non_dumpable() -> bool:
    """Make this process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``); whether it worked.

    Then processes of the same user cannot read its ``/proc/<pid>/environ`` (API keys) or
    ``mem``, nor ptrace it: a second line of defence should code ever run outside the PID
    namespace (the weaker in-process isolation). The cost: no core dumps, and debuggers
    (gdb, py-spy) cannot attach. Child processes start dumpable again at ``exec``.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - every Linux has a libc
        return False
    with contextlib.suppress(AttributeError):
        return bool(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)
    return False  # pragma: no cover - not Linux


def describe_missing(why: str) -> str:
    """The one message for a machine without an OS-level sandbox."""
    return (
        "code_execution runs model-written code and needs an OS-level sandbox, but "
        f"{why}. To fix: {INSTALL_HINT}. Or, only for code you trust, set the reward param "
        "allow_weak_isolation: true to run with the in-process layers alone (as a non-root "
        "user they do not stop hostile code from reading your files and API keys)."
    )


@functools.cache
def warn_weak_isolation(why: str) -> None:
    """Warn (once per process and reason) that code runs without an OS-level sandbox."""
    logger.warning(
        "code_execution: allow_weak_isolation is set and %s; model-written code runs with "
        "the in-process layers only",
        why,
    )
