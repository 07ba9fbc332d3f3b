"""An index of a cache partition's journals, so a look-up reads only the entries it needs.

Why it looks like this:

* The journals stay the only truth. The index is derived data: ``<partition>/index/*.idx``
  *segments*, each immutable once written (written to a temporary file and renamed), each
  saying which journals it covers and up to which byte. Losing, corrupting or deleting every
  segment loses nothing: a reader then scans the journals as before, so a crash at any moment
  (while a segment is written, or before it is) cannot cost a response.
* A segment holds fixed-width records sorted by a 16-byte digest of the key, so one key is a
  binary search in a memory-mapped file: a look-up of 1,000 keys costs the same against a
  thousand cached entries as against a million, and reads only the journal lines it found.
* A journal's bytes past what the index covers (a journal being written, or one no segment
  covers yet: an old-layout cache, a crashed writer) are scanned as before; only complete
  lines are indexed, so a torn last line stays outside and is skipped by the scan.
* Coverage names the journal's inode: ``rewardflow cache prune`` rewrites a journal by
  renaming a new file over it, which changes the inode, so a stale segment is ignored for it.
  Every line found through the index is checked to carry the key it was looked up for; a
  mismatch drops the index for that journal and the journal is scanned instead.
* Segments are written when a writer closes its journal (:func:`seal`), or by a reader that
  had to scan a journal no live writer holds (:func:`seal_if_idle`: an old-layout cache is
  indexed by the first look-up that reads it). When there are more than
  :data:`MAX_SEGMENTS`, whoever wrote the last one merges the small ones (size-tiered, so a
  large segment is not rewritten for every run) under a non-blocking lock; concurrent closers
  skip the merge. Readers that listed a segment a merge has just deleted list again.
* Files in the index take the cache root's permission bits like the rest of the cache; a
  reader that may not write there (a read-only shared cache) just does not index.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

INDEX_DIR = "index"
FORMAT = "rewardflow-cache-index"
VERSION = 1
#: digest of the key (16 bytes), journal number in the header, byte offset, line length.
RECORD = struct.Struct(">16sIQI")
#: Merge segments once a partition has more than this many.
MAX_SEGMENTS = 4
#: A segment is left out of a merge when it holds this many times the records of all the
#: smaller segments together, so a merge costs about what was added since the last one.
TIER_FACTOR = 4


def key_digest(key: str) -> bytes:
    """The fixed-width form of a key in the index (any string key; verified on read)."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()


@dataclass
class ReadStats:
    """What look-ups read, so tests can check that a look-up touches only what it needs."""

    #: Journal bytes read (lines found through the index plus scanned stretches).
    journal_bytes: int = 0
    #: Journal lines parsed.
    entries: int = 0
    #: Index records compared during binary searches.
    index_probes: int = 0


@dataclass(frozen=True)
class Coverage:
    """A segment covers journal ``name`` (inode ``ino``) from byte 0 up to ``size``.

    ``unusable`` are the offsets of lines in that stretch that are not cache entries (a torn
    line a rerun terminated, corruption), so readers still report them as a scan would.
    """

    name: str
    ino: int
    size: int
    unusable: tuple[int, ...] = ()


#: At most this many unusable lines are remembered per journal.
MAX_UNUSABLE = 100


class Segment:
    """One opened, validated index segment."""

    def __init__(self, path: Path, coverage: list[Coverage], data: mmap.mmap | bytes, base: int):
        self.path = path
        self.coverage = coverage
        self._data = data
        self._base = base
        self.count = (len(data) - base) // RECORD.size

    @classmethod
    def open(cls, path: Path) -> Segment | None:
        """The segment at ``path``; None if unreadable or not a complete segment (ignored)."""
        with open(path, "rb") as handle:
            header_line = handle.readline(1 << 24)
            try:
                header = json.loads(header_line)
                if header.get("format") != FORMAT or header.get("version") != VERSION:
                    return None
                coverage = [
                    Coverage(str(j[0]), int(j[1]), int(j[2]), tuple(int(o) for o in j[3]))
                    for j in header["journals"]
                ]
                records = int(header["records"])
            except (ValueError, KeyError, TypeError):
                return None
            base = len(header_line)
            size = os.fstat(handle.fileno()).st_size
            if size != base + records * RECORD.size:
                return None
            data: mmap.mmap | bytes = (
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if records else b""
            )
        return cls(path, coverage, data, base if records else 0)

    def record(self, position: int) -> tuple[bytes, int, int, int]:
        start = self._base + position * RECORD.size
        return RECORD.unpack_from(self._data, start)

    def records(self) -> Iterator[tuple[bytes, int, int, int]]:
        for position in range(self.count):
            yield self.record(position)

    def find(self, digest: bytes, stats: ReadStats) -> Iterator[tuple[int, int, int]]:
        """``(journal number, offset, length)`` of every record with this digest."""
        low, high = 0, self.count
        while low < high:
            middle = (low + high) // 2
            stats.index_probes += 1
            start = self._base + middle * RECORD.size
            if self._data[start : start + 16] < digest:
                low = middle + 1
            else:
                high = middle
        while low < self.count:
            found, journal, offset, length = self.record(low)
            if found != digest:
                return
            yield journal, offset, length
            low += 1

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()


