"""The ``rewardflow`` command: one entry point with a subcommand per tool, like ``git``.

Each subcommand lives in its own module here (``simulate``, ``cache``, ``compare``,
``inspect``) with an ``add_parser`` that registers its options and a handler that calls the
feature's module (:mod:`rewardflow.simulator`, :mod:`rewardflow.cache_admin`,
:mod:`rewardflow.compare`, :mod:`rewardflow.inspect_run`). Parsing and printing stay here so
that those modules hold logic only. Options shared by subcommands come from
:mod:`rewardflow.cli.options`, so one name means one thing everywhere.

Exit status: 0 on success, 1 when the work failed (the message names the file or run), 2 for a
bad command line (argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from rewardflow.cli import cache, compare, inspect, simulate
from rewardflow.cli.errors import UsageError
from rewardflow.errors import RewardflowError

SUBCOMMANDS = (simulate, cache, compare, inspect)


def version() -> str:
    try:
        return metadata.version("rewardflow")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rewardflow",
        description="Evaluate LLMs with reward functions. The evaluation itself is a "
        "Snakemake workflow (run `snakemake` in the repository); these commands serve the "
        "simulated model and look at caches and results.",
        epilog="`rewardflow COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"rewardflow {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(commands)
    return parser


def _prog(args: argparse.Namespace) -> str:
    words = ["rewardflow", args.command, getattr(args, "action", None)]
    return " ".join(word for word in words if word)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments), run the subcommand, return its status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"{_prog(args)}: error: {error}", file=sys.stderr)
        return 2
    except RewardflowError as error:
        print(f"{_prog(args)}: error: {error}", file=sys.stderr)
        return 1
