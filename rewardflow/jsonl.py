"""JSONL reading and writing with the two guarantees the pipeline depends on.

* Strict reading (:func:`read_jsonl`) for inputs a user wrote: a malformed line is an error
  naming the file and line number.
* Tolerant reading (:func:`read_jsonl_tolerant`) for append-only journals that a killed process
  may have left with a torn last line: bad lines are skipped and reported, never fatal, so a
  crash can cost at most the line being written.
* Atomic publishing (:func:`write_jsonl_atomic`): a declared output appears complete or not at
  all, because it is written to a temporary file in the same directory and renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardflow.errors import DatasetError


@dataclass(frozen=True)
class SkippedLine:
    """A journal line that could not be used, kept so the caller can log it."""

    path: Path
    line_number: int
    reason: str


def dumps(record: Any) -> str:
    """One compact JSON line; non-ASCII kept readable since people read these files."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _parsed_lines(handle: Iterable[str]) -> Iterator[tuple[int, Any | json.JSONDecodeError]]:
    """``(line_number, value)`` per non-blank line, the value being the error if unparsable."""
    for line_number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield line_number, json.loads(line)
        except json.JSONDecodeError as error:
            yield line_number, error


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; raise DatasetError on bad ones."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    with open(path, encoding="utf-8") as handle:
        for line_number, value in _parsed_lines(handle):
            if isinstance(value, json.JSONDecodeError):
                raise DatasetError(f"{path}:{line_number}: not valid JSON ({value.msg})")
            if not isinstance(value, dict):
                raise DatasetError(
                    f"{path}:{line_number}: expected a JSON object, got {type(value).__name__}"
                )
            yield line_number, value


def read_jsonl_tolerant(
    path: str | Path, skipped: list[SkippedLine] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the usable objects of a journal, recording torn or corrupted lines in ``skipped``."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_number, value in _parsed_lines(handle):
            if isinstance(value, dict):
                yield value
            elif skipped is not None:
                reason = (
                    value.msg if isinstance(value, json.JSONDecodeError) else "not a JSON object"
                )
                skipped.append(SkippedLine(path, line_number, reason))


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask.

    ``mkstemp`` creates its file 0600, which a rename keeps: results would be readable by
    their owner only, unlike every other file a run writes, so atomic writers set this mode.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_jsonl_atomic(path: str | Path, records: Iterable[Any]) -> int:
    """Write all records to ``path`` atomically; return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(dumps(record))
                handle.write("\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, new_file_mode())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return count


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp_name, new_file_mode())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, value: Any) -> None:
    """One pretty-printed JSON document, written atomically (summaries, settings)."""
    write_text_atomic(path, json.dumps(value, ensure_ascii=False, indent=2) + "\n")
