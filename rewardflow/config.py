"""Validate a run's config against the JSON schema and fill in its defaults.

Snakemake merges ``--configfile`` and ``--config`` overrides into one dict; this module checks
that dict before any rule runs. Errors name the dotted key and what was expected
("generation.temperature: expected number, got 'hot'"), which jsonschema's own messages do not
do clearly. Checks that span several keys (a base URL for provider ``openai``, a response field
when generation is disabled) live here too, so every config mistake surfaces at parse time.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.machinery
import importlib.util
import re
import site
import sysconfig
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from rewardflow.errors import ConfigError, RewardflowError
from rewardflow.generation.launch import template_problems

# Shipped inside the package so that a non-editable install finds it too; in the repository
# the file is a link, resolved here to the workflow's own workflow/schemas/config.schema.yaml.
SCHEMA_PATH = (Path(__file__).parent / "config.schema.yaml").resolve()

_JSON_TYPE_NAMES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean (true/false)",
    "object": "mapping",
    "array": "list",
    "null": "null",
}


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _dotted(path: Iterator[Any] | Any) -> str:
    parts = [f"[{part}]" if isinstance(part, int) else f".{part}" for part in path]
    return "".join(parts).lstrip(".") or "<config>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _dotted(error.absolute_path)
    if error.validator == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_JSON_TYPE_NAMES.get(name, name) for name in names)
        return f"{key}: expected {wanted}, got {error.instance!r}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = f"{key}: " if error.absolute_path else ""
        return f"{where}unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
    if error.validator == "required":
        return f"{key}: {error.message}"
    if error.validator == "pattern" and "x-expected" in error.schema:
        return f"{key}: expected {error.schema['x-expected']}, got {error.instance!r}"
    if error.validator == "enum":
        return f"{key}: expected one of {error.validator_value}, got {error.instance!r}"
    return f"{key}: {error.message}"


def _fill_defaults(instance: Any, schema: Mapping[str, Any]) -> None:
    """Insert schema defaults for missing keys, recursing into objects and array items."""
    if isinstance(instance, dict):
        for name, subschema in schema.get("properties", {}).items():
            if name not in instance and "default" in subschema:
                instance[name] = copy.deepcopy(subschema["default"])
            if name in instance:
                _fill_defaults(instance[name], subschema)
    elif isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        for item in instance:
            _fill_defaults(item, schema["items"])


def _types(schema: Mapping[str, Any]) -> set[str]:
    declared = schema.get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


def _coerce_command_line_scalars(instance: Any, schema: Mapping[str, Any]) -> Any:
    """Undo ``--config``'s stringification of nested values where the schema wants a scalar.

    Snakemake parses nested ``--config key={...}`` values with YAML's BaseLoader, which turns
    every number and boolean into a string; ``{'temperature': 0.5}`` would otherwise be
    rejected. Strings that do not parse to an allowed type are left for validation to report.
    """
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        return {
            key: _coerce_command_line_scalars(value, properties[key])
            if key in properties
            else value
            for key, value in instance.items()
        }
    if isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        return [_coerce_command_line_scalars(item, schema["items"]) for item in instance]
    allowed = _types(schema)
    if not isinstance(instance, str) or not allowed:
        return instance
    if "string" in allowed:
        # "null" is the only way to write None inside a --config mapping.
        return None if "null" in allowed and instance in ("null", "~") else instance
    try:
        parsed = yaml.safe_load(instance)
    except yaml.YAMLError:
        return instance
    matches = {
        "integer": isinstance(parsed, int) and not isinstance(parsed, bool),
        "number": isinstance(parsed, int | float) and not isinstance(parsed, bool),
        "boolean": isinstance(parsed, bool),
        "null": parsed is None,
    }
    return parsed if any(matches.get(name, False) for name in allowed) else instance


def _check_cross_field_rules(config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    dataset = config["dataset"]
    if (dataset["path"] is None) == (dataset["huggingface"] is None):
        problems.append("dataset: set exactly one of dataset.path or dataset.huggingface")
    if dataset["ground_truth_pattern"] is not None:
        try:
            re.compile(dataset["ground_truth_pattern"])
        except re.error as error:
            problems.append(f"dataset.ground_truth_pattern: not a valid regex ({error})")
    problems += _model_problems(config["model"])
    if not config["generation"]["enabled"] and not dataset["response_field"]:
        problems.append(
            "dataset.response_field: required when generation.enabled is false "
            "(it names the row field holding the responses to score)"
        )
    model = config["model"]
    if config["budget"]["max_cost_usd"] is not None and model["name"] not in config["prices"]:
        problems.append(
            f"budget.max_cost_usd: needs a price for model {model['name']!r} in prices "
            "(USD per million prompt and completion tokens)"
        )
    names = [reward["name"] for reward in config["rewards"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"rewards: duplicate reward name(s) {', '.join(duplicates)}")
    if sum(1 for reward in config["rewards"] if reward["primary"]) > 1:
        problems.append("rewards: mark at most one reward as primary")
    simulator = config["simulator"]
    if simulator["latency_distribution"] != "uniform" and simulator["latency_jitter_ms"] > 0:
        problems.append(
            "simulator.latency_jitter_ms: applies to the uniform latency distribution only; "
            f"with {simulator['latency_distribution']} set simulator.latency_sigma instead"
        )
    return problems


def _model_problems(model: Mapping[str, Any]) -> list[str]:
    """The ``model`` keys' cross-field rules: the base URL, and ``launch``'s command."""
    provider, launch = model["provider"], model["launch"]
    problems = []
    if provider == "openai" and not model["base_url"] and launch is None:
        problems.append(
            "model.base_url: required when model.provider is 'openai' (or set model.launch)"
        )
    if launch is not None:
        if provider == "simulator":
            problems.append("model.launch: not with provider simulator, which launches itself")
        if model["base_url"]:
            problems.append(
                "model.base_url: leave it unset with model.launch (the job's server is it)"
            )
        if not launch["command"] and not launch["preset"]:
            problems.append("model.launch: set preset (vllm, sglang, llama.cpp) or command")
        if launch["command"]:
            problems += template_problems(launch["command"])
        if launch["args"]:
            problems += template_problems(launch["args"] + " {port}", "model.launch.args")
    return problems


def validate_config(raw: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> dict:
    """Return a validated copy of ``raw`` with defaults filled in, or raise ConfigError.

    All problems are reported at once, so fixing a config takes one round trip.
    """
    schema = schema if schema is not None else load_schema()
    config = _coerce_command_line_scalars(copy.deepcopy(dict(raw)), schema)
    _fill_defaults(config, schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(error) for error in errors]
    if not problems:
        problems = _check_cross_field_rules(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order, recursively.

    Snakemake compares a rule's params by ``repr()``, in which a dict's key order shows: without
    this, writing the same config's keys in another order would rerun every step.
    """
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def section_defaults(section: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A config section filled with nothing but its defaults (for callers given no config)."""
    schema = schema if schema is not None else load_schema()
    filled: dict[str, Any] = {}
    _fill_defaults(filled, schema["properties"][section])
    return filled


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

    dataset = config["dataset"]
    prompts = dataset["limit"]
    if dataset["path"] and Path(dataset["path"]).is_file():
        with contextlib.suppress(RewardflowError):  # prepare reports it by file and line
            prompts = count_rows(dataset)
    shards = int(config["shards"])
    if prompts is None:
        return shards, None
    return max(1, min(shards, prompts)), prompts


def shard_names(config: Mapping[str, Any]) -> list[str]:
    """Shard labels, zero-padded so they sort in order in a directory listing."""
    count = int(config["shards"])
    width = max(3, len(str(count - 1)))
    return [f"{index:0{width}d}" for index in range(count)]


# Generation keys that change *how* responses are fetched but never *what* they are. They are
# kept out of the generation rule's params, so changing them never reruns a finished shard.
OPERATIONAL_GENERATION_KEYS = frozenset(
    {
        "concurrency",
        "timeout_s",
        "max_attempts",
        "max_failed_fraction",
        "max_request_time_s",
        "requests_per_minute",
        "tokens_per_minute",
        "parallel_jobs",
        "adaptive_rate",
    }
)
# ``seed`` seeds the latency draws only: answers come from each request's own seed.
OPERATIONAL_SIMULATOR_KEYS = frozenset(
    {"latency_ms", "latency_jitter_ms", "latency_distribution", "latency_sigma", "seed"}
)


# model.launch keys that change how the server is started or used, never what it answers.
OPERATIONAL_LAUNCH_KEYS = frozenset(
    {"startup_timeout_s", "gpus", "concurrency", "rate_limits", "ready_path"}
)


def _model_params(model: Mapping[str, Any]) -> dict[str, Any]:
    # Unset options and launch are left out, so that configs written before these keys existed
    # keep the params their finished shards were made with (and are not rerun).
    params = {key: value for key, value in model.items() if key not in ("options", "launch")}
    if model.get("options"):
        params["options"] = model["options"]
    if model.get("launch") is not None:
        launch = model["launch"]
        params["launch"] = {k: v for k, v in launch.items() if k not in OPERATIONAL_LAUNCH_KEYS}
    return params


def generation_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that decide a shard's responses: the generation rule's rerun trigger."""
    return {
        "model": _model_params(config["model"]),
        "generation": {
            key: value
            for key, value in config["generation"].items()
            if key not in OPERATIONAL_GENERATION_KEYS
        },
        # Raising the budget must rerun shards that stopped short; the cache makes a rerun of
        # a finished shard free, so the whole budget can simply be a param.
        "budget": dict(config["budget"]),
        "simulator": {
            key: value
            for key, value in config["simulator"].items()
            if key not in OPERATIONAL_SIMULATOR_KEYS
        }
        if config["model"]["provider"] == "simulator"
        else None,
    }


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
    dirs = [Path(__file__).resolve().parent]
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
