"""The response cache: every finished response, kept the moment it arrives, found by content.

Why it looks like this:

* A response is identified by what determines it (model, endpoint, messages, output-affecting
  sampling parameters, sample index: :class:`~rewardflow.config.generation.ResponseIdentity`),
  never by the run or shard that first asked for it, so any later run with the same settings
  reuses it.
* Responses live in *partitions*, one directory per generation-settings fingerprint, so a job
  reads only the responses that could match its requests, and pruning by model or settings is
  deleting a directory. ``settings.json`` in each partition says what it holds.
* Inside a partition each writer appends to its own JSONL file, held under an exclusive
  ``flock``, so concurrent jobs and concurrent runs never interleave bytes. A line is flushed as
  soon as its response arrives: a crash or ``kill -9`` loses at most the line being written, and
  readers skip such a torn line.
* Snakemake deletes a job's declared outputs when it fails or reruns, so the cache is
  deliberately *not* a declared output: it survives both.
* A job about to request a response first *claims* its key: an exclusive ``flock`` on
  ``claims/<key>.lock`` in the partition, held while the request is in flight. Another job or
  run that wants the same key finds the claim taken and waits for the response to appear in the
  journals (:class:`JournalTail` reads only what was appended since it last looked) instead of
  paying for it again. The kernel releases a ``flock`` when its holder dies, however it dies, so
  a claim can never outlive its process and needs no expiry or PID check: the waiter simply
  gets the claim next and requests the response itself.
* Several users may share one cache directory: directories and files created inside it take
  the permission bits of the cache root (without execute bits for files), whatever each user's
  umask, so a group-writable root (``chmod 2775``) keeps everything in it group-writable.
* A look-up must not cost the size of the cache: each partition has an index
  (:mod:`rewardflow.generation.cache_index`, derived from the journals and never needed for
  safety) through which a job reads only the journal lines of the keys it wants, and scans
  only what no index covers yet (journals being written, an old-layout cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rewardflow.config.generation import ResponseIdentity, content_sha256
from rewardflow.generation import cache_index
from rewardflow.generation.cache_index import IndexPlace, ReadStats
from rewardflow.jsonl import SkippedLine, dumps, read_jsonl_tolerant, write_json_atomic
from rewardflow.records import Message

logger = logging.getLogger(__name__)


def normalize_endpoint(base_url: str) -> str:
    """``https://HOST/v1/`` and ``https://host/v1`` are the same endpoint for caching."""
    url = base_url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


#: The older name of :class:`ResponseIdentity`, for code written against it.
GenerationSettings = ResponseIdentity


def cache_key(settings: ResponseIdentity, messages: list[Message], sample_index: int) -> str:
    """The identity of one response; equal keys mean interchangeable responses."""
    return fingerprint_key(settings.fingerprint, messages, sample_index)


def fingerprint_key(fingerprint: str, messages: list[Message], sample_index: int) -> str:
    """:func:`cache_key` with the settings' fingerprint computed once for a whole shard."""
    return content_sha256(
        {"settings": fingerprint, "messages": messages, "sample_index": sample_index}
    )


@dataclass(frozen=True)
class CachedResponse:
    """One line of a cache journal."""

    key: str
    sample_index: int
    response: str
    finish_reason: str | None
    usage: dict[str, int] | None
    model: str | None
    created_at: float
    latency_s: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CachedResponse:
        return cls(
            key=data["key"],
            sample_index=int(data["sample_index"]),
            response=data["response"],
            finish_reason=data.get("finish_reason"),
            usage=data.get("usage"),
            model=data.get("model"),
            created_at=float(data.get("created_at", 0.0)),
            latency_s=data.get("latency_s"),
        )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "model"


