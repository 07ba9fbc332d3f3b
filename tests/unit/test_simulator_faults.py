"""Tests of the simulator's fault injection: rate limiting, 5xx, drops, malformed bodies, hangs.

Every fault is observed the way the pipeline's client would meet it: a real aiohttp client
talking to a server on 127.0.0.1 (an ephemeral port). Which prompts get which fault is
predicted with the pure :func:`fault_for`, so no test depends on luck; only the rate limiter
and hang tests depend on the clock, with margins of a tenth of a second or more.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from rewardflow.cli import build_parser, main
from rewardflow.cli.simulate import config_from_args
from rewardflow.simulator import (
    FAULTS,
    Fault,
    SimulatorConfig,
    SimulatorError,
    fault_for,
    running_simulator,
)
from rewardflow.simulator.app import TokenBucket

#: Outcomes a client can observe: a fault's name, "ok" or "rate_limited".
STATUS_OUTCOMES = {500: "error_500", 503: "error_503", 429: "rate_limited"}


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def prompts(count: int, tag: str = "p") -> list[str]:
    return [f"[{tag}{i}] What is {i} + {2 * i + 1}?" for i in range(count)]


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def first_prompt(config: SimulatorConfig, *faults: Fault | None) -> str:
    """A prompt whose attempts 0, 1, ... get exactly ``faults`` from a fresh server."""
    for prompt in prompts(10_000, "search"):
        if all(fault_for(user(prompt), i, config) == f for i, f in enumerate(faults)):
            return prompt
    raise AssertionError(f"no prompt gets {faults}")


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Client:
    """A client session bound to one simulator's base URL."""

    url: str
    session: aiohttp.ClientSession

    async def chat(
        self, prompt: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> Reply:
        body = {"model": "m", "messages": user(prompt)}
        return await self.post_raw(body, timeout=timeout, headers=headers)

    async def post_raw(
        self, body: object, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> Reply:
        async with self.session.post(
            f"{self.url}/chat/completions",
            json=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            return Reply(response.status, response.headers, await response.text())

    async def outcome(self, prompt: str, *, timeout: float = 10.0) -> str:
        """What the client saw, named like the fault that caused it ("ok" if none)."""
        try:
            reply = await self.chat(prompt, timeout=timeout)
        except TimeoutError:  # before ClientConnectionError: ServerTimeoutError is both
            return "hang"
        except aiohttp.ClientConnectionError:
            return "drop"
        if reply.status == 200:
            return "ok" if is_well_formed(reply.text) else "malformed"
        return STATUS_OUTCOMES[reply.status]

    async def stats(self, method: str = "GET", path: str = "stats") -> dict[str, Any]:
        root = self.url.removesuffix("/v1")
        async with self.session.request(method, f"{root}/_simulator/{path}") as response:
            return await response.json()


def is_well_formed(text: str) -> bool:
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(body, dict) and bool(body.get("choices"))


@asynccontextmanager
async def simulator(**fields: Any) -> AsyncIterator[Client]:
    config = SimulatorConfig(wrong_rate=0.0, **fields)
    async with running_simulator(config) as url, aiohttp.ClientSession() as session:
        yield Client(url, session)


async def outcomes(client: Client, texts: Iterable[str], limit: int = 16) -> dict[str, str]:
    """Send every prompt once, ``limit`` at a time; the outcome per prompt."""
    semaphore = asyncio.Semaphore(limit)

    async def one(prompt: str) -> tuple[str, str]:
        async with semaphore:
            return prompt, await client.outcome(prompt)

    return dict(await asyncio.gather(*(one(prompt) for prompt in texts)))


def stats_with(**counts: Any) -> dict[str, Any]:
    faults = dict.fromkeys(FAULTS, 0) | counts.pop("faults", {})
    base = {"requests": 0, "completions": 0, "errors": 0, "rate_limited": 0}
    return base | counts | {"faults": faults}


# --------------------------------------------------------------------------------------------
# Configuration and command line
# --------------------------------------------------------------------------------------------


def test_faults_are_off_by_default() -> None:
    config = SimulatorConfig()
    assert config.rate_limit_rps is None
    assert set(config.fault_rates().values()) == {0.0}
    assert not config.injects_faults
    assert (config.hang_s, config.fault_seed) == (3600.0, 0)
    assert all(fault_for(user(p), 0, config) is None for p in prompts(50))


@pytest.mark.parametrize(
    "bad",
    [
        {"error_500_rate": 0.6, "drop_rate": 0.5},
        {"error_503_rate": 0.3, "malformed_rate": 0.3, "hang_rate": 0.3, "drop_rate": 0.2},
        {"drop_rate": -0.1},
        {"hang_rate": 1.5},
        {"malformed_rate": float("nan")},
        {"rate_limit_rps": 0},
        {"rate_limit_rps": -2},
        {"rate_limit_rps": float("inf")},
        {"hang_s": -1},
    ],
)
def test_bad_fault_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(SimulatorError):
        SimulatorConfig(**bad)


def test_rates_may_add_up_to_exactly_one_despite_float_noise() -> None:
    config = SimulatorConfig(error_500_rate=0.1, error_503_rate=0.2, hang_rate=0.7)
    assert config.injects_faults
    assert all(fault_for(user(p), 0, config) is not None for p in prompts(200))


def test_cli_flags_map_to_config_fields() -> None:
    args = build_parser().parse_args(
        ["simulate"]
        + ["--rate-limit-rps", "2.5", "--error-500-rate", "0.1", "--error-503-rate", "0.2"]
        + ["--drop-rate", "0.05", "--malformed-rate", "0.03", "--hang-rate", "0.01"]
        + ["--hang-s", "7", "--fault-seed", "42", "--non-utf8-rate", "0.04"]
        + ["--null-content-rate", "0.05", "--tool-calls-only-rate", "0.06"]
        + ["--empty-choices-rate", "0.07", "--echo-key-on-401"]
    )
    config = config_from_args(args)
    assert config.rate_limit_rps == 2.5
    assert config.fault_rates() == {
        "error_500": 0.1,
        "error_503": 0.2,
        "drop": 0.05,
        "malformed": 0.03,
        "hang": 0.01,
        "non_utf8": 0.04,
        "null_content": 0.05,
        "tool_calls_only": 0.06,
        "empty_choices": 0.07,
    }
    assert (config.hang_s, config.fault_seed, config.echo_key_on_401) == (7.0, 42, True)


def test_cli_refuses_rates_above_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--error-500-rate", "0.6", "--drop-rate", "0.6"]) == 2
    assert "fault rates add up to 1.2" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Each fault as a client sees it
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "status", "fault"),
    [("error_500_rate", 500, "error_500"), ("error_503_rate", 503, "error_503")],
)
def test_server_errors_have_openai_bodies(field: str, status: int, fault: str) -> None:
    async def scenario() -> tuple[Reply, dict[str, Any]]:
        async with simulator(**{field: 1.0}) as client:
            return await client.chat("What is 1 + 1?"), await client.stats()

    reply, stats = run(scenario())
    assert reply.status == status
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error"
    assert error["message"]
    assert stats == stats_with(requests=1, errors=1, faults={fault: 1})


def test_a_dropped_connection_gets_no_response_at_all() -> None:
    async def scenario() -> tuple[BaseException, dict[str, Any]]:
        async with simulator(drop_rate=1.0) as client:
            with pytest.raises(aiohttp.ClientConnectionError) as caught:
                await client.chat("What is 1 + 1?")
            return caught.value, await client.stats()

    error, stats = run(scenario())
    assert isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError), error
    assert not isinstance(error, TimeoutError)
    assert stats == stats_with(requests=1, errors=1, faults={"drop": 1})


