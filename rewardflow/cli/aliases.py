"""The four commands ``rewardflow`` replaced, kept so that people's scripts keep working.

``rewardflow-compare ARGS`` runs ``rewardflow compare ARGS`` (and so on), after one line on
stderr saying so; the options are the same (``rewardflow-cache --dir`` still works too), and
``rewardflow-inspect RUN list`` becomes ``rewardflow inspect list RUN``. Stdout is untouched:
the simulator's URL announcement and ``--json`` output stay machine-readable.
"""

from __future__ import annotations

import sys

from rewardflow.cli.main import main

INSPECT_ACTIONS = ("list", "show")


def _alias(old: str, command: str, argv: list[str]) -> int:
    print(f"{old} is deprecated; use `rewardflow {command}` (same options)", file=sys.stderr)
    return main([command, *argv])


def _inspect_argv(argv: list[str]) -> list[str]:
    """``RUN ACTION ...`` (the old order) as ``ACTION RUN ...``; anything else as it is."""
    if len(argv) >= 2 and argv[0] not in INSPECT_ACTIONS and argv[1] in INSPECT_ACTIONS:
        return [argv[1], argv[0], *argv[2:]]
    return argv


def simulator() -> int:
    return _alias("rewardflow-simulator", "simulate", sys.argv[1:])


def cache() -> int:
    return _alias("rewardflow-cache", "cache", sys.argv[1:])


def compare() -> int:
    return _alias("rewardflow-compare", "compare", sys.argv[1:])


def inspect() -> int:
    return _alias("rewardflow-inspect", "inspect", _inspect_argv(sys.argv[1:]))
