"""Pace requests: at a fixed rate, or at one learned from the provider without being told it.

:class:`Pacer` spaces a job's requests evenly at ``rate_per_s`` (None: no pacing), with the
run's rate split between the jobs running at once (``share``, re-counted while the job runs;
see :mod:`rewardflow.generation.rate_memory`). A configured ``requests_per_minute`` is such a
fixed pace.

:class:`AdaptiveRate` is used when no limit is configured. It starts at full speed, because a
self-hosted server often has no limit at all, and slows down only on evidence, best first:

1. **Rate-limit headers.** Providers such as OpenAI and Fireworks send
   ``x-ratelimit-limit-requests`` (per minute), ``x-ratelimit-remaining-requests`` and
   ``x-ratelimit-reset-requests`` on every answer. The limit header gives the answer outright:
   the job paces at its share of it from that response on. Remaining 0 pauses the job until
   the reset time.
2. **429s alone.** The first 429 of an unpaced job sets the pace to half the rate the server
   accepted over the last second (a server's burst allowance inflates that rate, by up to one
   second's worth with common token buckets), then doubles it per second until the next 429
   (a slow start), then by 0.5% per success, slowing by 15% on a 429 (or down to the rate the
   server accepted over the last second, when the pace had overshot it, by at most half). Past
   95% of the rate the last 429 came at, it grows by only 0.05% per success, so the search
   settles just under the point where 429s begin and meets them rarely. A burst of 429s from
   requests already in flight counts once: after a decrease, further 429s within
   ``decrease_hold_s`` do not decrease again.

Knowing nothing about an endpoint (no learned rate), a job also caps its requests in flight
(``window``: one at first), growing by one per success (doubling per round trip) up to its
concurrency: against a fast unlimited server that takes a few milliseconds; against a limited
one the first answer's headers set the pace before any burst, and without headers the first
wave of 429s is the few requests sent while the first 429 is on its way back, instead of a
whole concurrency's worth. A learned rate from an earlier job
(:mod:`~rewardflow.generation.rate_memory`) skips that: "unlimited" starts at full concurrency,
a limit starts paced at its share.

Jobs running at once share what they learn (:mod:`~rewardflow.generation.rate_memory`): a job
flags :attr:`AdaptiveRate.news` when a header states a new limit or a 429 makes it back off,
its limiter publishes :meth:`AdaptiveRate.finding`, and the other jobs :meth:`AdaptiveRate.adopt`
it: a stated limit outright, a 429s estimate as their share of it, in the same phase (still
probing up from a first 429's floor, or settled, with the 429s taken to have begun where the
publisher backed off from). Growth is not published: every job grows at the same relative
speed, so jobs that adopted the same rate stay in step until the next 429 resets them all.

The settled rate is reported (and kept for later jobs), so a user can pin it as
``requests_per_minute``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from rewardflow.generation.rate_memory import LearnedRate

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# How often a waiting request re-reads the rate, so a faster rate takes effect promptly.
_RECHECK_S = 0.05
# The first 429 of an unpaced job sets the pace from the successes of this last stretch.
_ACCEPTED_WINDOW_S = 1.0
# ... and no lower than this, even when no request had succeeded yet.
_FIRST_429_FLOOR_PER_S = 1.0


def parse_reset_seconds(value: str | None) -> float | None:
    """``"1s"``, ``"6m0s"``, ``"20ms"``, ``"0.05s"`` or a bare number of seconds."""
    if not value:
        return None
    text = value.strip().lower()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        return float(lowered[name])
    except (KeyError, ValueError):
        return None


@dataclass
class Pacer:
    """Even spacing at ``rate_per_s`` for this job (None: unpaced), see the module docstring.

    ``run_per_minute`` is the whole run's rate when it is known (configured or stated by the
    provider): :meth:`set_share` then gives this job ``run_per_minute / share``. Otherwise the
    job's own rate is scaled by the change in the number of jobs sharing the endpoint.
    """

    rate_per_s: float | None = None
    share: int = 1
    run_per_minute: float | None = None
    window: int | None = None
    concurrency: int | None = None
    max_per_s: float = 1000.0
    in_flight: int = field(default=0, init=False)
    _last_sent: float = field(default=float("-inf"), init=False)
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _room: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        self.share = max(1, self.share)
        if self.run_per_minute is not None:
            self.rate_per_s = self.job_rate(self.run_per_minute)

    def job_rate(self, run_per_minute: float) -> float:
        """This job's requests per second from the whole run's rate per minute."""
        return min(self.max_per_s, run_per_minute / 60.0 / self.share)

    def set_share(self, share: int) -> None:
        """``share`` jobs now run against the endpoint: take this job's part of the rate."""
        share = max(1, share)
        if share == self.share:
            return
        if self.run_per_minute is not None:
            self.share = share
            self.rate_per_s = self.job_rate(self.run_per_minute)
        else:
            if self.rate_per_s is not None:
                self.rate_per_s = min(self.max_per_s, self.rate_per_s * self.share / share)
            self.share = share

    async def acquire(self) -> None:
        """Wait for a free slot in the window, then for this request's turn at the rate.

        Turns are not booked ahead: waiters queue on a lock and each re-reads the rate while
        it waits, so a rate learned from a response applies to everyone at once.
        """
        while self.window is not None and self.in_flight >= self.window:
            self._room.clear()
            await self._room.wait()
        if self.rate_per_s is not None:
            async with self._turn:
                while (rate := self.rate_per_s) is not None and (
                    wait := self._last_sent + 1.0 / rate - time.monotonic()
                ) > 0:
                    await asyncio.sleep(min(wait, _RECHECK_S))
                now = time.monotonic()
                interval = 1.0 / rate if rate else 0.0
                scheduled = self._last_sent + interval
                # A late wake-up (the event loop's timer slack) keeps its scheduled turn, so the
                # pace does not drift below the rate; after an idle spell the grid restarts.
                self._last_sent = scheduled if now - interval <= scheduled <= now else now
        self.in_flight += 1

    def release(self, succeeded: bool) -> None:
        """One attempt has ended; a success widens a growing window by one."""
        self.in_flight = max(0, self.in_flight - 1)
        if succeeded and self.window is not None:
            self.window += 1
            if self.concurrency is None or self.window >= self.concurrency:
                self.window = None
        self._room.set()

    def observe(self, status: int, headers: Mapping[str, str]) -> float | None:
        """A fixed pace ignores the provider's signals; see :class:`AdaptiveRate`."""
        return None

    @property
    def found_limit(self) -> bool:
        return False