def test_malformed_bodies_alternate_between_truncated_and_choiceless_json() -> None:
    async def scenario() -> tuple[list[Reply], dict[str, Any]]:
        async with simulator(malformed_rate=1.0) as client:
            replies = [await client.chat(f"What is {i} + 1?") for i in range(3)]
            return replies, await client.stats()

    (truncated, choiceless, truncated_again), stats = run(scenario())
    for reply in (truncated, choiceless, truncated_again):
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("application/json")
    for reply in (truncated, truncated_again):
        assert reply.text.startswith('{"id": "chatcmpl-')
        with pytest.raises(json.JSONDecodeError):
            reply.json()
    body = choiceless.json()
    assert body["object"] == "chat.completion" and "usage" in body
    assert "choices" not in body
    assert stats == stats_with(requests=3, errors=3, faults={"malformed": 3})


def test_bad_200s_are_not_utf8_or_well_formed_without_a_usable_answer() -> None:
    async def raw(client: Client) -> tuple[int, bytes]:
        async with client.session.post(
            f"{client.url}/chat/completions",
            json={"model": "m", "messages": user("What is 2 + 3?")},
        ) as response:
            return response.status, await response.read()

    async def scenario() -> dict[str, tuple[int, bytes, dict[str, Any]]]:
        seen = {}
        for fault in ("non_utf8", "null_content", "tool_calls_only", "empty_choices"):
            async with simulator(**{f"{fault}_rate": 1.0}) as client:
                status, body = await raw(client)
                seen[fault] = (status, body, await client.stats())
        return seen

    seen = run(scenario())
    for fault, (status, _, stats) in seen.items():
        assert status == 200
        assert stats == stats_with(requests=1, errors=1, faults={fault: 1})
    with pytest.raises(UnicodeDecodeError):
        seen["non_utf8"][1].decode("utf-8")
    assert json.loads(seen["non_utf8"][1].decode("latin-1"))["choices"]
    null = json.loads(seen["null_content"][1])["choices"][0]
    assert null["message"]["content"] is None and "tool_calls" not in null["message"]
    tool = json.loads(seen["tool_calls_only"][1])["choices"][0]
    assert tool["message"]["content"] is None and tool["finish_reason"] == "tool_calls"
    assert tool["message"]["tool_calls"][0]["function"]["name"] == "calculator"
    assert json.loads(seen["empty_choices"][1])["choices"] == []


