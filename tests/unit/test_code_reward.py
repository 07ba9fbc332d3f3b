"""Tests for the code-execution reward: grading, and the sandbox holding against hostile code.

The adversarial tests check the effect (the file outside the scratch dir does not exist, the
listening socket got no connection, the parent's secret is not in the child's environment),
not just the score. Some tests turn the audit hook off to show that the OS-level layer
(bubblewrap; as root also user ``nobody``) holds on its own; tests with ``without_bubblewrap``
check the refusal and the weaker in-process isolation. Every test also checks that its
sandbox directories were deleted (the ``sandbox_base`` fixture). Escape attempts by a hostile
response, as root and as an unprivileged user, are in ``test_code_sandbox_escapes.py``.
"""

from __future__ import annotations

import json
import os
import pwd
import resource
import shutil
import socket
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import bubblewrap_or_skip

from rewardflow.rewards import code as code_module
from rewardflow.rewards import code_isolation
from rewardflow.rewards.code import (
    SandboxUnavailableError,
    code_execution,
    extract_code,
    sandbox_layers,
)
from rewardflow.rewards.result import RewardResult, to_reward_result

AS_ROOT = os.geteuid() == 0
NOBODY_UID = pwd.getpwnam("nobody").pw_uid
requires_root = pytest.mark.skipif(not AS_ROOT, reason="this layer only exists when run as root")

ADD_CASES = [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4\n", "output": "6\n"}]
ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def conversation(response: Any) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Write a Python program."},
        {"role": "user", "content": "Add two numbers."},
        {"role": "assistant", "content": response},
    ]


def fenced(code: str) -> str:
    code = textwrap.dedent(code)
    return f"Here is my solution:\n\n```python\n{code.rstrip(chr(10))}\n```\n"


def run(code: str, ground_truth: Any = None, **params: Any) -> RewardResult:
    params.setdefault("timeout_s", 2)
    if ground_truth is None:
        ground_truth = [{"input": "", "output": "ok"}]
    return code_execution(conversation(fenced(code)), ground_truth, **params)


def run_raw(code: str, *, audit_hook: bool = True, timeout_s: float = 2, weak: bool = False) -> Any:
    """The sandbox without the reward around it, optionally without the audit hook or bwrap."""
    job = code_module._Job(textwrap.dedent(code), "io")
    bubblewrap = None if weak else code_module._isolation(False)
    limits = code_module._Limits(timeout_s, 256, audit_hook, bubblewrap)
    return code_module._run_sandboxed(job, limits)


@pytest.fixture(autouse=True)
def needs_bubblewrap(request: pytest.FixtureRequest) -> None:
    """Every test here runs code in bubblewrap, except those that fake its absence."""
    if "without_bubblewrap" not in request.fixturenames:
        bubblewrap_or_skip()


