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

from rewardflow.config import RESULTS_DIR, GenerationStageSettings, run_dir, shard_labels
from rewardflow.config.scoring import reward_entries
from rewardflow.generation.endpoint import client_class, read_api_key
from rewardflow.rewards.loader import load_rewards


def generation_pending(
    settings: GenerationStageSettings, results_dir: str | Path = RESULTS_DIR
) -> bool:
    """Whether any shard still lacks its response file (and so may need the endpoint)."""
    if not settings.generation.enabled:
        return False
    responses = run_dir(settings.run_name, results_dir) / "responses"
    return any(
        not (responses / f"shard-{shard}.jsonl").exists() for shard in shard_labels(settings.shards)
    )


def preflight_checks(config: Mapping[str, Any], results_dir: str | Path = RESULTS_DIR) -> None:
    """Raise a RewardflowError naming the problem, or return if the run can start."""
    load_rewards(reward_entries(config))
    settings = GenerationStageSettings.from_config(config)
    if generation_pending(settings, results_dir):
        client_class(settings.model.provider)
        read_api_key(settings.model.api_key_env)
