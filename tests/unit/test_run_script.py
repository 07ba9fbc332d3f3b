"""rewardflow.run_script hands a per-shard rule script what Snakemake's ``script:`` would.

The scripts read ``snakemake.input``, ``.output``, ``.params``, ``.wildcards``, ``.log``,
``.threads`` and ``.config``; these tests run the real module in a fresh interpreter on a probe
script and check that each arrives intact, without Snakemake being imported (the point of the
module: the per-shard jobs skip Snakemake's script preamble).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from rewardflow.run_script import (
    CONFIG_ENV,
    MAX_CONFIG_BYTES,
    SCRIPTS_ENV,
    config_for_jobs,
    job_files,
    step_params,
)

PROBE = """
import json, sys
from pathlib import Path

Path(snakemake.output.seen).write_text(json.dumps({
    "prompts": snakemake.input.prompts,
    "files": snakemake.input.files,
    "settings": snakemake.params.settings,
    "writer": snakemake.params.writer_name,
    "shard": snakemake.wildcards.shard,
    "log": snakemake.log[0],
    "threads": snakemake.threads,
    "config": snakemake.config,
    "name": __name__,
    "snakemake_imported": "snakemake" in sys.modules,
}))
"""


def run_script(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rewardflow.run_script", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )


def test_the_script_gets_every_part_of_the_job_and_snakemake_is_not_imported(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "probe.py").write_text(PROBE)
    config = {"run_name": "unit", "generation": {"concurrency": 7}}
    params = step_params({"writer_name": "unit.shard-003", "settings": {"model": "m", "n": 2}})
    files = job_files(
        {"prompts": "p/shard-003.jsonl", "files": ["a.py", "b.py"]},
        {"seen": str(tmp_path / "seen.json")},
        {"run": "unit", "shard": "003"},
    )

    done = run_script(
        tmp_path, "probe", params, files, "logs/x.log", "2",
        env={CONFIG_ENV: config_for_jobs(config), SCRIPTS_ENV: str(scripts)},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "seen.json").read_text()) == {
        "prompts": "p/shard-003.jsonl",
        "files": ["a.py", "b.py"],
        "settings": {"model": "m", "n": 2},
        "writer": "unit.shard-003",
        "shard": "003",
        "log": "logs/x.log",
        "threads": 2,
        "config": config,
        "name": "__main__",
        "snakemake_imported": False,
    }


def test_a_script_error_fails_the_job(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "fails.py").write_text("import sys\nsys.exit(3)\n")
    files = job_files({}, {}, {})

    done = run_script(
        tmp_path, "fails", step_params({}), files, "x.log", "1",
        env={CONFIG_ENV: "{}", SCRIPTS_ENV: str(scripts)},
    )  # fmt: skip

    assert done.returncode == 3


def test_outside_a_job_it_says_what_is_missing(tmp_path):
    env = {name: "" for name in (CONFIG_ENV, SCRIPTS_ENV)}
    stripped = {k: v for k, v in os.environ.items() if k not in env}
    done = subprocess.run(
        [sys.executable, "-m", "rewardflow.run_script", "x", "{}", "{}", "x.log", "1"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**stripped, "PYTHONPATH": str(REPO)},
    )  # fmt: skip

    assert done.returncode != 0
    assert "REWARDFLOW_SCRIPTS is not set" in done.stderr


def test_params_text_does_not_depend_on_key_order():
    # Snakemake reruns a job whose params text changed; a reordered config must not.
    assert step_params({"a": 1, "b": {"y": 2, "x": 3}}) == step_params(
        {"b": {"x": 3, "y": 2}, "a": 1}
    )


def test_a_config_too_big_for_the_environment_is_a_clear_error():
    with pytest.raises(ValueError, match="move large inline values"):
        config_for_jobs({"system_prompt": "x" * MAX_CONFIG_BYTES})
