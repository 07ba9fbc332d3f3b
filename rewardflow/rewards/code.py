"""The built-in code reward: does the Python in the response pass the prompt's test cases?

The code is model-written, so it is treated as hostile: it never runs in the pipeline's process,
and it must never see the user's secrets or files, whoever runs rewardflow. Each test case (or
the whole assert script) runs in a fresh child interpreter (``python -I`` running
:mod:`rewardflow.rewards.code_runner`) inside layered defences:

* **An OS-level sandbox**: bubblewrap (:mod:`rewardflow.rewards.code_isolation`) gives the
  child its own user, mount, PID, network, IPC and UTS namespaces, works without privileges,
  and shows it only a read-only ``/usr`` and Python installation, an empty network, its own
  ``/proc``, and a tmpfs scratch dir. Every process it starts (``setsid`` or not) dies with the
  sample. As root it also runs as ``nobody`` without capabilities. Where bubblewrap cannot run,
  the reward refuses (:class:`SandboxUnavailableError`, naming what to install) unless the
  ``allow_weak_isolation`` param opts into the layers below alone.
* **Resource limits** (``setrlimit`` in ``preexec_fn``): address space (``memory_mb``), CPU
  seconds, file size (10 MB, which also caps stdout/stderr on disk), open files and no core
  dumps; ``RLIMIT_NPROC`` inside the sandbox. The parent also enforces the wall-clock
  ``timeout_s`` and then SIGKILLs the child's whole process group (``start_new_session``).
  ``PR_SET_NO_NEW_PRIVS`` stops set-uid binaries from regaining root, and
  ``PR_SET_PDEATHSIG`` kills the child if the pipeline dies.
* **A non-dumpable parent** (:func:`make_non_dumpable`): processes of the same user cannot read
  the scoring process's ``/proc/<pid>/environ`` (API keys) or ``mem``.
* **Weak isolation only** (``allow_weak_isolation``, no bubblewrap): ``unshare(CLONE_NEWNET)``
  (root only), and as root the runner switches to ``nobody`` before it reads a byte of the
  model's code, reopening unreachable ``sys.path`` directories (pyenv in a 0700 ``/root``) as
  ``/proc/self/fd/N`` first. As an ordinary user neither exists: the code runs as the user.
* **A Python audit hook** (``sys.addaudithook``), installed before the model's code runs, that
  refuses writes, deletes, renames and ``mkdir`` outside the scratch dir, process creation,
  sockets, ctypes and reading other processes' ``/proc`` files. It gives readable errors, but
  it is NOT a security boundary: code in the same interpreter can switch it off (its closure
  can be rewritten through ``gc``; ``ctypes.memmove`` is not audited), which is why the
  OS-level layers exist.
* **A scratch directory** as cwd, ``HOME`` and ``TMPDIR``, deleted afterwards, and an
  environment built from scratch, so no API key of the pipeline's reaches the code.

In assert mode the tests run in the same interpreter as the model's code (that is what the
test scripts expect), and the verdicts come back on a private file descriptor tagged with a
random nonce; that stops cheap forgeries such as ``os._exit(0)`` before the asserts or printing
fake verdicts, but a response written to game the grader by introspecting the runner could
still fake a pass. The stdin/stdout form is compared in the parent and cannot be forged.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import functools
import json
import logging
import math
import os
import pwd
import re
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardflow.rewards._messages import last_assistant_text, quote
from rewardflow.rewards.code_isolation import (
    RUNNER,
    SCRATCH,
    Bubblewrap,
    SandboxUnavailableError,
    await_sandbox_exit,
    bubblewrap,
    child_env,
    describe_missing,
    make_non_dumpable,
    warn_weak_isolation,
)
from rewardflow.rewards.result import MetricResult, RewardResult

__all__ = [
    "SandboxLayers",
    "SandboxUnavailableError",
    "code_execution",
    "extract_code",
    "make_non_dumpable",
    "sandbox_layers",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_MB = 512
DEFAULT_MAX_TESTS = 50

# A Python interpreter needs ~30 MB of address space to start; below this nothing would pass.
_MIN_MEMORY_MB = 64
_MAX_MEMORY_MB = 64 * 1024
_MAX_TIMEOUT_S = 600.0
_MAX_TESTS_LIMIT = 10_000
# RLIMIT_FSIZE: the largest file the code may write, stdout and stderr included.
_MAX_FILE_BYTES = 10 * 2**20
# How much of stdout is read back into memory (at least twice the expected output).
_MAX_OUTPUT_BYTES = 2**20
_MAX_REPORT_BYTES = 256 * 1024
_STDERR_TAIL_BYTES = 4096
# RLIMIT_NPROC counts every process and thread of the user (nobody), machine-wide.
_MAX_PROCESSES = 64
_MAX_OPEN_FILES = 256
_MAX_QUOTE_CHARS = 60
# Exit status of the runner when its own setup (not the model's code) failed.
_RUNNER_SETUP_FAILED = 70
_UNPRIVILEGED_USER = "nobody"

# Linux constants that Python 3.11 does not export.
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38

_PYTHON_TAGS = frozenset({"python", "python3", "py", "py3"})
# A fenced block: an opening line of three backticks with an optional language tag, the body,
# and a closing line of three backticks.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([^\s`]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
_OPEN_FENCE = re.compile(r"^[ \t]*```[ \t]*([^\s`]*)[^\n]*\n", re.M)
# Lines that only code starts with; used to decide whether an unfenced response is code. A
# regex rather than ast.parse, so that nothing the model wrote is even compiled in this process.
_CODE_LINE = re.compile(
    r"^(?:def |class |import |from [\w.]+ import |print\(|(?:for|while|if|with) .*:[ \t]*$"
    r"|[A-Za-z_]\w*(?:\[[^\]\n]*\])?[ \t]*[-+*/]?=[^=])",
    re.M,
)


# --- extracting the code ---------------------------------------------------------------------


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language tag, body)`` of every fenced block, plus an unclosed one at the end.

    The unclosed block is a response cut off by max_tokens in the middle of its code.
    """
    blocks = []
    end = 0
    for match in _FENCE.finditer(text):
        blocks.append((match.group(1).lower(), match.group(2)))
        end = match.end()
    tail = _OPEN_FENCE.search(text, end)
    if tail is not None:
        blocks.append((tail.group(1).lower(), text[tail.end() :]))
    return blocks


