"""The README's commands work after a plain, non-editable ``pip install .`` (no dev extras).

The development venv has the dev extras (which pull in Pygments, for one) and an editable
install that reads files from the repository, so it cannot show what a user's install lacks.
This test builds a fresh venv from a copy of the working tree, as a user's clone would be,
and runs the commands there with nothing of the development environment leaking in.
Slow (a few minutes, mostly pip; the pip cache is reused): select or skip it with
``-m install`` / ``-m "not install"``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.install]

COMMANDS = [
    ("rewardflow",),
    ("rewardflow", "simulate"),
    ("rewardflow", "cache"),
    ("rewardflow", "cache", "list"),
    ("rewardflow", "cache", "prune"),
    ("rewardflow", "compare"),
    ("rewardflow", "inspect"),
    ("rewardflow", "inspect", "list"),
    ("rewardflow", "inspect", "show"),
]
# The names `rewardflow` replaced, kept as deprecated aliases (docs/cli.md).
OLD_COMMANDS = [
    "rewardflow-simulator",
    "rewardflow-cache",
    "rewardflow-compare",
    "rewardflow-inspect",
]


def copy_working_tree(destination: Path) -> None:
    """The repository's tracked and new files, as a clone would have them (links kept)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(a clone of the repository, the environment of a venv with rewardflow installed)."""
    root = tmp_path_factory.mktemp("plain-install")
    clone = root / "rewardflow"
    copy_working_tree(clone)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(clone)],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    # The install must not be the repository: the tests' own copy must not be imported.
    where = subprocess.run(
        ["python", "-c", "import rewardflow; print(rewardflow.__file__)"],
        cwd=root, capture_output=True, text=True, env=env, check=True,
    ).stdout  # fmt: skip
    assert "site-packages" in where, where
    return clone, env


def run_in(clone: Path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(command), cwd=clone, capture_output=True, text=True, env=env, timeout=600
    )


def test_console_scripts_answer_help(installed):
    clone, env = installed
    for command in COMMANDS:
        result = run_in(clone, env, *command, "--help")
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        assert result.stdout.startswith(f"usage: {' '.join(command)}")
    version = run_in(clone, env, "rewardflow", "--version")
    assert version.stdout.startswith("rewardflow "), version.stdout + version.stderr
    for script in OLD_COMMANDS:
        result = run_in(clone, env, script, "--help")
        assert result.returncode == 0, f"{script}: {result.stdout}{result.stderr}"
        assert result.stdout.startswith("usage: rewardflow ")
        assert f"{script} is deprecated" in result.stderr


def test_demo_report_inspect_and_compare_run_in_the_clone(installed):
    clone, env = installed
    # The quick start's demo (./demo.sh runs this snakemake command), with a fast simulator.
    demo = run_in(
        clone, env, "snakemake", "--cores", "2", "--config", "simulator={'latency_ms': 1}"
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    summary = json.loads((clone / "results" / "demo" / "summary.json").read_text())
    assert summary["counts"]["scored"] == 40

    # The README's commands, as written (no --cores for the report).
    report = run_in(clone, env, "snakemake", "--report", "report.html")
    assert report.returncode == 0, report.stdout + report.stderr
    assert (clone / "report.html").stat().st_size > 10_000

    for command in [
        ("rewardflow", "inspect", "list", "results/demo", "--lowest", "3"),
        ("rewardflow", "inspect", "list", "results/demo", "--status", "failed"),
        ("rewardflow", "inspect", "show", "results/demo", "arith-007"),
        ("rewardflow-inspect", "results/demo", "list", "--lowest", "3"),  # the old order
        ("rewardflow", "cache", "list"),
        # The plan of the README's real-model run: needs neither network nor key.
        ("snakemake", "-n", "--configfile", "config/math.yaml"),
    ]:
        result = run_in(clone, env, *command)
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    compare = run_in(
        clone, env, "rewardflow", "compare", "results/demo", "results/demo", "--out", "cmp.md"
    )
    assert compare.returncode == 0, compare.stdout + compare.stderr
    assert (clone / "cmp.md").is_file()


def test_the_installed_package_carries_the_config_schema(installed):
    # Code that validates or fills defaults without the workflow (e.g. the summary's metric
    # defaults) reads the schema from the package, not from a repository that may be absent.
    clone, env = installed
    code = "from rewardflow.config import section_defaults; print(section_defaults('metrics'))"
    result = subprocess.run(
        ["python", "-c", code],
        cwd=clone.parent, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "bootstrap_resamples" in result.stdout
