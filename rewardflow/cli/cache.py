"""``rewardflow cache list|prune``: look at and prune the shared response cache.

The work is in :mod:`rewardflow.generation.cache_admin`; this module only parses and prints.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rewardflow.cli import options
from rewardflow.cli.errors import UsageError
from rewardflow.generation.cache_admin import PartitionInfo, describe, prune


def add_parser(commands: argparse._SubParsersAction, **named: Any) -> argparse.ArgumentParser:
    """Register the command; ``named`` is its name, aliases and one-line help (cli/main.py)."""
    parser = commands.add_parser(
        **named,
        description="List or prune rewardflow's response cache. Pruning skips (and names) "
        "any journal a running job is writing to, so it is safe while runs are going on.",
    )
    options.add_cache_dir(parser)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    lister = actions.add_parser(
        "list",
        help="partitions with their settings and sizes",
        description="Each cache partition's model, endpoint, sampling settings, response "
        "count, size and newest response.",
    )
    options.add_cache_dir(lister)
    options.add_json(lister)
    lister.set_defaults(handler=run_list)
    pruner = actions.add_parser(
        "prune",
        help="remove cached responses",
        description="Remove a model's partitions (--model) and/or rewrite journals without "
        "entries older than --older-than-days.",
    )
    options.add_cache_dir(pruner)
    pruner.add_argument("--model", metavar="NAME", help="remove every response of this model")
    pruner.add_argument(
        "--older-than-days", type=float, metavar="N", help="remove responses older than this"
    )
    pruner.add_argument("--dry-run", action="store_true", help="report, change nothing")
    pruner.set_defaults(handler=run_prune)
    return parser


def _as_json(info: PartitionInfo) -> str:
    return json.dumps(
        {
            "partition": str(info.path),
            "model": info.model,
            "settings": info.settings,
            "responses": info.responses,
            "bytes": info.bytes,
            "newest": info.newest,
        }
    )


def run_list(args: argparse.Namespace) -> int:
    directory = options.cache_dir(args)
    infos = describe(directory)
    if args.json:
        for info in infos:
            print(_as_json(info))
        return 0
    if not infos:
        print(f"no cached responses in {directory}")
        return 0
    for info in infos:
        settings = info.settings
        print(
            f"{info.path.name}\n  model {info.model} at {settings.get('endpoint', '?')}\n"
            f"  temperature {settings.get('temperature')}, top_p {settings.get('top_p')}, "
            f"max_tokens {settings.get('max_tokens')}, seed {settings.get('seed')}\n"
            f"  {info.responses} responses, {info.bytes / 1e6:.1f} MB, newest {info.age()}"
        )
    return 0


def run_prune(args: argparse.Namespace) -> int:
    if args.model is None and args.older_than_days is None:
        raise UsageError("give --model and/or --older-than-days")
    older_than_s = None if args.older_than_days is None else args.older_than_days * 86400
    report = prune(options.cache_dir(args), args.model, older_than_s, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {report.entries_removed} responses", end="")
    print(f" and {len(report.partitions_removed)} partitions" if report.partitions_removed else "")
    for journal in report.journals_busy:
        print(f"skipped {journal}: a running job is writing to it")
    return 0
