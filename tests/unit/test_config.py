import copy
from pathlib import Path

import pytest
import yaml

from rewardflow.config import (
    SCHEMA_PATH,
    generation_params,
    load_schema,
    primary_reward_name,
    scoring_workers,
    shard_names,
    validate_config,
)
from rewardflow.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def minimal_config(**overrides):
    config = {
        "run_name": "unit",
        "dataset": {"path": "data.jsonl"},
        "model": {"provider": "simulator", "name": "sim-model"},
        "rewards": [{"name": "accuracy", "function": "pkg.mod:fn"}],
    }
    config.update(overrides)
    return config


def config_error(raw) -> str:
    with pytest.raises(ConfigError) as excinfo:
        validate_config(raw)
    return str(excinfo.value)


def test_schema_path_points_at_the_repository_schema():
    assert SCHEMA_PATH == REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
    assert load_schema()["title"] == "rewardflow run configuration"


def test_defaults_are_filled_for_omitted_sections_and_keys():
    config = validate_config(minimal_config())
    assert config["shards"] == 4
    assert config["generation"]["concurrency"] == 8
    assert config["generation"]["enabled"] is True
    assert config["generation"]["samples"] == 1
    assert config["generation"]["temperature"] == 0.0
    assert config["generation"]["max_attempts"] == 5
    assert config["generation"]["extra_body"] == {}
    assert config["prompt"]["template"] == "{question}"
    assert config["prompt"]["few_shot"] == []
    assert config["prompt"]["system"] is None
    assert config["dataset"]["huggingface"] is None
    assert config["dataset"]["limit"] is None
    assert config["model"]["base_url"] is None
    assert config["simulator"]["rule"] == "arithmetic"
    assert config["cache"]["dir"] == "results/cache"
    assert config["rewards"][0]["primary"] is False
    assert config["rewards"][0]["params"] == {}


def test_defaults_fill_nested_huggingface_block_and_keep_given_values():
    raw = minimal_config(
        dataset={"huggingface": {"repo": "openai/gsm8k", "config": "main"}},
        generation={"temperature": 0.7, "concurrency": 2},
    )
    config = validate_config(raw)
    assert config["dataset"]["huggingface"] == {
        "repo": "openai/gsm8k",
        "config": "main",
        "split": "test",
        "revision": None,
    }
    assert config["generation"]["temperature"] == 0.7
    assert config["generation"]["concurrency"] == 2
    assert config["generation"]["max_tokens"] == 1024


def test_validate_does_not_mutate_the_input():
    raw = minimal_config()
    before = copy.deepcopy(raw)
    validate_config(raw)
    assert raw == before


def test_defaults_are_not_shared_between_validated_configs():
    first = validate_config(minimal_config())
    first["generation"]["extra_body"]["x"] = 1
    first["prompt"]["few_shot"].append({"user": "u", "assistant": "a"})
    second = validate_config(minimal_config())
    assert second["generation"]["extra_body"] == {}
    assert second["prompt"]["few_shot"] == []


def test_wrong_type_names_dotted_key_and_expected_type():
    message = config_error(minimal_config(generation={"temperature": "hot"}))
    assert "generation.temperature: expected number, got 'hot'" in message


def test_wrong_type_for_nullable_key_lists_both_types():
    message = config_error(minimal_config(dataset={"path": 3}))
    assert "dataset.path: expected string or null, got 3" in message


def test_wrong_type_for_integer_and_boolean_keys():
    message = config_error(minimal_config(shards="four", generation={"enabled": "maybe"}))
    assert "shards: expected integer, got 'four'" in message
    assert "generation.enabled: expected boolean (true/false), got 'maybe'" in message


def test_command_line_strings_are_coerced_to_the_schema_type():
    # Snakemake's nested --config values arrive as strings.
    raw = minimal_config(
        shards="3",
        generation={"temperature": "0.5", "enabled": "true", "seed": "7", "max_tokens": "64"},
        dataset={"path": "d.jsonl", "limit": "null"},
    )
    config = validate_config(raw)
    assert config["shards"] == 3
    assert config["generation"]["temperature"] == 0.5
    assert config["generation"]["enabled"] is True
    assert config["generation"]["seed"] == 7
    assert config["generation"]["max_tokens"] == 64
    assert config["dataset"]["limit"] is None


def test_coercion_keeps_strings_for_string_keys_and_null_for_nullable_ones():
    raw = minimal_config(
        run_name="123",
        dataset={"path": "d.jsonl", "id_field": "null", "ground_truth_field": "true"},
        rewards=[{"name": "accuracy", "function": "pkg.mod:fn", "primary": "true"}],
    )
    config = validate_config(raw)
    assert config["run_name"] == "123"
    assert config["dataset"]["id_field"] is None
    assert config["dataset"]["ground_truth_field"] == "true"
    assert config["rewards"][0]["primary"] is True


