"""Inspect and prune the response cache: ``rewardflow-cache list`` and ``rewardflow-cache prune``.

The cache (see :mod:`rewardflow.cache`) is a directory of partitions, one per generation
settings, each holding ``settings.json`` and append-only journals. Pruning by model removes
whole partitions; pruning by age rewrites journals without their old entries. A journal that
a running job holds (its ``flock``) is skipped and reported, never rewritten under it, so
pruning is safe while runs are going on.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import stat
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rewardflow.jsonl import SkippedLine, dumps, read_jsonl_tolerant, write_text_atomic

DEFAULT_CACHE_DIR = "results/cache"


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


def _settings(partition: Path) -> dict:
    try:
        return json.loads((partition / "settings.json").read_text())
    except (OSError, ValueError):
        return {}


def describe(root: str | Path) -> list[PartitionInfo]:
    """One entry per partition: its settings, response count, size and newest response."""
    infos = []
    for partition in sorted(Path(root).glob("*/")):
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


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    days = (time.time() - seconds) / 86400
    return f"{days:.1f} days ago" if days >= 1 else f"{days * 24:.1f} hours ago"


def _list(args: argparse.Namespace) -> int:
    infos = describe(args.dir)
    if not infos:
        print(f"no cached responses in {args.dir}")
        return 0
    for info in infos:
        settings = info.settings
        print(
            f"{info.path.name}\n  model {info.model} at {settings.get('endpoint', '?')}\n"
            f"  temperature {settings.get('temperature')}, top_p {settings.get('top_p')}, "
            f"max_tokens {settings.get('max_tokens')}, seed {settings.get('seed')}\n"
            f"  {info.responses} responses, {info.bytes / 1e6:.1f} MB, newest {_age(info.newest)}"
        )
    return 0


def _prune(args: argparse.Namespace) -> int:
    if args.model is None and args.older_than_days is None:
        print("prune: give --model and/or --older-than-days", file=sys.stderr)
        return 2
    older_than_s = None if args.older_than_days is None else args.older_than_days * 86400
    report = prune(args.dir, args.model, older_than_s, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {report.entries_removed} responses", end="")
    print(f" and {len(report.partitions_removed)} partitions" if report.partitions_removed else "")
    for journal in report.journals_busy:
        print(f"skipped {journal}: a running job is writing to it")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rewardflow-cache", description="Inspect or prune rewardflow's response cache."
    )
    parser.add_argument("--dir", default=DEFAULT_CACHE_DIR, help="cache directory (%(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="partitions with their settings and sizes")
    pruner = commands.add_parser("prune", help="remove cached responses")
    pruner.add_argument("--model", help="remove every response of this model")
    pruner.add_argument("--older-than-days", type=float, help="remove responses older than this")
    pruner.add_argument("--dry-run", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    return _list(args) if args.command == "list" else _prune(args)


if __name__ == "__main__":
    sys.exit(main())
