"""Escape attempts against the code reward's sandbox, as root and as an unprivileged user.

Each test scores one hostile response through ``code_execution`` in a separate driver process
(the way a scoring worker runs it), once as root and once as an unprivileged uid
(``setpriv``), with an API key in the driver's environment. The hostile code first disables
the in-process audit hook by rewriting its closure through ``gc`` (the hook is a convenience,
not a boundary), checks that it is really off, and then tries the escape; the test checks the
effect (the file, the listener, the surviving process), not just the score.

The unprivileged driver needs a Python that uid ``UNPRIVILEGED_UID`` can run: the test's own
if it is reachable, else the system's ``/usr/bin/python3`` (pyenv under a 0700 ``/root`` is
not). It imports a copy of ``rewardflow/`` so that the checkout's permissions do not matter.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import bubblewrap_or_skip

REPO = Path(__file__).resolve().parents[2]
AS_ROOT = os.geteuid() == 0
# A uid and gid with no passwd entry: nothing else on the machine runs as it, and the sandbox
# itself never picks it (as root the sandbox runs as nobody).
UNPRIVILEGED_UID = 64123
KEY_PREFIX = "sk-escape-test-"
SYSTEM_PYTHON = "/usr/bin/python3"
MAX_PROCESSES = 64  # rewardflow.rewards.code._MAX_PROCESSES

# Rewrites the audit hook's closure so that it refuses nothing, then proves it: the hook
# refuses to create an AF_INET socket, the OS does not (even in an empty network namespace).
DISABLE_AUDIT_HOOK = """
import gc, socket, types
for obj in gc.get_objects():
    if isinstance(obj, types.FunctionType) and obj.__name__ == "hook" and obj.__closure__:
        cells = dict(zip(obj.__code__.co_freevars, obj.__closure__))
        if "deny" in cells:
            cells["deny"].cell_contents = lambda what: None
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
"""

DRIVER = """
import json, sys
from rewardflow.rewards import code as code_module

code = open(sys.argv[1], encoding="utf-8").read()
params = json.loads(sys.argv[2])
if params.get("allow_weak_isolation"):  # as on a machine without bubblewrap
    code_module.bubblewrap = lambda: (None, "bubblewrap is not installed (test)")
