"""Run a rule script as Snakemake's ``script:`` would, without Snakemake's script preamble.

``script:`` starts each job's interpreter with a preamble that imports Snakemake itself, to
unpickle the ``snakemake`` object the script reads: about 0.17 s of CPU per job on the
project's machine, more than a fully cached shard's whole work. The per-shard rules
(``generate_responses``, ``import_responses``, ``score_responses``) run once per shard or group
of shards, and the once-per-run rules sit between the last shard and the end of every run, so
every rule calls its script through ``shell:`` and this module instead::

    "$REWARDFLOW_PYTHON" -m rewardflow.run_script NAME PARAMS FILES LOG THREADS

* ``NAME`` is the script's name in the workflow's ``scripts/`` directory;
* ``PARAMS`` is ``params.step``: the rule's params (what decides its output) as one sorted JSON
  text, so that Snakemake reruns the job exactly when one of them changes;
* ``FILES`` is ``params.files``: the job's named input and output files and its wildcards
  (:func:`job_files`), or for a job over a group of shards (:func:`group_files`) and a
  once-per-run rule (:func:`run_files`) each list of per-shard files as one template, so that
  it fits one command-line argument however many shards there are. It is a function of the
  job's files, which Snakemake leaves out of its params comparison;
* ``LOG`` and ``THREADS`` are the job's log file and threads.

Three environment variables, set when the Snakefile is parsed (so none is part of the shell
command's text, which Snakemake compares between runs as the rule's code), complete the job:
:data:`CONFIG_ENV` holds the validated config (operational settings are read from it, so
changing one reruns nothing), :data:`SCRIPTS_ENV` the ``scripts/`` directory and
:data:`PYTHON_ENV` the interpreter (Snakemake's own, or ``python`` of a conda environment, as
``script:`` chooses).

The script then gets a ``snakemake`` object with what the rule scripts use: ``input``,
``output``, ``params`` and ``wildcards`` by name, ``log`` as a list, ``threads`` and
``config``. A group's job runs the script once per shard (:func:`run_shards`).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

#: Environment variables the Snakefile sets for the jobs (see the module docstring).
CONFIG_ENV, SCRIPTS_ENV, PYTHON_ENV = "REWARDFLOW_CONFIG", "REWARDFLOW_SCRIPTS", "REWARDFLOW_PYTHON"

#: The placeholder a group's file templates hold for each of its shards (as Snakemake's own).
SHARD_PLACEHOLDER = "{shard}"

#: The exit status of a job stopped by Ctrl-C (128 + SIGINT, as a shell reports it): a group's
#: job stops there instead of going on to its next shard.
INTERRUPTED_EXIT = 130

#: Linux refuses a single environment string over 128 KiB (MAX_ARG_STRLEN); stay well below.
MAX_CONFIG_BYTES = 100_000


def _json(value: Any) -> str:
    """Sorted and compact, so that the same value is always the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def config_for_jobs(config: Mapping[str, Any]) -> str:
    """The config as the JSON put in :data:`CONFIG_ENV`; a clear error if it is too big."""
    text = _json(config)
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ValueError(
            f"the validated config is {len(text.encode()):,} bytes of JSON, more than the "
            f"{MAX_CONFIG_BYTES:,} that can be handed to each job; move large inline values "
            "(a long system prompt, inline examples) into files the config names"
        )
    return text


def step_params(params: Mapping[str, Any]) -> str:
    """``params.step``: the rule's params as one JSON text."""
    return _json(params)


def job_files(
    input: Mapping[str, Any], output: Mapping[str, Any], wildcards: Mapping[str, Any]
) -> str:
    """``params.files``: the job's named input and output files and its wildcards."""
    return _json({"input": input, "output": output, "wildcards": wildcards})


def group_files(
    run: str,
    shards: Sequence[str],
    input: Mapping[str, Any],
    output: Mapping[str, Any],
    per_shard_params: Mapping[str, str] | None = None,
) -> str:
    """``params.files`` of a job over a group of shards, whose script runs once per shard.

    Each per-shard file list (one path per shard, in order) becomes one template (see
    :func:`_template`), so that the text stays short enough for one command-line argument
    however many shards the group holds; other files are kept as they are.
    ``per_shard_params`` are params that differ by shard, a template each.
    """
    return _json(
        {
            **_templated_files(input, output, shards),
            "wildcards": {"run": run},
            "per_shard_params": dict(per_shard_params or {}),
            "each_shard": True,
        }
    )


def run_files(
    input: Mapping[str, Any],
    output: Mapping[str, Any],
    wildcards: Mapping[str, Any],
    shards: Sequence[str],
) -> str:
    """``params.files`` of a once-per-run rule, whose script runs once with every shard's files.

    Its inputs or outputs name every shard's file (every response shard, every prompt shard):
    thousands of paths, too long for one command-line argument, so each such list travels as a
    template and comes back as the full list (``script:``, the alternative, costs Snakemake's
    preamble: about 0.17 s of CPU per rule, on the path between the last shard and the end).
    """
    return _json(
        {**_templated_files(input, output, shards), "wildcards": wildcards, "each_shard": False}
    )


