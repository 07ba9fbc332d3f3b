"""The ``rewardflow`` command: one entry point with a subcommand per tool, like ``git``.

Each subcommand (:data:`COMMANDS`) lives in its own module here, with an ``add_parser`` that
registers its options and a handler that calls the feature's module
(:mod:`rewardflow.simulator`, :mod:`rewardflow.generation.cache_admin`,
:mod:`rewardflow.reporting.compare`,
:mod:`rewardflow.reporting.inspect_run`). Parsing and printing stay here so that those modules hold
logic only. Options shared by subcommands come from :mod:`rewardflow.cli.options`, so one name
means one thing everywhere.

Exit status: 0 on success, 1 when the work failed (the message names the file or run), 2 for a
bad command line (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib import metadata

from rewardflow.cli.errors import UsageError
from rewardflow.errors import RewardflowError


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # its add_parser registers the options, and a handler with set_defaults
    summary: str
    aliases: tuple[str, ...] = ()


COMMANDS = (
    Command(
        "simulate",
        "rewardflow.cli.simulate",
        "serve a simulated OpenAI-compatible model for demos, tests and benchmarks",
        ("simulator",),
    ),
    Command("cache", "rewardflow.cli.cache", "list or prune the response cache"),
    Command(
        "compare",
        "rewardflow.cli.compare",
        "compare runs with the first on their shared prompts (paired bootstrap, McNemar)",
    ),
    Command(
        "inspect",
        "rewardflow.cli.inspect",
        "list a run's samples, or show one prompt's responses, scores and reasons",
    ),
)


def version() -> str:
    try:
        return metadata.version("rewardflow")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser(full: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The whole command tree, or with ``full``, only those commands' options.

    The other commands are still there, with their one-line help, so ``rewardflow --help``
    and the error for an unknown command list them all; but their modules are not imported:
    the simulator's pulls in aiohttp's server, which ``rewardflow inspect`` need not pay for.
    """
    parser = argparse.ArgumentParser(
        prog="rewardflow",
        description="Evaluate LLMs with reward functions. The evaluation itself is a "
        "Snakemake workflow (run `snakemake` in the repository); these commands serve the "
        "simulated model and look at caches and results.",
        epilog="`rewardflow COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"rewardflow {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        named = {"name": command.name, "aliases": list(command.aliases), "help": command.summary}
        if full is None or command.name in full:
            importlib.import_module(command.module).add_parser(commands, **named)
        else:
            commands.add_parser(**named, add_help=False)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    """The command the arguments ask for: the first word (the top level has no valued options)."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    for command in COMMANDS:
        if word == command.name or word in command.aliases:
            return command.name
    return None


def _prog(args: argparse.Namespace) -> str:
    words = ["rewardflow", args.command, getattr(args, "action", None)]
    return " ".join(word for word in words if word)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments), run the subcommand, return its status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_named(argv)
    args = build_parser(full={command} if command else set()).parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"{_prog(args)}: error: {error}", file=sys.stderr)
        return 2
    except RewardflowError as error:
        print(f"{_prog(args)}: error: {error}", file=sys.stderr)
        return 1