@pytest.fixture
def without_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where bwrap is missing (only the lookup is faked; the rest runs for real)."""
    monkeypatch.setattr(
        code_module, "bubblewrap", lambda: (None, "bubblewrap (bwrap) is not installed")
    )


@pytest.fixture(autouse=True)
def sandbox_base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Put every sandbox in a fresh dir, and check that nothing is left in it afterwards.

    Under /tmp rather than pytest's tmp_path, which user nobody cannot reach (0700).
    """
    base = Path(tempfile.mkdtemp(prefix="rewardflow-test-sandboxes-", dir="/tmp"))
    base.chmod(0o711)
    monkeypatch.setattr(code_module, "_sandbox_base", lambda: str(base))
    yield base
    left = os.listdir(base)
    shutil.rmtree(base, ignore_errors=True)
    assert left == [], f"sandbox dirs were not removed: {left}"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A world-writable dir outside the scratch dir: file permissions alone do not protect it."""
    path = Path(tempfile.mkdtemp(prefix="rewardflow-test-shared-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- extracting the code ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("```python\nprint(1)\n```", "print(1)\n"),
        ("```python\nprint(1)\n```\nFixed:\n```python\nprint(2)\n```", "print(2)\n"),
        ("```py\nprint(1)\n```\n```\nprint(2)\n```", "print(1)\n"),
        ("```\nprint(3)\n```\nOutput:\n```text\n3\n```", "print(3)\n"),
        ("```text\n3\n```", "3\n"),
        ("Code:\n```python\nprint(4)\n", "print(4)\n"),  # cut off by max_tokens
        ("import sys\nprint(sys.argv)", "import sys\nprint(sys.argv)"),
        ("n = int(input())\nprint(n * 2)", "n = int(input())\nprint(n * 2)"),
        ("The answer is five.", None),
        ("", None),
    ],
)
def test_extract_code(response: str, expected: str | None) -> None:
    assert extract_code(response) == expected


# --- grading ---------------------------------------------------------------------------------


def test_correct_stdin_stdout_code_passes() -> None:
    result = run(ADD, ADD_CASES)
    assert result.score == 1.0
    assert result.reason == "2/2 tests passed"
    assert result.metrics["compiled"].score == 1.0
    assert result.metrics["passed_fraction"].score == 1.0
    assert to_reward_result(result) == result


def test_wrong_answer_gets_partial_credit_and_names_the_first_failure() -> None:
    code = "a, b = map(int, input().split())\nprint(a + b if a < 5 else a + b + 1)\n"
    result = run(code, [*ADD_CASES, {"input": "1 1", "output": "2"}])
    assert result.score == pytest.approx(2 / 3)
    assert result.reason == "2/3 tests passed; test 2: expected '6', got '7'"


def test_output_comparison_ignores_trailing_whitespace_and_names_the_differing_line() -> None:
    assert run("print('1  ')\nprint('2')\nprint()", [{"input": "", "output": "1\n2"}]).score == 1
    result = run("print(1)\nprint(3)", [{"input": "", "output": "1\n2\n"}])
    assert result.reason == "0/1 tests passed; test 1: line 2: expected '2', got '3'"


def test_all_or_nothing_still_reports_the_passed_fraction() -> None:
    code = "a, b = map(int, input().split())\nprint(5)\n"
    result = run(code, ADD_CASES, all_or_nothing=True)
    assert result.score == 0.0
    assert result.metrics["passed_fraction"].score == 0.5
    assert run(ADD, ADD_CASES, all_or_nothing=True).score == 1.0


def test_syntax_error_scores_zero_with_compiled_zero() -> None:
    result = run("def add(a, b)\n    return a + b\n", ADD_CASES)
    assert result.score == 0.0
    assert result.metrics["compiled"].score == 0.0
    assert result.reason.startswith("0/2 tests passed; syntax error: ")
    assert "line 1" in result.reason


def test_runtime_error_is_the_reason() -> None:
    result = run("print(1 // 0)")
    assert result.score == 0.0
    assert "ZeroDivisionError: integer division or modulo by zero" in result.reason


def test_a_response_without_code_or_message_scores_zero() -> None:
    assert code_execution(conversation("I don't know."), ADD_CASES).reason == (
        "0/2 tests passed; no Python code in the response"
    )
    for messages in (None, [], [{"role": "user", "content": "hi"}]):
        result = code_execution(messages, ADD_CASES)
        assert (result.score, result.metrics["compiled"].score) == (0.0, 0.0)
    parts = [{"type": "text", "text": fenced(ADD)}]
    assert code_execution(conversation(parts), ADD_CASES).score == 1.0
    assert code_execution(conversation(None), ADD_CASES).score == 0.0


def test_the_response_is_the_last_assistant_message_even_with_a_turn_after_it() -> None:
    """As for every built-in reward (``_messages.last_assistant_text``): a conversation that
    goes on after the model's answer (a tool result, a user's follow-up) is still graded on
    that answer, not scored 0 as "no assistant message"."""
    for after in ({"role": "tool", "content": "ran"}, {"role": "user", "content": "thanks"}):
        result = code_execution([*conversation(fenced(ADD)), after], ADD_CASES)
        assert (result.score, result.reason) == (1.0, "2/2 tests passed")


def test_assert_form_counts_each_top_level_assert() -> None:
    tests = "assert add(1, 2) == 3\nassert add(2, 2) == 5\nassert add(0, 0) == 0\n"
    result = run("def add(a, b):\n    return a + b\n", {"tests": tests})
    assert result.score == pytest.approx(2 / 3)
    assert result.reason == "2/3 tests passed; test 2 ('assert add(2, 2) == 5'): assertion failed"


def test_humaneval_check_with_entry_point_and_json_ground_truth() -> None:
    tests = "METADATA = {}\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
    truth = json.dumps({"tests": tests, "entry_point": "add"})
    assert run("def add(a, b):\n    return a + b\n", truth).reason == "1/1 tests passed"
    wrong_name = run("def plus(a, b):\n    return a + b\n", truth)
    assert wrong_name.score == 0.0
    assert "entry point 'add' is not defined" in wrong_name.reason


def test_apps_style_ground_truth_and_max_tests() -> None:
    truth = json.dumps({"inputs": ["1 1\n", "2 2\n", "3 3\n"], "outputs": ["2\n", "4\n", "6\n"]})
    assert run(ADD, truth).reason == "3/3 tests passed"
    assert run(ADD, truth, max_tests=2).reason == "2/2 tests passed (first 2 of 3)"


def test_standard_library_imports_and_threads_work_in_the_sandbox() -> None:
    code = """
    import decimal, fractions, heapq, statistics
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        total = sum(pool.map(lambda x: x * x, range(10)))
    print(total, heapq.nsmallest(1, [3, 1]), fractions.Fraction(1, 2), 'héllo')
    """
    assert run(code, [{"input": "", "output": "285 [1] 1/2 héllo"}]).score == 1.0


def test_code_may_use_its_scratch_dir_home_and_tmpdir() -> None:
    code = """
    import os, tempfile
    cwd = os.getcwd()
    with open("data.txt", "w") as f:
        f.write("hi")
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write("x")
    os.mkdir("sub")
    os.rename("data.txt", "sub/data.txt")
    print(os.environ["HOME"].startswith(cwd), f.name.startswith(cwd), open("sub/data.txt").read())
    """
    assert run(code, [{"input": "", "output": "True True hi"}]).score == 1.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": "5"}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"memory_mb": 10}, "memory_mb"),
        ({"memory_mb": 256.5}, "memory_mb"),
        ({"max_tests": 0}, "max_tests"),
        ({"max_tests": True}, "max_tests"),
        ({"all_or_nothing": "yes"}, "all_or_nothing"),
        ({"allow_weak_isolation": "yes"}, "allow_weak_isolation"),
    ],
)
def test_bad_params_raise(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        code_execution(conversation(fenced(ADD)), ADD_CASES, **params)


@pytest.mark.parametrize(
    "ground_truth",
    [
        None,
        "",
        "not json",
        "[]",
        42,
        [{"input": "1"}],
        [{"input": 1.5j, "output": "1"}],
        {"tests": "assert (", "entry_point": None},
        {"tests": "assert f(1)", "entry_point": "1bad"},
        {"inputs": ["1"], "outputs": []},
        {"inputs": ["1"], "outputs": ["1"], "fn_name": "f"},
        {"something": "else"},
    ],
)
def test_unusable_ground_truth_raises(ground_truth: Any) -> None:
    with pytest.raises(ValueError):
        code_execution(conversation(fenced(ADD)), ground_truth)


# --- the sandbox: layers and limits ----------------------------------------------------------


def test_layers_in_effect() -> None:
    layers = sandbox_layers()
    assert layers.os_sandbox == "bubblewrap"
    assert layers.network_namespace and layers.pid_namespace and layers.audit_hook
    assert layers.user == ("nobody" if AS_ROOT else pwd.getpwuid(os.getuid()).pw_name)


@requires_root
def test_weak_layers_in_effect_as_root(without_bubblewrap: None) -> None:
    layers = sandbox_layers(allow_weak_isolation=True)
    assert layers.os_sandbox is None and not layers.pid_namespace
    assert layers.user == "nobody"
    assert layers.audit_hook
    assert layers.network_namespace, "unshare(CLONE_NEWNET) failed although we are root"


def test_without_bubblewrap_the_reward_refuses_with_what_to_install(
    without_bubblewrap: None,
) -> None:
    with pytest.raises(SandboxUnavailableError) as refused:
        run(ADD, ADD_CASES)
    message = str(refused.value)
    assert "bubblewrap (bwrap) is not installed" in message
    assert "apt-get install bubblewrap" in message
    assert "allow_weak_isolation: true" in message
    with pytest.raises(SandboxUnavailableError):
        sandbox_layers()


def test_a_bwrap_that_cannot_build_its_namespaces_is_refused_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a kernel without unprivileged user namespaces: bwrap runs, but fails."""
    fake = tmp_path / "bwrap"
    fake.write_text(
        '#!/bin/sh\n[ "$1" = --help ] && { echo "--perms --size"; exit 0; }\n'
        'echo "bwrap: setting up uid map: Permission denied" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    code_isolation.bubblewrap.cache_clear()
    try:
        found, why = code_isolation.bubblewrap()
    finally:
        code_isolation.bubblewrap.cache_clear()
    assert found is None
    assert "bwrap: setting up uid map: Permission denied" in why
    hint = code_isolation.ROOT_HINT if AS_ROOT else code_isolation.USERNS_HINT
    assert hint in why


def test_a_python_installed_into_the_home_dir_is_not_shown_to_the_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Binding such an installation read-only would expose the whole home dir."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    code_isolation._python_dirs.cache_clear()
    try:
        with pytest.raises(SandboxUnavailableError, match="contains your home"):
            code_isolation._python_dirs()
    finally:
        code_isolation._python_dirs.cache_clear()


def test_allow_weak_isolation_runs_with_the_in_process_layers(without_bubblewrap: None) -> None:
    assert run(ADD, ADD_CASES, allow_weak_isolation=True).score == 1.0


def test_infinite_loop_is_stopped_by_the_timeout() -> None:
    # How soon after the timeout is measured by bench/unit_timings.py.
    result = run("while True:\n    pass\n", timeout_s=1)
    assert result.score == 0.0
    assert result.reason == "0/1 tests passed; test 1: timed out after 1 s"


def test_sleeping_is_stopped_by_the_wall_clock_limit() -> None:
    result = run("import time\ntime.sleep(60)\n", timeout_s=0.5)
    assert "timed out after 0.5 s" in result.reason


@pytest.mark.parametrize(
    "code",
    ["x = bytearray(10**10)\n", "x = []\nwhile True:\n    x.append(bytearray(10**6))\n"],
    ids=["one-huge-allocation", "growing-list"],
)
def test_memory_bombs_hit_the_memory_limit(code: str) -> None:
    result = run(code, memory_mb=128)
    assert result.score == 0.0
    assert result.reason.endswith("test 1: killed: memory limit (128 MB)")


def test_print_bomb_is_capped_and_does_not_fill_our_memory() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    endless = run("while True:\n    print('x' * 10000)\n")
    assert endless.score == 0.0
    # Killed by the file size limit, not the timeout: the reason would say "timed out".
    assert "output or file size limit (10 MB)" in endless.reason
    assert "timed out" not in endless.reason
    five_mb = run("import sys\nsys.stdout.write('y' * 5_000_000)\n")
    assert "output exceeded 1024 KB" in five_mb.reason
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 30 * 1024


def test_environment_secrets_do_not_reach_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-do-not-leak")
    code = """
    import os
    print(os.environ.get("OPENAI_API_KEY", "absent"))
    try:  # unreadable after the switch to nobody (the process is no longer dumpable)
        print("sk-test" in open("/proc/self/environ").read())
    except OSError:
        print(False)
    try:
        open(f"/proc/{os.getppid()}/environ").read()
        print("parent environment readable")
    except OSError:
        print("blocked")
    """
    result = run(code, [{"input": "", "output": "absent\nFalse\nblocked"}])
    assert result.score == 1.0, result.reason


def test_writing_outside_the_scratch_dir_is_blocked(tmp_path: Path, shared_dir: Path) -> None:
    for target in (tmp_path / "pwned.txt", shared_dir / "pwned.txt"):
        result = run(f"open({str(target)!r}, 'w').write('x')\nprint('ok')\n")
        assert result.score == 0.0
        assert "blocked by the sandbox: writing outside the scratch dir" in result.reason
        assert not target.exists()


def test_deleting_and_symlink_tricks_outside_the_scratch_dir_are_blocked(shared_dir: Path) -> None:
    victim = shared_dir / "victim.txt"
    victim.write_text("keep me")
    assert run(f"import os\nos.remove({str(victim)!r})\nprint('ok')\n").score == 0.0
    via_link = f"import os\nos.symlink({str(shared_dir)!r}, 'link')\nopen('link/new', 'w')\n"
    assert "blocked by the sandbox" in run(via_link + "print('ok')\n").reason
    assert [p.name for p in shared_dir.iterdir()] == ["victim.txt"]
    assert victim.read_text() == "keep me"


def test_dir_fd_relative_writes_outside_the_scratch_dir_are_blocked(
    shared_dir: Path, without_bubblewrap: None
) -> None:
    """The audit hook's own check: in bubblewrap the directory is not even there."""
    code = f"""
    import os
    directory = os.open({str(shared_dir)!r}, os.O_RDONLY)
    os.open("pwned", os.O_WRONLY | os.O_CREAT, dir_fd=directory)
    print("ok")
    """
    result = run(code, allow_weak_isolation=True)
    assert "blocked by the sandbox: opening directories outside the scratch dir" in result.reason
    assert list(shared_dir.iterdir()) == []
    inside = "import os, shutil\nos.makedirs('a/b')\nshutil.rmtree('a')\nprint('ok')\n"
    assert run(inside, allow_weak_isolation=True).score == 1.0  # rmtree's dir_fd calls work


@requires_root
@pytest.mark.parametrize(
    ("weak", "error"),
    [(False, "FileNotFoundError"), (True, "PermissionError: [Errno 13] Permission denied")],
    ids=["bubblewrap", "weak"],
)
def test_without_the_audit_hook_user_nobody_still_cannot_write_system_files(
    weak: bool, error: str
) -> None:
    protected = Path(tempfile.mkdtemp(prefix="rewardflow-test-protected-", dir="/tmp"))
    try:
        protected.chmod(0o755)  # reachable by nobody, writable only by root
        target = protected / "pwned.txt"
        code = f"open({str(target)!r}, 'w').write('x')\n"
        outcome = run_raw(code, audit_hook=False, weak=weak)
        assert outcome.error.startswith(error)
        layers = {"uid": NOBODY_UID, "netns": True, "pidns": not weak, "audit_hook": False}
        assert outcome.layers == layers
        assert not target.exists()
    finally:
        shutil.rmtree(protected)


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.3)
    return server