def _segment_paths(index_dir: Path) -> list[Path]:
    return sorted(index_dir.glob("*.idx")) if index_dir.is_dir() else []


def open_segments(partition: Path, attempts: int = 5) -> list[Segment]:
    """Every readable segment, listed again if a merge deleted one between listing and opening."""
    index_dir = partition / INDEX_DIR
    segments: list[Segment] = []
    for _ in range(attempts):
        segments = []
        vanished = False
        for path in _segment_paths(index_dir):
            try:
                segment = Segment.open(path)
            except FileNotFoundError:
                vanished = True
                break
            except OSError as error:
                logger.debug("cache index: cannot read %s: %s", path, error)
                continue
            if segment is not None:
                segments.append(segment)
        if not vanished:
            return segments
        for segment in segments:
            segment.close()
    return segments  # the last listing; what it missed is scanned


@dataclass
class Found:
    """Result of :func:`lookup`: raw journal entries found and what the index covered."""

    entries: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    #: Per journal, the bytes from 0 that the index accounted for; scan from there on.
    covered: dict[Path, int] = field(default_factory=dict)
    #: ``(journal, offset)`` of unusable lines inside what the index covers.
    unusable: list[tuple[Path, int]] = field(default_factory=list)


def _best_coverage(
    segments: list[Segment], journals: dict[str, os.stat_result]
) -> dict[str, tuple[int, int, Coverage]]:
    """Per journal name: (segment number, journal number in it, coverage), the largest."""
    best: dict[str, tuple[int, int, Coverage]] = {}
    for number, segment in enumerate(segments):
        for position, cover in enumerate(segment.coverage):
            info = journals.get(cover.name)
            if info is None or info.st_ino != cover.ino or info.st_size < cover.size:
                continue  # gone, or rewritten by prune: this coverage says nothing now
            if cover.name not in best or cover.size > best[cover.name][2].size:
                best[cover.name] = (number, position, cover)
    return best


def _parse_line(raw: bytes, stats: ReadStats) -> dict[str, Any] | None:
    stats.journal_bytes += len(raw)
    stats.entries += 1
    if not raw.endswith(b"\n"):
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _read_hits(
    path: Path, lines: list[tuple[int, int, str]], stats: ReadStats, found: Found
) -> bool:
    """Read the indexed lines of one journal into ``found``; False if one is not its key."""
    entries: list[tuple[Path, dict[str, Any]]] = []
    try:
        with open(path, "rb") as handle:
            for offset, length, key in lines:
                entry = _parse_line(os.pread(handle.fileno(), length, offset), stats)
                if entry is None or entry.get("key") != key:
                    return False
                entries.append((path, entry))
    except FileNotFoundError:
        return False
    found.entries.extend(entries)
    return True


def lookup(partition: Path, journals: list[Path], wanted: set[str], stats: ReadStats) -> Found:
    """Find ``wanted`` keys through the index; say how much of each journal it covered."""
    found = Found()
    if not wanted:
        return found
    infos: dict[str, os.stat_result] = {}
    for journal in journals:
        with contextlib.suppress(FileNotFoundError):
            infos[journal.name] = journal.stat()
    segments = open_segments(partition)
    try:
        best = _best_coverage(segments, infos)
        by_segment: dict[int, dict[int, str]] = {}
        for name, (number, position, _) in best.items():
            by_segment.setdefault(number, {})[position] = name
        hits: dict[str, list[tuple[int, int, str]]] = {}
        digests = sorted((key_digest(key), key) for key in wanted)
        for number, names in by_segment.items():
            segment = segments[number]
            for digest, key in digests:
                for position, offset, length in segment.find(digest, stats):
                    name = names.get(position)
                    if name is not None:
                        hits.setdefault(name, []).append((offset, length, key))
        broken: set[str] = set()
        for name, lines in hits.items():
            path = partition / name
            if not _read_hits(path, sorted(lines), stats, found):
                logger.warning("cache index: %s does not match its index; scanning it", path)
                broken.add(name)
        for name, (_, _, cover) in best.items():
            if name not in broken:
                found.covered[partition / name] = cover.size
                found.unusable.extend((partition / name, offset) for offset in cover.unusable)
    finally:
        for segment in segments:
            segment.close()
    return found


