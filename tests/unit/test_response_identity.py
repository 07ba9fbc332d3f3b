"""Pins of the response identity: cache keys and the generation rule's params.

The expected values were computed on the code before the response identity got its single
definition (rewardflow.config.generation). A cache key that changes silently orphans every
cached response; params that change rerun every finished shard. Each config sets every field
that decides a response, so a field dropped from, or added to, the identity shows up here.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import REPO

from rewardflow.config import canonical, generation_params, load_schema, validate_config
from rewardflow.config.generation import (
    LAUNCH_ANSWER_KEYS,
    OPERATIONAL_GENERATION_KEYS,
    OPERATIONAL_LAUNCH_KEYS,
    OPERATIONAL_SIMULATOR_KEYS,
    RESPONSE_GENERATION_KEYS,
    SHARD_GENERATION_KEYS,
    SIMULATOR_ANSWER_KEYS,
    GenerationJobSettings,
    ModelSettings,
    ResponseIdentity,
)
from rewardflow.generation.cache import cache_key, normalize_endpoint
from rewardflow.generation.identity import endpoint_identity

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 + 2?"},
]
CUSTOM = "examples/completions_client/completions_client.py:CompletionsClient"
MODELS: dict[str, dict[str, Any]] = {
    "openai": {
        "provider": "openai",
        "name": "gpt-x",
        "base_url": "https://API.example.com/v1/",
        "api_key_env": "KEY",
    },
    "custom": {
        "provider": CUSTOM,
        "name": "c",
        "base_url": "http://h/v1",
        "options": {"template": "chatml"},
    },
    "launched": {
        "provider": "openai",
        "name": "served",
        "launch": {"preset": "vllm", "model_path": "/models/q", "args": "--dtype bf16"},
    },
    "simulator": {"provider": "simulator", "name": "sim"},
}
# name -> (endpoint identity, settings fingerprint, cache key of MESSAGES as sample 2)
PINNED = {
    "openai": (
        "https://api.example.com/v1",
        "7396250d9e5dd1228aa3eb77967487a41a099752fd68281d287f05388e39e486",
        "c1d40653bf8586b67d089c97ebde64cdd72bc6052473afe540772783ff52e1f1",
    ),
    "custom": (
        f"http://h/v1#client={CUSTOM};options=c196519b0142143c",
        "7f297093c25529bfe83b47b2b870f0ef1bb879bb1aecd66e1749c01b20857151",
        "45b843e3fe34812991c8033d0242f78794f2026e6b49ec3dcd750320cdb8861c",
    ),
    "launched": (
        "launched://5e404be06368ffef",
        "7a5db83646bb6f21c69f6004ad610683343e7825583b42f81b7be1b44dddfd77",
        "0536acbefb597888b22134ccdcbdb886d9d4376fbfebecf590debf45e9ce70f9",
    ),
    "simulator": (
        "simulator://f8c5e54e5905a4f2",
        "97fdb4db78c45755585a3228376e66bcc1e00ba689acb4f4e03e5119bc8cdb8b",
        "f5aa1b0ea4c56e8cdb95e5670ad7db9a311bf21622b20297f391a4f563f309bd",
    ),
}
PINNED_GENERATION = {
    "enabled": True,
    "extra_body": {"reasoning_effort": "low", "top_k": 20},
    "independent_samples": True,
    "max_tokens": 256,
    "samples": 3,
    "seed": 11,
    "stop": ["\n\n", "END"],
    "temperature": 0.7,
    "top_p": 0.9,
}
PINNED_MODEL_PARAMS = {
    "openai": {
        "api_key_env": "KEY",
        "base_url": "https://API.example.com/v1/",
        "name": "gpt-x",
        "provider": "openai",
    },
    "custom": {
        "api_key_env": None,
        "base_url": "http://h/v1",
        "name": "c",
        "provider": CUSTOM,
        "options": {"template": "chatml"},
    },
    "launched": {
        "api_key_env": None,
        "base_url": None,
        "name": "served",
        "provider": "openai",
        "launch": {
            "args": "--dtype bf16",
            "command": None,
            "model_path": "/models/q",
            "preset": "vllm",
        },
    },
    "simulator": {"api_key_env": None, "base_url": None, "name": "sim", "provider": "simulator"},
}


def full_config(model: dict[str, Any], **generation: Any) -> dict[str, Any]:
    """Every identity field set, operational knobs away from their defaults too."""
    return canonical(
        validate_config(
            {
                "run_name": "pin",
                "dataset": {"path": "unused.jsonl"},
                "model": model,
                "generation": {
                    "temperature": 0.7,
                    "top_p": 0.9,
                    "max_tokens": 256,
                    "stop": ["\n\n", "END"],
                    "seed": 11,
                    "extra_body": {"reasoning_effort": "low", "top_k": 20},
                    "samples": 3,
                    "independent_samples": True,
                    **generation,
                },
                "budget": {"max_tokens": 10000},
                "simulator": {"rule": "arithmetic", "wrong_rate": 0.3},
                "rewards": [{"name": "r", "function": "m:f"}],
            }
        )
    )


def identity_of(config: dict[str, Any]) -> ResponseIdentity:
    model = ModelSettings.from_config(config)
    generation = GenerationJobSettings.from_config(config)
    return ResponseIdentity.of(generation, model.name, endpoint_identity(model))


@pytest.mark.parametrize("name", sorted(PINNED))
def test_cache_keys_are_the_ones_existing_caches_hold(name, monkeypatch):
    monkeypatch.chdir(REPO)
    endpoint, fingerprint, key = PINNED[name]
    config = full_config(MODELS[name])
    settings = identity_of(config)
    assert settings.endpoint == endpoint
    assert settings.fingerprint == fingerprint
    assert cache_key(settings, MESSAGES, 2) == key


def test_a_single_stop_string_keeps_its_key():
    config = full_config(
        {"provider": "openai", "name": "gpt-x", "base_url": "http://h/v1"}, stop="###"
    )
    settings = identity_of(config)
    assert settings.fingerprint == (
        "885aeec587cb8c06f9cbefd23e23512b9697fe460a6ad0a485f4992378693af7"
    )
    assert cache_key(settings, MESSAGES, 2) == (
        "e74354eb6615245baacc013de7516efaa6f9d127110a07e0c1b6923225649db1"
    )


@pytest.mark.parametrize("name", sorted(PINNED))
def test_generation_params_are_the_ones_finished_shards_were_made_with(name):
    params = generation_params(full_config(MODELS[name]))
    simulator = {"responses": None, "rule": "arithmetic", "wrong_rate": 0.3}
    expected = {
        "model": PINNED_MODEL_PARAMS[name],
        "generation": PINNED_GENERATION,
        "budget": {"max_cost_usd": None, "max_tokens": 10000},
        "simulator": simulator if name == "simulator" else None,
    }
    # Snakemake compares params by their repr: key order matters, not only equality.
    assert repr(params) == repr(expected)


def test_a_judge_verdict_keeps_its_key():
    settings = ResponseIdentity(
        model="judge-m",
        endpoint=normalize_endpoint("https://Judge.example.com/v1/"),
        temperature=0.2,
        top_p=1.0,
        max_tokens=64,
        seed=5,
    )
    assert settings.fingerprint == (
        "64faf21ff72783f806663446628c1c67e76004851ff7b2fb555b59dc538afc75"
    )
    assert cache_key(settings, [{"role": "user", "content": "grade"}], 0) == (
        "ea08f5224bb9f7d69f3094e92525a98e7f876872740ae255d4fc41bc781c137f"
    )


def _schema_keys(*path: str) -> set[str]:
    section = load_schema()
    for name in path:
        section = section["properties"][name]
    return set(section["properties"])


@pytest.mark.parametrize(
    ("path", "classes"),
    [
        (
            ("generation",),
            (RESPONSE_GENERATION_KEYS, SHARD_GENERATION_KEYS, OPERATIONAL_GENERATION_KEYS),
        ),
        (("simulator",), (SIMULATOR_ANSWER_KEYS, OPERATIONAL_SIMULATOR_KEYS)),
        (("model", "launch"), (LAUNCH_ANSWER_KEYS, OPERATIONAL_LAUNCH_KEYS)),
    ],
)
def test_every_key_is_either_identity_or_operational_exactly_once(path, classes):
    # A new schema key must be placed: in the identity (cache key and params) or operational.
    placed = [key for keys in classes for key in keys]
    assert sorted(placed) == sorted(_schema_keys(*path))


def test_the_response_identity_is_its_generation_keys_plus_model_and_endpoint():
    assert set(RESPONSE_GENERATION_KEYS) == {
        "temperature", "top_p", "max_tokens", "stop", "seed", "extra_body"
    }  # fmt: skip
    assert not set(RESPONSE_GENERATION_KEYS) & OPERATIONAL_GENERATION_KEYS


@pytest.mark.parametrize("key", sorted(OPERATIONAL_GENERATION_KEYS))
def test_operational_keys_change_neither_the_cache_key_nor_the_params(key):
    changed_values = {
        "concurrency": 99,
        "timeout_s": 3,
        "max_attempts": 1,
        "max_failed_fraction": 0.5,
        "max_request_time_s": 9,
        "requests_per_minute": 7,
        "tokens_per_minute": 7000,
        "parallel_jobs": 5,
        "adaptive_rate": False,
    }
    base = full_config(MODELS["openai"])
    changed = full_config(MODELS["openai"], **{key: changed_values[key]})
    assert changed["generation"][key] != base["generation"][key]
    assert identity_of(changed) == identity_of(base)
    assert repr(generation_params(changed)) == repr(generation_params(base))


@pytest.mark.parametrize("key", RESPONSE_GENERATION_KEYS)
def test_each_identity_key_changes_both_the_cache_key_and_the_params(key):
    changed_values = {
        "temperature": 0.1,
        "top_p": 0.5,
        "max_tokens": 32,
        "stop": ["STOP"],
        "seed": 12,
        "extra_body": {"top_k": 5},
    }
    base = full_config(MODELS["openai"])
    changed = full_config(MODELS["openai"], **{key: changed_values[key]})
    assert identity_of(changed).fingerprint != identity_of(base).fingerprint
    assert generation_params(changed) != generation_params(base)
