"""CSV datasets: a header line naming the columns, then one row per record.

Every value is text, as CSV has no types. A row's origin is the line its record starts on
(a quoted value may span lines), so ``file:line`` opens at the right place.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rewardflow.errors import DatasetError
from rewardflow.prompts.formats.text import encoding_error


def read_rows(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(source, row)`` per record; a malformed record is a ``file:line`` DatasetError."""
    # utf-8-sig: spreadsheet programs put a byte-order mark before the first column name.
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return
            _check_header(path, header)
            while True:
                start = reader.line_num + 1
                values = next(reader, None)
                if values is None:
                    return
                if not values:  # a blank line
                    continue
                if len(values) != len(header):
                    raise DatasetError(
                        f"{path}:{start}: {len(values)} value(s), but the header on line 1 "
                        f"names {len(header)} column(s)"
                    )
                yield {"file": str(path), "line": start}, dict(zip(header, values, strict=True))
        except csv.Error as error:
            raise DatasetError(f"{path}:{reader.line_num}: not valid CSV ({error})") from None
        except UnicodeDecodeError:
            raise DatasetError(encoding_error(path)) from None


def _check_header(path: Path, header: list[str]) -> None:
    if any(not name.strip() for name in header):
        raise DatasetError(f"{path}:1: the header has an empty column name")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DatasetError(f"{path}:1: the header repeats column(s) {', '.join(repeated)}")


def count_rows(path: Path) -> int:
    """Records after the header. A quoted value may hold newlines, so this parses the file
    (and reports a malformed record as reading would)."""
    return sum(1 for _ in read_rows(path))
