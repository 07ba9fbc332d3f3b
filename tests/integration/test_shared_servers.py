"""Generation jobs on one node share one launched server (rewardflow.generation.shared_server).

Real processes throughout: the built-in simulator as the launched server, *holders* (separate
Python processes that take the server through ``model_endpoint``, exactly as a generation job
does, and keep it until told to let go) and real Snakemake runs. Nothing here waits a fixed
time: every "eventually" is a poll with a generous deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import (
    LAUNCHED_SIMULATOR,
    REPO,
    arithmetic_rows,
    base_config,
    group_alive,
    wait_for,
    write_config,
    write_jsonl,
)

from rewardflow.generation.launch import guard_running

pytestmark = pytest.mark.integration

LOG = Path("logs/test/generate_responses")
#: A process using the server as a generation job does, until its stdin closes.
HOLDER = textwrap.dedent(
    """
    import json, sys
    import yaml
    from rewardflow.config import validate_config
    from rewardflow.config.generation import ModelSettings
    from rewardflow.generation.endpoint import model_endpoint

    config_path, lease_root, log = sys.argv[1:4]
    model = ModelSettings.from_config(validate_config(yaml.safe_load(open(config_path))))
    with model_endpoint(model, log, lease_root) as endpoint:
        server = endpoint.server
        print(json.dumps({"port": server.port, "pgid": server.pgid,
                          "started": server.guard is not None}), flush=True)
        sys.stdin.read()
    """
)


def simulator_config(tmp_path: Path, shards: int = 2, **model) -> Path:
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(24))
    config = base_config(dataset, "unused", shards=shards)
    config["model"] = {"provider": "simulator", "name": "shared-model", **model}
    config["simulator"] = {"latency_ms": 20}
    return write_config(tmp_path, config)


def launch_config(tmp_path: Path, name: str, command: str, **launch) -> Path:
    """A config whose generation jobs launch ``command`` (model.launch) for model ``name``."""
    dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(4))
    config = base_config(dataset, "unused")
    config["model"] = {
        "provider": "openai",
        "name": name,
        "launch": {"command": command, "gpus": 0, "startup_timeout_s": 30, **launch},
    }
    return write_config(tmp_path, config)


class Holder:
    """A process holding the shared server, as a running generation job would."""

    def __init__(self, tmp_path: Path, config: Path, name: str) -> None:
        self.start(tmp_path, config, name)
        line = self.process.stdout.readline()
        assert line, f"{name} exited before it had a server"
        self.server = json.loads(line)

    @classmethod
    def starting(cls, tmp_path: Path, config: Path, name: str) -> Holder:
        """A holder still waiting for its server (not ready yet)."""
        holder = cls.__new__(cls)
        holder.start(tmp_path, config, name)
        return holder

    def start(self, tmp_path: Path, config: Path, name: str) -> None:
        lease_root = tmp_path / "results" / "cache" / ".servers"
        log = tmp_path / f"{name}.server.log"
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(config), str(lease_root), str(log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def release(self) -> None:
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0


def snakemake(tmp_path: Path, config: Path) -> tuple[int, str]:
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(tmp_path), "--cores", "2", "--configfile", str(config),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def server_lines(job_log: Path) -> list[tuple[int, int, str]]:
    """(process group, port, started|reused) of each server a job log names."""
    found = re.findall(
        r"model server: process group (\d+), port (\d+), job pid \d+, log \S+, (started|reused)",
        job_log.read_text(),
    )
    return [(int(pgid), int(port), how) for pgid, port, how in found]


def test_two_jobs_use_one_server_and_it_stops_after_the_last(tmp_path):
    config = simulator_config(tmp_path)
    first = Holder(tmp_path, config, "first")
    second = Holder(tmp_path, config, "second")

    assert first.server["started"] and not second.server["started"]
    assert second.server["port"] == first.server["port"]
    assert second.server["pgid"] == first.server["pgid"]
    assert not (tmp_path / "second.server.log").exists()  # the output has one log: the starter's
    assert (tmp_path / "first.server.log").read_text().count("server pid") == 1

    first.release()  # the starter leaving does not take the server from the other user
    assert group_alive(first.server["pgid"])
    third = Holder(tmp_path, config, "third")
    assert third.server["pgid"] == first.server["pgid"]

    second.release()
    third.release()
    wait_for(lambda: not group_alive(first.server["pgid"]))


def test_the_jobs_of_a_run_reuse_a_running_server_and_leave_none_behind(tmp_path):
    config = simulator_config(tmp_path, shards=3)
    holder = Holder(tmp_path, config, "holder")

    code, output = snakemake(tmp_path, config)

    assert code == 0, output
    for shard in range(3):
        ((pgid, port, how),) = server_lines(tmp_path / LOG / f"shard-{shard:03d}.log")
        assert (pgid, port, how) == (holder.server["pgid"], holder.server["port"], "reused")
    assert not list((tmp_path / LOG).glob("*.server.log"))  # no job started a server
    holder.release()
    wait_for(lambda: not group_alive(holder.server["pgid"]))


def test_a_run_with_several_shards_leaves_no_server_behind(tmp_path):
    config = simulator_config(tmp_path, shards=4)

    code, output = snakemake(tmp_path, config)

    assert code == 0, output
    named = {
        line
        for shard in range(4)
        for line in server_lines(tmp_path / LOG / f"shard-{shard:03d}.log")
    }
    assert any(how == "started" for _, _, how in named)
    for pgid, _, _ in named:
        wait_for(lambda pgid=pgid: not group_alive(pgid))
    stats = json.loads((tmp_path / "results/test/responses/shard-000.stats.json").read_text())
    assert stats["failed"] == 0


def test_a_job_killed_while_holding_the_lease_still_lets_the_server_stop(tmp_path):
    config = simulator_config(tmp_path)
    starter = Holder(tmp_path, config, "starter")
    user = Holder(tmp_path, config, "user")
    pgid = starter.server["pgid"]

    os.kill(user.process.pid, signal.SIGKILL)  # no cleanup code of the job runs
    user.process.wait(timeout=30)
    starter.release()

    wait_for(lambda: not group_alive(pgid))


def test_a_dead_shared_server_is_replaced_by_the_next_job(tmp_path):
    config = simulator_config(tmp_path)
    first = Holder(tmp_path, config, "first")
    os.killpg(first.server["pgid"], signal.SIGKILL)  # the guard and the server, as an OOM kill
    # The guard stays a zombie of the first holder (its parent) until that one exits.
    wait_for(lambda: not guard_running(first.server["pgid"]))

    second = Holder(tmp_path, config, "second")

    assert second.server["started"]
    assert second.server["pgid"] != first.server["pgid"]
    assert "server pid" in (tmp_path / "second.server.log").read_text()
    first.release()
    second.release()
    wait_for(lambda: not group_alive(second.server["pgid"]))


def test_share_false_gives_each_job_its_own_server(tmp_path):
    config_path = launch_config(tmp_path, "own-model", LAUNCHED_SIMULATOR, share=False)
    first = Holder(tmp_path, config_path, "first")
    second = Holder(tmp_path, config_path, "second")

    assert first.server["started"] and second.server["started"]
    assert first.server["port"] != second.server["port"]
    first.release()
    second.release()
    for holder in (first, second):
        wait_for(lambda holder=holder: not group_alive(holder.server["pgid"]))


def guard_pid(server_log: Path) -> int | None:
    found = re.search(r"guard pid (\d+)", server_log.read_text()) if server_log.exists() else None
    return int(found.group(1)) if found else None


def test_a_server_whose_starter_was_killed_before_it_was_ready_does_not_linger(tmp_path):
    never_ready = '{python} -c "import time; time.sleep(600)" {port}'
    config_path = launch_config(tmp_path, "slow-model", never_ready, startup_timeout_s=300)
    first = Holder.starting(tmp_path, config_path, "first")
    wait_for(lambda: guard_pid(tmp_path / "first.server.log") is not None)
    orphan = guard_pid(tmp_path / "first.server.log")
    second = Holder.starting(
        tmp_path, config_path, "second"
    )  # waits for the start, holding the lease

    os.kill(first.process.pid, signal.SIGKILL)

    # The second job now starts a server of its own; the first one's, which no job can find,
    # goes although the lease is held.
    wait_for(lambda: guard_pid(tmp_path / "second.server.log") is not None)
    wait_for(lambda: not group_alive(orphan))
    replacement = guard_pid(tmp_path / "second.server.log")
    os.kill(second.process.pid, signal.SIGKILL)
    wait_for(lambda: not group_alive(replacement))