def test_coercion_does_not_accept_a_float_for_an_integer_key():
    assert "shards: expected integer, got '2.5'" in config_error(minimal_config(shards="2.5"))


def test_wrong_type_inside_a_list_uses_index_in_the_key():
    raw = minimal_config(
        rewards=[{"name": "accuracy", "function": "pkg.mod:fn", "primary": "sure"}]
    )
    assert "rewards[0].primary: expected boolean (true/false), got 'sure'" in config_error(raw)


def test_unknown_top_level_key_is_named_with_allowed_keys():
    message = config_error(minimal_config(shardz=3))
    assert "unknown key(s) shardz" in message
    assert "allowed: budget, cache, dataset, generation" in message


def test_unknown_nested_key_is_named_with_its_section():
    message = config_error(minimal_config(generation={"temprature": 0.5}))
    assert "generation: unknown key(s) temprature" in message
    assert "temperature" in message.split("allowed:")[1]


def test_unknown_key_in_huggingface_block():
    raw = minimal_config(dataset={"huggingface": {"repo": "a/b", "branch": "main"}})
    assert "dataset.huggingface: unknown key(s) branch" in config_error(raw)


def test_enum_error_names_key_choices_and_value():
    model = {"provider": "openai", "name": "m", "launch": {"preset": "tgi"}}
    message = config_error(minimal_config(model=model))
    assert "model.launch.preset: expected one of ['vllm', 'sglang', 'llama.cpp', None]" in message
    assert "got 'tgi'" in message


def test_a_provider_that_is_neither_builtin_nor_a_class_reference_is_named():
    message = config_error(minimal_config(model={"provider": "anthropic", "name": "m"}))
    assert "model.provider: expected openai, simulator, package.module:ClassName" in message
    assert "got 'anthropic'" in message


def test_a_custom_client_needs_no_base_url():
    model = {"provider": "my_clients.native:NativeClient", "name": "m"}
    assert validate_config(minimal_config(model=model))["model"]["options"] == {}


@pytest.mark.parametrize(
    ("launch", "fragment"),
    [
        ({}, "model.launch: set preset (vllm, sglang, llama.cpp) or command"),
        ({"command": "serve {model}"}, "model.launch.command: must contain {port}"),
        ({"command": "serve {modle} --port {port}"}, "bad placeholder in '{modle}'"),
        ({"command": "serve 'unclosed --port {port}"}, "cannot split into arguments"),
        ({"preset": "vllm", "args": "--x {oops}"}, "model.launch.args: bad placeholder"),
    ],
)
def test_bad_launch_settings_name_the_key(launch, fragment):
    model = {"provider": "openai", "name": "m", "launch": launch}
    assert fragment in config_error(minimal_config(model=model))


def test_launch_replaces_the_base_url_and_excludes_the_simulator():
    launch = {"preset": "vllm"}
    with_url = {"provider": "openai", "name": "m", "base_url": "http://h/v1", "launch": launch}
    assert "model.base_url: leave it unset with model.launch" in config_error(
        minimal_config(model=with_url)
    )
    simulator = {"provider": "simulator", "name": "m", "launch": launch}
    assert "model.launch: not with provider simulator" in config_error(
        minimal_config(model=simulator)
    )
    filled = validate_config(
        minimal_config(model={"provider": "openai", "name": "m", "launch": launch})
    )
    assert filled["model"]["launch"]["gpus"] == 1
    assert filled["model"]["launch"]["rate_limits"] is False


def test_operational_launch_keys_do_not_rerun_a_shard_but_the_checkpoint_does():
    def params(**launch):
        model = {"provider": "openai", "name": "m", "launch": {"preset": "vllm", **launch}}
        return generation_params(validate_config(minimal_config(model=model)))

    assert params() == params(gpus=4, concurrency=8, startup_timeout_s=60, ready_path="/x")
    assert params() != params(model_path="/ckpt/step-200")
    assert params() != params(args="--dtype float16")


def test_simulator_rule_enum_error():
    message = config_error(minimal_config(simulator={"rule": "chess"}))
    assert "simulator.rule: expected one of ['arithmetic', 'echo'], got 'chess'" in message


def test_missing_required_keys_are_reported():
    raw = minimal_config()
    del raw["model"]
    del raw["run_name"]
    message = config_error(raw)
    assert "'model' is a required property" in message
    assert "'run_name' is a required property" in message