def test_echo_key_on_401_quotes_the_offered_key_only_when_asked() -> None:
    async def scenario(echo: bool) -> Reply:
        async with simulator(api_key="sk-right", echo_key_on_401=echo) as client:
            return await client.chat("Hi", headers={"Authorization": "Bearer sk-wrong-123"})

    echoed, quiet = run(scenario(True)), run(scenario(False))
    assert echoed.status == quiet.status == 401
    assert "sk-wrong-123" in echoed.text
    assert "sk-wrong-123" not in quiet.text and "sk-right" not in echoed.text


def test_a_hang_times_the_client_out_without_blocking_other_requests() -> None:
    config = SimulatorConfig(hang_rate=0.5)
    hanging, normal = first_prompt(config, "hang"), first_prompt(config, None)

    # How soon the normal answer comes, and the shutdown with a hang in flight, are measured
    # by bench/unit_timings.py.
    async def scenario() -> tuple[bool, dict[str, Any], Reply, dict[str, Any]]:
        async with simulator(hang_rate=0.5, hang_s=5) as client:
            stuck = asyncio.create_task(client.outcome(hanging, timeout=1.0))
            while (await client.stats())["requests"] == 0:  # until the hang has begun
                await asyncio.sleep(0.01)
            reply = await client.chat(normal)
            meanwhile = await client.stats()
            still_hanging = not stuck.done()
            assert await stuck == "hang"
            return still_hanging, meanwhile, reply, await client.stats()

    still_hanging, meanwhile, reply, stats = run(scenario())
    # The normal request was answered while the server still held the hanging one.
    assert still_hanging
    assert (meanwhile["requests"], meanwhile["completions"], meanwhile["errors"]) == (2, 1, 0)
    assert reply.status == 200 and is_well_formed(reply.text)
    assert stats["faults"] == dict.fromkeys(FAULTS, 0) | {"hang": 1}
    assert (stats["requests"], stats["completions"]) == (2, 1)


def test_a_short_hang_is_answered_after_the_wait() -> None:
    async def scenario() -> tuple[float, Reply, dict[str, Any]]:
        async with simulator(hang_rate=1.0, hang_s=0.2) as client:
            started = time.monotonic()
            reply = await client.chat("What is 2 + 2?")
            return time.monotonic() - started, reply, await client.stats()

    elapsed, reply, stats = run(scenario())
    assert elapsed >= 0.2
    assert reply.status == 200 and is_well_formed(reply.text)
    assert stats == stats_with(requests=1, completions=1, faults={"hang": 1})


