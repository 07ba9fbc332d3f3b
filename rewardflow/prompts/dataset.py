"""Where input rows come from: a local file (JSONL, CSV, Parquet) or a Hugging Face hub dataset.

Every source yields :class:`Row` objects that remember where each row came from, so every later
error about a row can point the user at it (``data.jsonl:17``, ``train.parquet:row 16``, or
``openai/gsm8k[test]#17``). The file formats themselves live in :mod:`rewardflow.prompts.formats`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

from rewardflow.config.prompts import DatasetSettings
from rewardflow.errors import DatasetError
from rewardflow.prompts.formats import FORMATS, detect_format


@dataclass(frozen=True)
class Row:
    """One input row and its origin: ``{"file", "line"}`` (JSONL, CSV), ``{"file", "row"}``
    (Parquet, 0-based) or ``{"dataset", "split", "row"}`` (hub)."""

    data: dict[str, Any]
    source: dict[str, Any]

    @property
    def location(self) -> str:
        """Human-readable origin for error messages."""
        if "line" in self.source:
            return f"{self.source['file']}:{self.source['line']}"
        if "file" in self.source:
            return f"{self.source['file']}:row {self.source['row']}"
        return f"{self.source['dataset']}[{self.source['split']}]#{self.source['row']}"


def resolve_dataset(dataset: DatasetSettings) -> DatasetSettings:
    """The dataset settings with ``format`` detected and that format's field mapping filled in.

    A key the config sets wins over the format's default (a verl file with ``id_field: uid``
    takes ids from ``uid``). Resolving twice gives the same result, so callers need not care
    whether the settings have been resolved already.
    """
    requested = dataset.format or "auto"
    if not dataset.path:
        if requested != "auto":
            raise DatasetError(
                f"dataset.format: {requested!r} describes a dataset.path file; a hub dataset is "
                "read by the datasets library, so leave format at auto and map its columns "
                "with dataset.messages_field, ground_truth_field and id_field"
            )
        return dataset
    path = Path(dataset.path)
    name = detect_format(path) if requested == "auto" else requested
    if name not in FORMATS:
        raise DatasetError(f"dataset.format: {name!r} is not one of auto, {', '.join(FORMATS)}")
    implied = {
        key: value
        for key, value in FORMATS[name].field_defaults(path).items()
        if getattr(dataset, key) is None
    }
    return replace(dataset, format=name, **implied)


def iter_local_rows(path: str | Path, format_name: str = "jsonl") -> Iterator[Row]:
    """Rows of a local file in the given format (see :mod:`rewardflow.prompts.formats`)."""
    for source, data in FORMATS[format_name].read(Path(path)):
        yield Row(data=data, source=source)


def count_rows(dataset: DatasetSettings) -> int | None:
    """How many prompts the dataset gives (after ``limit``), or None for a hub dataset.

    Cheap enough for plan time: a Parquet count comes from the file's footer, a JSONL count
    from its non-blank lines; only CSV is parsed, as a quoted value may span lines. It does not
    check the rows; preparing them reports a bad one by ``file:line``.
    """
    resolved = resolve_dataset(dataset)
    if not resolved.path:
        return None
    count = FORMATS[resolved.format].count(Path(resolved.path))
    return min(count, resolved.limit) if resolved.limit else count


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
            "Offline? Set dataset.path to a local copy (JSONL, CSV or Parquet) instead."
        ) from error
    for index, data in enumerate(loaded):
        yield Row(data=dict(data), source={"dataset": repo, "split": split, "row": index})


def iter_rows(dataset: DatasetSettings) -> Iterator[Row]:
    """Rows from the configured source, stopping at ``limit`` without reading the rest."""
    dataset = resolve_dataset(dataset)
    if dataset.path:
        rows = iter_local_rows(dataset.path, dataset.format)
    elif dataset.huggingface is not None:
        hub = dataset.huggingface
        rows = iter_hub_rows(hub.repo, hub.config, hub.split, hub.revision)
    else:  # the schema asks for one of the two
        raise DatasetError("set dataset.path or dataset.huggingface")
    return islice(rows, dataset.limit) if dataset.limit else rows
