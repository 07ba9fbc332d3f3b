"""Where input rows come from: a local JSONL file or a Hugging Face hub dataset.

Both sources yield :class:`Row` objects that remember where each row came from, so every later
error about a row can point the user at it (``data.jsonl:17``, or ``openai/gsm8k[test]#17``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from rewardflow.errors import DatasetError
from rewardflow.jsonl import read_jsonl


@dataclass(frozen=True)
class Row:
    """One input row and its origin (``{"file", "line"}`` or ``{"dataset", "split", "row"}``)."""

    data: dict[str, Any]
    source: dict[str, Any]

    @property
    def location(self) -> str:
        """Human-readable origin for error messages."""
        if "file" in self.source:
            return f"{self.source['file']}:{self.source['line']}"
        return f"{self.source['dataset']}[{self.source['split']}]#{self.source['row']}"


def iter_local_rows(path: str | Path) -> Iterator[Row]:
    try:
        for line_number, data in read_jsonl(path):
            yield Row(data=data, source={"file": str(path), "line": line_number})
    except UnicodeDecodeError:
        raise DatasetError(_encoding_error(Path(path))) from None


def _encoding_error(path: Path) -> str:
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


def iter_hub_rows(
    repo: str, config: str | None, split: str, revision: str | None = None
) -> Iterator[Row]:
    """Rows of a hub dataset, through the ``datasets`` library (needs network or its cache)."""
    try:
        import datasets
    except ImportError as error:  # pragma: no cover - datasets is a declared dependency
        raise DatasetError("loading from the hub needs `pip install datasets`") from error
    try:
        loaded = datasets.load_dataset(repo, config, split=split, revision=revision)
    except Exception as error:  # the library raises many unrelated types for "cannot load"
        raise DatasetError(
            f"cannot load hub dataset {repo!r} (config {config!r}, split {split!r}): {error}. "
            "Offline? Set dataset.path to a local JSONL copy instead."
        ) from error
    for index, data in enumerate(loaded):
        yield Row(data=dict(data), source={"dataset": repo, "split": split, "row": index})


def iter_rows(dataset_config: Mapping[str, Any]) -> Iterator[Row]:
    """Rows from the configured source, stopping at ``limit`` without reading the rest."""
    if dataset_config.get("path"):
        rows = iter_local_rows(dataset_config["path"])
    else:
        hub = dataset_config["huggingface"]
        rows = iter_hub_rows(hub["repo"], hub.get("config"), hub["split"], hub.get("revision"))
    limit = dataset_config.get("limit")
    return islice(rows, limit) if limit else rows
