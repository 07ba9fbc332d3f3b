"""Reading a run's files back: what the report, the viewer, compare and inspect share.

A run directory is ``results/<run_name>/`` as the workflow writes it; the shard JSONL files
are read directly, which is exactly what users are invited to do too. Every reader here goes
through :func:`rewardflow.records.iter_records`: :func:`read_samples` streams a run's samples
with each response joined to its score (the report), :func:`read_responses_with_scores` the
same but keeping a response that has no score (the workflow's viewer), :func:`load_run` holds
a finished run by key for random access (compare, inspect, the paired viewer).
"""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rewardflow.errors import DatasetError, RewardflowError
from rewardflow.records import ResponseRecord, ScoreRecord, iter_records

SampleKey = tuple[str, int]
_Record = TypeVar("_Record", ResponseRecord, ScoreRecord)


def records_by_key(
    paths: Iterable[str | Path], kind: str, parse: Callable[[dict[str, Any]], _Record]
) -> dict[SampleKey, _Record]:
    """Records of all shards by (id, sample_index), in file order; a repeated key is an error."""
    records: dict[SampleKey, _Record] = {}
    for path, line_number, record in iter_records(paths, parse):
        key = (record.id, record.sample_index)
        if key in records:
            raise DatasetError(f"{path}:{line_number}: {kind} {key} appears twice")
        records[key] = record
    return records


@dataclass(frozen=True)
class Sample:
    """One sample: its response and its score record, which always come in pairs."""

    response: ResponseRecord
    score: ScoreRecord

    @property
    def key(self) -> SampleKey:
        return (self.response.id, self.response.sample_index)

    @property
    def primary_score(self) -> float | None:
        """The primary reward's score; None unless the sample was scored."""
        return self.score.score if self.score.status == "scored" else None


class _SeenKeys:
    """The sample keys a stream has passed, 8 bytes each (their ``hash``), to refuse a repeated
    one once the stream ends; a set of (id, index) tuples costs ~150 bytes a key.

    Two keys may share a hash, so a repeated hash is only a suspect: :meth:`check` reads the
    files again, holding the keys of the suspects only, and raises on a key that is really
    there twice, with the line of its second appearance.
    """

    def __init__(self, kind: str, paths: Sequence[str | Path], parse: Callable[..., Any]) -> None:
        self.kind, self.paths, self.parse = kind, paths, parse
        self.hashes: array[int] = array("q")

    def add(self, key: SampleKey) -> None:
        self.hashes.append(hash(key))

    def check(self) -> None:
        hashes = np.sort(np.frombuffer(self.hashes, dtype=np.int64)) if self.hashes else None
        if hashes is None:
            return
        suspects = set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())
        del hashes
        if not suspects:
            return
        seen: set[SampleKey] = set()
        for path, line_number, record in iter_records(self.paths, self.parse):
            key = (record.id, record.sample_index)
            if hash(key) in suspects:
                if key in seen:
                    raise DatasetError(f"{path}:{line_number}: {self.kind} {key} appears twice")
                seen.add(key)


class _ScoreJoin:
    """Each response with its score by (id, sample_index), in the responses' order: the one
    join behind :func:`read_samples` and :func:`read_responses_with_scores`.

    Streams: a score shard is read when the responses reach one whose score it may hold, so
    with the workflow's shards (score shard *i* scores response shard *i*) one shard's scores
    are in memory at a time; scores in other files or another order are still found (a
    response that has no score at all makes the rest of the score shards be read, and held,
    looking for it). Only the keys seen are kept (8 bytes each), to refuse a repeated one, with
    its file and line, once the files are read. After iterating, ``unscored`` holds the keys
    of the responses without a score and ``orphans`` those of the scores without a response.
    """

    def __init__(self, response_paths: Iterable[str | Path], score_paths: Iterable[str | Path]):
        self.response_paths, self.score_paths = list(response_paths), list(score_paths)
        self.unscored: list[SampleKey] = []
        self.orphans: list[SampleKey] = []

    def __iter__(self) -> Iterator[tuple[ResponseRecord, ScoreRecord | None]]:
        score_files = iter(self.score_paths)
        pending: dict[SampleKey, ScoreRecord] = {}
        seen_responses = _SeenKeys("response", self.response_paths, ResponseRecord.from_dict)
        seen_scores = _SeenKeys("score", self.score_paths, ScoreRecord.from_dict)

        def read_score_shard() -> bool:
            path = next(score_files, None)
            if path is None:
                return False
            for _, _, score in iter_records([path], ScoreRecord.from_dict):
                key = (score.id, score.sample_index)
                seen_scores.add(key)
                pending[key] = score
            return True

        for _, _, response in iter_records(self.response_paths, ResponseRecord.from_dict):
            key = (response.id, response.sample_index)
            seen_responses.add(key)
            score = pending.pop(key, None)
            while score is None and read_score_shard():
                score = pending.pop(key, None)
            if score is None:
                self.unscored.append(key)
            yield response, score
        while read_score_shard():
            pass
        seen_responses.check()
        seen_scores.check()
        self.orphans = list(pending)


