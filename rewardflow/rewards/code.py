"""The built-in code reward: does the Python in the response pass the prompt's test cases?

The code is model-written, so it is treated as hostile: it never runs in the pipeline's process.
Each test case (or the whole assert script) runs in a fresh child interpreter
(``python -I``, started from a small runner script embedded below) inside layered defences,
because no single layer is enough on its own:

* **Resource limits** (``setrlimit`` in ``preexec_fn``): address space (``memory_mb``), CPU
  seconds, file size (10 MB, which also caps stdout/stderr on disk), open files and no core
  dumps; ``RLIMIT_NPROC`` once the child runs as ``nobody``. The parent also enforces the
  wall-clock ``timeout_s`` and then SIGKILLs the child's whole process group
  (``start_new_session``). ``PR_SET_NO_NEW_PRIVS`` stops set-uid binaries from regaining root,
  and ``PR_SET_PDEATHSIG`` kills the child if the pipeline dies.
* **No network**: ``unshare(CLONE_NEWNET)`` (through ctypes; Python 3.11 has no ``os.unshare``)
  puts the child in an empty network namespace, where even 127.0.0.1 is unreachable. This needs
  root (CAP_SYS_ADMIN). Without it the runner reports the namespace as missing and the audit
  hook's socket ban below is the only barrier, which is much weaker.
* **An unprivileged user**: when the pipeline runs as root, the runner switches to ``nobody``
  (``setgroups([])``, ``setgid``, ``setuid``) before it reads a byte of the model's code, so
  file permissions apply again (root ignores them). This is done in the runner rather than in
  ``preexec_fn`` because the interpreter may live where ``nobody`` cannot reach it (pyenv in a
  0700 ``/root``); the runner keeps its import path usable by reopening unreachable ``sys.path``
  directories as ``/proc/self/fd/N`` first.
* **A Python audit hook** (``sys.addaudithook``), installed before the model's code runs, that
  refuses writes, deletes, renames and ``mkdir`` outside the scratch dir, process creation
  (``os.system``, ``subprocess``, ``os.fork``, ``os.exec*``, ``posix_spawn``), sockets, ctypes
  and reading other processes' ``/proc`` files. It gives readable errors and covers the
  non-root case, but it is NOT a security boundary on its own: code in the same interpreter can
  get around it (``ctypes.memmove`` on raw addresses is not audited, threads can race the
  checks), which is why the OS-level layers exist.
* **A scratch directory** (``tempfile.mkdtemp``, deleted afterwards) as cwd, ``HOME`` and
  ``TMPDIR``, and a minimal environment, so no API key of the pipeline's leaks to the code.

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

from rewardflow.rewards.result import MetricResult, RewardResult

__all__ = ["SandboxLayers", "code_execution", "extract_code", "sandbox_layers"]

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


# --- the runner (runs in the child) ----------------------------------------------------------

_RUNNER_SOURCE = r'''
"""rewardflow sandbox runner: see rewardflow/rewards/code.py for what each step is for.

