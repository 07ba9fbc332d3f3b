"""Dataset file formats: how a file's rows are read, and which fields they map by default.

A format pairs a reader (JSONL, CSV or Parquet, one module each; each yields ``(source, row)``
so an error can name ``file:line`` or ``file:row N``) with the dataset keys it fills in when the
config leaves them null. Two formats are row layouts rather than file types:

* ``chat_jsonl``: JSONL whose ``messages`` column is the prompt, used as-is;
* ``verl``: verl's RL data layout in Parquet: ``prompt`` (chat messages), ``data_source``,
  ``reward_model.ground_truth``, ``extra_info`` (ids from ``extra_info.index`` when the file has
  it), so a verl file runs with nothing but ``dataset.path`` set.

``dataset.format: auto`` picks a format from the extension and then the content (the first row,
or the Parquet schema); any other value overrides the detection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardflow.errors import DatasetError
from rewardflow.prompts.formats import csv_rows, jsonl_rows, parquet_rows

Reader = Callable[[Path], Iterator[tuple[dict[str, Any], dict[str, Any]]]]


@dataclass(frozen=True)
class FileFormat:
    """A reader, a row counter, and the dataset keys this layout implies for a given file."""

    read: Reader
    count: Callable[[Path], int]
    field_defaults: Callable[[Path], Mapping[str, str]]


def _no_defaults(path: Path) -> Mapping[str, str]:
    return {}


def _chat_defaults(path: Path) -> Mapping[str, str]:
    return {"messages_field": "messages"}


def _verl_defaults(path: Path) -> Mapping[str, str]:
    defaults = {"messages_field": "prompt", "ground_truth_field": "reward_model.ground_truth"}
    if parquet_rows.has_field(path, "extra_info.index"):
        defaults["id_field"] = "extra_info.index"
    return defaults


FORMATS: dict[str, FileFormat] = {
    "jsonl": FileFormat(jsonl_rows.read_rows, jsonl_rows.count_rows, _no_defaults),
    "chat_jsonl": FileFormat(jsonl_rows.read_rows, jsonl_rows.count_rows, _chat_defaults),
    "csv": FileFormat(csv_rows.read_rows, csv_rows.count_rows, _no_defaults),
    "parquet": FileFormat(parquet_rows.read_rows, parquet_rows.count_rows, _no_defaults),
    "verl": FileFormat(parquet_rows.read_rows, parquet_rows.count_rows, _verl_defaults),
}

_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
_CSV_SUFFIXES = frozenset({".csv"})
_PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
#: The layout verl's data preprocessing writes; both columns are needed to call a file verl.
_VERL_COLUMNS = frozenset({"prompt", "reward_model"})


def _first_bytes(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(4096)


def detect_format(path: Path) -> str:
    """The format of the file at ``path``: by extension, then by content."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    suffix = path.suffix.lower()
    head = _first_bytes(path)
    if suffix in _PARQUET_SUFFIXES or (suffix not in _JSONL_SUFFIXES and head[:4] == b"PAR1"):
        columns = set(parquet_rows.column_names(path))
        return "verl" if columns >= _VERL_COLUMNS else "parquet"
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if suffix in _JSONL_SUFFIXES or head.lstrip().startswith(b"{"):
        first = jsonl_rows.first_row(path)
        return "chat_jsonl" if first and isinstance(first.get("messages"), list) else "jsonl"
    raise DatasetError(
        f"{path}: cannot tell the format from the extension {suffix or '(none)'!r} or the "
        f"content; set dataset.format to one of {', '.join(FORMATS)}"
    )
