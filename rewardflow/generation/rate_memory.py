"""What the run has learned about an endpoint's request rate, kept next to the cache.

Each generation job used to find the provider's limit on its own, from a slow start, and forget
it on exit. This module keeps the finding so that the next job, and the next run, starts from
it, and lets the jobs that run at the same time split it between them:

* **The learned rate.** ``<cache>/.rates/<digest>.json``, one small file per endpoint and model
  (the digest of both, so no URL reaches a file name), written atomically (a temporary file
  renamed over it) when a job ends. It records the whole run's rate in requests per minute
  (``limit_per_minute``; for all jobs together), where it came from (``"headers"``: the
  provider said so, exact; ``"429s"``: found by backing off, an estimate), or ``"unlimited"``
  when a job ran at its full concurrency and met no limit. A file older than
  :data:`STALE_AFTER_S` is treated as absent (providers change limits), and so is one that
  cannot be read or parsed, with a log line: it is a hint, never a reason to fail.
* **Shared while jobs run.** A job does not wait for its end to tell the others: as soon as it
  learns something (a limit stated in the headers, or a 429 that made it back off) it
  :meth:`RateMemory.publish`-es the run's rate in the same file, stamped with its ``writer``
  id, and ``probing`` when the rate is a slow start's floor still to be searched up from. Every
  live job :meth:`RateMemory.poll`-s the file when it re-counts the live jobs (a ``stat`` first;
  the file is read only when a write replaced it) and adopts a rate another job published
  instead of finding the limit on its own, so a 429 met by one job slows all of them down.
  ``writer`` and ``probing`` are optional: files without them (older ones, and the end-of-job
  record) are read as before, and older readers ignore them.
* **The jobs running now.** ``<cache>/.rates/<digest>.jobs/`` holds one lock file per running
  job, ``flock``-ed by it for its whole life (the cache's claims use the same mechanism). The
  kernel drops a ``flock`` when its holder dies, however it dies, so counting the files whose
  lock is held counts the live jobs, and a dead job's file is removed by whoever finds it
  unlocked. Each job paces at the run's rate divided by that count, re-counted as jobs start and
  finish, so the total holds and the last job running gets the whole budget.

The directory is hidden (``.rates``) so that it is never taken for a cache partition.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from rewardflow.jsonl import write_json_atomic

logger = logging.getLogger(__name__)

#: How long a learned rate stays worth starting from.
STALE_AFTER_S = 7 * 24 * 3600.0
_FORMAT = 1

Source = Literal["headers", "429s", "unlimited"]


@dataclass(frozen=True, slots=True)
class LearnedRate:
    """One endpoint's request rate for the whole run, as the last job found it."""

    source: Source
    limit_per_minute: float | None = None
    updated_at: float = 0.0
    #: The live job that published it (None: an end-of-job record, or an older file).
    writer: str | None = None
    #: Published in slow start: a floor the publisher is still searching up from.
    probing: bool = False

    @property
    def unlimited(self) -> bool:
        return self.source == "unlimited"

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "format": _FORMAT,
            "source": self.source,
            "limit_per_minute": self.limit_per_minute,
            "updated_at": self.updated_at,
        }
        if self.writer is not None:
            data["writer"] = self.writer
        if self.probing:
            data["probing"] = True
        return data

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """The record, or ``ValueError`` for anything that is not one."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError("not a rate record of this format")
        source, limit = data.get("source"), data.get("limit_per_minute")
        if source not in ("headers", "429s", "unlimited"):
            raise ValueError(f"unknown source {source!r}")
        if source != "unlimited" and not (isinstance(limit, int | float) and limit > 0):
            raise ValueError(f"a {source} record needs a positive limit, not {limit!r}")
        updated = data.get("updated_at")
        if not isinstance(updated, int | float):
            raise ValueError("updated_at is missing")
        writer, probing = data.get("writer"), data.get("probing", False)
        if not (writer is None or isinstance(writer, str)) or not isinstance(probing, bool):
            raise ValueError("writer or probing has the wrong type")
        limit = None if source == "unlimited" else float(limit)
        return cls(source, limit, float(updated), writer, probing)


def _digest(endpoint: str, model: str) -> str:
    return hashlib.sha256(json.dumps([endpoint, model]).encode()).hexdigest()[:16]


class RateMemory:
    """The learned rate and the live jobs of one endpoint and model (see the module docstring)."""

    def __init__(self, cache_root: str | Path, endpoint: str, model: str) -> None:
        self.directory = Path(cache_root) / ".rates"
        digest = _digest(endpoint, model)
        self.path = self.directory / f"{digest}.json"
        self.jobs_dir = self.directory / f"{digest}.jobs"
        #: Stamped on what this job publishes, so that it does not adopt its own rate back.
        self.writer = uuid.uuid4().hex[:12]
        self._held: tuple[int, Path] | None = None
        self._seen: tuple[int, int] | None = None  # (inode, mtime) of the file last read

    def load(self, now: float | None = None) -> LearnedRate | None:
        """The learned rate, or None when there is none worth starting from."""
        try:
            with open(self.path) as handle:
                # What was read, for poll(): each atomic write makes a new inode.
                stat = os.fstat(handle.fileno())
                self._seen = (stat.st_ino, stat.st_mtime_ns)
                text = handle.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            logger.warning("ignoring the learned rate in %s: %s", self.path, error)
            return None
        try:
            learned = LearnedRate.from_dict(json.loads(text))
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            logger.warning("ignoring the learned rate in %s (unreadable: %s)", self.path, error)
            return None
        age = (time.time() if now is None else now) - learned.updated_at
        if age > STALE_AFTER_S:
            logger.info("ignoring the learned rate in %s: %.0f days old", self.path, age / 86400)
            return None
        return learned

    def save(self, learned: LearnedRate) -> None:
        """Replace the learned rate atomically; a failure is logged, never raised."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, learned.to_dict())
        except OSError as error:
            logger.warning("could not keep the learned rate in %s: %s", self.path, error)

    def publish(self, learned: LearnedRate) -> None:
        """Tell the live jobs (and later ones) what this job has just learned."""
        self.save(LearnedRate(learned.source, learned.limit_per_minute, learned.updated_at,
                              self.writer, learned.probing))  # fmt: skip

    def poll(self) -> LearnedRate | None:
        """A rate another job published since the last poll; None when there is nothing new.

        Cheap enough to call every half second: a ``stat``, and a read only when a write has
        replaced the file since the last :meth:`load` (each atomic write makes a new inode).
        What cannot be read is ignored, as by :meth:`load`, and read once, not at every poll.
        """
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        key = (stat.st_ino, stat.st_mtime_ns)
        if key == self._seen:
            return None
        self._seen = key  # even if it cannot be read: one log line, not one per poll
        learned = self.load()
        if learned is None or learned.writer == self.writer:
            return None
        return learned

    @contextmanager
    def joined(self, name: str) -> Iterator[RateMemory]:
        """Counted among the live jobs for the block: :meth:`join`, then :meth:`leave`."""
        self.join(name)
        try:
            yield self
        finally:
            self.leave()

    def join(self, name: str) -> None:
        """Count this job among the live ones until :meth:`leave` (or its death)."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        final = self.jobs_dir / f"{name}.{os.getpid()}.lock"
        # Locked before it gets its name, so a counter never mistakes it for a dead job's.
        temporary = self.jobs_dir / f".{final.name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(temporary, final)
        self._held = (fd, final)

    def leave(self) -> None:
        if self._held is None:
            return
        fd, path = self._held
        self._held = None
        path.unlink(missing_ok=True)
        os.close(fd)

    def live_jobs(self) -> int:
        """How many jobs hold a lock now (this one included, if it joined); at least 1."""
        mine = self._held[1] if self._held else None
        count = 1 if mine else 0
        try:
            entries = list(os.scandir(self.jobs_dir))
        except FileNotFoundError:
            return max(1, count)
        for entry in entries:
            if not entry.name.endswith(".lock") or Path(entry.path) == mine:
                continue
            count += self._held_by_someone(Path(entry.path))
        return max(1, count)

    @staticmethod
    def _held_by_someone(path: Path) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            path.unlink(missing_ok=True)  # its job died without leaving
            return False
        finally:
            os.close(fd)
