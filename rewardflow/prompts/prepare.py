"""Turn input rows into prompt records and split them into shards.

Prompt ids must be stable across runs and machines, because the response cache and every
comparison between runs join on them: an id comes from the row's ``id_field`` when configured,
else from a SHA-256 of the row's canonical JSON (never Python's ``hash()``, which is salted per
process). Shard assignment is round-robin by row position, so raising ``dataset.limit`` adds
prompts to shards without moving the existing ones.

The step streams: rows become records and lines of the shard files one at a time, so its
memory stays nearly flat in the number of prompts (what grows is the ids seen, 16-32 bytes
each, to refuse a repeated one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

from rewardflow.config.prompts import PrepareSettings, PromptSettings
from rewardflow.errors import DatasetError
from rewardflow.jsonl import write_jsonl_shards_atomic
from rewardflow.prompts import choices
from rewardflow.prompts.dataset import Row, iter_rows, resolve_dataset
from rewardflow.prompts.fields import MISSING, get_field
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


def build_messages(prompt: PromptSettings, user_content: str) -> list[Message]:
    messages: list[Message] = []
    if prompt.system:
        messages.append({"role": "system", "content": prompt.system})
    for example in prompt.few_shot:
        messages.append({"role": "user", "content": example.user})
        messages.append({"role": "assistant", "content": example.assistant})
    messages.append({"role": "user", "content": user_content})
    return messages


def extract_ground_truth(row: Row, field: str | None, pattern: str | None) -> str | None:
    """The expected answer; with ``pattern``, its first group (GSM8K: the text after ####)."""
    if not field:
        return None
    value = get_field(row.data, field)
    if value is MISSING:
        raise DatasetError(f"{row.location}: missing ground truth field {field!r}")
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
    value = get_field(row.data, field)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise DatasetError(
        f"{row.location}: dataset.response_field {field!r} must hold a string or a non-empty "
        f"list of strings, got {'nothing' if value is MISSING else type(value).__name__}"
    )


#: Roles a chat prompt may hold; OpenAI-compatible endpoints reject others.
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def extract_messages(row: Row, field: str) -> list[Message]:
    """A row's own chat messages (chat JSONL ``messages``, verl ``prompt``), used as the prompt.

    Keys whose value is null are dropped: Parquet stores a list of messages as structs with
    one shared set of keys, so a message without ``name`` comes back as ``"name": null``.
    """
    value = get_field(row.data, field)
    if value is MISSING:
        raise DatasetError(f"{row.location}: missing messages field {field!r}")
    if not isinstance(value, list) or not value:
        raise DatasetError(
            f"{row.location}: field {field!r} must be a non-empty list of chat messages "
            f"({{role, content}}), got {type(value).__name__}"
        )
    messages: list[Message] = []
    for position, message in enumerate(value):
        where = f"{row.location}: {field}[{position}]"
        if not isinstance(message, dict):
            raise DatasetError(
                f"{where}: a message must be an object, got {type(message).__name__}"
            )
        role, content = message.get("role"), message.get("content")
        if role not in CHAT_ROLES:
            raise DatasetError(f"{where}: role must be one of {sorted(CHAT_ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise DatasetError(f"{where}: content must be text, got {type(content).__name__}")
        messages.append({key: item for key, item in message.items() if item is not None})
    return messages


def _check_chat_prompt_settings(settings: PrepareSettings) -> None:
    """A chat dataset brings its own prompt, so system and few-shot settings cannot apply."""
    dataset, prompt = settings.dataset, settings.prompt
    if dataset.messages_field and (prompt.system or prompt.few_shot):
        where = dataset.path or "the dataset"
        raise DatasetError(
            f"prompt.system / prompt.few_shot: {where} brings its own chat messages (field "
            f"{dataset.messages_field!r}, format {dataset.format}), which are used as-is; "
            "remove these keys, or put the system message into the data"
        )


def explicit_id(row: Row, id_field: str) -> str:
    """A row's id from its ``id_field``, as text."""
    value = get_field(row.data, id_field)
    if value is MISSING or value in (None, ""):
        raise DatasetError(f"{row.location}: missing id field {id_field!r}")
    return str(value)


def build_prompt_record(row: Row, settings: PrepareSettings) -> PromptRecord:
    dataset = settings.dataset
    id_field = dataset.id_field
    prompt_id = explicit_id(row, id_field) if id_field else content_id(row.data)
    response_field = dataset.response_field
    responses = None
    if response_field and not settings.generation_enabled:
        responses = extract_responses(row, response_field)
    messages_field = dataset.messages_field
    if messages_field:
        messages = extract_messages(row, messages_field)
    else:
        prompt = settings.prompt
        messages = build_messages(prompt, render_template(prompt.template, row))
    # The prompt's own messages are the record's `messages`; a second copy would only bloat it.
    left_out = {response_field, messages_field}
    metadata = {key: value for key, value in row.data.items() if key not in left_out}
    return PromptRecord(
        id=prompt_id,
        messages=messages,
        ground_truth=extract_ground_truth(
            row, dataset.ground_truth_field, dataset.ground_truth_pattern
        ),
        metadata=metadata,
        source=row.source,
        responses=responses,
    )


_UINT64 = (1 << 64) - 1


class _SeenIds:
    """The prompt ids seen so far, as 64-bit fingerprints in one flat array: 16-32 bytes an
    id, where a set of the ids themselves costs ~90 (at a million prompts, 16 MB against ~90).

    Open addressing, linear probing, a quarter to half full; 0 marks an empty slot, so the
    fingerprint 0 is kept aside. A content id's fingerprint is its own 64 bits, so equal
    fingerprints mean equal ids; an explicit id's is its ``hash`` (salted per process, which
    is fine for a table that lives in one), so a repeat is only a suspect, for the caller to
    confirm.
    """

    def __init__(self) -> None:
        self._slots: array[int] = array("Q", bytes(8 * 1024))
        self._count = 0
        self._zero = False

    @staticmethod
    def fingerprint(prompt_id: str, explicit: bool) -> int:
        return hash(prompt_id) & _UINT64 if explicit else int(prompt_id[2:], 16)

    def add(self, fingerprint: int) -> bool:
        """Remember ``fingerprint``; False if it was there already."""
        if fingerprint == 0:
            seen, self._zero = self._zero, True
            return not seen
        if not self._insert(self._slots, fingerprint):
            return False
        self._count += 1
        if 2 * self._count > len(self._slots):
            grown: array[int] = array("Q", bytes(16 * len(self._slots)))
            for kept in self._slots:
                if kept:
                    self._insert(grown, kept)
            self._slots = grown
        return True

    @staticmethod
    def _insert(slots: array[int], fingerprint: int) -> bool:
        mask = len(slots) - 1
        index = fingerprint & mask
        while slot := slots[index]:
            if slot == fingerprint:
                return False
            index = (index + 1) & mask
        slots[index] = fingerprint
        return True


#: ``first_location(prompt_id, position)``: where the first of the rows before ``position``
#: (0-based) with this explicit id is, or None if none has it.
FirstLocation = Callable[[str, int], str | None]


def iter_prompt_records(
    rows: Iterable[Row], settings: PrepareSettings, first_location: FirstLocation
) -> Iterator[PromptRecord]:
    """The prompt records, one per row, as they are built; a repeated explicit id is an error,
    a repeated row gets ``~2``, ``~3``...

    Only each id's fingerprint is kept (see :class:`_SeenIds`), and the count of a repeated
    content id. The first location of a repeated explicit id, needed for the error only, comes
    from ``first_location`` (a second pass over the rows, in that rare case). The settings are
    checked now, before any row is read.
    """
    settings = replace(settings, dataset=resolve_dataset(settings.dataset))
    _check_chat_prompt_settings(settings)
    choices.check_settings(settings)
    return _prompt_records(rows, settings, first_location)


def _prompt_records(
    rows: Iterable[Row], settings: PrepareSettings, first_location: FirstLocation
) -> Iterator[PromptRecord]:
    seen = _SeenIds()
    repeats: dict[str, int] = {}  # content id -> how many rows had it, once a row repeats
    explicit_ids = bool(settings.dataset.id_field)
    position = -1
    for position, row in enumerate(rows):
        record = build_prompt_record(row, settings)
        if not seen.add(_SeenIds.fingerprint(record.id, explicit_ids)):
            if explicit_ids:
                first = first_location(record.id, position)
                if first is not None:  # else two ids that share a hash
                    raise DatasetError(
                        f"{row.location}: duplicate id {record.id!r} (first at {first})"
                    )
            else:
                occurrence = repeats[record.id] = repeats.get(record.id, 1) + 1
                record = replace(record, id=f"{record.id}~{occurrence}")
        # Once the id is final (the shuffle depends on it), as sample 0 will see it: the
        # generation job renders the other samples' own orders the same way.
        yield choices.for_sample(record, 0, settings.prompt)
    if position < 0:
        raise DatasetError("the dataset has no rows")


def build_prompt_records(rows: Iterable[Row], settings: PrepareSettings) -> list[PromptRecord]:
    """All prompt records in a list (the prepare step streams them: :func:`prepare_prompts`)."""
    records: list[PromptRecord] = []

    def first_location(prompt_id: str, position: int) -> str | None:
        for record in records:
            if record.id == prompt_id:
                return Row(record.metadata, record.source).location
        return None

    records.extend(iter_prompt_records(rows, settings, first_location))
    return records


def shard_of(position: int, shard_count: int) -> int:
    """Round-robin by position, so raising the limit never moves an existing prompt."""
    return position % shard_count


def split_into_shards(
    records: Sequence[PromptRecord], shard_count: int
) -> list[list[PromptRecord]]:
    """The records dealt into ``shard_count`` lists as :func:`prepare_prompts` deals them."""
    shards: list[list[PromptRecord]] = [[] for _ in range(shard_count)]
    for position, record in enumerate(records):
        shards[shard_of(position, shard_count)].append(record)
    return shards


def prepare_prompts(settings: PrepareSettings, shard_paths: Sequence[str | Path]) -> int:
    """Read the dataset, build prompts and write one JSONL per shard; return the prompt count.

    Streamed: each record goes to its shard's file as it is built (no list of records), and
    the shard files are published together once the whole dataset was read without error;
    on an error none is written (see :func:`~rewardflow.jsonl.write_jsonl_shards_atomic`).
    """
    settings = replace(settings, dataset=resolve_dataset(settings.dataset))
    dataset = settings.dataset
    if dataset.path:
        mapped = {
            key: getattr(dataset, key)
            for key in ("messages_field", "ground_truth_field", "id_field")
            if getattr(dataset, key)
        }
        logging.info("dataset %s: format %s, fields %s", dataset.path, dataset.format, mapped)

    def first_location(prompt_id: str, position: int) -> str | None:
        """Read the rows again up to ``position``: only when an explicit id repeats."""
        assert dataset.id_field
        for row in islice(iter_rows(dataset), position):
            if explicit_id(row, dataset.id_field) == prompt_id:
                return row.location
        return None

    shard_count = len(shard_paths)
    records = iter_prompt_records(iter_rows(dataset), settings, first_location)
    return write_jsonl_shards_atomic(
        shard_paths,
        (
            (shard_of(position, shard_count), record.to_dict())
            for position, record in enumerate(records)
        ),
    )
