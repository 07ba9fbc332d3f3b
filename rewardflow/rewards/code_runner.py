"""The child side of the code reward: runs the model's code and reports test verdicts.

Not imported by the pipeline: :mod:`rewardflow.rewards.code` starts it as a script
(``python -I -B -X utf8 code_runner.py CONTROL.json``), inside bubblewrap where available, so
it uses only the standard library. Everything before :func:`install_audit_hook` is trusted
setup; the model's code runs after it. See ``docs/sandbox.md`` for what each layer is for.
"""

import ast
import builtins
import contextlib
import ctypes
import json
import os
import resource
import stat
import sys
import traceback

_write = os.write
_exit = os._exit
_reserve: list[bytearray] = []  # 1 MB freed on MemoryError, so that the verdict can be written
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
            moved[os.path.abspath(entry)] = f"/proc/self/fd/{fd}"

    def reroute(path):
        for old, new in moved.items():
            if path == old or path.startswith(old + "/"):
                return new + path[len(old) :]
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
    own_proc = f"/proc/{own_pid}"
    prefix = scratch.rstrip("/") + "/"
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    write_devices = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
    processes = frozenset(
        {
            "os.system",
            "os.exec",
            "os.posix_spawn",
            "os.spawn",
            "os.fork",
            "os.forkpty",
            "subprocess.Popen",
            "os.killpg",
            "os.startfile",
            "resource.prlimit",
            "pty.spawn",
        }
    )
    blocked_imports = frozenset({"_posixsubprocess"})
    # event: (argument positions of paths that must stay inside, position of dir_fd or None)
    path_events = {
        "os.mkdir": ((0,), 2),
        "os.rmdir": ((0,), 1),
        "os.remove": ((0,), 1),
        "os.rename": ((0, 1), 2),
        "os.link": ((0, 1), 2),
        "os.symlink": ((1,), 2),
        "os.truncate": ((0,), None),
        "os.chmod": ((0,), 2),
        "os.chown": ((0,), 3),
        "os.utime": ((0,), 3),
        "os.chflags": ((0,), None),
        "os.setxattr": ((0,), None),
        "os.removexattr": ((0,), None),
        "shutil.rmtree": ((0,), 1),
        "shutil.move": ((0, 1), None),
        "shutil.copyfile": ((1,), None),
        "shutil.copymode": ((1,), None),
        "shutil.copystat": ((1,), None),
        "shutil.copytree": ((1,), None),
        "shutil.chown": ((0,), None),
        "shutil.make_archive": ((0,), None),
        "shutil.unpack_archive": ((1,), None),
    }

    def deny(what):
        raise PermissionError(13, "blocked by the sandbox: " + what)

    def resolve(path, dir_fd=None):
        if isinstance(path, int):
            return readlink(f"/proc/self/fd/{path}")
        path = fsdecode(fspath(path))
        if dir_fd is not None and dir_fd >= 0 and not isabs(path):
            path = join(readlink(f"/proc/self/fd/{dir_fd}"), path)
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
                deny(f"writing outside the scratch dir: {path!r}")
            try:
                real = resolve(path)
            except (OSError, TypeError, ValueError):
                return
            if other_process(real):
                deny("reading another process's /proc files")
            # The "open" event carries no dir_fd, so os.open(name, dir_fd=fd) would escape the
            # checks above; refuse the directory fds (os.open, mode None) that it needs.
            if mode is None and not inside(path) and isdir(real):
                deny(f"opening directories outside the scratch dir: {path!r}")
        elif event in path_events:
            positions, dir_fd_at = path_events[event]
            for position in positions:
                dir_fd = args[dir_fd_at] if dir_fd_at is not None else None
                if event in ("os.rename", "os.link") and position == 1:
                    dir_fd = args[3]
                if not inside(args[position], dir_fd):
                    deny(f"{event} outside the scratch dir: {args[position]!r}")
        elif event in processes:
            deny(f"starting processes ({event})")
        elif event == "os.kill":
            if args[0] != own_pid:
                deny("signalling other processes")
        elif event == "import":
            if args[0] in blocked_imports:
                deny(f"importing {args[0]}")
        elif event.startswith("socket."):
            if not (event == "socket.__new__" and args[1] == 1):  # AF_UNIX, e.g. socketpair
                deny(f"network access ({event})")
        elif event.startswith("ctypes."):
            deny(f"ctypes ({event})")
        elif event == "sqlite3.connect":
            database = args[0]
            if database not in (":memory:", "", b":memory:", b"") and not inside(database):
                deny("sqlite3 databases outside the scratch dir")

    sys.addaudithook(hook)


def close_inherited_fds(keep):
    """Close every fd but ``keep``: bwrap's copies of the control data must not stay open."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own fd, already closed
                os.close(fd)


def current_namespace(kind):
    """``/proc/self/ns/<kind>``'s target, e.g. ``net:[4026531840]``; ``None`` if unreadable."""
    try:
        return os.readlink("/proc/self/ns/" + kind)
    except OSError:
        return None


def in_new_network_namespace(host_netns):
    current = current_namespace("net")
    return host_netns is not None and current is not None and current != host_netns


def flush_output():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(BaseException):
            stream.flush()


def run_solution(code, namespace, report, exit_is_success):
    """Execute the model's module; whether it completed, with an "error" report if not."""
    try:
        exec(code, namespace)
    except SystemExit as exc:
        if exit_is_success and exc.code in (None, 0):
            return True
        namespace.clear()
        report("error", (f"SystemExit: {exc.code!r}")[:300])
        return False
    except BaseException as exc:
        namespace.clear()
        report("error", describe(exc))
        with contextlib.suppress(BaseException):
            traceback.print_exc(limit=20)
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
        report("setup_error", f"entry point {entry_point!r} is not defined")
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
    _reserve.append(bytearray(1 << 20))
    control_path = sys.argv[1]
    with open(control_path, encoding="utf-8") as handle:
        ctl = json.load(handle)
    os.remove(control_path)
    close_inherited_fds(keep={0, 1, 2, ctl["report_fd"]})
    report = Reporter(ctl["report_fd"], ctl["nonce"])
    netns = in_new_network_namespace(ctl["host_netns"])
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        if ctl["drop_to"] is not None:
            uid, gid = ctl["drop_to"]
            drop_privileges(uid, gid, ctl["parent_pid"], ctl["max_processes"], libc)
        elif ctl["limit_processes"]:
            # In bubblewrap's user namespace the kernel (5.14+) counts only this sandbox's
            # processes against the limit, not every process of the user.
            limit = ctl["max_processes"]
            resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
        steps = test_plan(ctl) if ctl["mode"] == "asserts" else []
        with open("solution.py", encoding="utf-8") as handle:
            source = handle.read()
        scratch = os.path.realpath(os.getcwd())
        if ctl["audit_hook"]:
            install_audit_hook(scratch)
    except BaseException:
        traceback.print_exc()
        _exit(SETUP_FAILED)
    report(
        "layers",
        {
            "uid": os.getuid(),
            "netns": netns,
            "pidns": current_namespace("pid") not in (None, ctl["host_pidns"]),
            "audit_hook": ctl["audit_hook"],
        },
    )
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


if __name__ == "__main__":
    main()
