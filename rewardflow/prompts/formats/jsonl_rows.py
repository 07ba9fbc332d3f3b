"""JSONL datasets: one JSON object per line; a row's origin is its ``file:line``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rewardflow.errors import DatasetError
from rewardflow.jsonl import read_jsonl
from rewardflow.prompts.formats.text import encoding_error


def read_rows(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(source, row)`` per non-blank line; a bad line is a ``file:line`` DatasetError."""
    try:
        for line_number, data in read_jsonl(path):
            yield {"file": str(path), "line": line_number}, data
    except UnicodeDecodeError:
        raise DatasetError(encoding_error(path)) from None


def first_row(path: Path) -> dict[str, Any] | None:
    """The first row, for format detection; None for a file with no rows."""
    return next((data for _, data in read_rows(path)), None)


def count_rows(path: Path) -> int:
    """Non-blank lines, counted without parsing them (cheap enough to run at plan time)."""
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())