def _templated_files(
    input: Mapping[str, Any], output: Mapping[str, Any], shards: Sequence[str]
) -> dict[str, Any]:
    return {
        "input": {name: _template(value, shards) for name, value in input.items()},
        "output": {name: _template(value, shards) for name, value in output.items()},
        "shards": list(shards),
    }


def _template(files: Any, shards: Sequence[str]) -> Any:
    """``files`` as ``{"shard_template": ...}`` if they are exactly one path per shard, in order,
    each holding ``shard-LABEL`` (:data:`SHARD_PLACEHOLDER` in the template); else unchanged.
    """
    if not isinstance(files, list) or len(files) != len(shards) or not shards:
        return files
    head, found, tail = str(files[0]).rpartition(f"shard-{shards[0]}")
    template = f"{head}shard-{SHARD_PLACEHOLDER}{tail}"
    if found and all(
        template.replace(SHARD_PLACEHOLDER, shard) == path
        for shard, path in zip(shards, files, strict=True)
    ):
        return {"shard_template": template}
    return files


def _filled(files: Mapping[str, Any], shards: Sequence[str] | str) -> dict[str, Any]:
    """Templates back to paths: one shard's path (``shards`` one label), or every shard's list."""

    def fill(value: Any) -> Any:
        if not (isinstance(value, dict) and "shard_template" in value):
            return value
        template = value["shard_template"]
        if isinstance(shards, str):
            return template.replace(SHARD_PLACEHOLDER, shards)
        return [template.replace(SHARD_PLACEHOLDER, shard) for shard in shards]

    return {name: fill(value) for name, value in files.items()}


def _snakemake_object(
    params: Mapping[str, Any],
    input: Mapping[str, Any],
    output: Mapping[str, Any],
    wildcards: Mapping[str, Any],
    log: str,
    threads: int,
    config: Mapping[str, Any],
) -> SimpleNamespace:
    """What the rule scripts read from Snakemake's ``snakemake``."""
    return SimpleNamespace(
        input=SimpleNamespace(**input),
        output=SimpleNamespace(**output),
        params=SimpleNamespace(**params),
        wildcards=SimpleNamespace(**wildcards),
        log=[log],
        threads=threads,
        config=config,
    )


def _environment(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        sys.exit(f"{name} is not set: rewardflow.run_script runs inside a rewardflow job only")
    return value


def shard_objects(
    params: str, files: str, log: str, threads: int, config: str
) -> list[SimpleNamespace]:
    """The ``snakemake`` objects the script runs with: one, or one per shard of a group's job
    (:func:`group_files`), each with its files and per-shard params filled in.
    """
    described, step, settings = json.loads(files), json.loads(params), json.loads(config)
    inputs, outputs, wildcards = described["input"], described["output"], described["wildcards"]
    if "shards" not in described:
        return [_snakemake_object(step, inputs, outputs, wildcards, log, threads, settings)]
    shards = described["shards"]
    if not described["each_shard"]:
        whole = (_filled(inputs, shards), _filled(outputs, shards), wildcards)
        return [_snakemake_object(step, *whole, log, threads, settings)]
    return [
        _snakemake_object(
            {
                **step,
                **{
                    name: template.replace(SHARD_PLACEHOLDER, shard)
                    for name, template in described["per_shard_params"].items()
                },
            },
            _filled(inputs, shard),
            _filled(outputs, shard),
            {**wildcards, "shard": shard},
            log,
            threads,
            settings,
        )
        for shard in shards
    ]


def run_shards(script: Path, objects: Sequence[SimpleNamespace]) -> int:
    """Run ``script`` once per shard, in this one process; the exit status of the job.

    A shard that fails does not stop the group's later shards: their responses still reach the
    cache (the job fails at the end, and Snakemake then removes the group's outputs, which a
    rerun rebuilds from the cache). A Ctrl-C (:data:`INTERRUPTED_EXIT`) does stop the job. The
    shards share the job's log (rewardflow.rule_script truncates it once per process).
    """
    status = 0
    for snakemake in objects:
        try:
            runpy.run_path(str(script), init_globals={"snakemake": snakemake}, run_name="__main__")
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
            status = status or code
            if code == INTERRUPTED_EXIT:
                break
    return status


def main(argv: Sequence[str]) -> None:
    if len(argv) != 5:
        sys.exit("usage: python -m rewardflow.run_script NAME PARAMS FILES LOG THREADS")
    name, params, files, log, threads = argv
    script = Path(_environment(SCRIPTS_ENV)) / f"{name}.py"
    objects = shard_objects(params, files, log, int(threads), _environment(CONFIG_ENV))
    sys.exit(run_shards(script, objects))


if __name__ == "__main__":
    main(sys.argv[1:])