def test_several_problems_are_reported_at_once():
    raw = minimal_config(
        bogus=1,
        generation={"temperature": "hot", "samples": 0},
        model={"provider": "nope", "name": "m"},
    )
    message = config_error(raw)
    lines = [line.strip() for line in message.splitlines()[1:]]
    assert len(lines) == 4
    assert any(line.startswith("unknown key(s) bogus") for line in lines)
    assert "generation.temperature: expected number, got 'hot'" in lines
    assert any(line.startswith("generation.samples:") for line in lines)
    assert any(line.startswith("model.provider: expected openai, simulator") for line in lines)


def test_bounds_are_enforced():
    message = config_error(
        minimal_config(generation={"top_p": 0, "max_failed_fraction": 1.5}, shards=0)
    )
    assert "generation.top_p" in message
    assert "generation.max_failed_fraction" in message
    assert "shards" in message


def test_reward_function_reference_pattern_is_checked():
    raw = minimal_config(rewards=[{"name": "accuracy", "function": "no_colon_here"}])
    assert "rewards[0].function" in config_error(raw)


def test_dataset_needs_path_or_huggingface_not_neither():
    raw = minimal_config(dataset={})
    assert "set exactly one of dataset.path or dataset.huggingface" in config_error(raw)


def test_dataset_needs_path_or_huggingface_not_both():
    raw = minimal_config(dataset={"path": "d.jsonl", "huggingface": {"repo": "a/b"}})
    assert "set exactly one of dataset.path or dataset.huggingface" in config_error(raw)


def test_openai_provider_needs_base_url():
    raw = minimal_config(model={"provider": "openai", "name": "gpt"})
    assert "model.base_url: required when model.provider is 'openai'" in config_error(raw)


def test_openai_provider_default_needs_base_url_too():
    raw = minimal_config(model={"name": "gpt"})
    assert "model.base_url: required" in config_error(raw)


def test_openai_provider_with_base_url_is_valid():
    raw = minimal_config(
        model={"provider": "openai", "name": "gpt", "base_url": "http://127.0.0.1:1/v1"}
    )
    assert validate_config(raw)["model"]["base_url"] == "http://127.0.0.1:1/v1"


def test_disabled_generation_needs_response_field():
    raw = minimal_config(generation={"enabled": False})
    assert "dataset.response_field: required when generation.enabled is false" in config_error(raw)
    raw["dataset"]["response_field"] = "completion"
    assert validate_config(raw)["generation"]["enabled"] is False


def test_duplicate_reward_names_are_rejected():
    raw = minimal_config(
        rewards=[
            {"name": "accuracy", "function": "a:f"},
            {"name": "format", "function": "a:g"},
            {"name": "accuracy", "function": "a:h"},
        ]
    )
    message = config_error(raw)
    assert "duplicate reward name(s) accuracy" in message
    assert "format" not in message.split("duplicate reward name(s)")[1]


def test_two_primary_rewards_are_rejected():
    raw = minimal_config(
        rewards=[
            {"name": "a", "function": "m:f", "primary": True},
            {"name": "b", "function": "m:g", "primary": True},
        ]
    )
    assert "mark at most one reward as primary" in config_error(raw)


def test_cross_field_problems_are_reported_together():
    raw = minimal_config(
        dataset={},
        model={"provider": "openai", "name": "gpt"},
        generation={"enabled": False},
    )
    message = config_error(raw)
    assert "set exactly one of dataset.path" in message
    assert "model.base_url" in message
    assert "dataset.response_field" in message


def test_primary_reward_name_defaults_to_first():
    config = validate_config(
        minimal_config(rewards=[{"name": "a", "function": "m:f"}, {"name": "b", "function": "m:g"}])
    )
    assert primary_reward_name(config) == "a"


def test_primary_reward_name_uses_the_marked_reward():
    config = validate_config(
        minimal_config(
            rewards=[
                {"name": "a", "function": "m:f"},
                {"name": "b", "function": "m:g", "primary": True},
            ]
        )
    )
    assert primary_reward_name(config) == "b"


@pytest.mark.parametrize(
    ("shards", "expected_first", "expected_last"),
    [(1, "000", "000"), (4, "000", "003"), (1000, "000", "999"), (1001, "0000", "1000")],
)
def test_shard_names_are_zero_padded_and_sortable(shards, expected_first, expected_last):
    names = shard_names({"shards": shards})
    assert len(names) == shards
    assert names[0] == expected_first
    assert names[-1] == expected_last
    assert len({len(name) for name in names}) == 1
    assert sorted(names) == names


@pytest.mark.parametrize(
    ("key", "value"),
    [("concurrency", 64), ("timeout_s", 5), ("max_attempts", 1), ("max_failed_fraction", 0.5)],
)
def test_generation_params_ignore_operational_generation_keys(key, value):
    base = validate_config(minimal_config())
    changed = validate_config(minimal_config(generation={key: value}))
    assert changed["generation"][key] == value
    assert generation_params(changed) == generation_params(base)
    assert key not in generation_params(base)["generation"]


