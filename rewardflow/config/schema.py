"""Validate a run's config against the JSON schema and fill in its defaults.

Snakemake merges ``--configfile`` and ``--config`` overrides into one dict; this module checks
that dict before any rule runs. Errors name the dotted key and what was expected
("generation.temperature: expected number, got 'hot'"), which jsonschema's own messages do not
do clearly. Checks that span several keys (a base URL for provider ``openai``, a response field
when generation is disabled) live here too, so every config mistake surfaces at parse time.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardflow.errors import ConfigError

# jsonschema, yaml and the launch helpers are imported where they are used: validation runs
# once, at Snakefile parse, while every rule script imports this module (through
# rewardflow.config) for its settings and must not pay ~0.2 s for a validator it never runs.
if TYPE_CHECKING:
    import jsonschema

# Shipped inside the package so that a non-editable install finds it too; in the repository
# the file is a link, resolved here to the workflow's own workflow/schemas/config.schema.yaml.
SCHEMA_PATH = (Path(__file__).parent.parent / "config.schema.yaml").resolve()

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
    import yaml  # lazily: see the imports above

    # libyaml's loader when PyYAML has it: the pure-Python one takes ~0.15 s over the schema,
    # paid at every Snakefile parse (once per job on a cluster).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


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
    import yaml  # lazily: see the imports above

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
        # Only for a launched server: the launch module pulls in urllib's HTTP stack.
        from rewardflow.generation.launch import template_problems

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
    import jsonschema  # lazily: see the imports above

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