def _connect_code(port: int) -> str:
    return (
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('ok')\n"
    )


def test_network_access_is_blocked_even_to_localhost() -> None:
    with _listener() as server:
        result = run(_connect_code(server.getsockname()[1]))
        assert result.score == 0.0
        assert "blocked by the sandbox: network access" in result.reason
        with pytest.raises(TimeoutError):
            server.accept()


def test_without_the_audit_hook_the_network_namespace_still_has_no_network() -> None:
    with _listener() as server:
        outcome = run_raw(_connect_code(server.getsockname()[1]), audit_hook=False)
        # bubblewrap's namespace has a loopback of its own, with no listener on it
        assert "Connection refused" in outcome.error or "Network is unreachable" in outcome.error
        with pytest.raises(TimeoutError):
            server.accept()


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.system('touch {target}')\n",
        "import subprocess\nsubprocess.run(['touch', '{target}'])\n",
        "import os\nos.execv('/usr/bin/touch', ['touch', '{target}'])\n",
        "import ctypes\nctypes.CDLL(None).system(b'touch {target}')\n",
        "import _posixsubprocess\n",
    ],
    ids=["os.system", "subprocess", "exec", "ctypes", "_posixsubprocess"],
)
def test_starting_programs_is_blocked(code: str, shared_dir: Path) -> None:
    target = shared_dir / "touched"
    result = run(code.format(target=target) + "print('ok')\n")
    assert result.score == 0.0
    assert "blocked by the sandbox" in result.reason
    assert not target.exists()


