"""The checks the workflow runs before any job (rewardflow.preflight): each mistake is reported
at once, naming the config key to fix, and checks that only matter for generation are skipped
when nothing is left to generate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_chat_client import PROVIDER

from rewardflow.config import GenerationStageSettings, validate_config
from rewardflow.errors import ConfigError, MissingApiKeyError, RewardLoadError
from rewardflow.preflight import generation_pending, preflight_checks

MATH = "rewardflow.rewards.math:math_reward"


@pytest.fixture(autouse=True)
def _fake_client_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def config(**sections: Any) -> dict[str, Any]:
    model = {"provider": PROVIDER, "name": "fake", "base_url": "http://fake.invalid/v1"}
    return validate_config(
        {
            "run_name": "pre",
            "dataset": {"path": "unused.jsonl", "response_field": "answer"},
            "shards": 2,
            "model": {**model, **sections.pop("model", {})},
            "rewards": sections.pop("rewards", [{"name": "r", "function": MATH}]),
            **sections,
        }
    )


def finish_shards(results: Path, run_name: str = "pre", shards: int = 2) -> None:
    responses = results / run_name / "responses"
    responses.mkdir(parents=True)
    for index in range(shards):
        (responses / f"shard-{index:03d}.jsonl").write_text("")


def test_a_run_that_can_start_passes(tmp_path):
    preflight_checks(config(), tmp_path)


def test_a_reward_that_does_not_import_is_reported_with_its_reference(tmp_path):
    rewards = [{"name": "r", "function": "no_such_module_here:score"}]
    with pytest.raises(RewardLoadError, match="no_such_module_here:score"):
        preflight_checks(config(rewards=rewards), tmp_path)


def test_a_client_that_does_not_import_names_model_provider(tmp_path):
    with pytest.raises(ConfigError, match="model.provider 'not_a_module_here:Client'"):
        preflight_checks(config(model={"provider": "not_a_module_here:Client"}), tmp_path)


def test_a_missing_api_key_names_the_variable_and_model_api_key_env(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFLIGHT_TEST_KEY", raising=False)
    with pytest.raises(MissingApiKeyError, match="PREFLIGHT_TEST_KEY.*model.api_key_env"):
        preflight_checks(config(model={"api_key_env": "PREFLIGHT_TEST_KEY"}), tmp_path)
    monkeypatch.setenv("PREFLIGHT_TEST_KEY", "sk-preflight-0123456789")
    preflight_checks(config(model={"api_key_env": "PREFLIGHT_TEST_KEY"}), tmp_path)


def test_generation_checks_are_skipped_once_every_shard_is_generated(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFLIGHT_TEST_KEY", raising=False)
    finished = config(model={"provider": "not_a_module_here:Client"})
    finish_shards(tmp_path)
    preflight_checks(finished, tmp_path)  # neither the client nor the key is needed any more
    no_key = config(model={"api_key_env": "PREFLIGHT_TEST_KEY"})
    preflight_checks(no_key, tmp_path)


def test_rewards_are_checked_even_when_nothing_is_left_to_generate(tmp_path):
    finish_shards(tmp_path)
    rewards = [{"name": "r", "function": "no_such_module_here:score"}]
    with pytest.raises(RewardLoadError):
        preflight_checks(config(rewards=rewards), tmp_path)


def test_generation_is_pending_while_any_shard_lacks_its_responses(tmp_path):
    settings = GenerationStageSettings.from_config(config())
    assert generation_pending(settings, tmp_path)
    finish_shards(tmp_path, shards=1)
    assert generation_pending(settings, tmp_path)  # shard 001 is still missing
    (tmp_path / "pre" / "responses" / "shard-001.jsonl").write_text("")
    assert not generation_pending(settings, tmp_path)


def test_nothing_is_pending_when_responses_are_imported(tmp_path):
    imported = GenerationStageSettings.from_config(config(generation={"enabled": False}))
    assert not generation_pending(imported, tmp_path)
