"""Options that more than one subcommand takes, defined once so that a name means one thing.

Every subcommand that has one of these options gets it from here, so ``--json`` always means
"one JSON object per line on stdout instead of text", ``--cache-dir`` always names the response
cache, and a run directory is always a positional ``RUN``. ``tests/unit/test_cli.py`` checks
that no subcommand defines one of these names in its own way.
"""

from __future__ import annotations

import argparse

from rewardflow.config.paths import DEFAULT_CACHE_DIR

JSON_HELP = "print one JSON object per line instead of text"
CACHE_DIR_HELP = f"the response cache directory (default: {DEFAULT_CACHE_DIR})"
RUN_METAVAR = "RUN"


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS, not a default: ``rewardflow cache --cache-dir D list`` and
    # ``rewardflow cache list --cache-dir D`` both work, and the subcommand's parser must not
    # overwrite the group's value with its default (read it with :func:`cache_dir`).
    # ``--dir`` is the name ``rewardflow-cache`` had; scripts still pass it.
    parser.add_argument(
        "--cache-dir",
        "--dir",
        dest="cache_dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help=CACHE_DIR_HELP,
    )


def cache_dir(args: argparse.Namespace) -> str:
    return getattr(args, "cache_dir", DEFAULT_CACHE_DIR)


def add_run(parser: argparse.ArgumentParser, many: bool = False, help: str = "") -> None:
    parser.add_argument(
        "runs" if many else "run",
        nargs="+" if many else None,
        metavar=RUN_METAVAR,
        help=help or "a run directory, results/<run_name>",
    )
