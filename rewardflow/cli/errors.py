"""The one error a subcommand raises for a bad command line, whatever it checks."""

from __future__ import annotations

from rewardflow.errors import RewardflowError


class UsageError(RewardflowError):
    """Options that parse but do not make sense together: exit status 2, like argparse's own."""
