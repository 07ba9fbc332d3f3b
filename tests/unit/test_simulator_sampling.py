"""The simulator samples like a model: repeated samples differ at temperature > 0, reproducibly.

Covers the per-sample identity (the request's ``seed``, or the server's stream of samples for
unseeded requests), greedy decoding at temperature 0, the seed the generation job sends to the
built-in simulator, and the long-tailed latency knob.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rewardflow import simulator
from rewardflow.cli import build_parser
from rewardflow.cli.simulate import config_from_args
from rewardflow.config import validate_config
from rewardflow.config.generation import ModelSettings
from rewardflow.errors import ConfigError
from rewardflow.generation.cache import GenerationSettings
from rewardflow.generation.endpoint import request_seed, simulator_command
from rewardflow.generation.identity import endpoint_identity as identity_of_model
from rewardflow.simulator import (
    SimulatorConfig,
    SimulatorError,
    answer_for,
    build_app,
    draw_latency_ms,
    generate_choices,
    parse_chat_request,
)

QUESTION = "What is 17 * 23 + 4?"


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


@asynccontextmanager
async def serving(config: SimulatorConfig) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(config), host="127.0.0.1")) as client:
        yield client


async def contents(client: TestClient, body: dict[str, Any], times: int) -> list[str]:
    """Send ``body`` ``times`` times, one after the other; every choice's text in order."""
    texts = []
    for _ in range(times):
        response = await client.post("/v1/chat/completions", data=json.dumps(body))
        assert response.status == 200
        texts += [choice["message"]["content"] for choice in (await response.json())["choices"]]
    return texts


