"""Behaviour of the client-side limits (timing lives in bench/, not here)."""

from __future__ import annotations

import asyncio
import time

import pytest

from rewardflow.limits import RateBudget, RequestLimiter, estimate_prompt_tokens


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
        await asyncio.wait_for(limiter.acquire(0), timeout=1)
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
    async def scenario() -> None:
        limiter = RequestLimiter(RateBudget(tokens_per_minute=600), largest_request_tokens=2_000)
        await asyncio.wait_for(limiter.acquire(2_000), timeout=1)

    asyncio.run(scenario())


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
    limiter.pause(5)
    limiter.pause(0.1)
    assert limiter._cooldown_until - time.monotonic() > 4


@pytest.mark.parametrize("extra", [0, -5])
def test_charging_no_extra_tokens_does_not_wait(extra):
    async def scenario() -> None:
        limiter = RequestLimiter(RateBudget(tokens_per_minute=60))
        await limiter.acquire(1)
        await asyncio.wait_for(limiter.charge_extra_tokens(extra), timeout=0.5)

    asyncio.run(scenario())
