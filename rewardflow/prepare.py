"""Turn input rows into prompt records and split them into shards.

Prompt ids must be stable across runs and machines, because the response cache and every
comparison between runs join on them: an id comes from the row's ``id_field`` when configured,
else from a SHA-256 of the row's canonical JSON (never Python's ``hash()``, which is salted per
process). Shard assignment is round-robin by row position, so raising ``dataset.limit`` adds
prompts to shards without moving the existing ones.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rewardflow.dataset import Row, iter_rows
from rewardflow.errors import DatasetError
from rewardflow.jsonl import write_jsonl_atomic
from rewardflow.records import Message, PromptRecord


def content_id(data: Mapping[str, Any]) -> str:
    """A stable id from a row's content: same row, same id, on any machine."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "h-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def template_fields(template: str) -> list[str]:
    """Names a ``str.format`` template refers to, e.g. ``["question"]``."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def render_template(template: str, row: Row) -> str:
    try:
        return template.format_map(row.data)
    except KeyError as error:
        fields = ", ".join(sorted(row.data)) or "none"
        raise DatasetError(
            f"{row.location}: prompt.template uses field {error.args[0]!r}, "
            f"which this row lacks (it has: {fields})"
        ) from None
    except (AttributeError, IndexError, TypeError, ValueError) as error:
        raise DatasetError(f"{row.location}: prompt.template cannot be filled: {error}") from None


def build_messages(prompt_config: Mapping[str, Any], user_content: str) -> list[Message]:
    messages: list[Message] = []
    if prompt_config.get("system"):
        messages.append({"role": "system", "content": prompt_config["system"]})
    for example in prompt_config.get("few_shot") or []:
        messages.append({"role": "user", "content": example["user"]})
        messages.append({"role": "assistant", "content": example["assistant"]})
    messages.append({"role": "user", "content": user_content})
    return messages


def extract_ground_truth(row: Row, field: str | None, pattern: str | None) -> str | None:
    """The expected answer; with ``pattern``, its first group (GSM8K: the text after ####)."""
    if not field:
        return None
    if field not in row.data:
        raise DatasetError(f"{row.location}: missing ground truth field {field!r}")
    value = row.data[field]
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if pattern is None:
        return text.strip()
    match = re.search(pattern, text, flags=re.MULTILINE)
    if match is None:
        raise DatasetError(
            f"{row.location}: dataset.ground_truth_pattern {pattern!r} "
            f"does not match field {field!r}"
        )
    return (match.group(1) if match.groups() else match.group(0)).strip()


def extract_responses(row: Row, field: str) -> list[str]:
    """Existing responses to score: a string or a list of strings in ``field``."""
    value = row.data.get(field)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise DatasetError(
        f"{row.location}: dataset.response_field {field!r} must hold a string or a non-empty "
        f"list of strings, got {type(value).__name__}"
    )


def build_prompt_record(row: Row, config: Mapping[str, Any]) -> PromptRecord:
    dataset = config["dataset"]
    prompt = config["prompt"]
    id_field = dataset.get("id_field")
    if id_field:
        if row.data.get(id_field) in (None, ""):
            raise DatasetError(f"{row.location}: missing id field {id_field!r}")
        prompt_id = str(row.data[id_field])
    else:
        prompt_id = content_id(row.data)
    response_field = dataset.get("response_field")
    responses = None
    if response_field and not config["generation"]["enabled"]:
        responses = extract_responses(row, response_field)
    metadata = {key: value for key, value in row.data.items() if key != response_field}
    return PromptRecord(
        id=prompt_id,
        messages=build_messages(prompt, render_template(prompt["template"], row)),
        ground_truth=extract_ground_truth(
            row, dataset.get("ground_truth_field"), dataset.get("ground_truth_pattern")
        ),
        metadata=metadata,
        source=row.source,
        responses=responses,
    )


def build_prompt_records(rows: Iterable[Row], config: Mapping[str, Any]) -> list[PromptRecord]:
    """All prompt records; a repeated explicit id is an error, a repeated row gets ``~2``."""
    records: list[PromptRecord] = []
    first_seen: dict[str, str] = {}
    occurrences: Counter[str] = Counter()
    explicit_ids = bool(config["dataset"].get("id_field"))
    for row in rows:
        record = build_prompt_record(row, config)
        occurrences[record.id] += 1
        if occurrences[record.id] > 1:
            if explicit_ids:
                raise DatasetError(
                    f"{row.location}: duplicate id {record.id!r} (first at {first_seen[record.id]})"
                )
            record = replace(record, id=f"{record.id}~{occurrences[record.id]}")
        first_seen.setdefault(record.id, row.location)
        records.append(record)
    if not records:
        raise DatasetError("the dataset has no rows")
    return records


def split_into_shards(
    records: Sequence[PromptRecord], shard_count: int
) -> list[list[PromptRecord]]:
    """Round-robin by position, so raising the limit never moves an existing prompt."""
    shards: list[list[PromptRecord]] = [[] for _ in range(shard_count)]
    for index, record in enumerate(records):
        shards[index % shard_count].append(record)
    return shards


def prepare_prompts(config: Mapping[str, Any], shard_paths: Sequence[str | Path]) -> int:
    """Read the dataset, build prompts and write one JSONL per shard; return the prompt count."""
    records = build_prompt_records(iter_rows(config["dataset"]), config)
    for path, shard in zip(shard_paths, split_into_shards(records, len(shard_paths)), strict=True):
        write_jsonl_atomic(path, (record.to_dict() for record in shard))
    return len(records)
