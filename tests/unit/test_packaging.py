"""pip and conda users get the same dependencies (pyproject.toml vs environment.yml)."""

from __future__ import annotations

import importlib.metadata
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


# Needed at run time without an import of ours: `snakemake --report` uses it (see pyproject).
IMPORTED_BY_OTHERS = {"pygments"}


def test_every_runtime_dependency_is_imported_by_the_code():
    # A declared dependency nothing imports is an install cost and a misleading hint.
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("rewardflow", "scripts", "workflow")
        for path in sorted((REPO / folder).rglob("*"))
        if path.suffix in (".py", ".smk")
    ) + (REPO / "Snakefile").read_text(encoding="utf-8")
    provided = importlib.metadata.packages_distributions()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    unused = []
    for requirement in project["dependencies"]:
        name = _name(requirement)
        modules = [
            module
            for module, dists in provided.items()
            if any(_name(dist) == name for dist in dists)
        ]
        imported = any(
            re.search(rf"^\s*(from|import)\s+{re.escape(module)}\b", sources, re.MULTILINE)
            for module in modules
        )
        if not imported and name not in IMPORTED_BY_OTHERS:
            unused.append(name)
    assert unused == []
