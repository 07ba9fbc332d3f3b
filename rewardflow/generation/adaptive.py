"""Find a provider's request-rate limit without being told it.

Used when ``generation.requests_per_minute`` is not configured. Two sources of truth, best
first:

1. **Rate-limit headers.** Providers such as OpenAI and Fireworks send
   ``x-ratelimit-limit-requests`` (per minute), ``x-ratelimit-remaining-requests`` and
   ``x-ratelimit-reset-requests`` on every answer. The limit header gives the answer outright:
   the job paces at its share of it from the first response on. Remaining 0 pauses the job
   until the reset time.
2. **429s alone.** Without headers the pacer starts moderately and speeds up by 5% per
   success until the first 429 (a slow start), then by 0.5% per success, slowing by 15% on a
   429. That search settles just under the point where 429s begin, spending about one
   attempt in thirty on them. A burst of 429s from requests already in flight counts once:
   after a decrease, further 429s within ``decrease_hold_s`` do not decrease again.

The settled rate is reported so a user can pin it as ``requests_per_minute``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# How often a waiting request re-reads the rate, so a faster rate takes effect promptly.
_RECHECK_S = 0.05


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
class AdaptiveRate:
    """An even pacer whose rate follows the provider's signals (see the module docstring).

    ``share`` is the number of jobs splitting the provider's limit: a learned limit of 1,200
    requests/minute with ``share=2`` paces this job at 10 requests/second.
    """

    share: int = 1
    initial_per_s: float = 2.0
    slow_start_increase: float = 1.05
    increase: float = 1.005
    decrease: float = 0.85
    decrease_hold_s: float = 0.5
    min_per_s: float = 0.1
    max_per_s: float = 1000.0
    rate_per_s: float = field(init=False)
    limit_per_minute: float | None = field(default=None, init=False)
    _last_sent: float = field(default=float("-inf"), init=False)
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _slow_start: bool = field(default=True, init=False)
    _last_decrease: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        self.rate_per_s = self.initial_per_s

    async def acquire(self) -> None:
        """Wait for this request's turn at the current rate.

        Turns are not booked ahead: waiters queue on a lock and each re-reads the rate while
        it waits, so a rate learned from the first response applies to everyone at once.
        """
        async with self._turn:
            while (wait := self._last_sent + 1.0 / self.rate_per_s - time.monotonic()) > 0:
                await asyncio.sleep(min(wait, _RECHECK_S))
            self._last_sent = time.monotonic()

    def observe(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Adjust the rate to one answer; return seconds to pause the job, if any."""
        limit = _header_number(headers, "x-ratelimit-limit-requests")
        if limit and limit > 0:
            self.limit_per_minute = limit
            self.rate_per_s = min(self.max_per_s, limit / 60.0 / max(1, self.share))
        elif status == 429:
            now = time.monotonic()
            if now - self._last_decrease >= self.decrease_hold_s:
                self._last_decrease = now
                self._slow_start = False
                self.rate_per_s = max(self.min_per_s, self.rate_per_s * self.decrease)
        elif status == 200 and self.limit_per_minute is None:
            step = self.slow_start_increase if self._slow_start else self.increase
            self.rate_per_s = min(self.max_per_s, self.rate_per_s * step)
        remaining = _header_number(headers, "x-ratelimit-remaining-requests")
        if remaining is not None and remaining < 1:
            lowered = {key.lower(): value for key, value in headers.items()}
            return parse_reset_seconds(lowered.get("x-ratelimit-reset-requests"))
        return None

    @property
    def found_limit(self) -> bool:
        """Whether the provider revealed its limit (a header, or 429s the pace adapted to)."""
        return self.limit_per_minute is not None or not self._slow_start

    @property
    def run_rate_per_minute(self) -> float:
        """The whole run's rate implied by this job's pace (its rate times the share)."""
        return self.rate_per_s * 60.0 * max(1, self.share)
