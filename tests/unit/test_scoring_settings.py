"""The scoring stage's typed settings come from the validated config, keys named once."""

from __future__ import annotations

from pathlib import Path

from rewardflow.config import validate_config
from rewardflow.config.scoring import ScoringSettings


def config(**sections):
    raw = {
        "run_name": "demo",
        "dataset": {"path": "data.jsonl"},
        "model": {"name": "m", "provider": "simulator"},
        "rewards": [{"name": "accuracy", "function": "rewardflow.rewards.math:math_reward"}],
        **sections,
    }
    return validate_config(raw)


def test_an_unset_scoring_section_gives_the_schemas_defaults():
    settings = ScoringSettings.from_config(config())

    assert settings == ScoringSettings.defaults()
    assert settings == ScoringSettings(
        timeout_s=60.0, memory_limit_mb=4096, withheld_env=(), cache_dir=Path("results/cache")
    )


def test_the_settings_name_the_models_key_and_the_runs_own_cache():
    settings = ScoringSettings.from_config(
        config(
            scoring={"timeout_s": 5, "memory_limit_mb": None},
            model={"name": "m", "provider": "openai", "base_url": "http://x/v1",
                   "api_key_env": "MY_MODEL_CRED"},
            cache={"shared": False},
        )
    )  # fmt: skip

    assert settings == ScoringSettings(
        timeout_s=5.0,
        memory_limit_mb=None,
        withheld_env=("MY_MODEL_CRED",),
        cache_dir=Path("results/demo/cache"),
    )
