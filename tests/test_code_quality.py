"""The project's own checks, so `./test.sh` (and CI) fails on lint like on a broken test."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.integration


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    result = run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_python_is_formatted():
    result = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_files_are_snakefmt_formatted():
    result = run(sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/rules")
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_is_clean():
    result = run(sys.executable, "-m", "snakemake", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr
