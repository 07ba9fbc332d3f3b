"""Built-in rewards for structured output: is the response JSON, does it fit a schema, and does
it hold the expected values?

Models asked for JSON often wrap it ("Here is the result: ```json {...} ```"), so by default
the JSON is looked for, in this order of preference:

1. the whole response, if it parses;
2. else the content of the first ```json fenced block, if there is one; it alone is judged,
   because it is where the model said its JSON is (an unclosed block, typically a response
   cut off by ``max_tokens``, runs to the end of the response and so fails to parse);
3. else the first top-level ``{...}`` or ``[...]`` span that parses. Spans are found by
   bracket matching that skips JSON strings, and a span that fails to parse is skipped as a
   whole, so a valid object nested inside broken JSON (``{"a": oops, "b": {"c": 1}}``) is not
   mistaken for the answer. An unclosed span ends the search.

With ``extract: false`` only the whole response counts. JSON means RFC 8259 JSON: ``NaN`` and
``Infinity``, which Python's ``json`` module accepts, are refused.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import yaml

from rewardflow.rewards._messages import (
    bool_param,
    last_assistant_text,
    missing_response_reason,
    quote,
    shorten,
)
from rewardflow.rewards.result import MetricResult, RewardResult
from rewardflow.rewards.text import normalize_answer

__all__ = ["json_fields", "json_schema", "json_valid"]

_FENCE_START = re.compile(r"```[ \t]*json[ \t]*\r?\n", re.IGNORECASE)
_OPENER = re.compile(r"[\[{]")
# Inside a span: a JSON string (skipped whole, so brackets in it do not count) or a bracket.
_SPAN_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
# Spans tried before giving up; a response of 100,000 "[x]" must not cost 100,000 parses.
_MAX_SPANS = 32
# Schema violations collected for the reason; best_match needs them all, but not a million.
_MAX_ERRORS = 1000


@dataclass(frozen=True)
class _Parsed:
    """The outcome of looking for JSON: the value (if any), where it came from, or the error."""

    ok: bool
    value: Any
    source: str
    error: str = ""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> tuple[bool, Any, str]:
    """(parsed, value, error) for strict JSON; never raises (deep nesting included)."""
    try:
        return True, json.loads(text, parse_constant=_refuse_constant), ""
    except ValueError as error:  # json.JSONDecodeError, NaN/Infinity, too-long integers
        return False, None, str(error)
    except RecursionError:
        return False, None, "nested too deeply"


def _fence_content(text: str) -> str | None:
    """The content of the first ```json block (to the end if it is never closed)."""
    start = _FENCE_START.search(text)
    if start is None:
        return None
    end = text.find("```", start.end())
    return text[start.end() :] if end == -1 else text[start.end() : end]


def _top_level_spans(text: str) -> Iterator[str]:
    """Balanced ``{...}``/``[...]`` spans outside other spans, left to right.

    Brackets are counted without regard to their kind, and quotes only inside a span (prose
    such as ``the 5" screen`` must not open a string); the parser rejects what does not match.
    """
    position = 0
    while (opener := _OPENER.search(text, position)) is not None:
        depth, end = 0, None
        for token in _SPAN_TOKEN.finditer(text, opener.start()):
            bracket = token.group()
            if bracket[0] == '"':
                continue
            depth += 1 if bracket in "[{" else -1
            if depth == 0:
                end = token.end()
                break
        if end is None:
            return  # unclosed: everything after it is inside it
        yield text[opener.start() : end]
        position = end


def _extract_json(text: str, extract: bool) -> _Parsed:
    """Find and parse the JSON in ``text`` as the module docstring describes."""
    ok, value, error = _loads(text)
    if ok or not extract:
        return _Parsed(ok, value, "whole response", error)
    fenced = _fence_content(text)
    if fenced is not None:
        ok, value, fence_error = _loads(fenced)
        return _Parsed(ok, value, "```json block", fence_error)
    first_error = ""
    for count, span in enumerate(_top_level_spans(text)):
        ok, value, span_error = _loads(span)
        if ok:
            return _Parsed(True, value, f"span {quote(span, 40)}")
        first_error = first_error or f"{quote(span, 40)}: {span_error}"
        if count + 1 >= _MAX_SPANS:
            break
    if first_error:
        return _Parsed(False, None, "span", first_error)
    return _Parsed(False, None, "whole response", f"no JSON found ({error})")


