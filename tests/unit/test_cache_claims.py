"""Claims on keys, following journals, greedy sample keys, and a cache shared between users."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cache import MESSAGES, append_entry, make_settings

from rewardflow.generation.cache import ResponseCache, cache_key
from rewardflow.generation.work import distinct_requests, plan_work
from rewardflow.records import PromptRecord

REPO = Path(__file__).resolve().parents[2]


def hold_claim(root: Path, key: str) -> subprocess.Popen[str]:
    """Another process that claims ``key`` in the test partition, says so, and sleeps."""
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, "{REPO / "tests" / "unit"}")
        from test_cache import make_settings
        from rewardflow.generation.cache import ResponseCache
        claim = ResponseCache("{root}", make_settings()).try_claim("{key}")
        print("claimed" if claim else "refused", flush=True)
        time.sleep(300)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return process


def test_a_claim_excludes_other_processes_until_its_holder_is_killed(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    holder = hold_claim(tmp_path, "k1")
    try:
        assert holder.stdout.readline().strip() == "claimed"
        assert cache.try_claim("k1") is None
        other = cache.try_claim("k2")
        assert other is not None  # claims are per key
        other.release()

        holder.send_signal(signal.SIGKILL)  # no chance to release anything
        holder.wait(timeout=10)

        taken = cache.try_claim("k1")
        assert taken is not None
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert cache.try_claim("k1") is None  # held by this process now, through another handle
    taken.release()
    assert not taken.path.exists()
    again = cache.try_claim("k1")
    assert again is not None
    again.release()


def test_the_tail_returns_only_new_entries_and_waits_for_a_line_being_written(tmp_path):
    cache = ResponseCache(tmp_path, make_settings())
    tail = cache.tail(["k1", "k2", "k3"])
    assert tail.read_new() == {}
    with cache.writer("w") as writer:
        append_entry(writer, "k1")
        append_entry(writer, "not-wanted")
        assert set(tail.read_new()) == {"k1"}
        assert tail.read_new() == {}
        journal = writer.path
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write('{"key": "k2", "sample_index": 0, "resp')  # another writer, mid-line
        handle.flush()
        assert tail.read_new() == {}
        handle.write('onse": "5", "created_at": 1}\n')
    assert set(tail.read_new()) == {"k2"}
    assert set(tail.found) == {"k1", "k2"}
    assert tail.found["k2"].response == "5"


def test_the_tail_skips_a_line_a_killed_writer_tore(tmp_path, caplog):
    cache = ResponseCache(tmp_path, make_settings())
    with cache.writer("w") as writer:
        append_entry(writer, "k1")
        writer._handle.write('{"key": "k2", "sample_')  # killed here
        writer._handle.flush()
    with cache.writer("w") as writer:  # the rerun ends the torn line, then appends
        append_entry(writer, "k3")
    found = cache.tail(["k1", "k2", "k3"]).read_new()
    assert set(found) == {"k1", "k3"}
    assert "torn or corrupted line" in caplog.text


def prompt(id_: str, question: str) -> PromptRecord:
    return PromptRecord.from_dict({"id": id_, "messages": [{"role": "user", "content": question}]})


def test_at_temperature_0_the_samples_of_a_prompt_share_one_key():
    prompts = [prompt("a", "1+1?"), prompt("b", "2+2?"), prompt("a-copy", "1+1?")]
    greedy = plan_work(prompts, make_settings(temperature=0.0), samples=3)
    assert len(greedy) == 9
    assert len(distinct_requests(greedy)) == 2
    assert [item.sample_index for item in distinct_requests(greedy)] == [0, 0]
    assert greedy[1].key == cache_key(make_settings(), prompts[0].messages, 0)

    independent = plan_work(prompts, make_settings(), samples=3, independent_samples=True)
    assert len(distinct_requests(independent)) == 6
    sampled = plan_work(prompts, make_settings(temperature=0.7), samples=3)
    assert len(distinct_requests(sampled)) == 6


@pytest.fixture
def private_umask():
    old = os.umask(0o077)
    yield
    os.umask(old)


def modes(paths: list[Path]) -> set[int]:
    return {stat.S_IMODE(path.stat().st_mode) for path in paths}


def test_files_in_a_group_shared_cache_stay_group_writable_whatever_the_umask(
    tmp_path, private_umask
):
    root = tmp_path / "cache"
    root.mkdir()
    os.chmod(root, 0o2770)
    cache = ResponseCache(root, make_settings())
    with cache.writer("run.shard-000") as writer:
        append_entry(writer, cache_key(make_settings(), MESSAGES, 0))
    claim = cache.try_claim("k1")
    assert claim is not None
    claims_dir = claim.path.parent
    assert modes([claim.path]) == {0o660}
    claim.release()

    assert modes([cache.partition, claims_dir]) == {0o2770}
    assert modes([writer.path, cache.partition / "settings.json"]) == {0o660}


def test_a_private_cache_stays_private(tmp_path, private_umask):
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    cache = ResponseCache(root, make_settings())
    with cache.writer("w") as writer:
        append_entry(writer, "k1")
    assert modes([cache.partition]) == {0o700}
    assert modes([writer.path, cache.partition / "settings.json"]) == {0o600}


def as_user(uid: int, gid: int, action: Callable[[], None]) -> None:
    """Run ``action`` in a forked child that has become user ``uid`` (only root can do this).

    A fork rather than a new interpreter: the interpreter may live where the other user cannot
    read it, and the code under test is already imported.
    """
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
            os.umask(0o077)
            action()
            code = 0
        except BaseException as error:  # noqa: BLE001 - reported through the exit code
            print(f"second user: {error!r}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the second user's actions failed"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
def test_a_second_user_reads_writes_and_claims_in_a_group_shared_cache(private_umask):
    nobody = pwd.getpwnam("nobody")
    shared = Path(tempfile.mkdtemp())  # pytest's tmp_path is private to this user
    try:
        os.chmod(shared, 0o755)
        root = shared / "cache"
        root.mkdir()
        os.chown(root, 0, nobody.pw_gid)
        os.chmod(root, 0o2770)  # the group's directory; the second user is in the group
        cache = ResponseCache(root, make_settings())
        with cache.writer("first-user") as writer:
            append_entry(writer, "k1", response="from the first user")
        mine = cache.try_claim("k2")  # leaves claims/ created by this user
        assert mine is not None
        mine.release()

        def second_user() -> None:
            other = ResponseCache(root, make_settings())
            assert other.load()["k1"].response == "from the first user"
            with other.writer("second-user") as writer:
                append_entry(writer, "k3", response="from the second user")
            with other.writer("first-user") as writer:  # the same run name, a rerun
                append_entry(writer, "k4")
            claim = other.try_claim("k2")
            assert claim is not None
            claim.release()

        as_user(nobody.pw_uid, nobody.pw_gid, second_user)
        assert set(cache.load()) == {"k1", "k3", "k4"}
    finally:
        shutil.rmtree(shared)
