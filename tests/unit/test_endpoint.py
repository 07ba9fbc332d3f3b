"""Which endpoint a job talks to and how it is identified in the cache
(rewardflow.generation.endpoint), from typed model settings."""

from __future__ import annotations

from typing import Any

import pytest
from fake_chat_client import PROVIDER

from rewardflow.config import validate_config
from rewardflow.config.generation import GenerationJobSettings, ModelSettings, ResponseIdentity
from rewardflow.errors import ConfigError, MissingApiKeyError
from rewardflow.generation.cache import cache_key
from rewardflow.generation.endpoint import (
    launch_spec,
    model_endpoint,
    read_api_key,
    request_seed,
    simulator_command,
)
from rewardflow.generation.identity import LAUNCHED_SCHEME, SIMULATOR_SCHEME, endpoint_identity
from rewardflow.redaction import redact

MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


def config(model: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return validate_config(
        {
            "run_name": "ep",
            "dataset": {"path": "unused.jsonl"},
            "model": {"name": "m", **model},
            "rewards": [{"name": "r", "function": "m:f"}],
            **sections,
        }
    )


def model(spec: dict[str, Any], **sections: Any) -> ModelSettings:
    return ModelSettings.from_config(config(spec, **sections))


def openai(**extra: Any) -> ModelSettings:
    return model({"provider": "openai", "base_url": "https://API.Example.com/v1/", **extra})


def test_an_openai_endpoint_is_its_normalised_url():
    assert endpoint_identity(openai()) == "https://api.example.com/v1"
    assert endpoint_identity(openai(base_url="https://api.example.com/v1")) == (
        "https://api.example.com/v1"
    )


def test_the_key_variable_is_not_part_of_the_identity():
    assert endpoint_identity(openai(api_key_env="ANY_KEY")) == endpoint_identity(openai())


def test_a_custom_client_and_its_options_are_part_of_the_identity():
    custom = model({"provider": PROVIDER, "base_url": "http://h/v1"})
    optioned = model({"provider": PROVIDER, "base_url": "http://h/v1", "options": {"a": 1}})
    assert endpoint_identity(custom) == f"http://h/v1#client={PROVIDER}"
    assert endpoint_identity(optioned).startswith(f"http://h/v1#client={PROVIDER};options=")


def launched(**launch: Any) -> ModelSettings:
    return model({"provider": "openai", "launch": {"preset": "vllm", **launch}})


def test_a_launched_server_is_identified_by_its_command_not_its_operation():
    base = endpoint_identity(launched())
    assert base.startswith(LAUNCHED_SCHEME)
    operational = {"gpus": 4, "concurrency": 2, "startup_timeout_s": 5, "rate_limits": True}
    assert endpoint_identity(launched(**operational)) == base
    assert endpoint_identity(launched(ready_path="/v1/models")) == base
    assert endpoint_identity(launched(model_path="/ckpt/other")) != base
    assert endpoint_identity(launched(preset="sglang")) != base


def simulated(**simulator: Any) -> ModelSettings:
    return model({"provider": "simulator"}, simulator=simulator)


def test_the_simulator_is_identified_by_what_decides_its_answers(tmp_path):
    base = endpoint_identity(simulated())
    assert base.startswith(SIMULATOR_SCHEME)
    latency = {"latency_ms": 5, "latency_jitter_ms": 2, "seed": 9}
    assert endpoint_identity(simulated(**latency)) == base
    assert endpoint_identity(simulated(wrong_rate=0.9)) != base
    assert endpoint_identity(simulated(rule="echo")) != base
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"prompt": "a", "response": "b"}\n')
    first = endpoint_identity(simulated(responses=str(answers)))
    answers.write_text('{"prompt": "a", "response": "c"}\n')
    assert endpoint_identity(simulated(responses=str(answers))) != first  # by content


def test_a_missing_simulator_responses_file_names_its_key(tmp_path):
    settings = simulated(responses=str(tmp_path / "gone.jsonl"))
    with pytest.raises(ConfigError, match="simulator.responses"):
        endpoint_identity(settings)


def test_the_endpoint_decides_the_cache_key():
    generation = GenerationJobSettings.from_config(config({"provider": "simulator"}))
    keys = {
        endpoint_identity(settings): cache_key(
            ResponseIdentity.of(generation, settings.name, endpoint_identity(settings)),
            MESSAGES,
            0,
        )
        for settings in (openai(), launched(), simulated())
    }
    assert len(set(keys.values())) == 3


def test_read_api_key_reads_and_registers_the_key(monkeypatch):
    assert read_api_key(None) is None
    monkeypatch.delenv("ENDPOINT_TEST_KEY", raising=False)
    with pytest.raises(MissingApiKeyError, match="ENDPOINT_TEST_KEY"):
        read_api_key("ENDPOINT_TEST_KEY")
    monkeypatch.setenv("ENDPOINT_TEST_KEY", "  sk-endpoint-test-0123456789  ")
    assert read_api_key("ENDPOINT_TEST_KEY") == "sk-endpoint-test-0123456789"
    assert "sk-endpoint-test-0123456789" not in redact("sent sk-endpoint-test-0123456789")


def test_a_configured_endpoint_starts_no_server():
    assert launch_spec(openai()) is None
    with model_endpoint(openai()) as endpoint:
        assert endpoint.base_url == "https://API.Example.com/v1/"
        assert endpoint.server is None


def test_the_simulator_and_a_launch_are_started_as_servers():
    spec = launch_spec(simulated(latency_ms=7, seed=3))
    assert spec is not None and spec.ready_path == "/health"
    rendered = spec.render(8123)
    assert rendered[rendered.index("--port") + 1] == "8123"
    assert rendered[rendered.index("--latency-ms") + 1] == "7"
    assert rendered[rendered.index("--seed") + 1] == "3"
    served = launch_spec(launched(model_path="/ckpt/a", gpus=2))
    assert served is not None
    assert "/ckpt/a" in served.render(9000) and "9000" in served.render(9000)


def test_the_simulator_command_passes_the_key_variable():
    settings = model({"provider": "simulator", "api_key_env": "SIM_KEY"})
    command = simulator_command(settings)
    assert command[command.index("--api-key-env") + 1] == "SIM_KEY"
    with pytest.raises(ConfigError, match="not the simulator"):
        simulator_command(openai())


@pytest.mark.parametrize(
    ("endpoint", "temperature", "seed", "expected"),
    [
        ("https://api.example.com/v1", 0.8, None, [None, None]),
        ("https://api.example.com/v1", 0.8, 10, [10, 11]),
        (f"{SIMULATOR_SCHEME}abc", 0.8, None, [0, 1]),
        (f"{SIMULATOR_SCHEME}abc", 0.0, None, [None, None]),
    ],
)
def test_request_seed(endpoint, temperature, seed, expected):
    identity = ResponseIdentity("m", endpoint, temperature, 1.0, 16, seed=seed)
    assert [request_seed(identity, index) for index in range(2)] == expected


def test_a_simulator_with_edited_answers_never_shares_the_server_started_before(tmp_path):
    # The simulator reads its responses file once, at start: a server still lingering from the
    # previous run would answer with the old file (test_inputs.py regenerates after an edit).
    from rewardflow.generation.shared_server import share_identity

    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"prompt": "2+2", "response": "4"}\n')
    before = share_identity(launch_spec(simulated(responses=str(answers))), env={})
    assert share_identity(launch_spec(simulated(responses=str(answers))), env={}) == before
    answers.write_text('{"prompt": "2+2", "response": "5"}\n')
    assert share_identity(launch_spec(simulated(responses=str(answers))), env={}) != before