# --------------------------------------------------------------------------------------------
# The rate limiter
# --------------------------------------------------------------------------------------------


def reset_seconds(reply: Reply) -> float:
    value = reply.headers["x-ratelimit-reset-requests"]
    assert re.fullmatch(r"[0-9]+(\.[0-9]{1,3})?s", value), value
    return float(value[:-1])


def test_token_bucket_arithmetic() -> None:
    bucket = TokenBucket(5, now=100.0)
    assert all(bucket.take(100.0) for _ in range(5))
    assert not bucket.take(100.0)
    assert bucket.seconds_until_token() == pytest.approx(0.2)
    assert bucket.headers() == {
        "x-ratelimit-limit-requests": "300",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "0.2s",
    }
    assert not bucket.take(100.15)
    assert bucket.headers()["x-ratelimit-reset-requests"] == "0.05s"
    assert bucket.take(100.2)
    assert bucket.take(110.0)  # refilled, but only up to one second of burst
    assert bucket.headers()["x-ratelimit-remaining-requests"] == "4"
    slow = TokenBucket(0.5, now=0.0)  # below 1 rps the burst is still one request
    assert slow.take(0.0) and not slow.take(1.0)
    assert slow.seconds_until_token() == pytest.approx(1.0)
    assert slow.take(2.0)


def test_rate_limit_answers_429_with_retry_headers() -> None:
    async def scenario() -> tuple[list[Reply], Reply, dict[str, Any]]:
        async with simulator(rate_limit_rps=5) as client:
            burst = await asyncio.gather(*(client.chat(p) for p in prompts(12)))
            wait_ms = max(int(r.headers.get("retry-after-ms", 0)) for r in burst)
            await asyncio.sleep(wait_ms / 1000 + 0.02)
            return list(burst), await client.chat("What is 5 + 5?"), await client.stats()

    burst, later, stats = run(scenario())
    ok = [reply for reply in burst if reply.status == 200]
    limited = [reply for reply in burst if reply.status == 429]
    assert (len(ok), len(limited)) == (5, 7)
    for reply in burst:
        assert reply.headers["x-ratelimit-limit-requests"] == "300"
        assert 0 <= reset_seconds(reply) <= 0.2
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == [0, 1, 2, 3, 4]
    assert all("Retry-After" not in reply.headers for reply in ok)
    for reply in limited:
        error = reply.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
        assert int(reply.headers["Retry-After"]) == 1  # 0.2 s rounded up to a whole second
        assert 1 <= int(reply.headers["retry-after-ms"]) <= 200
        assert reply.headers["x-ratelimit-remaining-requests"] == "0"
    assert later.status == 200 and is_well_formed(later.text)
    assert stats == stats_with(requests=13, completions=6, errors=7, rate_limited=7)


def test_rate_limit_without_headers_sends_only_retry_after() -> None:
    async def scenario() -> list[Reply]:
        async with simulator(rate_limit_rps=5, rate_limit_headers=False) as client:
            return list(await asyncio.gather(*(client.chat(p) for p in prompts(8))))

    burst = run(scenario())
    assert sorted(reply.status for reply in burst) == [200] * 5 + [429] * 3
    for reply in burst:
        assert not any(name.lower().startswith("x-ratelimit") for name in reply.headers)
        assert "retry-after-ms" not in {name.lower() for name in reply.headers}
    assert all(reply.headers["Retry-After"] == "1" for reply in burst if reply.status == 429)


def test_auth_and_validation_come_before_the_rate_limit() -> None:
    async def scenario() -> list[int]:
        async with simulator(rate_limit_rps=1, api_key="k") as client:
            auth = {"Authorization": "Bearer k"}
            statuses = [(await client.chat("What is 1 + 1?", headers=auth)).status]
            statuses.append((await client.chat("What is 1 + 1?", headers=auth)).status)
            statuses.append((await client.post_raw({"model": "m"}, headers=auth)).status)
            statuses.append((await client.chat("What is 1 + 1?")).status)
            return statuses

    assert run(scenario()) == [200, 429, 400, 401]


# --------------------------------------------------------------------------------------------
# Determinism, rates, retries, stats
# --------------------------------------------------------------------------------------------