@dataclass
class AdaptiveRate(Pacer):
    """A pacer whose rate follows the provider's signals (see the module docstring).

    ``share`` is the number of jobs splitting the provider's limit: a learned limit of 1,200
    requests/minute with ``share=2`` paces this job at 10 requests/second. ``initial_per_s``
    None starts unpaced; a number starts there in slow start (a rate kept from an earlier job
    passes ``slow_start=False``).
    """

    initial_per_s: float | None = None
    slow_start: bool = True
    #: The pace comes from a limit an earlier job found (so it is worth reporting and keeping).
    learned: bool = False
    slow_start_increase: float = 1.05
    increase: float = 1.005
    decrease: float = 0.85
    decrease_hold_s: float = 0.5
    min_per_s: float = 0.1
    #: Near the rate the last 429 came at (above ``plateau`` times it), grow by only
    #: ``plateau_increase`` per success: back quickly to just under the limit, then probe it
    #: slowly, so that 429s stay rare once it is found.
    plateau: float = 0.95
    plateau_increase: float = 1.0005
    #: How much of the accepted rate the first 429 of an unpaced job keeps.
    first_429_keep: float = 0.5
    limit_per_minute: float | None = field(default=None, init=False)
    #: Something worth telling the other jobs happened (see :meth:`finding`); the limiter
    #: publishes it and clears the flag.
    news: bool = field(default=False, init=False)
    _last_decrease: float = field(default=float("-inf"), init=False)
    _met_429: bool = field(default=False, init=False)
    _probing: bool = field(default=False, init=False)
    _refused_at_per_s: float | None = field(default=None, init=False)
    _accepted: deque[float] = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.initial_per_s is not None and self.rate_per_s is None:
            self.rate_per_s = self.initial_per_s

    def observe(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Adjust the rate to one answer; return seconds to pause the job, if any."""
        limit = _header_number(headers, "x-ratelimit-limit-requests")
        if limit and limit > 0:
            self.news = self.news or limit != self.limit_per_minute
            self.limit_per_minute = self.run_per_minute = limit
            self.rate_per_s = self.job_rate(limit)
            self.window = None
        elif status == 429:
            self._on_429(time.monotonic())
        elif status == 200:
            self._on_success(time.monotonic())
        remaining = _header_number(headers, "x-ratelimit-remaining-requests")
        if remaining is not None and remaining < 1:
            lowered = {key.lower(): value for key, value in headers.items()}
            return parse_reset_seconds(lowered.get("x-ratelimit-reset-requests"))
        return None

    def _on_success(self, now: float) -> None:
        self._accepted.append(now)
        while self._accepted and self._accepted[0] < now - _ACCEPTED_WINDOW_S:
            self._accepted.popleft()
        if self.rate_per_s is not None and self.limit_per_minute is None:
            step = self.slow_start_increase if self.slow_start else self.increase
            refused_at = self._refused_at_per_s
            if not self.slow_start and refused_at and self.rate_per_s >= self.plateau * refused_at:
                step = self.plateau_increase
            if self.slow_start and self._probing:
                # Doubling per second at most (successes come at most at the rate): a low first
                # estimate recovers in a few seconds, a fair one does not overshoot far.
                step = 2.0 ** (1.0 / max(self.rate_per_s, 1.0))
            self.rate_per_s = min(self.max_per_s, self.rate_per_s * step)

    def _accepted_per_s(self, now: float) -> float:
        """The successes of the last stretch, per second."""
        return sum(1 for at in self._accepted if at >= now - _ACCEPTED_WINDOW_S) / (
            _ACCEPTED_WINDOW_S
        )

    def _on_429(self, now: float) -> None:
        self._met_429 = True
        self.window = None
        if self.limit_per_minute is not None or now - self._last_decrease < self.decrease_hold_s:
            return
        self._last_decrease = now
        self.news = True
        accepted = self._accepted_per_s(now)
        if self.rate_per_s is None:
            estimate = self.first_429_keep * accepted
            self.rate_per_s = max(self.min_per_s, _FIRST_429_FLOOR_PER_S, estimate)
            self._probing = True
            return  # still in slow start: this is a floor to search up from
        self.slow_start = False
        self._refused_at_per_s = self.rate_per_s
        cut = self.rate_per_s * self.decrease
        if accepted > 0:
            # Far above what the server accepted (a pace that overshot): down to that, but
            # never by more than half at once, since a pause also lowers what was accepted.
            cut = min(cut, max(accepted, self.rate_per_s / 2))
        self.rate_per_s = max(self.min_per_s, cut)

    def finding(self) -> LearnedRate | None:
        """What this job knows now, for the other jobs (None: no limit found yet)."""
        now = time.time()
        if self.limit_per_minute is not None:
            return LearnedRate("headers", self.limit_per_minute, now)
        rate = self.run_rate_per_minute
        if rate is None or not self.found_limit:
            return None
        return LearnedRate("429s", rate, now, probing=self.slow_start and self._probing)

    def adopt(self, learned: LearnedRate) -> bool:
        """Pace at this job's share of a rate another job found; False when it does not apply.

        "unlimited" never applies to a running job (only a starting one uses it, in
        :func:`~rewardflow.generation.limits.adaptive_start`), and a 429s estimate does not
        override a limit the provider stated to this job.
        """
        if learned.limit_per_minute is None or learned.unlimited:
            return False
        if learned.source == "headers" and learned.limit_per_minute == self.limit_per_minute:
            return False  # told the same already
        if learned.source == "headers":
            self.limit_per_minute = self.run_per_minute = learned.limit_per_minute
        elif self.limit_per_minute is not None:
            return False
        self.rate_per_s = self.job_rate(learned.limit_per_minute)
        self.window = None
        self.learned = True
        self.slow_start = self._probing = learned.probing
        if learned.source == "429s" and not learned.probing:
            # Published on backing off: the 429s began about one decrease above it, and this
            # job's own 429s from the same burst must not back it off a second time.
            self._refused_at_per_s = self.rate_per_s / self.decrease
            self._last_decrease = time.monotonic()
        return True

    @property
    def found_limit(self) -> bool:
        """Whether the provider revealed its limit (a header, or 429s the pace adapted to)."""
        return self.limit_per_minute is not None or self._met_429 or self.learned

    @property
    def run_rate_per_minute(self) -> float | None:
        """The whole run's rate implied by this job's pace (its rate times the share)."""
        if self.rate_per_s is None:
            return None
        return self.rate_per_s * 60.0 * max(1, self.share)
