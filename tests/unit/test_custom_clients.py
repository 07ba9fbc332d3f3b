"""model.provider: module:Class loading, cache identities of custom clients and launched
servers, launch presets, and the worked example's client against the contract checks."""

from __future__ import annotations

import sys

import pytest
from conftest import REPO

from rewardflow.config import validate_config
from rewardflow.config.generation import ModelSettings
from rewardflow.errors import ConfigError
from rewardflow.generation.client import OpenAICompatibleClient
from rewardflow.generation.endpoint import client_class
from rewardflow.generation.identity import endpoint_identity as identity_of_model
from rewardflow.generation.launch import PRESETS, LaunchSpec
from rewardflow.preflight import preflight_checks
from rewardflow.testing.client_contract import CONTRACT_CHECKS, run_check

EXAMPLE = "examples/completions_client/completions_client.py:CompletionsClient"


def config(**model):
    return validate_config(
        {
            "run_name": "t",
            "dataset": {"path": "unused.jsonl"},
            "model": {"name": "m", **model},
            "rewards": [{"name": "r", "function": "m:f"}],
        }
    )


def endpoint_identity(validated):
    return identity_of_model(ModelSettings.from_config(validated))


def test_a_client_loads_by_file_path_or_module(monkeypatch):
    monkeypatch.chdir(REPO)
    by_file = client_class(EXAMPLE)
    assert by_file.__name__ == "CompletionsClient"
    monkeypatch.syspath_prepend(str(REPO / "examples" / "completions_client"))
    assert client_class("completions_client:CompletionsClient").__name__ == "CompletionsClient"
    assert client_class("openai") is OpenAICompatibleClient


@pytest.mark.parametrize(
    ("provider", "fragment"),
    [
        ("no_such_module_xyz:Client", "model.provider 'no_such_module_xyz:Client': module"),
        ("missing/file.py:Client", "file missing/file.py not found"),
        (
            "rewardflow.generation.client:ChatRequest",
            "not a subclass of rewardflow.generation.client.ModelClient",
        ),
        ("rewardflow.generation.client:NoSuchClass", "has no attribute 'NoSuchClass'"),
    ],
)
def test_a_bad_client_reference_is_a_config_error_naming_the_key(provider, fragment):
    with pytest.raises(ConfigError, match="model.provider") as caught:
        client_class(provider)
    assert fragment in str(caught.value)


def test_preflight_imports_the_custom_client_before_any_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = config(provider="not_there.py:Client", base_url="http://h/v1")
    run["rewards"] = [{"name": "r", "function": "rewardflow.rewards.math:math_reward"}]
    with pytest.raises(ConfigError, match="not_there.py"):
        preflight_checks(validate_config(run))


def test_existing_cache_identities_are_unchanged():
    assert endpoint_identity(config(base_url="https://API.example.com/v1/")) == (
        "https://api.example.com/v1"
    )


def test_a_custom_client_and_its_options_are_part_of_the_identity():
    plain = endpoint_identity(config(base_url="http://h/v1"))
    custom = endpoint_identity(config(provider=EXAMPLE, base_url="http://h/v1"))
    with_options = endpoint_identity(
        config(provider=EXAMPLE, base_url="http://h/v1", options={"answer_prefix": "A:"})
    )
    assert custom == f"http://h/v1#client={EXAMPLE}"
    assert len({plain, custom, with_options}) == 3


def test_a_launched_servers_identity_is_its_model_and_output_settings_only():
    def identity(**launch):
        return endpoint_identity(config(launch={"preset": "vllm", **launch}))

    base = identity()
    assert base.startswith("launched://")
    assert base == identity(gpus=8, concurrency=4, startup_timeout_s=5, rate_limits=True)
    assert base != identity(model_path="/ckpt/step-2")
    assert base != identity(args="--dtype float16")
    assert base != identity(preset="sglang")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_render_the_model_port_name_and_gpus(preset):
    model = ModelSettings.from_config(
        config(launch={"preset": preset, "model_path": "/ckpt/my model", "gpus": 2})
    )
    assert model.launch is not None
    spec = LaunchSpec.from_settings(model.launch, model.name)
    command = spec.render(8123)
    assert "/ckpt/my model" in command  # one argument, spaces and all
    assert "8123" in command and "m" in command
    assert spec.ready_path == "/health"
    if preset != "llama.cpp":
        assert "2" in command
    if preset == "sglang":
        assert command[0] == sys.executable


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda check: check.__name__)
def test_the_example_completions_client_keeps_the_contract(check, monkeypatch):
    monkeypatch.chdir(REPO)
    run_check(check, client_class(EXAMPLE))
