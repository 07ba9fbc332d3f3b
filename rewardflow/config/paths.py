"""Where a run's files live: the one definition of the results directory.

The workflow's rules (``workflow/rules/*.smk``) and the package both build their paths from
:data:`RESULTS_DIR`, so the layout ``results/<run_name>/...`` is stated once.
"""

from __future__ import annotations

from pathlib import Path

#: The directory, relative to the workflow's working directory, that holds every run's outputs.
RESULTS_DIR = "results"
#: The shared response cache's default location (``cache.dir`` in the schema says the same).
DEFAULT_CACHE_DIR = f"{RESULTS_DIR}/cache"


def run_dir(run_name: str, results_dir: str | Path = RESULTS_DIR) -> Path:
    """``results/<run_name>``: everything one run writes."""
    return Path(results_dir) / run_name