code_execution = code_module.code_execution
messages = [{"role": "assistant", "content": "```python\\n" + code + "\\n```"}]
result = code_execution(messages, [{"input": "", "output": "LEAK"}], **params)
print(json.dumps({"score": result.score, "reason": result.reason}))
"""


@dataclass
class World:
    """A user's world: a home with a 0600 secret, a results dir, and a driver to score with."""

    root: Path
    home: Path
    secret: Path
    results: Path
    key: str
    uid: int
    python: str

    def score(self, code: str, **params: object) -> dict[str, object]:
        """Score ``code`` (after the audit-hook disabler) in a driver process as ``uid``."""
        params.setdefault("timeout_s", 5)
        source = self.root / f"code-{secrets.token_hex(4)}.py"
        source.write_text(DISABLE_AUDIT_HOOK + textwrap.dedent(code))
        source.chmod(0o644)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(self.root / "pkg"),
            "OPENAI_API_KEY": self.key,
        }
        command = [self.python, str(self.root / "driver.py"), str(source), json.dumps(params)]
        if self.uid != os.geteuid():
            command = [
                "setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.uid}",
                "--clear-groups",
                *command,
            ]
        done = subprocess.run(
            command, env=env, cwd=self.home, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"the driver failed: {done.stderr[-2000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])


def _python_for(uid: int) -> str | None:
    """An interpreter (3.11+) that ``uid`` can run, or ``None``."""
    for python in (sys.executable, SYSTEM_PYTHON):
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", python]
        # It must also be able to start itself again, as the code reward does.
        check = (
            "import subprocess, sys; sys.exit(sys.version_info < (3, 11) or "
            "subprocess.run([sys.executable, '-c', 'pass']).returncode)"
        )
        try:
            done = subprocess.run([*command, "-c", check], capture_output=True, timeout=30)
        except OSError:
            continue
        if done.returncode == 0:
            return python
    return None


@pytest.fixture(params=["root", "unprivileged"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    bubblewrap_or_skip()
    if request.param == "root":
        if not AS_ROOT:
            pytest.skip("the root case needs the tests to run as root")
        uid, python = 0, sys.executable
    elif AS_ROOT:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv is missing: apt-get install util-linux")
        uid = UNPRIVILEGED_UID
        found = _python_for(uid)
        if found is None:
            pytest.skip(f"no Python 3.11+ that uid {uid} can run: apt-get install python3")
        python = found
    else:  # already an ordinary user
        uid, python = os.geteuid(), sys.executable
    root = Path(tempfile.mkdtemp(prefix="rewardflow-escape-", dir="/tmp"))
    try:
        root.chmod(0o755)
        shutil.copytree(
            REPO / "rewardflow", root / "pkg" / "rewardflow", ignore=shutil.ignore_patterns("*.pyc")
        )
        (root / "driver.py").write_text(DRIVER)
        home, results = root / "home", root / "results"
        home.mkdir(mode=0o700)
        results.mkdir(mode=0o755)
        secret = home / "secret.txt"
        secret.write_text("the user's secret\n")
        secret.chmod(0o600)
        for path in (home, results, secret):
            os.chown(path, uid, uid)
        for directory, _, files in os.walk(root / "pkg"):
            os.chmod(directory, 0o755)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o644)
        key = KEY_PREFIX + secrets.token_hex(8)
        yield World(root, home, secret, results, key, uid, python)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _assert_blocked(result: dict[str, object]) -> None:
    """The code ran with the hook disabled, tried, and got nothing (it printed 'safe: ...')."""
    assert result["score"] == 0.0, result["reason"]
    assert "got 'safe: " in str(result["reason"]).replace('"', "'"), result["reason"]


def test_the_api_key_is_not_in_the_environment(world: World) -> None:
    result = world.score(f"""
    import os
    print("LEAK" if {KEY_PREFIX!r} in repr(dict(os.environ)) else "safe: not in os.environ")
    """)
    _assert_blocked(result)


def test_the_api_key_cannot_be_read_from_the_parents_proc_environ(world: World) -> None:
    result = world.score(f"""
    import os
    found, errors = [], set()
    for pid in [os.getppid()] + [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            with open(f"/proc/{{pid}}/environ", "rb") as handle:
                if {KEY_PREFIX!r}.encode() in handle.read():
                    found.append(pid)
        except OSError as error:
            errors.add(type(error).__name__)
    print("LEAK" if found else f"safe: {{sorted(errors)}}")
    """)
    _assert_blocked(result)


def test_the_users_0600_files_cannot_be_read(world: World) -> None:
    result = world.score(f"""
    try:
        print("LEAK" if "secret" in open({str(world.secret)!r}).read() else "safe: empty")
    except OSError as error:
        print(f"safe: {{type(error).__name__}}")
    """)
    _assert_blocked(result)


def test_the_results_dir_cannot_be_written(world: World) -> None:
    target = world.results / "pwned.txt"
    result = world.score(f"""
    try:
        open({str(target)!r}, "w").write("x")
        print("LEAK")
    except OSError as error:
        print(f"safe: {{type(error).__name__}}")
    """)
    _assert_blocked(result)
    assert not target.exists()


def test_a_listener_on_127_0_0_1_cannot_be_reached(world: World) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.3)
        result = world.score(f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {server.getsockname()[1]}), timeout=2)
            print("LEAK")
        except OSError as error:
            print(f"safe: {{type(error).__name__}}")
        """)
        _assert_blocked(result)
        with pytest.raises(TimeoutError):
            server.accept()


def _processes_with(marker: str) -> list[int]:
    """Host PIDs of live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(name))
    return found


@pytest.mark.parametrize("ending", ["exits", "times out"])
def test_a_setsid_grandchild_dies_with_the_sample(world: World, ending: str) -> None:
    marker = "rewardflow-escape-" + secrets.token_hex(8)
    result = world.score(
        f"""
    import subprocess, time
    subprocess.Popen(
        ["/bin/sh", "-c", "sleep 60; : {marker}"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    print("safe: started", flush=True)
    if {ending == "times out"}:
        time.sleep(60)
    """,
        timeout_s=2,
    )
    assert "safe: started" in str(result["reason"]) or "timed out" in str(result["reason"])
    survivors = _processes_with(marker)
    for pid in survivors:  # started by this test (through the sample), so ours to end
        os.kill(pid, 9)
    assert survivors == [], f"the sample's setsid grandchild outlived it: PIDs {survivors}"


def test_a_fork_loop_is_capped_by_rlimit_nproc(world: World) -> None:
    result = world.score(f"""
    import os, time
    forked = 0
    for _ in range(300):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        forked += 1
    print("LEAK" if forked >= {MAX_PROCESSES} else f"safe: {{forked}} forks")
    """)
    _assert_blocked(result)


def test_weak_isolation_still_hides_the_parents_environ(world: World) -> None:
    """Without bubblewrap (opted in), the non-dumpable parent keeps /proc/<ppid>/environ."""
    result = world.score(
        f"""
    import os
    try:
        with open(f"/proc/{{os.getppid()}}/environ", "rb") as handle:
            print("LEAK" if {KEY_PREFIX!r}.encode() in handle.read() else "safe: no key")
    except OSError as error:
        print(f"safe: {{type(error).__name__}}")
    """,
        allow_weak_isolation=True,
    )
    _assert_blocked(result)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_world_is_laid_out_as_the_tests_assume(world: World) -> None:
    """Guards the other tests against passing because the fixture is wrong."""
    assert world.secret.stat().st_uid == world.uid and _mode(world.secret) == 0o600
    assert world.results.stat().st_uid == world.uid
    result = world.score("print('LEAK')\n")
    assert result["score"] == 1.0, result["reason"]