@pytest.mark.parametrize(
    ("key", "value"), [("latency_ms", 999), ("latency_jitter_ms", 20), ("seed", 7)]
)
def test_generation_params_ignore_simulator_latency(key, value):
    base = validate_config(minimal_config())
    changed = validate_config(minimal_config(simulator={key: value}))
    assert generation_params(changed) == generation_params(base)
    assert key not in generation_params(base)["simulator"]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("generation", "temperature", 0.7),
        ("generation", "top_p", 0.9),
        ("generation", "max_tokens", 16),
        ("generation", "samples", 3),
        ("generation", "seed", 1),
        ("generation", "extra_body", {"reasoning_effort": "low"}),
        ("simulator", "wrong_rate", 0.5),
    ],
)
def test_generation_params_change_with_output_affecting_keys(section, key, value):
    base = validate_config(minimal_config())
    changed = validate_config(minimal_config(**{section: {key: value}}))
    assert generation_params(changed) != generation_params(base)
    assert generation_params(changed)[section][key] == value


def test_generation_params_change_with_model_name():
    base = validate_config(minimal_config())
    changed = validate_config(minimal_config(model={"provider": "simulator", "name": "other"}))
    assert generation_params(changed) != generation_params(base)


def test_generation_params_omit_simulator_for_openai_provider():
    raw = minimal_config(
        model={"provider": "openai", "name": "gpt", "base_url": "http://127.0.0.1:1/v1"}
    )
    base = validate_config(raw)
    assert generation_params(base)["simulator"] is None
    raw["simulator"] = {"wrong_rate": 0.9}
    assert generation_params(validate_config(raw)) == generation_params(base)


REPOSITORY_CONFIGS = sorted(
    str(path.relative_to(REPO_ROOT))
    for pattern in ("config/*.yaml", "examples/*/config.yaml")
    for path in REPO_ROOT.glob(pattern)
)


def test_the_examples_configs_are_among_the_validated_ones():
    assert len([name for name in REPOSITORY_CONFIGS if name.startswith("examples/")]) >= 7


@pytest.mark.parametrize("name", REPOSITORY_CONFIGS)
def test_repository_configs_validate(name):
    with open(REPO_ROOT / name, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    config = validate_config(raw)
    assert config["run_name"] == raw["run_name"]
    assert primary_reward_name(config) == raw["rewards"][0]["name"]
    assert len(shard_names(config)) == raw["shards"]


def test_math_config_uses_the_gsm8k_hub_dataset():
    with open(REPO_ROOT / "config" / "math.yaml", encoding="utf-8") as handle:
        config = validate_config(yaml.safe_load(handle))
    assert config["dataset"]["huggingface"]["repo"] == "openai/gsm8k"
    assert config["dataset"]["huggingface"]["revision"] is None
    assert config["dataset"]["ground_truth_pattern"] == r"####\s*(.+?)\s*$"
    assert config["model"]["provider"] == "openai"


def test_invalid_ground_truth_pattern_is_a_config_error():
    raw = minimal_config(dataset={"path": "d.jsonl", "ground_truth_field": "answer"})
    raw["dataset"]["ground_truth_pattern"] = "####\\s*((.+?)\\s*$"
    assert "dataset.ground_truth_pattern" in config_error(raw)


def test_configs_without_the_new_model_keys_keep_their_generation_params():
    # The params a finished shard was made with before model.options / model.launch existed.
    model = {"provider": "openai", "name": "m", "base_url": "http://h/v1", "api_key_env": None}
    params = generation_params(validate_config(minimal_config(model=model)))
    assert params["model"] == model


@pytest.mark.parametrize(
    ("configured", "cores", "shards", "local", "workers"),
    [
        (None, 2, 128, True, 1),  # more shards than cores: one worker each, jobs side by side
        (None, 8, 4, True, 2),  # fewer: the cores shared among the shards
        (None, 8, 1, True, 8),  # one shard gets every core
        (None, 8, 3, True, 2),
        (None, 8, 128, False, 8),  # a cluster job is its own allocation
        (3, 2, 128, True, 3),  # scoring.threads always wins
        (3, 8, 1, False, 3),
    ],
)
def test_scoring_workers_share_a_machine_among_its_shards(
    configured, cores, shards, local, workers
):
    assert scoring_workers(configured, cores, shards, local=local) == workers


def test_with_an_llm_judge_a_scoring_job_keeps_every_core_so_one_job_holds_the_judges_limit():
    # The judge's requests_per_minute is split among one job's workers; jobs side by side
    # would each send the whole limit.
    assert scoring_workers(None, 8, 64, local=True, judge=True) == 8
    assert scoring_workers(None, 8, 64, local=True, judge=False) == 1
    assert scoring_workers(2, 8, 64, local=True, judge=True) == 2