def extract_code(response: str) -> str | None:
    """The Python code in a response, or ``None`` if it has none.

    The last ```` ```python ```` block wins (models often show a draft first and the fix
    last), then the last untagged block, then the last block in any language; a response
    without fences is taken whole if it looks like code (a line starting with ``def``,
    ``import``, ``print(``, an assignment...). A block cut off by max_tokens counts.
    """
    if not isinstance(response, str) or not response.strip():
        return None
    blocks = _fenced_blocks(response)
    for wanted in (lambda tag: tag in _PYTHON_TAGS, lambda tag: not tag, lambda tag: True):
        bodies = [body for tag, body in blocks if wanted(tag)]
        if bodies:
            return bodies[-1]
    return response if _CODE_LINE.search(response) else None


# --- the ground truth ------------------------------------------------------------------------


@dataclass(frozen=True)
class _IOCase:
    """A stdin/stdout test: feed ``input``, expect ``output``."""

    input: str
    output: str


@dataclass(frozen=True)
class _AssertSuite:
    """A test script run after the response's code; each top-level ``assert`` is one test.

    With an ``entry_point`` and a HumanEval-style ``def check(candidate)`` that the script does
    not call itself, ``check(<entry_point>)`` is one more test. A script with neither is one
    test, passed if it runs without an exception.
    """

    source: str
    entry_point: str | None
    labels: tuple[str, ...]
    call_check: bool


_TestSuite = tuple[_IOCase, ...] | _AssertSuite


def _text_field(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    raise ValueError(f"{what} must be a string, got {type(value).__name__}")


def _io_cases(items: Sequence[Any]) -> tuple[_IOCase, ...]:
    cases = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, Mapping) or "output" not in item:
            raise ValueError(f"test case {number} must be an object with 'input' and 'output'")
        cases.append(
            _IOCase(
                input=_text_field(item.get("input", ""), f"test case {number} 'input'"),
                output=_text_field(item["output"], f"test case {number} 'output'"),
            )
        )
    if not cases:
        raise ValueError("ground_truth has no test cases")
    return tuple(cases)


def _is_check_call(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Name)
        and stmt.value.func.id == "check"
    )


def _assert_suite(tests: Any, entry_point: Any) -> _AssertSuite:
    """Parse a (trusted, dataset-provided) test script and name its tests for reasons."""
    source = _text_field(tests, "'tests'")
    if entry_point is not None and (
        not isinstance(entry_point, str) or not entry_point.isidentifier()
    ):
        raise ValueError(f"'entry_point' must be a Python identifier, got {entry_point!r}")
    try:
        tree = ast.parse(source, "tests.py")
    except SyntaxError as error:
        raise ValueError(f"the test script does not parse: {error}") from error
    if not tree.body:
        raise ValueError("the test script is empty")
    labels = [
        (ast.get_source_segment(source, stmt) or "assert").split("\n", 1)[0]
        for stmt in tree.body
        if isinstance(stmt, ast.Assert)
    ]
    defines_check = any(
        isinstance(stmt, ast.FunctionDef) and stmt.name == "check" for stmt in tree.body
    )
    call_check = (
        entry_point is not None
        and defines_check
        and not any(_is_check_call(stmt) for stmt in tree.body)
    )
    if call_check:
        labels.append(f"check({entry_point})")
    elif not labels:
        labels = ["the test script"]
    return _AssertSuite(source, entry_point, tuple(labels), call_check)


