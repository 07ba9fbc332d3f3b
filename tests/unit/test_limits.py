"""Behaviour of the client-side limits (timing lives in bench/, not here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from rewardflow.generation.adaptive import AdaptiveRate, parse_reset_seconds
from rewardflow.generation.limits import RateBudget, RequestLimiter, estimate_prompt_tokens


async def passes_at_once(gate: Coroutine[Any, Any, None]) -> bool:
    """Whether ``gate`` lets its caller through without waiting for a timer.

    Passing a gate that has room never sleeps, so the task ends on its first step; one that
    has to wait for a refill or a cooldown is still pending then (and is cancelled here).
    """
    task = asyncio.ensure_future(gate)
    await asyncio.sleep(0)  # the task's first step
    passed = task.done()
    task.cancel()
    return passed


def test_budget_is_split_evenly_between_jobs():
    budget = RateBudget(requests_per_minute=1200, tokens_per_minute=90_000)
    assert budget.share(4) == RateBudget(300, 22_500)
    assert budget.share(0) == budget
    assert RateBudget().share(3) == RateBudget()


def test_prompt_estimate_grows_with_text_and_messages():
    one = [{"role": "user", "content": "x" * 400}]
    two = [{"role": "system", "content": ""}, *one]
    assert estimate_prompt_tokens(one) == 100 + 4
    assert estimate_prompt_tokens(two) == 100 + 8
    assert estimate_prompt_tokens([{"role": "user", "content": None}]) == 4


def test_requests_per_minute_paces_requests_evenly_without_a_burst():
    async def scenario() -> tuple[bool, float]:
        limiter = RequestLimiter(RateBudget(requests_per_minute=600))  # one per 0.1 s
        started = time.monotonic()
        assert await passes_at_once(limiter.acquire(0))
        second = asyncio.ensure_future(limiter.acquire(0))
        await asyncio.sleep(0.01)
        held = not second.done()
        for _ in range(3):
            await limiter.acquire(0)
        return held, time.monotonic() - started

    held, elapsed = asyncio.run(scenario())
    assert held, "a second request right after the first must wait its turn"
    assert elapsed >= 0.35  # five requests at 10/s: the fifth leaves no earlier than 0.4 s


def test_tokens_per_minute_holds_a_request_that_does_not_fit():
    async def scenario() -> bool:
        limiter = RequestLimiter(RateBudget(tokens_per_minute=6_000), largest_request_tokens=100)
        await limiter.acquire(100)
        second = asyncio.ensure_future(limiter.acquire(50))
        await asyncio.sleep(0.01)
        held = not second.done()
        second.cancel()
        return held

    assert asyncio.run(scenario())


def test_a_request_larger_than_one_second_of_tokens_still_passes():
    async def scenario() -> bool:
        limiter = RequestLimiter(RateBudget(tokens_per_minute=600), largest_request_tokens=2_000)
        return await passes_at_once(limiter.acquire(2_000))

    assert asyncio.run(scenario())


def test_pause_holds_every_request_of_the_job():
    async def scenario() -> list[float]:
        limiter = RequestLimiter(RateBudget())
        limiter.pause(0.2)
        started = time.monotonic()

        async def one() -> float:
            await limiter.acquire(1)
            return time.monotonic() - started

        return await asyncio.gather(one(), one(), one())

    waits = asyncio.run(scenario())
    assert all(wait >= 0.19 for wait in waits)


def test_pause_never_shortens_a_longer_pause():
    limiter = RequestLimiter(RateBudget())
    before = time.monotonic()
    limiter.pause(5)
    limiter.pause(0.1)
    assert limiter._cooldown_until >= before + 5


@pytest.mark.parametrize("extra", [0, -5])
def test_charging_no_extra_tokens_does_not_wait(extra):
    async def scenario() -> None:
        limiter = RequestLimiter(RateBudget(tokens_per_minute=60))
        await limiter.acquire(1)
        assert await passes_at_once(limiter.charge_extra_tokens(extra))

    asyncio.run(scenario())


# --- adaptive pacing ------------------------------------------------------------------------


def test_reset_durations_in_the_formats_providers_send():
    assert parse_reset_seconds("1s") == 1.0
    assert parse_reset_seconds("6m0s") == 360.0
    assert parse_reset_seconds("20ms") == pytest.approx(0.02)
    assert parse_reset_seconds("0.05s") == pytest.approx(0.05)
    assert parse_reset_seconds("2") == 2.0
    assert parse_reset_seconds("soon") is None
    assert parse_reset_seconds(None) is None


def test_limit_header_sets_this_jobs_share_of_the_provider_limit():
    pacer = AdaptiveRate(share=2)
    pacer.observe(200, {"X-RateLimit-Limit-Requests": "1200"})
    assert pacer.rate_per_s == pytest.approx(10.0)
    assert pacer.run_rate_per_minute == pytest.approx(1200.0)
    # A 429 does not push it below the limit the provider states.
    pacer.observe(429, {"x-ratelimit-limit-requests": "1200"})
    assert pacer.rate_per_s == pytest.approx(10.0)


def test_without_headers_successes_speed_up_and_429s_slow_down():
    pacer = AdaptiveRate(initial_per_s=2.0, decrease_hold_s=0.0)
    for _ in range(20):
        pacer.observe(200, {})
    faster = pacer.rate_per_s
    assert faster == pytest.approx(2.0 * 1.05**20)  # slow start
    pacer.observe(429, {})
    assert pacer.rate_per_s == pytest.approx(faster * 0.85)
    slowed = pacer.rate_per_s
    pacer.observe(200, {})
    assert pacer.rate_per_s == pytest.approx(slowed * 1.005)  # past slow start: gentle
    for _ in range(200):
        pacer.observe(429, {})
    assert pacer.rate_per_s == pytest.approx(pacer.min_per_s)


def test_a_burst_of_429s_from_requests_in_flight_slows_down_once():
    pacer = AdaptiveRate(initial_per_s=10.0, decrease_hold_s=60.0)
    for _ in range(5):
        pacer.observe(429, {})
    assert pacer.rate_per_s == pytest.approx(10.0 * 0.85)


def test_converges_to_a_simulated_limit_within_a_few_percent():
    # A provider that answers 429 above 20 requests/s and sends no headers: the pace must
    # settle near the limit, spending only a small share of attempts on 429s.
    pacer, attempts, refused = AdaptiveRate(initial_per_s=2.0, decrease_hold_s=0.0), 0, 0
    for _ in range(3000):
        attempts += 1
        if pacer.rate_per_s > 20.0:
            refused += 1
            pacer.observe(429, {})
        else:
            pacer.observe(200, {})
    assert 20.0 * 0.85 <= pacer.rate_per_s <= 20.0 * 1.01
    assert refused / attempts < 0.05


def test_no_remaining_requests_pauses_until_the_reset():
    pacer = AdaptiveRate()
    assert pacer.observe(200, {"x-ratelimit-remaining-requests": "0",
                               "x-ratelimit-reset-requests": "1.5s"}) == 1.5  # fmt: skip
    assert pacer.observe(200, {"x-ratelimit-remaining-requests": "7"}) is None


def test_only_a_limit_the_provider_revealed_is_worth_reporting():
    pacer = AdaptiveRate()
    for _ in range(10):
        pacer.observe(200, {})
    assert not pacer.found_limit
    pacer.observe(200, {"x-ratelimit-limit-requests": "600"})
    assert pacer.found_limit
    probed = AdaptiveRate(decrease_hold_s=0.0)
    probed.observe(429, {})
    assert probed.found_limit


def test_a_configured_limit_and_an_adaptive_pace_are_never_both_given():
    # Issue 11: an AdaptiveRate used to be built and then silently dropped when a limit was
    # configured. The choice is made once, in make_request_limiter (test_rate_memory.py).
    with pytest.raises(ValueError, match="not both"):
        RequestLimiter(RateBudget(requests_per_minute=60), pacer=AdaptiveRate())
    limiter = RequestLimiter(RateBudget(), pacer=AdaptiveRate())
    assert limiter.adaptive is not None


def test_a_prompt_longer_than_the_bucket_is_charged_in_full():
    # The bucket holds one largest request (2 x max_tokens); a long prompt's estimate is more,
    # and is charged as documented (prompt + max_tokens), over several refills: 1_000 tokens at
    # 1_000 per second through a 100-token bucket take at least 0.9 s. A lower bound only.
    async def scenario() -> float:
        limiter = RequestLimiter(RateBudget(tokens_per_minute=60_000), largest_request_tokens=100)
        started = time.monotonic()
        await limiter.acquire(1_000)
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.8


def test_extra_tokens_beyond_the_bucket_are_charged_in_full():
    async def scenario() -> float:
        limiter = RequestLimiter(RateBudget(tokens_per_minute=60_000), largest_request_tokens=100)
        await limiter.acquire(100)
        started = time.monotonic()
        await limiter.charge_extra_tokens(1_000)
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.8