Everything before install_audit_hook() is trusted setup; the model's code runs after it.
"""
import ast
import builtins
import ctypes
import json
import os
import resource
import stat
import sys
import traceback

_write = os.write
_exit = os._exit
_reserve = [bytearray(1 << 20)]  # freed on MemoryError, so that the verdict can be written
SETUP_FAILED = 70


class Reporter:
    def __init__(self, fd, nonce):
        self.fd = fd
        self.nonce = nonce

    def __call__(self, kind, payload=None):
        try:
            line = json.dumps([self.nonce, kind, payload]) + "\n"
            _write(self.fd, line.encode("utf-8", "replace"))
        except BaseException:
            pass


def describe(exc):
    if isinstance(exc, MemoryError):
        _reserve.clear()
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException:
        text = ""
    return (name + ": " + text if text else name)[:300]


def reachable_by_others(path):
    """Whether a user that is neither the owner nor in the group can list ``path``."""
    current = "/"
    for part in os.path.abspath(path).split("/")[1:]:
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return False
        current = os.path.join(current, part)
    mode = os.stat(current).st_mode
    return bool(mode & stat.S_IROTH and mode & stat.S_IXOTH)


def reroute_import_path():
    """Reopen import directories nobody could not reach (pyenv in a 0700 /root) as fds.

    Path lookups through /proc/self/fd/N start at the open directory, so the process keeps
    importing the standard library after it has given up root.
    """
    moved = {}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and not reachable_by_others(entry):
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
            moved[os.path.abspath(entry)] = "/proc/self/fd/%d" % fd

    def reroute(path):
        for old, new in moved.items():
            if path == old or path.startswith(old + "/"):
                return new + path[len(old):]
        return path

    if not moved:
        return
    sys.path[:] = [reroute(entry) for entry in sys.path]
    for module in list(sys.modules.values()):
        package_path = getattr(module, "__path__", None)
        if type(package_path) is list:
            package_path[:] = [reroute(entry) for entry in package_path]
    sys.path_importer_cache.clear()


def drop_privileges(uid, gid, parent_pid, max_processes, libc):
    reroute_import_path()
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise RuntimeError("could regain root after dropping privileges")
    # A change of user clears the parent-death signal set before exec; set it again.
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    if os.getppid() != parent_pid:
        _exit(SETUP_FAILED)
    # Only now: RLIMIT_NPROC is not enforced for root, and counts the user's processes.
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))


def install_audit_hook(scratch):
    """Refuse writes outside ``scratch``, new processes, sockets, ctypes and other /proc files.

    Not a security boundary (code in this interpreter can get around it); the OS-level layers
    are. Everything the hook uses is bound here, so monkeypatching os does not change it.
    """
    realpath, join, isabs, readlink = os.path.realpath, os.path.join, os.path.isabs, os.readlink
    isdir = os.path.isdir
    fspath, fsdecode = os.fspath, os.fsdecode
    own_pid = os.getpid()
    own_proc = "/proc/%d" % own_pid
    prefix = scratch.rstrip("/") + "/"
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    write_devices = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
    processes = frozenset({
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "subprocess.Popen", "os.killpg", "os.startfile", "resource.prlimit", "pty.spawn",
    })
    blocked_imports = frozenset({"_posixsubprocess"})
    # event: (argument positions of paths that must stay inside, position of dir_fd or None)
    path_events = {
        "os.mkdir": ((0,), 2), "os.rmdir": ((0,), 1), "os.remove": ((0,), 1),
        "os.rename": ((0, 1), 2), "os.link": ((0, 1), 2), "os.symlink": ((1,), 2),
        "os.truncate": ((0,), None), "os.chmod": ((0,), 2), "os.chown": ((0,), 3),
        "os.utime": ((0,), 3), "os.chflags": ((0,), None), "os.setxattr": ((0,), None),
        "os.removexattr": ((0,), None), "shutil.rmtree": ((0,), 1), "shutil.move": ((0, 1), None),
        "shutil.copyfile": ((1,), None), "shutil.copymode": ((1,), None),
        "shutil.copystat": ((1,), None), "shutil.copytree": ((1,), None),
        "shutil.chown": ((0,), None), "shutil.make_archive": ((0,), None),
        "shutil.unpack_archive": ((1,), None),
    }

    def deny(what):
        raise PermissionError(13, "blocked by the sandbox: " + what)

    def resolve(path, dir_fd=None):
        if isinstance(path, int):
            return readlink("/proc/self/fd/%d" % path)
        path = fsdecode(fspath(path))
        if dir_fd is not None and dir_fd >= 0 and not isabs(path):
            path = join(readlink("/proc/self/fd/%d" % dir_fd), path)
        return realpath(path)

    def inside(path, dir_fd=None):
        try:
            real = resolve(path, dir_fd)
        except (OSError, TypeError, ValueError):
            return False
        return real == prefix[:-1] or real.startswith(prefix)

    def other_process(real):
        if not real.startswith("/proc/"):
            return False
        first = real[6:].split("/", 1)[0]
        return first.isdigit() and real != own_proc and not real.startswith(own_proc + "/")

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                isinstance(flags, int) and flags & write_flags
            )
            if writing and path not in write_devices and not inside(path):
                deny("writing outside the scratch dir: %r" % (path,))
            try:
                real = resolve(path)
            except (OSError, TypeError, ValueError):
                return
            if other_process(real):
                deny("reading another process's /proc files")
            # The "open" event carries no dir_fd, so os.open(name, dir_fd=fd) would escape the
            # checks above; refuse the directory fds (os.open, mode None) that it needs.
            if mode is None and not inside(path) and isdir(real):
                deny("opening directories outside the scratch dir: %r" % (path,))
        elif event in path_events:
            positions, dir_fd_at = path_events[event]
            for position in positions:
                dir_fd = args[dir_fd_at] if dir_fd_at is not None else None
                if event in ("os.rename", "os.link") and position == 1:
                    dir_fd = args[3]
                if not inside(args[position], dir_fd):
                    deny("%s outside the scratch dir: %r" % (event, args[position]))
        elif event in processes:
            deny("starting processes (%s)" % event)
        elif event == "os.kill":
            if args[0] != own_pid:
                deny("signalling other processes")
        elif event == "import":
            if args[0] in blocked_imports:
                deny("importing %s" % args[0])
        elif event.startswith("socket."):
            if not (event == "socket.__new__" and args[1] == 1):  # AF_UNIX, e.g. socketpair
                deny("network access (%s)" % event)
        elif event.startswith("ctypes."):
            deny("ctypes (%s)" % event)
        elif event == "sqlite3.connect":
            database = args[0]
            if database not in (":memory:", "", b":memory:", b"") and not inside(database):
                deny("sqlite3 databases outside the scratch dir")

    sys.addaudithook(hook)


def in_new_network_namespace(host_netns):
    try:
        return host_netns is not None and os.readlink("/proc/self/ns/net") != host_netns
    except OSError:
        return False


def flush_output():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass


def run_solution(code, namespace, report, exit_is_success):
    """Execute the model's module; whether it completed, with an "error" report if not."""
    try:
        exec(code, namespace)
    except SystemExit as exc:
        if exit_is_success and exc.code in (None, 0):
            return True
        namespace.clear()
        report("error", ("SystemExit: %r" % (exc.code,))[:300])
        return False
    except BaseException as exc:
        namespace.clear()
        report("error", describe(exc))
        try:
            traceback.print_exc(limit=20)
        except BaseException:
            pass
        return False
    return True