def _suite_from_value(value: Any) -> _TestSuite:
    if isinstance(value, list | tuple):
        return _io_cases(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"ground_truth must be a list or an object, got {type(value).__name__}")
    if "tests" in value:
        return _assert_suite(value["tests"], value.get("entry_point"))
    if "inputs" in value and "outputs" in value:  # APPS / TACO "input_output"
        if value.get("fn_name"):
            raise ValueError("call-based tests ('fn_name') are not supported; use 'tests'")
        inputs, outputs = value["inputs"], value["outputs"]
        if not isinstance(inputs, list) or not isinstance(outputs, list):
            raise ValueError("'inputs' and 'outputs' must be lists")
        if len(inputs) != len(outputs):
            raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
        return _io_cases([{"input": i, "output": o} for i, o in zip(inputs, outputs, strict=True)])
    if "output" in value:
        return _io_cases([value])
    raise ValueError(
        "ground_truth must be a list of {'input', 'output'} cases or {'tests', 'entry_point'}"
    )


@functools.lru_cache(maxsize=1024)
def _suite_from_json(text: str) -> _TestSuite:
    """Parsed once per distinct ground truth: every sample of a prompt shares it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"ground_truth is not valid JSON: {error}") from error
    return _suite_from_value(value)


def _parse_ground_truth(ground_truth: Any) -> _TestSuite:
    if isinstance(ground_truth, str):
        if not ground_truth.strip():
            raise ValueError("code_execution needs a ground_truth with test cases")
        return _suite_from_json(ground_truth)
    if ground_truth is None:
        raise ValueError("code_execution needs a ground_truth with test cases")
    return _suite_from_value(ground_truth)


# --- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Params:
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    max_tests: int = DEFAULT_MAX_TESTS
    all_or_nothing: bool = False
    allow_weak_isolation: bool = False


def _number(value: Any, name: str, low: float, high: float, *, integer: bool) -> Any:
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return value


def _params(kwargs: Mapping[str, Any]) -> _Params:
    """Validate the user's params; a bad config must fail loudly, not score everything 0."""
    timeout_s = _number(
        kwargs.get("timeout_s", DEFAULT_TIMEOUT_S), "timeout_s", 0.01, _MAX_TIMEOUT_S, integer=False
    )
    memory_mb = _number(
        kwargs.get("memory_mb", DEFAULT_MEMORY_MB),
        "memory_mb",
        _MIN_MEMORY_MB,
        _MAX_MEMORY_MB,
        integer=True,
    )
    max_tests = _number(
        kwargs.get("max_tests", DEFAULT_MAX_TESTS), "max_tests", 1, _MAX_TESTS_LIMIT, integer=True
    )
    flags = {}
    for name in ("all_or_nothing", "allow_weak_isolation"):
        flags[name] = kwargs.get(name, False)
        if not isinstance(flags[name], bool):
            raise ValueError(f"{name} must be true or false, got {flags[name]!r}")
    return _Params(float(timeout_s), memory_mb, max_tests, **flags)


def _isolation(allow_weak: bool) -> Bubblewrap | None:
    """bubblewrap if it works here; else ``None`` if the config allows weak isolation.

    Raises:
        SandboxUnavailableError: neither, with what to install.
    """
    found, why = bubblewrap()
    if found is not None:
        return found
    if not allow_weak:
        raise SandboxUnavailableError(describe_missing(why))
    warn_weak_isolation(why)
    return None


# --- the sandbox (parent side) ---------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What one child runs: the code, and either one stdin input or the test script."""

    code: str
    mode: str  # "io" or "asserts"
    stdin: str = ""
    suite: _AssertSuite | None = None
    max_tests: int = DEFAULT_MAX_TESTS
    output_cap: int = _MAX_OUTPUT_BYTES


@dataclass(frozen=True)
class _Limits:
    timeout_s: float
    memory_mb: int
    audit_hook: bool = True  # tests turn it off to check the OS-level layers on their own
    # The OS-level sandbox, or None for the in-process layers alone (allow_weak_isolation).
    bubblewrap: Bubblewrap | None = None


