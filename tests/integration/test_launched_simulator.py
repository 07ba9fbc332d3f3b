"""The simulator a generation job starts for ``provider: simulator`` never outlives the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

pytestmark = pytest.mark.integration

LAUNCHER = textwrap.dedent(
    """
    import sys, time
    from rewardflow.config import validate_config
    config = validate_config({
        "run_name": "t", "dataset": {"path": "unused.jsonl"},
        "model": {"provider": "simulator", "name": "m"},
        "rewards": [{"name": "r", "function": "m:f"}],
    })
    from rewardflow.config.generation import ModelSettings
    from rewardflow.generation.endpoint import launched_simulator
    with launched_simulator(ModelSettings.from_config(config)) as url:
        print(url, flush=True)
        time.sleep(600)
    """
)


def _alive(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/models", timeout=2).close()
        return True
    except OSError:
        return False


def test_launched_simulator_serves_and_exits_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True)
    url = parent.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert _alive(url)

    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)

    deadline = time.monotonic() + 10
    while _alive(url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(url), "the simulator outlived the job that started it"
