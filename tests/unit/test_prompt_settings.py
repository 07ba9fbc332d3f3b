"""The prompts stage's typed settings come from the validated config or the prepare params."""

from __future__ import annotations

from rewardflow.config import prepare_params, validate_config
from rewardflow.config.prompts import (
    DatasetSettings,
    FewShotExample,
    HubDataset,
    PrepareSettings,
    PromptSettings,
    ShuffleOptions,
)


def config(**sections):
    raw = {
        "run_name": "demo",
        "dataset": {"path": "data.jsonl"},
        "model": {"name": "m", "provider": "simulator"},
        "rewards": [{"name": "accuracy", "function": "rewardflow.rewards.math:math_reward"}],
        **sections,
    }
    return validate_config(raw)


def test_an_unset_prompt_section_gives_the_schemas_defaults():
    settings = PrepareSettings.from_config(config())

    assert settings.prompt == PromptSettings(
        system=None, template="{question}", few_shot=(), shuffle_options=None
    )
    assert settings.dataset == DatasetSettings(
        path="data.jsonl", format="auto", messages_field=None, huggingface=None, id_field=None,
        ground_truth_field=None, ground_truth_pattern=None, response_field=None, limit=None,
    )  # fmt: skip
    assert settings.generation_enabled is True


def test_every_key_reaches_its_field():
    settings = PrepareSettings.from_config(
        config(
            dataset={"huggingface": {"repo": "openai/gsm8k", "config": "main"},
                     "ground_truth_field": "answer", "response_field": "out", "limit": 5},
            prompt={"system": "Be brief.", "template": "{question}\n{options}",
                    "few_shot": [{"user": "1+1?", "assistant": "2"}],
                    "shuffle_options": {"seed": 3}},
            generation={"enabled": False},
        )
    )  # fmt: skip

    assert settings.dataset.huggingface == HubDataset(
        repo="openai/gsm8k", config="main", split="test", revision=None
    )
    assert (settings.dataset.ground_truth_field, settings.dataset.limit) == ("answer", 5)
    assert settings.prompt.few_shot == (FewShotExample(user="1+1?", assistant="2"),)
    assert settings.prompt.shuffle_options == ShuffleOptions(
        options_field="options", answer_field="answer", seed=3
    )
    assert settings.generation_enabled is False


def test_the_prepare_rules_params_give_the_same_settings_as_the_whole_config():
    whole = config(prompt={"shuffle_options": {"seed": 1}, "template": "{q} {options}"})

    assert PrepareSettings.from_config(prepare_params(whole)) == PrepareSettings.from_config(whole)