@dataclass
class _Outcome:
    """What a child run left behind, read back with size caps."""

    timed_out: bool
    returncode: int
    stdout: str = ""
    stdout_truncated: bool = False
    stderr_tail: str = ""
    layers: dict[str, Any] | None = None
    syntax_error: str | None = None
    error: str | None = None
    done: bool = False
    setup_error: str | None = None
    results: dict[int, str | None] = field(default_factory=dict)  # test index -> failure


@functools.cache
def _libc() -> Any:
    """libc through ctypes, loaded once in the parent so the forked child only calls it."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - every Linux has a libc
        return None


@functools.cache
def _unprivileged_identity() -> tuple[int, int] | None:
    """``(uid, gid)`` to run the code as: nobody's when we are root, else ``None`` (no switch)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_UNPRIVILEGED_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _searchable_by_others(path: str) -> bool:
    current = "/"
    for part in os.path.abspath(path).split("/")[1:]:
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return False
        current = os.path.join(current, part)
    return bool(os.stat(current).st_mode & stat.S_IXOTH)


def _sandbox_base() -> str:
    """Where sandboxes are made: the temp dir, if the unprivileged user can reach into it."""
    base = tempfile.gettempdir()
    if _unprivileged_identity() is None or _searchable_by_others(base):
        return base
    return "/tmp" if os.path.isdir("/tmp") and _searchable_by_others("/tmp") else base


def _host_namespace(kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/self/ns/{kind}")
    except OSError:
        return None


@functools.cache
def _nproc_counts_per_namespace() -> bool:
    """Whether RLIMIT_NPROC set in bubblewrap counts only the sandbox's processes.

    True as root (the sandbox runs as nobody) and, in a user namespace, from Linux 5.14 (per
    namespace "ucounts"). Before that it counts every process of the user, so a limit of 64
    would stop an ordinary user's sandbox from starting a thread; it is then left unset.
    """
    if os.geteuid() == 0:
        return True
    numbers = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return numbers is not None and (int(numbers[1]), int(numbers[2])) >= (5, 14)


@functools.cache
def _runner_source() -> bytes:
    """The child's script, :mod:`rewardflow.rewards.code_runner`, read once."""
    with open(os.path.join(os.path.dirname(__file__), "code_runner.py"), "rb") as handle:
        return handle.read()


def _memory_file(name: str, data: bytes) -> int:
    """An fd holding ``data``, for bwrap to copy into the sandbox (no file on disk)."""
    fd = os.memfd_create(name)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _rlimits(limits: _Limits) -> list[tuple[int, int, int]]:
    """``(resource, soft, hard)`` for the child, never above the limits we already have."""
    cpu = math.ceil(limits.timeout_s) + 1
    wanted = [
        (resource.RLIMIT_AS, limits.memory_mb * 2**20, limits.memory_mb * 2**20),
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_FSIZE, _MAX_FILE_BYTES, _MAX_FILE_BYTES),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NOFILE, _MAX_OPEN_FILES, _MAX_OPEN_FILES),
    ]
    result = []
    for which, soft, hard in wanted:
        current_hard = resource.getrlimit(which)[1]
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
        result.append((which, min(soft, hard), hard))
    return result


def _preexec(rlimits: list[tuple[int, int, int]], unshare_net: bool) -> Callable[[], None]:
    """What the forked child does before exec: limits, no new privileges, no network.

    Kept to a few calls on objects prepared in the parent: between fork and exec only the
    forking thread exists, so this is only safe because it takes no locks another thread of
    the pipeline could have held (the pipeline scores in one thread).
    """
    libc = _libc()

    def setup() -> None:
        for which, soft, hard in rlimits:
            resource.setrlimit(which, (soft, hard))
        if libc is not None:
            libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if unshare_net:  # bubblewrap does its own; this may fail (not root)
                libc.unshare(_CLONE_NEWNET)

    return setup


