"""What the workflow does when Snakemake is about to run its first job.

Snakemake records each finished job's params in its metadata (the record behind its ``params``
rerun trigger) and, whenever pandas is importable, passes them through pandas so that a
DataFrame param hashes by content. pandas is installed with rewardflow (``datasets`` needs it),
so the first job to finish makes Snakemake's scheduler thread import pandas, about 0.25 s on
this kind of machine, while every job that became ready waits to be started: a fixed cost on
the path of every run, paid after ``prepare_prompts`` and before any generation job starts
(issue 15). The workflow's ``onstart`` handler runs just before the first jobs are started, so
it imports pandas in a background thread while they run; when the first job finishes, the
scheduler's own import finds it loaded (or waits for the rest of that import, never imports it
twice).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import threading

#: The module Snakemake's metadata record imports when it is installed.
PARAM_SERIALIZER_MODULE = "pandas"


def preload_in_background(module: str = PARAM_SERIALIZER_MODULE) -> threading.Thread | None:
    """Start importing ``module`` in a daemon thread; return it, or None if not installed.

    A failed import is left to whoever imports the module next, which reports it as usual.
    """
    if importlib.util.find_spec(module) is None:
        return None
    thread = threading.Thread(
        target=_import_quietly, args=(module,), name=f"preload-{module}", daemon=True
    )
    thread.start()
    return thread


def _import_quietly(module: str) -> None:
    with contextlib.suppress(Exception):  # the importer that needs it raises it again
        importlib.import_module(module)