def _parse_response(messages: Any, kwargs: Mapping[str, Any], reward: str) -> _Parsed:
    extract = bool_param(kwargs, "extract", True, reward)
    response = last_assistant_text(messages)
    problem = missing_response_reason(response)
    if problem or response is None:
        return _Parsed(False, None, "", problem or "no assistant message")
    return _extract_json(response.strip(), extract)


def _validity_metric(parsed: _Parsed) -> MetricResult:
    if parsed.ok:
        return MetricResult(1.0, f"parsed from the {parsed.source}")
    where = f"{parsed.source}: " if parsed.source else ""
    return MetricResult(0.0, f"{where}{parsed.error}")


# --- json_valid ----------------------------------------------------------------------------


def json_valid(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Score 1.0 if the response is (or, with ``extract``, contains) valid JSON.

    Where the JSON may be is described in this module's docstring: the whole response, else
    the first ```json block, else the first ``{...}``/``[...]`` span that parses. Any JSON
    value counts, including a bare ``"text"`` or ``42`` when it is the whole response; use
    :func:`json_schema` with ``{"type": "object"}`` to require an object. The ground truth is
    not used. Metric ``valid_json``.

    Config::

        rewards:
          - name: valid_json
            function: rewardflow.rewards.json_rewards:json_valid
            params: {extract: false}   # the whole response must be JSON

    Raises:
        ValueError: ``extract`` is not true/false.
    """
    parsed = _parse_response(messages, kwargs, "json_valid")
    metric = _validity_metric(parsed)
    return RewardResult(metric.score, metric.reason, metrics={"valid_json": metric})


# --- json_schema ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _validator_for_text(schema_json: str) -> jsonschema.protocols.Validator:
    """A checked validator for a schema given as canonical JSON text (so it can be cached)."""
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as error:
        where = "/".join(str(part) for part in error.path) or "the top level"
        raise ValueError(f"json_schema: invalid schema at {where}: {error.message}") from error
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _schema_from_file(path_value: Any) -> Any:
    if not isinstance(path_value, str | Path):
        raise ValueError(f"json_schema: schema_path must be a file path, got {path_value!r}")
    path = Path(path_value)
    try:
        return _read_schema_file(path.resolve(), path.stat().st_mtime_ns)
    except OSError as error:
        raise ValueError(f"json_schema: cannot read schema_path {path}: {error}") from error


@functools.lru_cache(maxsize=16)
def _read_schema_file(path: Path, mtime_ns: int) -> Any:
    """A schema file's content, read once per version of the file (not once per response)."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(f"json_schema: {path} is not valid JSON/YAML: {error}") from error


def _validator(kwargs: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    schema, schema_path = kwargs.get("schema"), kwargs.get("schema_path")
    if (schema is None) == (schema_path is None):
        raise ValueError("json_schema needs exactly one of schema (a mapping) and schema_path")
    if schema is None:
        schema = _schema_from_file(schema_path)
    if not isinstance(schema, Mapping | bool):
        raise ValueError(f"json_schema: a schema must be a mapping, got {type(schema).__name__}")
    try:
        schema_json = json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"json_schema: the schema is not JSON data: {error}") from error
    return _validator_for_text(schema_json)


def json_schema(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Score 1.0 if the response's JSON conforms to a JSON Schema.

    The JSON is found as by :func:`json_valid` (param ``extract``, default true). The schema is
    ``schema`` (a mapping, written inline in the config) or ``schema_path`` (a ``.json``, or
    ``.yaml``/``.yml``, file; relative to the working directory); its ``$schema`` picks the
    draft (default: the latest, 2020-12). ``format`` is asserted for the formats jsonschema
    can check (``email``, ``date``, ``ipv4``...), since a config that names one means it.

    The reason names the most relevant violation (jsonschema's ``best_match``) by its JSON
    path, e.g. ``$.items[0].price: 'abc' is not of type 'number'``, and how many there were.
    Metrics ``valid_json`` and ``schema_valid``. The ground truth is not used.

    Config::

        rewards:
          - name: schema
            function: rewardflow.rewards.json_rewards:json_schema
            params:
              schema:
                type: object
                required: [name, age]
                properties:
                  name: {type: string}
                  age: {type: integer, minimum: 0}

    Raises:
        ValueError: neither or both of ``schema``/``schema_path``, an unreadable schema file,
            or a schema that is not a valid JSON Schema.
    """
    validator = _validator(kwargs)
    parsed = _parse_response(messages, kwargs, "json_schema")
    valid_json = _validity_metric(parsed)
    if not parsed.ok:
        not_checked = MetricResult(0.0, "not checked: no valid JSON")
        metrics = {"valid_json": valid_json, "schema_valid": not_checked}
        return RewardResult(0.0, valid_json.reason, metrics=metrics)
    errors = list(itertools.islice(validator.iter_errors(parsed.value), _MAX_ERRORS))
    if not errors:
        reason = f"conforms to the schema (JSON {valid_json.reason})"
        schema_valid = MetricResult(1.0, "conforms")
    else:
        best = jsonschema.exceptions.best_match(errors)
        count = f"{len(errors)}+" if len(errors) == _MAX_ERRORS else str(len(errors))
        count += " violation" if count == "1" else " violations"
        # json_path reads "$.items[0].price"; the message quotes the offending value, which
        # may be the whole 1 MB response, hence the cut.
        reason = f"{best.json_path}: {shorten(best.message, 200)} ({count})"
        schema_valid = MetricResult(0.0, reason)
    metrics = {"valid_json": valid_json, "schema_valid": schema_valid}
    return RewardResult(schema_valid.score, reason, metrics=metrics)


# --- json_fields ---------------------------------------------------------------------------


def _same_value(actual: Any, expected: Any, normalize: bool) -> bool:
    """JSON equality as a grader means it: 3 == 3.0, but true != 1; strings maybe normalised."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(expected, str) and isinstance(actual, str):
        return (
            normalize_answer(actual) == normalize_answer(expected)
            if normalize
            else (actual == expected)
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(
            _same_value(a, e, normalize) for a, e in zip(actual, expected, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(
            _same_value(actual[key], value, normalize) for key, value in expected.items()
        )
    return actual is None and expected is None


def _expected_object(ground_truth: Any) -> dict[str, Any]:
    value = ground_truth
    if isinstance(ground_truth, str):
        ok, value, error = _loads(ground_truth)
        if not ok:
            raise ValueError(f"json_fields: the ground truth is not JSON: {error}")
    if not isinstance(value, dict) or not value:
        raise ValueError("json_fields: the ground truth must be a non-empty JSON object")
    return value


def json_fields(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """The fraction of the ground truth's fields that the response's JSON object holds.

    The ground truth is a JSON object (text or parsed); each of its top-level keys is a field,
    right when the response's object has that key with an equal value: numbers by value
    (``3`` equals ``3.0``), booleans and null only as themselves, strings after SQuAD-style
    normalisation (case, punctuation, articles and spacing ignored; ``normalize_strings:
    false`` compares them exactly), lists and objects element by element with the same rules.
    Keys the ground truth lacks are ignored: pair this with :func:`json_schema` to refuse
    them. The JSON is found as by :func:`json_valid` (param ``extract``). One metric per field
    (``field.<key>``) plus ``valid_json``; ``all_or_nothing: true`` scores 1 only if every
    field is right.

    Raises:
        ValueError: the ground truth is not a non-empty JSON object, or a bad parameter.
    """
    expected = _expected_object(ground_truth)
    normalize = bool_param(kwargs, "normalize_strings", True, "json_fields")
    all_or_nothing = bool_param(kwargs, "all_or_nothing", False, "json_fields")
    parsed = _parse_response(messages, kwargs, "json_fields")
    valid_json = _validity_metric(parsed)
    metrics: dict[str, MetricResult] = {"valid_json": valid_json}
    if not parsed.ok or not isinstance(parsed.value, dict):
        reason = valid_json.reason if not parsed.ok else "the JSON is not an object"
        for key in expected:
            metrics[f"field.{key}"] = MetricResult(0.0, "not checked: no JSON object")
        return RewardResult(0.0, reason, metrics=metrics)
    wrong = []
    for key, value in expected.items():
        if key not in parsed.value:
            metrics[f"field.{key}"] = MetricResult(0.0, "missing")
            wrong.append(key)
        elif _same_value(parsed.value[key], value, normalize):
            metrics[f"field.{key}"] = MetricResult(1.0, "right")
        else:
            got = shorten(json.dumps(parsed.value[key], ensure_ascii=False), 60)
            want = shorten(json.dumps(value, ensure_ascii=False), 60)
            metrics[f"field.{key}"] = MetricResult(0.0, f"got {got}, expected {want}")
            wrong.append(key)
    right = len(expected) - len(wrong)
    score = float(not wrong) if all_or_nothing else right / len(expected)
    reason = f"{right}/{len(expected)} fields right" + (
        f"; wrong: {', '.join(wrong)}" if wrong else ""
    )
    return RewardResult(score, shorten(reason, 300), metrics=metrics)