def _write_file(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    # errors="replace": a lone surrogate in a response must not make the runner fail to read it.
    with open(fd, "w", encoding="utf-8", errors="replace") as handle:
        handle.write(text)


def _prepare(top: str, job: _Job, identity: tuple[int, int] | None) -> tuple[str, str]:
    """Lay out an on-disk sandbox (no bubblewrap); ``(scratch dir, runner path)``.

    ``top`` (0711, ours) holds the runner, the private ``io`` dir and ``work``, the scratch
    dir owned by the user the code runs as, so the code can reach its output only through
    the file descriptors it was given.
    """
    os.chmod(top, 0o711)
    scratch = os.path.join(top, "work")
    for path in (scratch, os.path.join(scratch, "home"), os.path.join(scratch, "tmp")):
        os.mkdir(path, 0o700)
        if identity is not None:
            os.chown(path, *identity)
    runner = os.path.join(top, "runner.py")
    _write_file(runner, _runner_source().decode("utf-8"), 0o644)
    _write_file(os.path.join(scratch, "solution.py"), job.code, 0o644)
    return scratch, runner


def _control(job: _Job, limits: _Limits, report_fd: int, nonce: str) -> dict[str, Any]:
    suite = job.suite
    in_bubblewrap = limits.bubblewrap is not None
    return {
        "mode": job.mode,
        "report_fd": report_fd,
        "nonce": nonce,
        "host_netns": _host_namespace("net"),
        "host_pidns": _host_namespace("pid"),
        # In bubblewrap, setpriv has already switched to nobody (as root).
        "drop_to": None if in_bubblewrap else _unprivileged_identity(),
        "limit_processes": in_bubblewrap and _nproc_counts_per_namespace(),
        "parent_pid": os.getpid(),
        "max_processes": _MAX_PROCESSES,
        "audit_hook": limits.audit_hook,
        "tests": suite.source if suite is not None else "",
        "entry_point": suite.entry_point if suite is not None else None,
        "call_check": suite.call_check if suite is not None else False,
        "max_tests": job.max_tests,
    }


def _wait(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait for the child to exit, without reaping it; ``True`` if it ran out of time.

    Not reaping keeps its process group id from being reused before :func:`_kill` runs.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)
    return False


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and everything it started in its process group, then reap it."""
    for kill, target in ((os.killpg, process.pid), (os.kill, process.pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(target, signal.SIGKILL)
    process.wait()


def _read_capped(path: str, cap: int) -> tuple[bytes, bool]:
    with open(path, "rb") as handle:
        data = handle.read(cap + 1)
    return data[:cap], len(data) > cap


def _read_tail(path: str, size: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(max(0, os.fstat(handle.fileno()).st_size - size))
        return handle.read(size)


def _parse_reports(data: bytes, nonce: str, outcome: _Outcome) -> None:
    """Fill ``outcome`` from the runner's report lines; lines without our nonce are ignored."""
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            tag, kind, payload = json.loads(line)
        except (ValueError, TypeError):
            continue
        if tag != nonce:
            continue
        if kind == "layers" and isinstance(payload, dict):
            outcome.layers = payload
        elif kind == "syntax":
            outcome.syntax_error = str(payload)
        elif kind == "error":
            outcome.error = str(payload)
        elif kind == "done":
            outcome.done = True
        elif kind == "setup_error":
            outcome.setup_error = str(payload)
        elif kind == "pass" and isinstance(payload, int):
            outcome.results.setdefault(payload, None)
        elif kind == "fail" and isinstance(payload, list) and len(payload) == 2:
            outcome.results.setdefault(int(payload[0]), str(payload[1]))


def _bubblewrap_launch(
    bubblewrap: Bubblewrap, job: _Job, control: str, files: contextlib.ExitStack, info_fd: int
) -> tuple[list[str], tuple[int, ...]]:
    """The bwrap command and the fds it copies the runner, control and code from."""
    control_path, solution_path = f"{SCRATCH}/control.json", f"{SCRATCH}/solution.py"
    contents = [
        ("0444", "runner", _runner_source(), RUNNER),
        ("0644", "control", control.encode("utf-8"), control_path),
        # "replace": a lone surrogate in a response must not stop the runner reading it.
        ("0644", "solution", job.code.encode("utf-8", "replace"), solution_path),
    ]
    mapping = []
    for mode, name, data, path in contents:
        fd = _memory_file(f"rewardflow-{name}", data)
        files.callback(os.close, fd)
        mapping.append((mode, fd, path))
    argv = ["-I", "-B", "-X", "utf8", RUNNER, control_path]
    fds = (info_fd, *(fd for _, fd, _ in mapping))
    return bubblewrap.command(mapping, argv, info_fd), fds


def _run_sandboxed(job: _Job, limits: _Limits) -> _Outcome:
    """Run ``job`` in a fresh sandbox and return what happened; the sandbox is then deleted.

    In bubblewrap (``limits.bubblewrap``) the code's files live in the sandbox's own tmpfs;
    only the private io dir (stdin, stdout, stderr, report) is on our disk. Without it, the
    scratch dir is on disk too (see :func:`_prepare`).

    Raises RuntimeError if the sandbox itself could not start (not the model's fault, so
    the pipeline should record an error rather than a 0).
    """
    bubblewrap = limits.bubblewrap
    identity = _unprivileged_identity()
    top = tempfile.mkdtemp(prefix="rewardflow-sandbox-", dir=_sandbox_base())
    process = None
    info_read = None
    try:
        io_dir = os.path.join(top, "io")
        os.mkdir(io_dir, 0o700)
        _write_file(os.path.join(io_dir, "stdin"), job.stdin, 0o600)
        nonce = secrets.token_hex(16)
        paths = {name: os.path.join(io_dir, name) for name in ("stdout", "stderr", "report")}
        with contextlib.ExitStack() as files:
            stdin = files.enter_context(open(os.path.join(io_dir, "stdin"), "rb"))
            stdout = files.enter_context(open(paths["stdout"], "wb"))
            stderr = files.enter_context(open(paths["stderr"], "wb"))
            report_fd = os.open(paths["report"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            files.callback(os.close, report_fd)
            control = json.dumps(_control(job, limits, report_fd, nonce))
            if bubblewrap is not None:
                info_read, info_write = os.pipe()
                files.callback(os.close, info_write)
                launch = _bubblewrap_launch(bubblewrap, job, control, files, info_write)
                command, extra_fds = launch
                cwd, env = "/", {}  # bwrap itself gets no environment to leak
            else:
                scratch, runner = _prepare(top, job, identity)
                _write_file(os.path.join(scratch, "control.json"), control, 0o600)
                command = [sys.executable, "-I", "-B", "-X", "utf8", runner, "control.json"]
                extra_fds, cwd, env = (), scratch, child_env(scratch)
            process = subprocess.Popen(
                command,
                stdin=stdin if job.mode == "io" else subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=cwd,
                env=env,
                close_fds=True,
                pass_fds=(report_fd, *extra_fds),
                start_new_session=True,
                preexec_fn=_preexec(_rlimits(limits), unshare_net=bubblewrap is None),
            )
        timed_out = _wait(process, limits.timeout_s)
        _kill(process)
        if info_read is not None:
            await_sandbox_exit(info_read)
        returncode = process.returncode
        if bubblewrap is not None and 128 < returncode < 128 + signal.NSIG:
            returncode = 128 - returncode  # bwrap reports "killed by signal N" as 128 + N
        cap = max(_MAX_OUTPUT_BYTES, job.output_cap)
        stdout_bytes, truncated = _read_capped(paths["stdout"], cap)
        outcome = _Outcome(
            timed_out=timed_out,
            returncode=returncode,
            stdout=stdout_bytes.decode("utf-8", "replace"),
            stdout_truncated=truncated,
            stderr_tail=_read_tail(paths["stderr"], _STDERR_TAIL_BYTES).decode("utf-8", "replace"),
        )
        _parse_reports(_read_capped(paths["report"], _MAX_REPORT_BYTES)[0], nonce, outcome)
    finally:
        if process is not None and process.returncode is None:
            _kill(process)
        if info_read is not None:
            os.close(info_read)
        _remove_tree(top)
    if outcome.layers is None and not timed_out:
        raise RuntimeError(
            "the code sandbox failed to start (exit status "
            f"{outcome.returncode}): {outcome.stderr_tail.strip()[-500:]}"
        )
    return outcome


def _remove_tree(path: str) -> None:
    """Delete a sandbox, even if the code made parts of it unreadable (chmod 000).

    Never raises: a leftover temp dir is logged, not turned into a score error for the sample.
    """

    def make_writable_and_retry(function: Callable[[str], Any], failed: str, _: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            os.chmod(failed, 0o700)
        with contextlib.suppress(OSError):
            if os.path.isdir(failed) and not os.path.islink(failed):
                shutil.rmtree(failed, ignore_errors=True)
            else:
                function(failed)

    shutil.rmtree(path, onerror=make_writable_and_retry)
    if os.path.lexists(path):
        logger.warning("could not delete the code sandbox %s", path)


# --- judging ---------------------------------------------------------------------------------


def _normalise_output(text: str) -> list[str]:
    """Lines of an output without trailing whitespace, and without blank lines at either end."""
    return [line.rstrip() for line in text.strip().splitlines()]


def _output_mismatch(expected: str, got: str) -> str | None:
    """Why ``got`` is not ``expected`` (``None`` if it is), naming the first differing line."""
    want, have = _normalise_output(expected), _normalise_output(got)
    if want == have:
        return None
    if len(want) <= 1 and len(have) <= 1:
        wanted, had = (quote("\n".join(lines), _MAX_QUOTE_CHARS) for lines in (want, have))
        return f"expected {wanted}, got {had}"
    line = next(i for i in range(max(len(want), len(have))) if want[i : i + 1] != have[i : i + 1])
    expected_line = quote(want[line], _MAX_QUOTE_CHARS) if line < len(want) else "end of output"
    got_line = quote(have[line], _MAX_QUOTE_CHARS) if line < len(have) else "end of output"
    return f"line {line + 1}: expected {expected_line}, got {got_line}"


def _is_memory_error(outcome: _Outcome) -> bool:
    if outcome.error is not None:
        return outcome.error.startswith("MemoryError")
    tail = outcome.stderr_tail
    return "MemoryError" in tail or "Cannot allocate memory" in tail


def _run_failure(outcome: _Outcome, limits: _Limits) -> str | None:
    """Why a run failed as a process (time, memory, crash, exception); ``None`` if it did not."""
    if outcome.timed_out:
        return f"timed out after {limits.timeout_s:g} s"
    signum = -outcome.returncode if outcome.returncode < 0 else None
    if signum == signal.SIGXCPU:
        return "timed out (CPU time limit)"
    if signum == signal.SIGXFSZ or (outcome.error and "[Errno 27]" in outcome.error):
        return f"killed: output or file size limit ({_MAX_FILE_BYTES // 2**20} MB)"
    if _is_memory_error(outcome):
        return f"killed: memory limit ({limits.memory_mb} MB)"
    if outcome.error is not None:
        return outcome.error
    if outcome.setup_error is not None:
        return outcome.setup_error
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"killed by {name}"
    if outcome.returncode != 0:
        return f"exited with status {outcome.returncode}"
    return None


@dataclass
class _Verdict:
    passed: int
    total: int
    compiled: bool
    compile_reason: str
    failure: str | None = None  # the first failure, already prefixed with its test
    note: str = ""


def _syntax_verdict(total: int, message: str) -> _Verdict:
    reason = f"syntax error: {message.removeprefix('SyntaxError: ')}"
    return _Verdict(0, total, False, reason, failure=reason)


def _run_io_cases(code: str, cases: Sequence[_IOCase], limits: _Limits) -> _Verdict:
    """One child per case: a crash or a time-out in one case cannot take the others with it."""
    verdict = _Verdict(0, len(cases), True, "syntax OK")
    for number, case in enumerate(cases, 1):
        cap = 2 * len(case.output.encode("utf-8"))
        outcome = _run_sandboxed(_Job(code, "io", stdin=case.input, output_cap=cap), limits)
        if outcome.syntax_error is not None:
            return _syntax_verdict(len(cases), outcome.syntax_error)
        failure = _run_failure(outcome, limits)
        if failure is None and outcome.stdout_truncated:
            failure = f"output exceeded {max(_MAX_OUTPUT_BYTES, cap) // 2**10} KB"
        if failure is None:
            failure = _output_mismatch(case.output, outcome.stdout)
        if failure is None:
            verdict.passed += 1
        elif verdict.failure is None:
            verdict.failure = f"test {number}: {failure}"
    return verdict


def _run_assert_suite(code: str, suite: _AssertSuite, limits: _Limits, max_tests: int) -> _Verdict:
    """One child for the whole script; tests it never reached fail with the run's reason."""
    total = min(len(suite.labels), max_tests)
    outcome = _run_sandboxed(_Job(code, "asserts", suite=suite, max_tests=max_tests), limits)
    if outcome.syntax_error is not None:
        return _syntax_verdict(total, outcome.syntax_error)
    verdict = _Verdict(0, total, True, "syntax OK")
    run_failure = _run_failure(outcome, limits) or "the code exited before this test ran"
    for index in range(total):
        label = suite.labels[index]
        if index in outcome.results:
            failure = outcome.results[index]
            if failure is not None and failure.startswith("MemoryError"):
                failure = f"killed: memory limit ({limits.memory_mb} MB)"
            elif failure == "AssertionError":
                failure = "assertion failed"
        else:
            failure = run_failure
        if failure is None:
            verdict.passed += 1
        elif verdict.failure is None:
            verdict.failure = f"test {index + 1} ({quote(label, _MAX_QUOTE_CHARS)}): {failure}"
    return verdict


def _reward(verdict: _Verdict, all_or_nothing: bool) -> RewardResult:
    fraction = verdict.passed / verdict.total if verdict.total else 0.0
    if all_or_nothing:
        score = 1.0 if verdict.total and verdict.passed == verdict.total else 0.0
    else:
        score = fraction
    reason = f"{verdict.passed}/{verdict.total} tests passed{verdict.note}"
    if verdict.failure is not None:
        reason += f"; {verdict.failure}"
    return RewardResult(
        score=score,
        reason=reason,
        metrics={
            "compiled": MetricResult(1.0 if verdict.compiled else 0.0, verdict.compile_reason),
            "passed_fraction": MetricResult(fraction, f"{verdict.passed}/{verdict.total}"),
        },
    )


# --- the reward ------------------------------------------------------------------------------


def code_execution(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Score the Python code in the last assistant message by the fraction of tests it passes.

    ``ground_truth`` (a JSON string, or the parsed list/dict) is either a list of
    ``{"input": stdin text, "output": expected stdout}`` cases (outputs compared without
    leading/trailing blank lines and trailing spaces per line; APPS-style
    ``{"inputs": [...], "outputs": [...]}`` also works), or ``{"tests": "python source with
    asserts", "entry_point": optional name}``, run after the response's code, where each
    top-level ``assert`` is a test (see :class:`_AssertSuite` for scripts without one).

    Params: ``timeout_s`` (5; wall clock per case, or for the whole assert script, interpreter
    start included), ``memory_mb`` (512; address space), ``max_tests`` (50; later cases are
    not run), ``all_or_nothing`` (False; score 1 only if every test passes),
    ``allow_weak_isolation`` (False; without bubblewrap, run with the in-process layers alone
    instead of refusing). Other kwargs are ignored. The code runs in the sandbox described in
    this module's docstring. The calling process is made non-dumpable (see
    :func:`make_non_dumpable`).

    Metrics: ``compiled`` (the code is valid Python) and ``passed_fraction`` (also reported
    when ``all_or_nothing`` makes the score 0). Anything the response does (no code, syntax
    errors, crashes, time-outs, memory bombs, sandbox violations) is a score of 0 for the
    affected tests with a reason, never an exception.

    Raises:
        ValueError: bad params, or a ground truth that is missing or not in a known shape.
        SandboxUnavailableError: no OS-level sandbox here (naming what to install), and
            ``allow_weak_isolation`` is not set.
        RuntimeError: the sandbox itself could not start (the machine, not the response).
    """
    params = _params(kwargs)
    # Before anything else, so that a machine without a sandbox fails every sample alike.
    isolation = _isolation(params.allow_weak_isolation)
    make_non_dumpable()
    suite = _parse_ground_truth(ground_truth)
    if isinstance(suite, _AssertSuite):
        total = min(len(suite.labels), params.max_tests)
        available = len(suite.labels)
    else:
        total = min(len(suite), params.max_tests)
        available = len(suite)
    note = f" (first {total} of {available})" if available > total else ""

    response = last_assistant_text(messages)
    code = extract_code(response) if response is not None else None
    if code is None:
        why = "no assistant message" if response is None else "no Python code in the response"
        verdict = _Verdict(0, total, False, why, failure=why, note=note)
        return _reward(verdict, params.all_or_nothing)

    limits = _Limits(params.timeout_s, params.memory_mb, bubblewrap=isolation)
    if isinstance(suite, _AssertSuite):
        verdict = _run_assert_suite(code, suite, limits, params.max_tests)
    else:
        verdict = _run_io_cases(code, suite[: params.max_tests], limits)
    verdict.note = note
    return _reward(verdict, params.all_or_nothing)


# --- diagnostics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxLayers:
    """Which isolation layers are actually in effect on this machine (see the module doc)."""

    os_sandbox: str | None  # "bubblewrap", or None: the in-process layers alone
    network_namespace: bool
    pid_namespace: bool
    user: str
    audit_hook: bool
    rlimits: bool = True


def sandbox_layers(allow_weak_isolation: bool = False) -> SandboxLayers:
    """Run a no-op in the sandbox and report the layers the child found itself in.

    Useful to check a deployment. Raises :class:`SandboxUnavailableError` (saying what to
    install) where there is no OS-level sandbox, unless ``allow_weak_isolation``.
    """
    isolation = _isolation(allow_weak_isolation)
    limits = _Limits(DEFAULT_TIMEOUT_S, DEFAULT_MEMORY_MB, bubblewrap=isolation)
    outcome = _run_sandboxed(_Job("pass\n", "io"), limits)
    layers = outcome.layers or {}
    uid = layers.get("uid", -1)
    if isolation is not None and isolation.identity is None:
        uid = os.getuid()  # the uid inside the user namespace is ours, mapped
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return SandboxLayers(
        os_sandbox="bubblewrap" if isolation is not None else None,
        network_namespace=bool(layers.get("netns")),
        pid_namespace=bool(layers.get("pidns")),
        user=user,
        audit_hook=bool(layers.get("audit_hook")),
    )
