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

Which request pace a job gets is decided in one place, :func:`make_request_limiter`: none for
a launched server that batches its own load, a fixed even pace for a configured
``requests_per_minute``, otherwise (``adaptive_rate``, the default)
:class:`~rewardflow.generation.adaptive.AdaptiveRate`, which starts at full speed, or from what
an earlier job learned about the endpoint, and learns the provider's limit from its headers
and 429s.

Several jobs share one budget. The request rate is split between the jobs running now, counted
while the job runs (:class:`~rewardflow.generation.rate_memory.RateMemory`), so the last job
running gets the whole rate; what one job learns about the limit while it runs (a stated limit,
a 429 that made it back off) is published there and adopted by the others at their next
re-count, so jobs that start together find the limit once, not each on its own; the token
budget is split ``1 / parallel_jobs`` (the workflow lets at most ``parallel_jobs`` generation
jobs run at once, a Snakemake resource).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rewardflow.generation.adaptive import AdaptiveRate, Pacer
from rewardflow.generation.rate_memory import LearnedRate, RateMemory
from rewardflow.records import Message

# aiolimiter reads its own package metadata at import (~50 ms): imported when a token bucket is
# made, which only a job that sends requests under generation.tokens_per_minute does.
if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter

# Per-message overhead of chat formatting, as in OpenAI's token-counting guidance.
_TOKENS_PER_MESSAGE = 4
_CHARS_PER_TOKEN = 4
logger = logging.getLogger(__name__)
# How often a job re-counts the jobs it shares the request rate with.
_RECOUNT_S = 0.5


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
    from aiolimiter import AsyncLimiter  # lazily: see the imports above

    per_second = per_minute / 60.0
    capacity = max(1.0, largest_amount)
    return AsyncLimiter(max_rate=capacity, time_period=capacity / per_second)


