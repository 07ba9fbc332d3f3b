"""The ``rewardflow`` command line; see :mod:`rewardflow.cli.main`."""

from rewardflow.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
