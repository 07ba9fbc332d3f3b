"""Progress of a long job, written as log lines a person can read in the job's log.

A line every few seconds (not per item) keeps logs short on 100k-request shards while still
answering "is it moving, how fast, when will it finish, is anything failing".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a scoring job reports progress too, and has no use for the HTTP client
    from rewardflow.generation.client import ClientStats

logger = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class Progress:
    """Counts done/failed out of ``total`` and reports at most every ``interval_s`` seconds."""

    label: str
    total: int
    interval_s: float = 5.0
    done: int = 0
    failed: int = 0
    retries: int = 0
    client_stats: ClientStats | None = None
    _started: float = field(default_factory=time.monotonic)
    _last_report: float = field(default_factory=time.monotonic)

    def advance(self, *, failed: bool = False, retries: int = 0) -> None:
        self.done += 1
        self.failed += int(failed)
        self.retries += retries
        now = time.monotonic()
        if now - self._last_report >= self.interval_s:
            self._last_report = now
            logger.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self._started, 1e-9)
        rate = self.done / elapsed
        remaining = self.total - self.done
        eta = _duration(remaining / rate) if rate > 0 and remaining else "-"
        percent = 100.0 * self.done / self.total if self.total else 100.0
        line = (
            f"{self.label}: {self.done}/{self.total} ({percent:.0f}%), {rate:.1f}/s, "
            f"ETA {eta}, {self.failed} failed"
        )
        if self.client_stats is None:
            return line + f", {self.retries} retries"
        stats = self.client_stats
        return line + f", {stats.retries} retries, {stats.rate_limited} rate-limited (429)"

    def finish(self) -> None:
        logger.info(self.line() + f", took {_duration(time.monotonic() - self._started)}")
