"""Checks run once, before any job starts, so mistakes cost seconds instead of paid requests.

The workflow calls :func:`preflight_checks` from ``onstart`` (which runs in the main process
only, never in a dry run): every reward function must import, and if responses still have to
be generated, a custom model client (``model.provider: module:Class``) must import and the API
key must be present.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rewardflow.config import shard_names
from rewardflow.generation.endpoint import client_class, read_api_key
from rewardflow.rewards.loader import load_rewards


def generation_pending(config: Mapping[str, Any], results_dir: str | Path = "results") -> bool:
    """Whether any shard still lacks its response file (and so may need the endpoint)."""
    if not config["generation"]["enabled"]:
        return False
    run_dir = Path(results_dir) / config["run_name"] / "responses"
    return any(not (run_dir / f"shard-{shard}.jsonl").exists() for shard in shard_names(config))


def preflight_checks(config: Mapping[str, Any]) -> None:
    """Raise a RewardflowError naming the problem, or return if the run can start."""
    load_rewards(config["rewards"])
    if generation_pending(config):
        client_class(config["model"]["provider"])
        read_api_key(config)