class ResponseCache:
    """The partition of the cache that holds responses for one set of generation settings."""

    def __init__(self, root: str | Path, settings: ResponseIdentity) -> None:
        self.settings = settings
        self.root = Path(root)
        self.partition = self.root / f"{_slug(settings.model)}-{settings.fingerprint[:16]}"

    def journals(self) -> list[Path]:
        return sorted(self.partition.glob("*.jsonl")) if self.partition.is_dir() else []

    def load(self, wanted: Iterable[str] | None = None) -> dict[str, CachedResponse]:
        """Responses in this partition, restricted to ``wanted`` keys to bound memory.

        With ``wanted`` the look-up goes through the index and reads only those entries;
        without, every journal is read (the caller wants everything).
        """
        if wanted is not None:
            tail = self.tail(wanted)
            tail.read_new()
            return tail.found
        wanted_keys = None
        found: dict[str, CachedResponse] = {}
        skipped: list[SkippedLine] = []
        for journal in self.journals():
            for entry in read_jsonl_tolerant(journal, skipped):
                _collect(entry, journal, wanted_keys, found, skipped)
        _warn_skipped(skipped)
        return found

    def tail(self, wanted: Iterable[str]) -> JournalTail:
        """A reader of this partition's journals that returns only what is new at each look."""
        return JournalTail(self.partition, set(wanted), self._index_place())

    @contextmanager
    def writer(self, name: str) -> Iterator[CacheWriter]:
        """An exclusive append handle on this writer's journal (``name``, ``name-2``, ...)."""
        self._make_partition()
        settings_file = self.partition / "settings.json"
        if not settings_file.exists():
            write_json_atomic(settings_file, self.settings.to_dict())
            _share_like_root(settings_file, self.root)
        handle = _open_exclusive(self.partition, _slug(name), self.root)
        try:
            yield CacheWriter(handle)
        finally:
            try:
                # Still under the journal's lock, so what the index covers cannot change.
                cache_index.seal(self._index_place(), Path(handle.name))
            finally:
                handle.close()

    def try_claim(self, key: str) -> Claim | None:
        """Claim ``key`` for a request, or None while another live process holds its claim."""
        claims = self.partition / CLAIMS_DIR
        path = claims / f"{key}.lock"
        try:
            return Claim.try_acquire(path, self.root)
        except FileNotFoundError:  # no claims directory yet (or pruned meanwhile)
            self._make_partition()
            _make_dir_like_root(claims, self.root)
            return Claim.try_acquire(path, self.root)

    def _index_place(self) -> IndexPlace:
        return IndexPlace(
            partition=self.partition,
            make_dir=lambda path: _make_dir_like_root(path, self.root),
            share=lambda fd: _share_fd_like_root(fd, self.root),
        )

    def _make_partition(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _make_dir_like_root(self.partition, self.root)


CLAIMS_DIR = "claims"


def _collect(
    entry: Mapping[str, Any],
    journal: Path,
    wanted: set[str] | None,
    found: dict[str, CachedResponse],
    skipped: list[SkippedLine],
) -> None:
    key = entry.get("key")
    if not isinstance(key, str) or (wanted is not None and key not in wanted):
        return
    try:
        found.setdefault(key, CachedResponse.from_dict(entry))
    except (KeyError, TypeError, ValueError):
        skipped.append(SkippedLine(journal, 0, "cache entry lacks required fields"))


def _warn_skipped(skipped: Iterable[SkippedLine]) -> None:
    for line in skipped:
        logger.warning(
            "cache: skipped unusable line %s:%d (%s)", line.path, line.line_number, line.reason
        )


class JournalTail:
    """Follows a partition's journals, returning the wanted entries appended since last time.

    A job waiting for another process's response looks again every fraction of a second, so
    rereading whole journals each time would be quadratic; this keeps a byte offset per journal
    and stops at the last complete line, so a line being written right now is read next time
    instead of being taken for a torn one.

    The first look finds the wanted keys through the partition's index and starts each journal
    past what the index covers, so it reads the wanted lines and the unindexed rest only. A
    journal it had to scan from the start that no writer holds (an old-layout cache, a crashed
    writer's) it then indexes, so the next look-up need not scan it.
    """

    def __init__(self, partition: Path, wanted: set[str], index: IndexPlace | None = None) -> None:
        self.partition = partition
        self.wanted = wanted
        #: Every wanted entry read so far, first one per key (as :meth:`ResponseCache.load`).
        self.found: dict[str, CachedResponse] = {}
        #: What this tail has read, in journal bytes, lines and index probes.
        self.stats = ReadStats()
        self._index = index
        self._offsets: dict[Path, int] = {}
        self._primed = False
        #: One Path per journal name, reused by every look: a Path caches its hash.
        self._paths: dict[str, Path] = {}

    def _journals(self) -> list[Path]:
        """``sorted(partition.glob("*.jsonl"))``, without pathlib's cost per entry."""
        return [journal for journal, _ in self._listing()]

    def _listing(self) -> list[tuple[Path, int | None]]:
        """The journals in name order with their sizes (None: gone since it was listed).

        A job looks after every claim it takes, and a partition holds a journal per shard:
        building, hashing and sorting fresh Paths for each (``glob``), then a ``stat`` through
        each, cost milliseconds per look. Names from ``os.scandir`` sort like the Paths, and
        one Path per journal is reused, so it caches its hash.
        """
        listed: list[tuple[str, int | None]] = []
        try:
            with os.scandir(self.partition) as entries:
                for entry in entries:
                    if entry.name.endswith(".jsonl"):
                        try:
                            size: int | None = entry.stat().st_size
                        except FileNotFoundError:
                            size = None  # pruned between the listing and now
                        listed.append((entry.name, size))
        except (FileNotFoundError, NotADirectoryError):
            return []
        listed.sort()
        paths = self._paths
        return [
            (paths.get(name) or paths.setdefault(name, self.partition / name), size)
            for name, size in listed
        ]

    def read_new(self) -> dict[str, CachedResponse]:
        """Read what was appended since the last call; return its wanted entries."""
        new: dict[str, CachedResponse] = {}
        skipped: list[SkippedLine] = []
        listing = self._listing()
        journals = [journal for journal, _ in listing]
        unindexed: list[Path] = []
        if not self._primed:
            self._primed = True
            found = cache_index.lookup(self.partition, journals, self.wanted, self.stats)
            for journal, entry in found.entries:
                _collect(entry, journal, self.wanted, new, skipped)
            self._offsets.update(found.covered)
            for journal, offset in found.unusable:
                skipped.append(SkippedLine(journal, 0, f"torn or corrupted line at byte {offset}"))
            unindexed = [journal for journal in journals if journal not in found.covered]
            # Sized again after the index look-up, which may have seen them grow.
            listing = [(journal, _size(journal)) for journal in journals]
        for journal, size in listing:
            if size is None:
                continue  # pruned between the listing and now
            offset = self._offsets.get(journal, 0)
            if size == offset:
                continue  # most journals are finished: a stat, not an open
            if size < offset:
                offset = 0  # rewritten shorter by ``rewardflow cache prune``
            self._offsets[journal] = self._read_from(journal, offset, new, skipped)
        _warn_skipped(skipped)
        for key, entry in new.items():
            self.found.setdefault(key, entry)
        if self._index is not None:
            for journal in unindexed:
                if self._offsets.get(journal, 0) > 0:
                    cache_index.seal_if_idle(self._index, journal)
        return new

    def _read_from(
        self,
        journal: Path,
        offset: int,
        new: dict[str, CachedResponse],
        skipped: list[SkippedLine],
    ) -> int:
        try:
            handle = open(journal, "rb")  # noqa: SIM115 - closed just below
        except FileNotFoundError:
            return offset
        with handle:
            handle.seek(offset)
            # Stops before a line still being written, or torn: the writer that reopens ends it.
            for _, raw in cache_index.complete_lines(handle, offset):
                self.stats.journal_bytes += len(raw)
                self.stats.entries += 1
                try:
                    entry = json.loads(raw) if raw.strip() else None
                except ValueError:
                    reason = f"torn or corrupted line at byte {offset}"
                    skipped.append(SkippedLine(journal, 0, reason))
                    entry = None
                offset += len(raw)
                if isinstance(entry, dict) and entry.get("key") not in self.found:
                    _collect(entry, journal, self.wanted, new, skipped)
        return offset


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


class Claim:
    """An exclusive, crash-safe claim on one key: a ``flock`` on its own lock file.

    Releasing deletes the file while still holding the lock. A process that opened the file
    just before and then wins the lock would hold a deleted file that nobody else can see, so
    :meth:`try_acquire` checks that the path still names the inode it locked and retries if not.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def try_acquire(cls, path: Path, root: Path) -> Claim | None:
        while True:
            # Opened for writing: over NFS, flock is emulated by a byte-range lock that needs it.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            held = os.fstat(fd)
            try:
                same = os.path.samestat(held, os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                _share_fd_like_root(fd, root, held)
                return cls(fd, path)
            os.close(fd)  # the previous holder deleted it after we opened it: take the new one

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)


def _root_mode(root: Path) -> int:
    return stat.S_IMODE(root.stat().st_mode)


def _make_dir_like_root(path: Path, root: Path) -> None:
    """Create ``path`` with the root's permission bits, but never sticky: others unlink claims."""
    try:
        path.mkdir()
    except FileExistsError:
        return
    os.chmod(path, _root_mode(root) & 0o2777)


def _share_fd_like_root(fd: int, root: Path, held: os.stat_result | None = None) -> None:
    """Give a file this process owns the root's permission bits, without execute bits.

    ``held`` is the file's ``fstat`` if the caller has it already (a claim, per request).
    """
    held = held or os.fstat(fd)
    if held.st_uid == os.getuid():
        mode = _root_mode(root) & 0o666
        if stat.S_IMODE(held.st_mode) != mode:
            os.fchmod(fd, mode)


def _share_like_root(path: Path, root: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _share_fd_like_root(fd, root)
    finally:
        os.close(fd)


def _open_exclusive(directory: Path, name: str, root: Path) -> IO[str]:
    for attempt in range(1, 1000):
        path = directory / (f"{name}.jsonl" if attempt == 1 else f"{name}-{attempt}.jsonl")
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed by the caller
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _share_fd_like_root(handle.fileno(), root)
        _terminate_torn_line(handle)
        return handle
    raise RuntimeError(f"cache: could not lock a journal in {directory}")


def _terminate_torn_line(handle: IO[str]) -> None:
    """A killed writer may have left half a line; end it so the next entry starts clean."""
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return
    with open(handle.name, "rb") as reader:
        reader.seek(size - 1)
        if reader.read(1) != b"\n":
            handle.write("\n")
            handle.flush()


class CacheWriter:
    """Appends cache entries, each flushed to the OS before :meth:`append` returns."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    @property
    def path(self) -> Path:
        return Path(self._handle.name)

    def append(
        self,
        key: str,
        sample_index: int,
        response: str,
        finish_reason: str | None,
        usage: dict[str, int] | None,
        model: str | None,
        latency_s: float | None,
    ) -> CachedResponse:
        entry = CachedResponse(
            key=key,
            sample_index=sample_index,
            response=response,
            finish_reason=finish_reason,
            usage=usage,
            model=model,
            created_at=round(time.time(), 3),
            latency_s=None if latency_s is None else round(latency_s, 4),
        )
        line = {
            "key": key,
            "sample_index": sample_index,
            "response": response,
            "finish_reason": finish_reason,
            "usage": usage,
            "model": model,
            "created_at": entry.created_at,
            "latency_s": entry.latency_s,
        }  # asdict(entry), without its deep copy
        self._handle.write(dumps(line) + "\n")
        self._handle.flush()
        return entry

    def sync(self) -> None:
        """Push appended entries to the storage, so a process on another NFS client sees them.

        Called before a claim is released: a waiter on another node reopens the journal after
        it gets the claim, and NFS close-to-open consistency only shows it what was written
        back. Locally the page cache is shared and this is a cheap fdatasync.
        """
        os.fdatasync(self._handle.fileno())