def test_plan(ctl):
    """The test script as (is_test, code) steps, compiled before the model's code runs."""
    tree = ast.parse(ctl["tests"], "tests.py")
    steps = []
    for stmt in tree.body:
        code = compile(ast.Module(body=[stmt], type_ignores=[]), "tests.py", "exec")
        steps.append((isinstance(stmt, ast.Assert), code))
    return steps


def run_tests(steps, ctl, namespace, report):
    """Run the test steps; a "pass"/"fail" report per test, "setup_error" if a step broke."""
    max_tests = ctl["max_tests"]
    entry_point = ctl["entry_point"]
    if entry_point is not None and entry_point not in namespace:
        report("setup_error", "entry point %r is not defined" % entry_point)
        return
    script_is_one_test = not ctl["call_check"] and not any(is_test for is_test, _ in steps)
    index = 0
    for is_test, code in steps:
        if is_test and index >= max_tests:
            return
        try:
            exec(code, namespace)
        except BaseException as exc:
            if is_test:
                report("fail", [index, describe(exc)])
            elif script_is_one_test:
                report("fail", [0, describe(exc)])
                return
            else:
                report("setup_error", describe(exc))
                return
        else:
            if is_test:
                report("pass", index)
        if is_test:
            index += 1
    if script_is_one_test:
        report("pass", 0)
        index = 1
    if ctl["call_check"] and index < max_tests:
        try:
            namespace["check"](namespace[entry_point])
        except BaseException as exc:
            report("fail", [index, describe(exc)])
        else:
            report("pass", index)


def main():
    control_path = sys.argv[1]
    with open(control_path, encoding="utf-8") as handle:
        ctl = json.load(handle)
    os.remove(control_path)
    report = Reporter(ctl["report_fd"], ctl["nonce"])
    netns = in_new_network_namespace(ctl["host_netns"])
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        if ctl["drop_to"] is not None:
            uid, gid = ctl["drop_to"]
            drop_privileges(uid, gid, ctl["parent_pid"], ctl["max_processes"], libc)
        steps = test_plan(ctl) if ctl["mode"] == "asserts" else []
        with open("solution.py", encoding="utf-8") as handle:
            source = handle.read()
        scratch = os.path.realpath(os.getcwd())
        if ctl["audit_hook"]:
            install_audit_hook(scratch)
    except BaseException:
        traceback.print_exc()
        _exit(SETUP_FAILED)
    report("layers", {"uid": os.getuid(), "netns": netns, "audit_hook": ctl["audit_hook"]})
    sys.argv = ["solution.py"]
    try:
        code = compile(source, "solution.py", "exec", dont_inherit=True)
    except BaseException as exc:
        report("syntax", describe(exc))
        _exit(3)
    del source
    if ctl["mode"] == "asserts":
        namespace = {"__name__": "solution", "__builtins__": builtins, "__file__": "solution.py"}
        ok = run_solution(code, namespace, report, exit_is_success=False)
        if ok:
            run_tests(steps, ctl, namespace, report)
    else:
        namespace = {"__name__": "__main__", "__builtins__": builtins, "__file__": "solution.py"}
        ok = run_solution(code, namespace, report, exit_is_success=True)
        if ok:
            report("done")
    flush_output()
    _exit(0 if ok else 1)


