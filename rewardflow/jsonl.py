"""JSONL reading and writing with the two guarantees the pipeline depends on.

* Strict reading (:func:`read_jsonl`) for inputs a user wrote: a malformed line is an error
  naming the file and line number.
* Tolerant reading (:func:`read_jsonl_tolerant`) for append-only journals that a killed process
  may have left with a torn last line: bad lines are skipped and reported, never fatal, so a
  crash can cost at most the line being written.
* Atomic publishing (:func:`write_jsonl_atomic`): a declared output appears complete or not at
  all, because it is written to a temporary file in the same directory and renamed.
  :func:`write_jsonl_shards_atomic` does the same for many files fed by one stream, publishing
  none of them unless the whole stream was written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in ``path``'s directory (same file system, so a rename publishes
    it), named ``.<name>.XXXX.tmp`` so that it never matches a declared output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


@contextmanager
def open_atomic(path: str | Path, fsync: bool = False) -> Iterator[IO[str]]:
    """A text file that replaces ``path`` in one step when the block ends, so readers never
    see half a file; nothing is published if the block raises. ``fsync`` makes the contents
    durable before the rename (shard files, which a crash must leave whole or absent)."""
    path = Path(path)
    fd, tmp_name = _temporary_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp_name, new_file_mode())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_jsonl_atomic(path: str | Path, records: Iterable[Any]) -> int:
    """Write all records to ``path`` atomically; return how many were written."""
    count = 0
    with open_atomic(path, fsync=True) as handle:
        for record in records:
            handle.write(dumps(record))
            handle.write("\n")
            count += 1
    return count


#: Characters of JSON lines :func:`write_jsonl_shards_atomic` holds before appending them.
SHARD_BUFFER_CHARS = 4 * 1024 * 1024


def write_jsonl_shards_atomic(
    paths: Sequence[str | Path],
    records: Iterable[tuple[int, Any]],
    buffer_chars: int | None = None,
) -> int:
    """Write each ``(shard, record)`` to ``paths[shard]``; publish every file, or none.

    One stream feeds many files (the prepare step deals prompts into shards) without holding
    the stream: each file is written to a temporary beside it, and the lines are buffered,
    ``buffer_chars`` in all (default :data:`SHARD_BUFFER_CHARS`), then appended file by file,
    so memory is flat in the number of records and at most one file is open at a time however
    many shards there are. Only once ``records`` is exhausted without error are the files
    synced and renamed; on an error every temporary is removed, so no shard is published and
    an existing one is left as it was. Each file is complete or absent, as with
    :func:`write_jsonl_atomic`, and holds the bytes it would write. Returns how many records
    were written.
    """
    targets = [Path(path) for path in paths]
    limit = SHARD_BUFFER_CHARS if buffer_chars is None else buffer_chars
    temporaries: list[str] = []
    try:
        for target in targets:
            fd, tmp_name = _temporary_beside(target)
            os.close(fd)
            temporaries.append(tmp_name)
        buffers: list[list[str]] = [[] for _ in targets]
        buffered = count = 0
        for shard, record in records:
            line = dumps(record)
            buffers[shard].append(line)
            buffered += len(line) + 1
            count += 1
            if buffered >= limit:
                _append_lines(temporaries, buffers, sync=False)
                buffered = 0
        _append_lines(temporaries, buffers, sync=True)
        mode = new_file_mode()
        for tmp_name in temporaries:
            os.chmod(tmp_name, mode)
        for tmp_name, target in zip(temporaries, targets, strict=True):
            os.replace(tmp_name, target)
    except BaseException:
        for tmp_name in temporaries:  # the ones already renamed are gone: missing_ok
            Path(tmp_name).unlink(missing_ok=True)
        raise
    return count


def _append_lines(names: Sequence[str], buffers: Sequence[list[str]], sync: bool) -> None:
    """Append each buffer's lines to its file, one file open at a time, and empty it."""
    for name, lines in zip(names, buffers, strict=True):
        if not lines and not sync:
            continue
        with open(name, "a", encoding="utf-8") as handle:
            if lines:
                handle.write("\n".join(lines))
                handle.write("\n")
                lines.clear()
            if sync:
                handle.flush()
                os.fsync(handle.fileno())


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, so readers never see half a file."""
    with open_atomic(path) as handle:
        handle.write(text)


def write_json_atomic(path: str | Path, value: Any) -> None:
    """One pretty-printed JSON document, written atomically (summaries, settings)."""
    write_text_atomic(path, json.dumps(value, ensure_ascii=False, indent=2) + "\n")
