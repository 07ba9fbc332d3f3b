"""Inspect and prune the response cache (``rewardflow cache list`` / ``rewardflow cache prune``).

The cache (see :mod:`rewardflow.generation.cache`) is a directory of partitions, one per generation
settings, each holding ``settings.json`` and append-only journals. Pruning by model removes
whole partitions; pruning by age rewrites journals without their old entries. A journal that
a running job holds (its ``flock``) is skipped and reported, never rewritten under it, so
pruning is safe while runs are going on.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from rewardflow.jsonl import SkippedLine, dumps, read_jsonl_tolerant, write_text_atomic


@dataclass(frozen=True)
class PartitionInfo:
    path: Path
    settings: dict
    responses: int
    bytes: int
    newest: float | None

    @property
    def model(self) -> str:
        return str(self.settings.get("model", "?"))

    def age(self) -> str:
        """How long ago the newest response was cached, for people: "2.5 days ago"."""
        if self.newest is None:
            return "-"
        days = (time.time() - self.newest) / 86400
        return f"{days:.1f} days ago" if days >= 1 else f"{days * 24:.1f} hours ago"


def _settings(partition: Path) -> dict:
    try:
        return json.loads((partition / "settings.json").read_text())
    except (OSError, ValueError):
        return {}


def describe(root: str | Path) -> list[PartitionInfo]:
    """One entry per partition: its settings, response count, size and newest response."""
    infos = []
    # Hidden directories hold no responses (.rates: what generation jobs learned of rates).
    for partition in sorted(p for p in Path(root).glob("*/") if not p.name.startswith(".")):
        journals = sorted(partition.glob("*.jsonl"))
        entries = [entry for journal in journals for entry in read_jsonl_tolerant(journal)]
        times = [float(entry.get("created_at", 0)) for entry in entries]
        infos.append(
            PartitionInfo(
                path=partition,
                settings=_settings(partition),
                responses=len({entry.get("key") for entry in entries}),
                bytes=sum(journal.stat().st_size for journal in journals),
                newest=max(times) if times else None,
            )
        )
    return infos


@dataclass
class PruneReport:
    partitions_removed: list[Path] = field(default_factory=list)
    entries_removed: int = 0
    journals_busy: list[Path] = field(default_factory=list)


def _rewrite_without_old(journal: Path, cutoff: float, dry_run: bool) -> int | None:
    """Drop entries created before ``cutoff``; None if a writer holds the journal."""
    with open(journal, "r+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        skipped: list[SkippedLine] = []
        entries = list(read_jsonl_tolerant(journal, skipped))
        kept = [entry for entry in entries if float(entry.get("created_at", 0)) >= cutoff]
        removed = len(entries) - len(kept)
        if removed and not dry_run:
            if kept:
                mode = os.fstat(handle.fileno()).st_mode
                write_text_atomic(journal, "".join(dumps(entry) + "\n" for entry in kept))
                os.chmod(journal, stat.S_IMODE(mode))  # a shared cache's journals stay shared
            else:
                journal.unlink()
        return removed


def prune(
    root: str | Path,
    model: str | None = None,
    older_than_s: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneReport:
    """Remove a model's partitions and/or entries older than ``older_than_s`` seconds."""
    report = PruneReport()
    cutoff = None if older_than_s is None else (now or time.time()) - older_than_s
    for info in describe(root):
        if model is not None and info.model != model:
            continue
        if cutoff is None:
            report.partitions_removed.append(info.path)
            report.entries_removed += info.responses
            if not dry_run:
                shutil.rmtree(info.path)
            continue
        for journal in sorted(info.path.glob("*.jsonl")):
            removed = _rewrite_without_old(journal, cutoff, dry_run)
            if removed is None:
                report.journals_busy.append(journal)
            else:
                report.entries_removed += removed
    return report