MIXED = {"error_500_rate": 0.2, "error_503_rate": 0.1, "drop_rate": 0.1, "malformed_rate": 0.1}


def test_same_fault_seed_faults_the_same_prompts_in_any_order() -> None:
    texts = prompts(50)
    shuffled = random.Random(1).sample(texts, len(texts))

    async def first_attempts(order: list[str], seed: int) -> dict[str, str]:
        async with simulator(fault_seed=seed, **MIXED) as client:
            return await outcomes(client, order)

    forward = run(first_attempts(texts, 3))
    backward = run(first_attempts(shuffled, 3))
    assert forward == backward
    config = SimulatorConfig(fault_seed=3, **MIXED)
    assert forward == {p: fault_for(user(p), 0, config) or "ok" for p in texts}
    assert set(forward.values()) == {"ok", "error_500", "error_503", "drop", "malformed"}
    assert run(first_attempts(texts, 4)) != forward


def test_observed_fault_fractions_follow_the_rates() -> None:
    texts = prompts(400)

    async def scenario() -> tuple[dict[str, str], dict[str, Any]]:
        async with simulator(fault_seed=11, **MIXED) as client:
            return await outcomes(client, texts), await client.stats()

    seen, stats = run(scenario())
    counts = Counter(seen.values())
    for fault, rate in SimulatorConfig(**MIXED).fault_rates().items():
        assert abs(counts[fault] / len(texts) - rate) <= 0.05, (fault, counts)
        assert stats["faults"][fault] == counts[fault]
    assert stats["completions"] == counts["ok"]
    assert stats["errors"] == len(texts) - counts["ok"]


def test_fault_for_fractions_including_hangs() -> None:
    config = SimulatorConfig(fault_seed=5, hang_rate=0.15, **MIXED)
    texts = prompts(4000)
    counts = Counter(fault_for(user(p), 0, config) for p in texts)
    for fault, rate in config.fault_rates().items():
        assert abs(counts[fault] / len(texts) - rate) <= 0.02, (fault, counts)


def test_a_retry_gets_a_fresh_draw_and_429s_do_not_count_as_attempts() -> None:
    config = SimulatorConfig(error_500_rate=0.5)
    flaky = first_prompt(config, "error_500", None)

    async def scenario() -> tuple[list[str], list[str], dict[str, Any]]:
        async with simulator(error_500_rate=0.5, rate_limit_rps=4) as client:
            fillers = [p for p in prompts(20, "filler") if fault_for(user(p), 0, config) is None]
            first = [await client.outcome(flaky)]
            first += [await client.outcome(p) for p in fillers[:3]]  # the bucket is now empty
            first.append(await client.outcome(flaky))
            await asyncio.sleep(0.3)  # a token at 4/s takes 0.25 s
            first.append(await client.outcome(flaky))
            await client.stats("POST", "reset")
            again = [await client.outcome(flaky), await client.outcome(flaky)]
            return first, again, await client.stats()

    first, again, stats = run(scenario())
    assert first == ["error_500", "ok", "ok", "ok", "rate_limited", "ok"]
    assert again == ["error_500", "ok"]  # reset forgot the attempts
    assert stats == stats_with(requests=2, completions=1, errors=1, faults={"error_500": 1})


def test_reset_zeroes_counters_and_refills_the_bucket() -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[int], dict[str, Any]]:
        async with simulator(rate_limit_rps=2, error_503_rate=0.5, fault_seed=1) as client:
            texts = prompts(4)
            await asyncio.gather(*(client.outcome(p) for p in texts))
            before = await client.stats()
            cleared = await client.stats("POST", "reset")
            replies = await asyncio.gather(*(client.chat(p) for p in texts[:2]))
            return before, cleared, [r.status for r in replies], await client.stats()

    before, cleared, statuses, after = run(scenario())
    assert before["requests"] == 4 and before["rate_limited"] == 2
    assert before["faults"]["error_503"] == 2 - before["completions"]
    assert cleared == stats_with()
    assert 429 not in statuses  # a full bucket again
    assert after["requests"] == 2 and after["rate_limited"] == 0
    assert after["faults"]["error_503"] == statuses.count(503)