main()
'''


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
    all_or_nothing = kwargs.get("all_or_nothing", False)
    if not isinstance(all_or_nothing, bool):
        raise ValueError(f"all_or_nothing must be true or false, got {all_or_nothing!r}")
    return _Params(float(timeout_s), memory_mb, max_tests, all_or_nothing)


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


def _host_netns() -> str | None:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


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


def _preexec(rlimits: list[tuple[int, int, int]]) -> Callable[[], None]:
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
            # May fail (not root): the runner then reports that it shares our network.
            libc.unshare(_CLONE_NEWNET)

    return setup


def _child_env(scratch: str) -> dict[str, str]:
    """A fresh environment: nothing of ours (API keys!) is inherited."""
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


def _write_file(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    # errors="replace": a lone surrogate in a response must not make the runner fail to read it.
    with open(fd, "w", encoding="utf-8", errors="replace") as handle:
        handle.write(text)


def _prepare(top: str, job: _Job, identity: tuple[int, int] | None) -> tuple[str, str, str]:
    """Lay out one sandbox; ``(scratch dir, private io dir, runner path)``.

    ``top`` (0711, ours) holds the runner and two dirs: ``work``, the scratch dir owned by the
    user the code runs as, and ``io`` (0700, ours) with stdin/stdout/stderr and the report, so
    the code can reach its output only through the file descriptors it was given.
    """
    os.chmod(top, 0o711)
    scratch, io_dir = os.path.join(top, "work"), os.path.join(top, "io")
    os.mkdir(io_dir, 0o700)
    for path in (scratch, os.path.join(scratch, "home"), os.path.join(scratch, "tmp")):
        os.mkdir(path, 0o700)
        if identity is not None:
            os.chown(path, *identity)
    runner = os.path.join(top, "runner.py")
    _write_file(runner, _RUNNER_SOURCE, 0o644)
    _write_file(os.path.join(scratch, "solution.py"), job.code, 0o644)
    _write_file(os.path.join(io_dir, "stdin"), job.stdin, 0o600)
    return scratch, io_dir, runner


def _control(job: _Job, limits: _Limits, report_fd: int, nonce: str) -> dict[str, Any]:
    suite = job.suite
    return {
        "mode": job.mode,
        "report_fd": report_fd,
        "nonce": nonce,
        "host_netns": _host_netns(),
        "drop_to": _unprivileged_identity(),
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


def _run_sandboxed(job: _Job, limits: _Limits) -> _Outcome:
    """Run ``job`` in a fresh sandbox and return what happened; the sandbox is then deleted.

    Raises RuntimeError if the sandbox itself could not start (not the model's fault, so
    the pipeline should record an error rather than a 0).
    """
    identity = _unprivileged_identity()
    top = tempfile.mkdtemp(prefix="rewardflow-sandbox-", dir=_sandbox_base())
    process = None
    try:
        scratch, io_dir, runner = _prepare(top, job, identity)
        nonce = secrets.token_hex(16)
        paths = {name: os.path.join(io_dir, name) for name in ("stdout", "stderr", "report")}
        with contextlib.ExitStack() as files:
            stdin = files.enter_context(open(os.path.join(io_dir, "stdin"), "rb"))
            stdout = files.enter_context(open(paths["stdout"], "wb"))
            stderr = files.enter_context(open(paths["stderr"], "wb"))
            report_fd = os.open(paths["report"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            files.callback(os.close, report_fd)
            control = os.path.join(scratch, "control.json")
            _write_file(control, json.dumps(_control(job, limits, report_fd, nonce)), 0o600)
            process = subprocess.Popen(
                [sys.executable, "-I", "-B", "-X", "utf8", runner, control],
                stdin=stdin if job.mode == "io" else subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=scratch,
                env=_child_env(scratch),
                close_fds=True,
                pass_fds=(report_fd,),
                start_new_session=True,
                preexec_fn=_preexec(_rlimits(limits)),
            )
        timed_out = _wait(process, limits.timeout_s)
        _kill(process)
        cap = max(_MAX_OUTPUT_BYTES, job.output_cap)
        stdout_bytes, truncated = _read_capped(paths["stdout"], cap)
        outcome = _Outcome(
            timed_out=timed_out,
            returncode=process.returncode,
            stdout=stdout_bytes.decode("utf-8", "replace"),
            stdout_truncated=truncated,
            stderr_tail=_read_tail(paths["stderr"], _STDERR_TAIL_BYTES).decode("utf-8", "replace"),
        )
        _parse_reports(_read_capped(paths["report"], _MAX_REPORT_BYTES)[0], nonce, outcome)
    finally:
        if process is not None and process.returncode is None:
            _kill(process)
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


def _quote(text: str) -> str:
    if len(text) > _MAX_QUOTE_CHARS:
        text = text[: _MAX_QUOTE_CHARS - 3] + "..."
    return repr(text)


def _normalise_output(text: str) -> list[str]:
    """Lines of an output without trailing whitespace, and without blank lines at either end."""
    return [line.rstrip() for line in text.strip().splitlines()]


def _output_mismatch(expected: str, got: str) -> str | None:
    """Why ``got`` is not ``expected`` (``None`` if it is), naming the first differing line."""
    want, have = _normalise_output(expected), _normalise_output(got)
    if want == have:
        return None
    if len(want) <= 1 and len(have) <= 1:
        return f"expected {_quote(chr(10).join(want))}, got {_quote(chr(10).join(have))}"
    line = next(i for i in range(max(len(want), len(have))) if want[i : i + 1] != have[i : i + 1])
    expected_line = _quote(want[line]) if line < len(want) else "end of output"
    got_line = _quote(have[line]) if line < len(have) else "end of output"
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
            verdict.failure = f"test {index + 1} ({_quote(label)}): {failure}"
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


def _get(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _last_assistant_text(messages: Any) -> str | None:
    """The last message's text if it is the assistant's (the response being scored)."""
    if not isinstance(messages, list | tuple) or not messages:
        return None
    last = messages[-1]
    if _get(last, "role") != "assistant":
        return None
    content = _get(last, "content")
    if isinstance(content, list):  # OpenAI-style content parts
        parts = (part if isinstance(part, str) else _get(part, "text") for part in content)
        return "\n".join(part for part in parts if isinstance(part, str))
    return content if isinstance(content, str) else ""


def code_execution(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Score the Python code in the last (assistant) message by the fraction of tests it passes.

    ``ground_truth`` (a JSON string, or the parsed list/dict) is either a list of
    ``{"input": stdin text, "output": expected stdout}`` cases (outputs compared without
    leading/trailing blank lines and trailing spaces per line; APPS-style
    ``{"inputs": [...], "outputs": [...]}`` also works), or ``{"tests": "python source with
    asserts", "entry_point": optional name}``, run after the response's code, where each
    top-level ``assert`` is a test (see :class:`_AssertSuite` for scripts without one).

    Params: ``timeout_s`` (5; wall clock per case, or for the whole assert script, interpreter
    start included), ``memory_mb`` (512; address space), ``max_tests`` (50; later cases are
    not run), ``all_or_nothing`` (False; score 1 only if every test passes). Other kwargs are
    ignored. The code runs in the sandbox described in this module's docstring.

    Metrics: ``compiled`` (the code is valid Python) and ``passed_fraction`` (also reported
    when ``all_or_nothing`` makes the score 0). Anything the response does (no code, syntax
    errors, crashes, time-outs, memory bombs, sandbox violations) is a score of 0 for the
    affected tests with a reason, never an exception.

    Raises:
        ValueError: bad params, or a ground truth that is missing or not in a known shape.
        RuntimeError: the sandbox itself could not start (the machine, not the response).
    """
    params = _params(kwargs)
    suite = _parse_ground_truth(ground_truth)
    if isinstance(suite, _AssertSuite):
        total = min(len(suite.labels), params.max_tests)
        available = len(suite.labels)
    else:
        total = min(len(suite), params.max_tests)
        available = len(suite)
    note = f" (first {total} of {available})" if available > total else ""

    response = _last_assistant_text(messages)
    code = extract_code(response) if response is not None else None
    if code is None:
        why = "no assistant message" if response is None else "no Python code in the response"
        verdict = _Verdict(0, total, False, why, failure=why, note=note)
        return _reward(verdict, params.all_or_nothing)

    limits = _Limits(params.timeout_s, params.memory_mb)
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

    network_namespace: bool
    user: str
    audit_hook: bool
    rlimits: bool = True


def sandbox_layers() -> SandboxLayers:
    """Run a no-op in the sandbox and report the layers the child found itself in.

    Useful to check a deployment: ``network_namespace=False`` means the socket ban of the
    audit hook is the only thing between model code and the network.
    """
    outcome = _run_sandboxed(_Job("pass\n", "io"), _Limits(DEFAULT_TIMEOUT_S, DEFAULT_MEMORY_MB))
    layers = outcome.layers or {}
    uid = layers.get("uid", -1)
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return SandboxLayers(
        network_namespace=bool(layers.get("netns")),
        user=user,
        audit_hook=bool(layers.get("audit_hook")),
    )