class RequestLimiter:
    """The gates a job's requests pass through; see the module docstring.

    ``pacer`` spaces the requests (None: no request pacing). ``memory`` counts the jobs
    sharing the request rate, and carries what the adaptive pacers of those jobs learn: every
    half second while requests flow, the job re-counts them and adopts a rate another job has
    published; it publishes its own news as soon as an answer brings some.
    """

    def __init__(
        self,
        budget: RateBudget,
        largest_request_tokens: int = 1,
        pacer: Pacer | None = None,
        memory: RateMemory | None = None,
    ) -> None:
        if pacer is not None and budget.requests_per_minute is not None:
            raise ValueError("give the requests-per-minute limit as a pacer or a budget, not both")
        self._tokens_per_minute = budget.tokens_per_minute
        if budget.requests_per_minute:
            pacer = Pacer(run_per_minute=budget.requests_per_minute)
        self.pacer = pacer
        self._memory = memory
        self._counted_at = float("-inf")
        self._adopted = False
        self._tokens = (
            _bucket(budget.tokens_per_minute, largest_request_tokens)
            if budget.tokens_per_minute
            else None
        )
        self._cooldown_until = 0.0

    @property
    def budget(self) -> RateBudget:
        """This job's limits now: its share of a fixed request rate, and of the tokens."""
        fixed = self.pacer if type(self.pacer) is Pacer else None
        rate = fixed.rate_per_s if fixed is not None else None
        return RateBudget(None if rate is None else rate * 60.0, self._tokens_per_minute)

    @property
    def adaptive(self) -> AdaptiveRate | None:
        """The learning pacer, when the job has one."""
        return self.pacer if isinstance(self.pacer, AdaptiveRate) else None

    def pause(self, seconds: float) -> None:
        """Hold every request of the job for ``seconds`` (extending, never shortening)."""
        self._cooldown_until = max(self._cooldown_until, time.monotonic() + seconds)

    async def _wait_for_cooldown(self) -> None:
        while (remaining := self._cooldown_until - time.monotonic()) > 0:
            await asyncio.sleep(remaining)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Let an answer's status and rate-limit headers steer the adaptive pace, if any."""
        if self.pacer is not None:
            pause = self.pacer.observe(status, headers)
            if pause:
                self.pause(pause)
        adaptive = self.adaptive
        if adaptive is not None and adaptive.news:
            adaptive.news = False
            finding = adaptive.finding()
            if finding is not None and self._memory is not None:
                self._memory.publish(finding)

    def _recount(self) -> None:
        now = time.monotonic()
        if self._memory is None or self.pacer is None or now - self._counted_at < _RECOUNT_S:
            return
        self._counted_at = now
        self.pacer.set_share(self._memory.live_jobs())
        adaptive = self.adaptive
        published = self._memory.poll() if adaptive is not None else None
        if adaptive is not None and published is not None and adaptive.adopt(published):
            logger.log(
                logging.DEBUG if self._adopted else logging.INFO,
                "adopting the rate another job found: %.0f/minute (%s)",
                published.limit_per_minute, published.source,
            )  # fmt: skip
            self._adopted = True

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait until this attempt may go; every acquire is followed by one :meth:`release`."""
        await self._wait_for_cooldown()
        self._recount()
        if self.pacer is not None:
            await self.pacer.acquire()
            while self._cooldown_until > time.monotonic():
                # A 429 paused the job while this attempt waited for its slot or turn: it must
                # not go out during the pause (that is how one 429 became a wave of them).
                self.pacer.release(succeeded=False)
                await self._wait_for_cooldown()
                await self.pacer.acquire()
        try:
            await self._charge_tokens(estimated_tokens)
        except BaseException:
            self.release(succeeded=False)
            raise

    def release(self, succeeded: bool) -> None:
        """The attempt let through by :meth:`acquire` has ended."""
        if self.pacer is not None:
            self.pacer.release(succeeded)

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


@dataclass(frozen=True, slots=True)
class PaceSettings:
    """What decides a generation job's request pace (from ``generation.*`` and ``model.launch``).

    ``requests_per_minute`` and ``tokens_per_minute`` hold for the whole run; ``parallel_jobs``
    is how many jobs may run at once (it splits the token budget and is the first guess at the
    request rate's split, until the live jobs are counted).
    """

    requests_per_minute: float | None
    tokens_per_minute: float | None
    adaptive: bool
    parallel_jobs: int
    concurrency: int
    largest_request_tokens: int
    #: A launched server that batches its own load: no client-side limits at all.
    unlimited: bool = False


#: In-flight cap of a job that knows nothing about its endpoint yet (see adaptive.py).
INITIAL_WINDOW = 1


def make_request_limiter(settings: PaceSettings, memory: RateMemory | None) -> RequestLimiter:
    """The job's limiter: THE place that decides between no pace, a fixed and an adaptive one.

    ``memory`` (None: nothing to share or remember) gives the adaptive pace its start, what an
    earlier job learned about this endpoint, and counts the jobs the request rate is split
    between; the caller joins it before requests start and leaves it when they end.
    """
    if settings.unlimited:
        return RequestLimiter(RateBudget())
    tokens = RateBudget(None, settings.tokens_per_minute).share(settings.parallel_jobs)
    share = memory.live_jobs() if memory is not None else settings.parallel_jobs
    if settings.requests_per_minute is not None:
        pacer: Pacer | None = Pacer(run_per_minute=settings.requests_per_minute, share=share)
    elif settings.adaptive:
        learned = memory.load() if memory is not None else None
        if learned is not None:
            limit = "no limit" if learned.unlimited else f"{learned.limit_per_minute:.0f}/minute"
            logger.info("starting from the rate learned earlier: %s (%s)", limit, learned.source)
        pacer = adaptive_start(learned, share, settings.concurrency)
    else:
        pacer = None
    return RequestLimiter(tokens, settings.largest_request_tokens, pacer, memory)


def adaptive_start(learned: LearnedRate | None, share: int, concurrency: int) -> AdaptiveRate:
    """An adaptive pace starting from what was learned (None: nothing, so a growing window)."""
    if learned is None:
        return AdaptiveRate(share=share, window=min(INITIAL_WINDOW, concurrency),
                            concurrency=concurrency)  # fmt: skip
    if learned.unlimited:
        return AdaptiveRate(share=share)
    pacer = AdaptiveRate(share=share, slow_start=False, learned=True)
    # A stated limit: the provider's next answer will confirm or correct it.
    pacer.adopt(learned)
    return pacer


def learned_from(pacer: AdaptiveRate, requests: int, concurrency: int) -> LearnedRate | None:
    """What a finished job's pace says about the endpoint, worth keeping (None: nothing)."""
    now = time.time()
    if pacer.limit_per_minute is not None:
        return LearnedRate("headers", pacer.limit_per_minute, now)
    if pacer.found_limit and pacer.run_rate_per_minute is not None:
        return LearnedRate("429s", pacer.run_rate_per_minute, now)
    if pacer.rate_per_s is None and pacer.window is None and requests >= concurrency:
        return LearnedRate("unlimited", None, now)
    return None
