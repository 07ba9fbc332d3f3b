"""What each Snakemake rule is given from the config: its params (the rerun trigger) and its inputs.

A rule reruns when its params or input files change, so each rule gets only what decides its
output: operational knobs (concurrency, timeouts, rate limits) stay out of every params, and every
local file a step reads (the dataset, a reward's source, a file a reward param names) is an input.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import site
import sysconfig
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rewardflow.config.prompts import DatasetSettings
from rewardflow.errors import RewardflowError


def primary_reward_name(config: Mapping[str, Any]) -> str:
    """The reward whose score is the run's headline number."""
    for reward in config["rewards"]:
        if reward.get("primary"):
            return reward["name"]
    return config["rewards"][0]["name"]


def capped_shards(config: Mapping[str, Any]) -> tuple[int, int | None]:
    """``(shards to use, prompt count)``: never more shards than prompts.

    An empty shard still costs a generation and a scoring job, so ``shards`` is capped at the
    number of prompts where that is known before any job runs: ``dataset.limit``, and the row
    count of a local file in any format (a missing or unreadable file is left for the prepare
    step to report by file and line). The size of a hub dataset is unknown until it is
    downloaded, so without a limit it is not capped. The prompt count is None when unknown.
    """
    from rewardflow.prompts.dataset import count_rows  # the format readers: only when counting

    dataset = DatasetSettings.from_config(config)
    prompts = dataset.limit
    if dataset.path and Path(dataset.path).is_file():
        with contextlib.suppress(RewardflowError):  # prepare reports it by file and line
            prompts = count_rows(dataset)
    shards = int(config["shards"])
    if prompts is None:
        return shards, None
    return max(1, min(shards, prompts)), prompts


def scoring_workers(
    configured: int | None, cores: int, jobs: int, *, local: bool, judge: bool = False
) -> int:
    """Worker processes per scoring job (the job's Snakemake ``threads``).

    ``scoring.threads`` when it is set. Otherwise, on one machine, the cores are divided among
    the step's ``jobs`` (one per shard or group of shards), so that scoring jobs run side by
    side instead of one at a time with every core each: a job's interpreter, imports and worker
    start-up are serial work that only side-by-side jobs overlap, and with more jobs than cores
    every core is busy anyway. A job still gets several cores when there are fewer jobs than
    cores. On a cluster each job
    is an allocation of its own, so it gets every core one submission may ask for.

    With an LLM judge among the rewards (``judge``) a job takes every core on one machine too:
    the judge's ``requests_per_minute`` is shared by one job's workers, so scoring jobs side by
    side would each send the whole limit to the provider.
    """
    if configured:
        return configured
    if not local or judge:
        return cores
    return max(1, cores // max(1, jobs))


def shard_names(config: Mapping[str, Any]) -> list[str]:
    """Shard labels, zero-padded so they sort in order in a directory listing."""
    return shard_labels(int(config["shards"]))


def shard_labels(count: int) -> list[str]:
    """The labels of ``count`` shards (see :func:`shard_names`)."""
    width = max(3, len(str(count - 1)))
    return [f"{index:0{width}d}" for index in range(count)]


def aggregate_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the summary is computed from: the aggregate rule's rerun trigger.

    Only what :func:`rewardflow.summary.aggregate.summarize` reads, so that operational settings
    (concurrency, timeouts, a reward's own params) do not rerun the summary and what follows it.
    """
    name = config["model"]["name"]
    price = (config.get("prices") or {}).get(name)
    return {
        "run_name": config["run_name"],
        "model": {"name": name},
        "prices": {name: dict(price)} if price else {},
        "generation": {"samples": config["generation"]["samples"]},
        "metrics": dict(config["metrics"]),
        "rewards": [
            {"name": reward["name"], "primary": bool(reward.get("primary"))}
            for reward in config["rewards"]
        ],
    }


def prepare_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that decide the prompt shards: the prepare rule's rerun trigger."""
    return {
        "dataset": dict(config["dataset"]),
        "prompt": dict(config["prompt"]),
        "generation": {"enabled": config["generation"]["enabled"]},
    }


# --- local files a rule reads: its inputs, so that editing one reruns it -----------------------


def _install_dirs() -> list[Path]:
    """Where installed code lives: rewardflow itself, site-packages and the standard library.

    A module found there changes only with an install, not with an edit, so it is not tracked.
    """
    paths = sysconfig.get_paths()
    dirs = [Path(__file__).resolve().parent.parent]
    dirs += [Path(paths[key]) for key in ("purelib", "platlib", "stdlib", "platstdlib")]
    dirs += [Path(entry) for entry in site.getsitepackages()]
    dirs.append(Path(site.getusersitepackages()))
    return [directory.resolve() for directory in dirs]


def module_source_file(module_name: str) -> Path | None:
    """The file ``module_name`` would be imported from, found without running any of its code.

    ``importlib.util.find_spec("a.b")`` imports package ``a`` first; here only the top-level
    name goes through the import system (which finds it without importing it, editable
    installs included) and each submodule is then looked up in its parent's directories.
    None for a module that cannot be found, has no source file, or is installed code.
    """
    top, *rest = module_name.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    name = top
    for part in rest:
        if spec is None or spec.submodule_search_locations is None:
            return None
        name = f"{name}.{part}"
        spec = importlib.machinery.PathFinder.find_spec(name, list(spec.submodule_search_locations))
    if spec is None or not spec.has_location or not spec.origin:
        return None
    origin = Path(spec.origin).resolve()
    if not origin.is_file() or any(origin.is_relative_to(d) for d in _install_dirs()):
        return None
    return origin


def callable_source_file(reference: str) -> str | None:
    """The local source file of ``path/file.py:name`` or ``package.module:name``, if any."""
    target, _, _ = reference.rpartition(":")
    if target.endswith(".py") or "/" in target:
        return target if Path(target).is_file() else None
    source = module_source_file(target) if target else None
    return str(source) if source else None


def _files_named_in(values: Iterable[Any]) -> list[str]:
    """The strings among ``values`` (and lists of them) that name an existing file."""
    found: list[str] = []
    for value in values:
        if isinstance(value, list):
            found += _files_named_in(value)
        elif isinstance(value, str) and _is_file(value):
            found.append(value)
    return found


def _is_file(value: str) -> bool:
    try:
        return "\n" not in value and Path(value).is_file()
    except (OSError, ValueError):  # too long for a path, or a NUL byte: not a file name
        return False


def _unique(paths: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(path for path in paths if path))


def dataset_files(config: Mapping[str, Any]) -> list[str]:
    """The local dataset file, the prepare rule's input (none for a hub dataset)."""
    path = config["dataset"]["path"]
    return [path] if path and Path(path).is_file() else []


def generation_files(config: Mapping[str, Any]) -> list[str]:
    """Files that decide the generated responses: the simulator's canned answers."""
    if config["model"]["provider"] != "simulator":
        return []
    return dataset_files({"dataset": {"path": config["simulator"]["responses"]}})


def reward_files(config: Mapping[str, Any]) -> list[str]:
    """Source files of the rewards, and files their params name (a schema, a rubric)."""
    return _unique(
        path
        for reward in config["rewards"]
        for path in [
            callable_source_file(reward["function"]),
            *_files_named_in(reward["params"].values()),
        ]
    )


def aggregate_files(config: Mapping[str, Any]) -> list[str]:
    """The source of ``metrics.answer_extractor`` when it is the user's own code."""
    extractor = config["metrics"]["answer_extractor"]
    return _unique([callable_source_file(extractor) if extractor else None])