def sampled(temperature: float, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": user(QUESTION), "temperature": temperature, **extra}


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------


def test_temperature_zero_is_greedy_whatever_the_seed() -> None:
    """Greedy decoding has nothing to seed: every request, seeded or not, gets one answer."""
    config = SimulatorConfig(wrong_rate=0.5)
    answers = {
        choice
        for seed in (None, 0, 1, 2, 3, 11, 12)
        for choice in generate_choices(parse_chat_request(sampled(0, seed=seed, n=3)), config)
    }
    assert len(answers) == 1


def test_unseeded_identical_requests_differ_and_replay_on_a_fresh_server() -> None:
    config = SimulatorConfig(wrong_rate=0.5)

    async def scenario() -> tuple[list[str], list[str], list[str], list[str]]:
        async with serving(config) as client:
            first = await contents(client, sampled(0.8), 8)
            await client.post("/_simulator/reset")
            after_reset = await contents(client, sampled(0.8), 8)
            greedy = await contents(client, sampled(0), 4)
        async with serving(config) as client:
            fresh = await contents(client, sampled(0.8), 8)
        return first, after_reset, greedy, fresh

    first, after_reset, greedy, fresh = asyncio.run(scenario())
    assert len(set(first)) > 1  # a model at temperature 0.8 disagrees with itself
    assert first == after_reset == fresh  # the k-th identical request is sample k
    assert first == [answer_for(user(QUESTION), None, k, config) for k in range(8)]
    assert len(set(greedy)) == 1


def test_n_choices_continue_the_stream_of_samples() -> None:
    """Two requests for n=2 and n=3 get the same five samples as five requests for n=1."""
    config = SimulatorConfig(wrong_rate=0.5)

    async def scenario() -> tuple[list[str], list[str]]:
        async with serving(config) as client:
            singles = await contents(client, sampled(0.8), 5)
        async with serving(config) as client:
            batched = await contents(client, sampled(0.8, n=2), 1)
            batched += await contents(client, sampled(0.8, n=3), 1)
        return singles, batched

    singles, batched = asyncio.run(scenario())
    assert singles == batched


def test_other_sampling_settings_have_their_own_stream() -> None:
    config = SimulatorConfig(wrong_rate=0.5)

    async def scenario() -> tuple[list[str], list[str]]:
        async with serving(config) as client:
            await contents(client, sampled(0.8), 3)
            other_temperature = await contents(client, sampled(0.7), 3)
        async with serving(config) as client:
            alone = await contents(client, sampled(0.7), 3)
        return other_temperature, alone

    other_temperature, alone = asyncio.run(scenario())
    assert other_temperature == alone


def test_seeded_requests_are_pure_and_leave_the_stream_alone() -> None:
    config = SimulatorConfig(wrong_rate=0.5)

    async def scenario() -> tuple[list[str], list[str]]:
        async with serving(config) as client:
            seeded = await contents(client, sampled(0.8, seed=5), 4)
            unseeded = await contents(client, sampled(0.8), 2)
        return seeded, unseeded

    seeded, unseeded = asyncio.run(scenario())
    assert len(set(seeded)) == 1
    assert seeded[0] == answer_for(user(QUESTION), 5, 0, config)
    assert unseeded == [answer_for(user(QUESTION), None, k, config) for k in range(2)]


def test_wrong_rate_is_the_probability_of_each_sample() -> None:
    """Within one prompt, samples are wrong independently at ``wrong_rate``."""
    config = SimulatorConfig(wrong_rate=0.4)
    samples = [answer_for(user(QUESTION), seed, 0, config) for seed in range(2000)]
    # Every answer style ends in the number, perhaps as "$1,200" or inside \boxed{}.
    finals = [re.findall(r"[0-9][0-9,]*", sample)[-1].replace(",", "") for sample in samples]
    wrong = sum(final != str(17 * 23 + 4) for final in finals) / len(finals)
    assert 0.36 <= wrong <= 0.44


# --------------------------------------------------------------------------------------------
# What the generation job sends, and the cache identity
# --------------------------------------------------------------------------------------------


def endpoint_identity(config: dict[str, Any]) -> str:
    return identity_of_model(ModelSettings.from_config(config))


def settings(endpoint: str, temperature: float, seed: int | None = None) -> GenerationSettings:
    return GenerationSettings(
        model="m", endpoint=endpoint, temperature=temperature, top_p=1.0, max_tokens=64, seed=seed
    )


def test_request_seed_tells_the_simulators_samples_apart() -> None:
    sim = endpoint_identity(minimal_config())
    assert [request_seed(settings(sim, 0.8), i) for i in range(3)] == [0, 1, 2]
    assert [request_seed(settings(sim, 0.8, seed=10), i) for i in range(3)] == [10, 11, 12]
    # Greedy needs no seed, and a real provider is sent only the seed the config asks for.
    assert request_seed(settings(sim, 0.0), 2) is None
    assert request_seed(settings("https://api.example.com/v1", 0.8), 2) is None
    assert request_seed(settings("https://api.example.com/v1", 0.8, seed=10), 2) == 12


def test_the_simulators_seed_seeds_latency_only_so_it_is_not_in_its_cache_identity() -> None:
    # Its answers are drawn from the request's seed, never the server's (checked here too), so
    # a different server seed must reuse the cached answers.
    messages = [{"role": "user", "content": "What is 17 + 25?"}]
    answers = {
        seed: [answer_for(messages, 3, i, SimulatorConfig(seed=seed)) for i in range(20)]
        for seed in (0, 7)
    }
    assert answers[0] == answers[7]
    assert endpoint_identity(minimal_config(simulator={"seed": 7})) == endpoint_identity(
        minimal_config()
    )


def test_the_simulators_cache_identity_follows_its_answer_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = minimal_config()
    before = endpoint_identity(config)
    monkeypatch.setattr(simulator, "ANSWER_VERSION", simulator.ANSWER_VERSION + 1)
    assert endpoint_identity(config) != before


# --------------------------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------------------------


def test_lognormal_latency_keeps_the_mean_and_has_stragglers() -> None:
    config = SimulatorConfig(latency_ms=200, latency_distribution="lognormal", latency_sigma=1.0)
    rng = random.Random(0)
    draws = sorted(draw_latency_ms(config, rng) for _ in range(20_000))
    assert statistics.fmean(draws) == pytest.approx(200, rel=0.05)
    median, p99 = draws[len(draws) // 2], draws[int(len(draws) * 0.99)]
    assert p99 > 5 * median  # a long tail: the uniform distribution never exceeds 2x its mean
    assert min(draws) > 0


def test_uniform_latency_stays_within_the_jitter() -> None:
    config = SimulatorConfig(latency_ms=100, latency_jitter_ms=30)
    rng = random.Random(0)
    draws = [draw_latency_ms(config, rng) for _ in range(2000)]
    assert min(draws) >= 70 and max(draws) <= 130
    assert draw_latency_ms(SimulatorConfig(), rng) == 0.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"latency_distribution": "pareto"}, "latency_distribution must be one of"),
        ({"latency_distribution": "lognormal", "latency_sigma": 0}, "latency_sigma"),
        (
            {"latency_distribution": "lognormal", "latency_jitter_ms": 10},
            "latency_jitter_ms applies to the uniform distribution only",
        ),
    ],
)
def test_bad_latency_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SimulatorError, match=message):
        SimulatorConfig(**options)


def test_latency_options_reach_the_launched_simulator() -> None:
    config = minimal_config(
        simulator={"latency_ms": 40, "latency_distribution": "lognormal", "latency_sigma": 1.5}
    )
    command = simulator_command(ModelSettings.from_config(config))
    args = build_parser().parse_args(command[3:])
    launched = config_from_args(args)
    assert (launched.latency_distribution, launched.latency_sigma) == ("lognormal", 1.5)
    # Latency never changes an answer, so it is no part of the cache identity.
    assert endpoint_identity(config) == endpoint_identity(minimal_config())


def test_lognormal_with_jitter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="simulator.latency_jitter_ms"):
        minimal_config(simulator={"latency_distribution": "lognormal", "latency_jitter_ms": 5})


def minimal_config(**overrides: Any) -> dict[str, Any]:
    return validate_config(
        {
            "run_name": "t",
            "dataset": {"path": "unused.jsonl"},
            "model": {"provider": "simulator", "name": "m"},
            "rewards": [{"name": "r", "function": "m:f"}],
            **overrides,
        }
    )
