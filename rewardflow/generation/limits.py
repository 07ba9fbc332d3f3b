"""Client-side rate limits: stay at the provider's limit without provoking 429s.

Three gates, all per generation job, passed before every HTTP attempt (a retry is a request
too, and providers count it):

* a **cooldown** shared by the whole job: after a 429, every request waits out the server's
  ``Retry-After`` (or a backoff), not just the one that was refused, so a job does not keep
  hammering an endpoint that has asked it to stop;
* **requests per minute**, and
* **tokens per minute**, both leaky buckets from ``aiolimiter`` that pace requests evenly
  instead of bursting, so a fresh job never fires a minute's worth of requests at once and the
  provider's burst allowance is left as slack for network jitter.

Tokens are charged the way providers meter them: before the call, the prompt's estimated
tokens plus ``max_tokens``; when the response reports more prompt tokens than estimated, the
difference is charged afterwards.

Without a configured requests-per-minute limit,
:class:`~rewardflow.generation.adaptive.AdaptiveRate`
paces requests instead, learning the provider's limit from its headers and 429s.

Several jobs share one budget by each taking ``1 / parallel_jobs`` of it; the workflow lets at
most ``parallel_jobs`` generation jobs run at once (a Snakemake resource), so the total holds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from rewardflow.generation.adaptive import AdaptiveRate
from rewardflow.records import Message

# Per-message overhead of chat formatting, as in OpenAI's token-counting guidance.
_TOKENS_PER_MESSAGE = 4
_CHARS_PER_TOKEN = 4


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """A deliberately cheap upper-leaning estimate: about 4 characters per token."""
    characters = sum(len(str(message.get("content") or "")) for message in messages)
    return math.ceil(characters / _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * len(messages)


@dataclass(frozen=True)
class RateBudget:
    """Limits for one job (or, before :meth:`share`, for the whole run)."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None

    def share(self, parts: int) -> RateBudget:
        """This budget split evenly between ``parts`` concurrently running jobs."""
        parts = max(1, parts)
        return RateBudget(
            None if self.requests_per_minute is None else self.requests_per_minute / parts,
            None if self.tokens_per_minute is None else self.tokens_per_minute / parts,
        )


def _bucket(per_minute: float, largest_amount: float = 1.0) -> AsyncLimiter:
    """A leaky bucket at ``per_minute`` that admits no burst beyond one item.

    Pacing requests evenly (rather than allowing a second's burst) keeps the provider's own
    burst allowance unused, and that slack absorbs network jitter: requests that arrive a few
    milliseconds early are not refused.
    """
    per_second = per_minute / 60.0
    capacity = max(1.0, largest_amount)
    return AsyncLimiter(max_rate=capacity, time_period=capacity / per_second)


class RequestLimiter:
    """The gates a job's requests pass through; see the module docstring."""

    def __init__(
        self,
        budget: RateBudget,
        largest_request_tokens: int = 1,
        adaptive: AdaptiveRate | None = None,
    ) -> None:
        self.budget = budget
        self.adaptive = adaptive if budget.requests_per_minute is None else None
        self._requests = _bucket(budget.requests_per_minute) if budget.requests_per_minute else None
        self._tokens = (
            _bucket(budget.tokens_per_minute, largest_request_tokens)
            if budget.tokens_per_minute
            else None
        )
        self._cooldown_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request of the job for ``seconds`` (extending, never shortening)."""
        self._cooldown_until = max(self._cooldown_until, time.monotonic() + seconds)

    async def _wait_for_cooldown(self) -> None:
        while (remaining := self._cooldown_until - time.monotonic()) > 0:
            await asyncio.sleep(remaining)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Let an answer's status and rate-limit headers steer the adaptive pace, if any."""
        if self.adaptive is not None:
            pause = self.adaptive.observe(status, headers)
            if pause:
                self.pause(pause)

    async def acquire(self, estimated_tokens: int) -> None:
        await self._wait_for_cooldown()
        if self._requests is not None:
            await self._requests.acquire()
        elif self.adaptive is not None:
            await self.adaptive.acquire()
        await self._charge_tokens(estimated_tokens)

    async def charge_extra_tokens(self, tokens: int) -> None:
        """Charge tokens the estimate missed, once the response has reported its usage."""
        await self._charge_tokens(tokens)

    async def _charge_tokens(self, tokens: int) -> None:
        """Charge all of ``tokens``, in bucket-sized parts when they exceed the bucket.

        The bucket holds one largest expected request, but a long prompt can need more; taking
        only a bucketful would let long prompts use more than ``tokens_per_minute``.
        """
        if self._tokens is None:
            return
        remaining = tokens
        while remaining > 0:
            part = min(remaining, self._tokens.max_rate)
            await self._tokens.acquire(part)
            remaining -= part