def test_fork_is_blocked_by_the_audit_hook() -> None:
    result = run("import os\nfor _ in range(50):\n    os.fork()\nprint('ok')\n")
    assert result.score == 0.0
    assert "blocked by the sandbox: starting processes (os.fork)" in result.reason


def _nobody_processes() -> set[int]:
    """PIDs of the live processes of nobody, the user sandboxes run as, machine-wide."""
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == NOBODY_UID:
                    found.add(int(name))
            except OSError:
                continue
    return found


@requires_root
def test_without_the_audit_hook_rlimit_nproc_stops_a_fork_loop() -> None:
    before = _nobody_processes()
    code = """
    import os, time
    forked = 0
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        forked += 1
    print(forked)
    """
    outcome = run_raw(code, audit_hook=False)
    assert 0 <= int(outcome.stdout) < code_module._MAX_PROCESSES
    # The killed children are reaped by init; ones still alive would sleep for 30 s. Only the
    # processes that appeared during the run are watched: sandboxes that other tests (other
    # xdist workers) start and end meanwhile come and go within a few seconds, so comparing
    # machine-wide counts raced with them.
    appeared = _nobody_processes() - before
    deadline = time.monotonic() + 25
    while appeared and time.monotonic() < deadline:
        time.sleep(0.05)
        appeared &= _nobody_processes()
    assert not appeared


def test_exiting_before_the_asserts_or_printing_fake_verdicts_does_not_pass() -> None:
    tests = {"tests": "assert add(1, 2) == 3\n"}
    early_exit = run("import os\ndef add(a, b):\n    return 0\nos._exit(0)\n", tests)
    assert early_exit.reason == (
        "0/1 tests passed; test 1 ('assert add(1, 2) == 3'): the code exited before this test ran"
    )
    fake = 'import json\nprint(json.dumps(["x", "pass", 0]))\ndef add(a, b):\n    return 0\n'
    assert run(fake, tests).score == 0.0


def test_a_failure_in_one_case_does_not_affect_the_next() -> None:
    code = "n = int(input())\nwhile n == 1:\n    pass\nprint(n)\n"
    cases = [{"input": "1", "output": "1"}, {"input": "2", "output": "2"}]
    result = run(code, cases, timeout_s=0.5)
    assert result.reason == "1/2 tests passed; test 1: timed out after 0.5 s"
