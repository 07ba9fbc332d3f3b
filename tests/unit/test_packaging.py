"""pip and conda users get the same dependencies (pyproject.toml vs environment.yml)."""

from __future__ import annotations

import re
import tomllib

import yaml
from conftest import REPO


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_names = {_name(requirement) for requirement in project["dependencies"]}
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    conda_names = {
        _name(entry)
        for entry in environment["dependencies"]
        if isinstance(entry, str) and _name(entry) not in {"python", "pip"}
    }
    assert conda_names == pip_names


def test_results_are_git_ignored():
    ignored = (REPO / ".gitignore").read_text().split()
    assert "results/" in ignored
