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
    group_files,
    job_files,
    run_files,
    step_params,
)

PROBE = """
import json, sys
from pathlib import Path

Path(snakemake.output.seen).parent.mkdir(parents=True, exist_ok=True)
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


def test_a_group_job_runs_the_script_once_per_shard_with_that_shards_files(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "probe.py").write_text(PROBE)
    shards = ["004", "005", "006"]
    files = group_files(
        "unit",
        shards,
        {"prompts": [f"p/shard-{shard}.jsonl" for shard in shards], "files": ["a.py", "b.py"]},
        {"seen": [str(tmp_path / f"seen/shard-{shard}.json") for shard in shards]},
        {"writer_name": "unit.shard-{shard}"},
    )

    done = run_script(
        tmp_path, "probe", step_params({"settings": {"n": 2}}), files, "logs/x.log", "1",
        env={CONFIG_ENV: "{}", SCRIPTS_ENV: str(scripts)},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    for shard in shards:
        seen = json.loads((tmp_path / f"seen/shard-{shard}.json").read_text())
        assert seen["prompts"] == f"p/shard-{shard}.jsonl"
        assert seen["files"] == ["a.py", "b.py"]  # the same for every shard
        assert (seen["shard"], seen["writer"]) == (shard, f"unit.shard-{shard}")
        assert seen["settings"] == {"n": 2}


def test_a_groups_files_fit_one_argument_however_many_shards_it_holds():
    shards = [f"{index:05d}" for index in range(10_000)]
    files = group_files(
        "unit", shards,
        {"prompts": [f"results/unit/prompts/shard-{shard}.jsonl" for shard in shards]},
        {"scores": [f"results/unit/scores/shard-{shard}.jsonl" for shard in shards]},
    )  # fmt: skip

    described = json.loads(files)
    assert described["input"]["prompts"] == {
        "shard_template": "results/unit/prompts/shard-{shard}.jsonl"
    }
    assert len(files.encode()) < 128 * 1024  # Linux's limit for one argument


@pytest.mark.parametrize("count", [1, 3])
def test_a_once_per_run_script_gets_every_shards_files_as_lists(tmp_path, count):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "whole.py").write_text(
        "import json\n"
        "from pathlib import Path\n"
        "Path(snakemake.output.seen).write_text(json.dumps(vars(snakemake.input)))\n"
    )
    shards = [f"{index:03d}" for index in range(count)]
    responses = [f"r/shard-{shard}.jsonl" for shard in shards]
    files = run_files(
        {"responses": responses, "summary": "s.json", "extra": ["a.py"]},
        {"seen": str(tmp_path / "seen.json")},
        {"run": "unit"},
        shards,
    )

    done = run_script(
        tmp_path, "whole", step_params({}), files, "x.log", "1",
        env={CONFIG_ENV: "{}", SCRIPTS_ENV: str(scripts)},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "seen.json").read_text()) == {
        "responses": responses,  # a list even for one shard
        "summary": "s.json",
        "extra": ["a.py"],
    }


def run_group(tmp_path: Path, script: str, log: str) -> subprocess.CompletedProcess:
    """Run ``script`` as a job over shards 000-002, each shard's output ``shard-NNN.done``."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "group.py").write_text(script)
    shards = ["000", "001", "002"]
    files = group_files(
        "unit", shards, {}, {"done": [str(tmp_path / f"shard-{shard}.done") for shard in shards]}
    )
    return run_script(
        tmp_path, "group", step_params({}), files, log, "1",
        env={CONFIG_ENV: "{}", SCRIPTS_ENV: str(scripts)},
    )  # fmt: skip


def test_a_failing_shard_does_not_stop_the_groups_other_shards(tmp_path):
    done = run_group(
        tmp_path,
        "import sys\nfrom pathlib import Path\n"
        "from rewardflow.rule_script import configure_logging\n"
        "import logging\n"
        "configure_logging(snakemake.log[0])\n"
        "logging.info('shard %s', snakemake.wildcards.shard)\n"
        "if snakemake.wildcards.shard == '001':\n    sys.exit(4)\n"
        "Path(snakemake.output.done).write_text('ok')\n",
        log=str(tmp_path / "job.log"),
    )

    assert done.returncode == 4
    assert sorted(path.name for path in tmp_path.glob("*.done")) == [
        "shard-000.done",
        "shard-002.done",
    ]
    log = (tmp_path / "job.log").read_text()
    assert [line.split()[-1] for line in log.splitlines()] == ["000", "001", "002"]  # appended


def test_ctrl_c_stops_a_group_at_the_shard_it_interrupted(tmp_path):
    done = run_group(
        tmp_path,
        "from pathlib import Path\n"
        "from rewardflow.rule_script import run_rule\n"
        "def main(snakemake):\n"
        "    if snakemake.wildcards.shard == '001':\n        raise KeyboardInterrupt\n"
        "    Path(snakemake.output.done).write_text('ok')\n"
        "run_rule(None, main, snakemake)\n",
        log="x.log",
    )

    assert done.returncode == 130
    assert [path.name for path in tmp_path.glob("*.done")] == ["shard-000.done"]
    assert "interrupted" in done.stderr


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
