"""Parquet datasets, read with pyarrow; a row's origin is its 0-based index (``file:row N``).

pyarrow is what ``datasets`` reads Parquet with, so it is installed already; it reads the file in
record batches, so a large file is never held in memory whole. Parquet values are typed, so
each row is turned into plain JSON values here: prompt records are JSON, and a content id is a
hash of the row's JSON.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardflow.errors import DatasetError

# pyarrow (with numpy, ~0.25 s) is imported only when a Parquet file is actually read: every
# generation job imports the prompt modules, and most datasets are JSONL.
if TYPE_CHECKING:
    import pyarrow.parquet as pq

#: Columns pandas adds for a non-default index (``DataFrame.to_parquet``); not data.
_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")
#: Rows per record batch: small enough that a wide file stays in bounded memory.
_BATCH_ROWS = 1024


def _open(path: Path) -> pq.ParquetFile:
    import pyarrow
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as error:
        raise DatasetError(f"{path}: not a readable Parquet file ({error})") from None


def column_names(path: Path) -> list[str]:
    """The data columns (pandas index columns left out)."""
    return [name for name in _open(path).schema_arrow.names if not _PANDAS_INDEX.match(name)]


def read_rows(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(source, row)`` per row, in file order."""
    import pyarrow

    parquet = _open(path)
    columns = column_names(path)
    index = 0
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
            for data in batch.to_pylist():
                source = {"file": str(path), "row": index}
                yield source, _json_row(data, f"{path}:row {index}")
                index += 1
    except (pyarrow.ArrowException, OSError) as error:
        raise DatasetError(f"{path}:row {index}: cannot read this row ({error})") from None


def count_rows(path: Path) -> int:
    """From the file's footer: no row is read."""
    return _open(path).metadata.num_rows


def has_field(path: Path, dotted: str) -> bool:
    """Whether the schema has ``a.b`` (a column ``a`` that is a struct with a field ``b``)."""
    import pyarrow

    container: Any = _open(path).schema_arrow
    for part in dotted.split("."):
        if container is None or container.get_field_index(part) < 0:
            return False
        field_type = container.field(part).type
        container = field_type if pyarrow.types.is_struct(field_type) else None
    return True


def _json_row(data: dict[str, Any], where: str) -> dict[str, Any]:
    return {key: _json_value(value, f"{where} column {key!r}") for key, value in data.items()}


def _json_value(value: Any, where: str) -> Any:
    """A Parquet value as a JSON value: timestamps as ISO 8601, decimals as exact text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(key): _json_value(item, where) for key, item in value.items()}
    if isinstance(value, list | tuple):
        # A Parquet map arrives as a list of (key, value) pairs; keep it as pairs.
        return [_json_value(item, where) for item in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    raise DatasetError(f"{where}: a {type(value).__name__} value has no JSON form")
