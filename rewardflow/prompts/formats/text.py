"""What the text readers (JSONL, CSV) share: a ``file:line`` message for non-UTF-8 bytes."""

from __future__ import annotations

from pathlib import Path


def encoding_error(path: Path) -> str:
    """Where a file stops being UTF-8, as ``file:line``, found by a second, binary pass.

    The text reader decodes in blocks, so its error knows only an offset into a block; reading
    the raw lines again (only on this error path) finds the line and column a user can open.
    ``bytes.splitlines`` splits where the text reader's universal newlines do, so the line
    numbers agree with every other ``file:line`` message.
    """
    line_number = 0
    with open(path, "rb") as handle:
        for chunk in handle:
            for line in chunk.splitlines():
                line_number += 1
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as error:
                    return (
                        f"{path}:{line_number}: not valid UTF-8 (byte {line[error.start]:#04x} "
                        f"at column {error.start + 1}); save the file as UTF-8"
                    )
    return f"{path}: not valid UTF-8; save the file as UTF-8"