def complete_lines(handle: Iterable[bytes], start: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` for each complete line from ``start``; stops before a partial one."""
    offset = start
    for raw in handle:
        if not raw.endswith(b"\n"):
            return
        yield offset, raw
        offset += len(raw)


def _journal_records(journal: Path) -> tuple[list[bytes], Coverage | None]:
    """Sorted index records of a journal's complete lines, and what they cover."""
    records: list[bytes] = []
    unusable: list[int] = []
    end = 0
    with open(journal, "rb") as handle:
        ino = os.fstat(handle.fileno()).st_ino
        for offset, raw in complete_lines(handle, 0):
            end = offset + len(raw)
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = None
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                records.append(RECORD.pack(key_digest(entry["key"]), 0, offset, len(raw)))
            elif not isinstance(entry, dict) and len(unusable) < MAX_UNUSABLE:
                unusable.append(offset)
    records.sort()
    return records, (Coverage(journal.name, ino, end, tuple(unusable)) if end else None)


def _write_segment(
    index_dir: Path,
    coverage: list[Coverage],
    records: list[bytes],
    share: Callable[[int], None],
) -> Path:
    """Write a segment atomically; ``records`` are packed and already sorted."""
    journals = [[cover.name, cover.ino, cover.size, list(cover.unusable)] for cover in coverage]
    header = {"format": FORMAT, "version": VERSION, "records": len(records), "journals": journals}
    fd, tmp_name = tempfile.mkstemp(prefix=".seg-", suffix=".tmp", dir=index_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\n")
            handle.write(b"".join(records))
            handle.flush()
            share(handle.fileno())
        final = index_dir / f"seg-{time.time_ns():x}-{os.getpid()}-{os.urandom(3).hex()}.idx"
        os.replace(tmp_name, final)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return final


@dataclass(frozen=True)
class IndexPlace:
    """Where a partition's index lives, and how to create files there like the cache root."""

    partition: Path
    make_dir: Callable[[Path], None]
    share: Callable[[int], None]

    @property
    def index_dir(self) -> Path:
        return self.partition / INDEX_DIR


def seal(place: IndexPlace, journal: Path) -> None:
    """Index ``journal`` (its writer's lock held, so it is not growing) and merge if due.

    Never raises for an OS error: the index is an optimisation, the journal is already safe.
    """
    try:
        records, coverage = _journal_records(journal)
        if coverage is None:
            return
        place.make_dir(place.index_dir)
        _write_segment(place.index_dir, [coverage], records, place.share)
        merge_if_due(place)
    except OSError as error:
        logger.debug("cache index: not indexing %s: %s", journal, error)


def seal_if_idle(place: IndexPlace, journal: Path) -> bool:
    """Index a journal that no live writer holds (a crashed writer's, an old layout's)."""
    try:
        fd = os.open(journal, os.O_RDWR)  # for writing: NFS emulates flock with a write lock
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a writer is appending to it: it indexes it when it closes
        info = os.fstat(fd)
        segments = open_segments(place.partition)
        try:
            done = any(
                cover.name == journal.name and cover.ino == info.st_ino
                and cover.size >= info.st_size
                for segment in segments for cover in segment.coverage
            )  # fmt: skip
        finally:
            for segment in segments:
                segment.close()
        if not done:  # another reader may have indexed it while we waited
            seal(place, journal)
        return True
    finally:
        os.close(fd)


def _merge_set(segments: list[Segment]) -> list[Segment]:
    """The segments to merge: all but those far larger than everything smaller together."""
    chosen = sorted(segments, key=lambda segment: segment.count)
    while len(chosen) > 1 and chosen[-1].count > TIER_FACTOR * sum(s.count for s in chosen[:-1]):
        chosen.pop()
    return chosen if len(chosen) > 1 else []


def merge_if_due(place: IndexPlace) -> None:
    """Merge segments when there are too many, unless another process is merging already."""
    if len(_segment_paths(place.index_dir)) <= MAX_SEGMENTS:
        return
    lock_path = place.index_dir / "merge.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        place.share(fd)
        segments = open_segments(place.partition)
        try:
            chosen = _merge_set(segments)
            if chosen:
                _merge(place, chosen)
        finally:
            for segment in segments:
                segment.close()
    finally:
        os.close(fd)


def _merge(place: IndexPlace, chosen: list[Segment]) -> None:
    infos: dict[str, os.stat_result] = {}
    for segment in chosen:
        for cover in segment.coverage:
            with contextlib.suppress(FileNotFoundError):
                infos.setdefault(cover.name, (place.partition / cover.name).stat())
    best = _best_coverage(chosen, infos)
    names = sorted(best)
    number_of = {name: number for number, name in enumerate(names)}
    records: list[bytes] = []
    for name in names:
        segment_number, position, _ = best[name]
        for digest, journal, offset, length in chosen[segment_number].records():
            if journal == position:
                records.append(RECORD.pack(digest, number_of[name], offset, length))
    records.sort()
    coverage = [best[name][2] for name in names]
    _write_segment(place.index_dir, coverage, records, place.share)
    for segment in chosen:
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