def read_samples(
    response_paths: Iterable[str | Path], score_paths: Iterable[str | Path]
) -> Iterator[Sample]:
    """Each response joined with its score by (id, sample_index), in the responses' order.

    Streams (see :class:`_ScoreJoin`): with the workflow's shards one shard's scores are in
    memory at a time, plus 8 bytes per key seen, to refuse a repeated one once the files are
    read.

    A response without a score, or the reverse, means the files come from different runs (or
    a stage was interrupted), and a report built from half of them would mislead, so it is an
    error (raised once the files are read, before a caller that reduces the stream writes
    anything) rather than a silently shorter report.
    """
    joined = _ScoreJoin(response_paths, score_paths)
    for response, score in joined:
        if score is not None:
            yield Sample(response, score)
    unscored, orphans = joined.unscored, joined.orphans
    if unscored or orphans:
        first = (unscored or orphans)[0]
        raise DatasetError(
            f"responses and scores do not match: {len(unscored)} responses without a score, "
            f"{len(orphans)} scores without a response (first: id {first[0]!r}, "
            f"sample {first[1]}); rerun the score stage"
        )


def read_responses_with_scores(
    response_paths: Iterable[str | Path], score_paths: Iterable[str | Path]
) -> Iterator[tuple[ResponseRecord, ScoreRecord | None]]:
    """Every response with its score, or None if it has none, in the responses' order.

    The streaming twin of :func:`load_run` for a reader that shows every response, as the
    viewer does (a response without a score shows what its generation came to,
    :func:`sample_status`), where :func:`read_samples` refuses the run. Scores without a
    response are not shown, so not read back; a key repeated in either kind of file is an
    error naming its file and line, as in :func:`load_run`, raised once the files are read.
    """
    yield from _ScoreJoin(response_paths, score_paths)


def sample_status(response: ResponseRecord, score: ScoreRecord | None) -> str:
    """A sample's one status: its score record's, else what its generation came to."""
    if score is not None:
        return score.status
    return "generation_failed" if response.status == "failed" else response.status


@dataclass(frozen=True)
class RunFiles:
    """One run's summary, responses and scores, joined by (prompt id, sample index)."""

    path: Path
    summary: dict[str, Any]
    responses: dict[SampleKey, ResponseRecord]
    scores: dict[SampleKey, ScoreRecord]

    @property
    def name(self) -> str:
        return run_name(self.path, self.summary)

    def status(self, key: SampleKey) -> str:
        """A sample's one status (:func:`sample_status`)."""
        return sample_status(self.responses[key], self.scores.get(key))

    def per_prompt_scores(self, reward: str) -> dict[str, list[float]]:
        """Scored samples' scores for ``reward``, by prompt (failures and errors left out)."""
        by_prompt: dict[str, list[float]] = defaultdict(list)
        for (prompt, _), record in sorted(self.scores.items()):
            result = record.rewards.get(reward) or {}
            if record.status in ("scored", "score_error") and "score" in result:
                by_prompt[prompt].append(float(result["score"]))
        return dict(by_prompt)


def read_summary(path: str | Path) -> dict[str, Any]:
    """A finished run's ``summary.json``; a directory without one is not a finished run."""
    summary_path = Path(path) / "summary.json"
    if not summary_path.is_file():
        raise RewardflowError(f"{path}: not a finished run (no summary.json)")
    return json.loads(summary_path.read_text())


def run_name(path: str | Path, summary: Mapping[str, Any]) -> str:
    """A run's name: the one its summary records, else its directory's."""
    return str(summary.get("run_name", Path(path).name))


def shard_paths(path: str | Path) -> tuple[list[Path], list[Path]]:
    """A run directory's response shards and score shards, each in shard order."""
    path = Path(path)
    return (
        sorted((path / "responses").glob("shard-*.jsonl")),
        sorted((path / "scores").glob("shard-*.jsonl")),
    )


def load_run(path: str | Path) -> RunFiles:
    path = Path(path)
    summary = read_summary(path)
    response_paths, score_paths = shard_paths(path)
    responses = records_by_key(response_paths, "response", ResponseRecord.from_dict)
    scores = records_by_key(score_paths, "score", ScoreRecord.from_dict)
    return RunFiles(path, summary, responses, scores)
