"""``rewardflow inspect list|show RUN``: samples straight from a run's files.

The selection and formatting are in :mod:`rewardflow.reporting.inspect_run`; this module parses
and prints.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rewardflow.cli import options
from rewardflow.reporting.inspect_run import (
    STATUS_CHOICES,
    list_lines,
    sample_record,
    select,
    show_lines,
)
from rewardflow.reporting.run_files import load_run


def _where(text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    return field, value


def add_parser(commands: argparse._SubParsersAction, **named: Any) -> argparse.ArgumentParser:
    """Register the command; ``named`` is its name, aliases and one-line help (cli/main.py)."""
    parser = commands.add_parser(
        **named,
        description="Read a finished run's response and score shards directly.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    lister = actions.add_parser(
        "list",
        help="list samples: id, sample index, status, primary score, error or response",
        description="List samples, filtered by status and metadata, or the lowest-scoring.",
    )
    options.add_run(lister)
    lister.add_argument(
        "--status",
        choices=STATUS_CHOICES,
        help="only samples with this status; 'failed' is generation_failed, as in the "
        "summary's counts.failed",
    )
    lister.add_argument(
        "--where",
        type=_where,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="only samples whose metadata FIELD is VALUE; repeat to require several",
    )
    lister.add_argument("--lowest", type=int, metavar="N", help="the N lowest-scoring samples")
    options.add_json(lister)
    lister.set_defaults(handler=run_list)
    shower = actions.add_parser(
        "show",
        help="one prompt's responses, scores and reasons",
        description="One prompt: its messages, ground truth, and every sample's response, "
        "rewards with reasons, and errors.",
    )
    options.add_run(shower)
    shower.add_argument("id", metavar="ID", help="the prompt's id")
    shower.add_argument("--sample", type=int, metavar="N", help="only sample N")
    shower.set_defaults(handler=run_show)
    return parser


def run_list(args: argparse.Namespace) -> int:
    run = load_run(args.run)
    keys = select(run, args.status, args.where, args.lowest)
    if args.json:
        for key in keys:
            print(json.dumps(sample_record(run, key)))
    else:
        print("\n".join(list_lines(run, keys)) or "no matching samples")
    return 0


def run_show(args: argparse.Namespace) -> int:
    print("\n".join(show_lines(load_run(args.run), args.id, args.sample)))
    return 0
