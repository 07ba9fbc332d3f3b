"""Reading a run's files back: what the report, the viewer, compare and inspect share.

A run directory is ``results/<run_name>/`` as the workflow writes it; the shard JSONL files
are read directly, which is exactly what users are invited to do too. Every reader here goes
through :func:`rewardflow.records.iter_records`: :func:`read_samples` streams a run's samples
with each response joined to its score (the report), :func:`load_run` holds a finished run by
key for random access (the viewer, compare, inspect).
"""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def read_samples(
    response_paths: Iterable[str | Path], score_paths: Iterable[str | Path]
) -> Iterator[Sample]:
    """Each response joined with its score by (id, sample_index), in the responses' order.

    Streams: a score shard is read when the responses reach one whose score it may hold, so
    with the workflow's shards (score shard *i* scores response shard *i*) one shard's scores
    are in memory at a time; scores in other files or another order are still found. Only the
    keys seen are kept (8 bytes each), to refuse a repeated one once the files are read.

    A response without a score, or the reverse, means the files come from different runs (or
    a stage was interrupted), and a report built from half of them would mislead, so it is an
    error (raised once the files are read, before a caller that reduces the stream writes
    anything) rather than a silently shorter report.
    """
    response_paths, score_paths = list(response_paths), list(score_paths)
    score_files = iter(score_paths)
    pending: dict[SampleKey, ScoreRecord] = {}
    seen_responses = _SeenKeys("response", response_paths, ResponseRecord.from_dict)
    seen_scores = _SeenKeys("score", score_paths, ScoreRecord.from_dict)
    unscored: list[SampleKey] = []

    def read_score_shard() -> bool:
        path = next(score_files, None)
        if path is None:
            return False
        for _, _, score in iter_records([path], ScoreRecord.from_dict):
            key = (score.id, score.sample_index)
            seen_scores.add(key)
            pending[key] = score
        return True

    for _, _, response in iter_records(response_paths, ResponseRecord.from_dict):
        key = (response.id, response.sample_index)
        seen_responses.add(key)
        score = pending.pop(key, None)
        while score is None and read_score_shard():
            score = pending.pop(key, None)
        if score is None:
            unscored.append(key)
        else:
            yield Sample(response, score)
    while read_score_shard():
        pass
    seen_responses.check()
    seen_scores.check()
    orphans = list(pending)
    if unscored or orphans:
        first = (unscored or orphans)[0]
        raise DatasetError(
            f"responses and scores do not match: {len(unscored)} responses without a score, "
            f"{len(orphans)} scores without a response (first: id {first[0]!r}, "
            f"sample {first[1]}); rerun the score stage"
        )


@dataclass(frozen=True)
class RunFiles:
    """One run's summary, responses and scores, joined by (prompt id, sample index)."""

    path: Path
    summary: dict[str, Any]
    responses: dict[SampleKey, ResponseRecord]
    scores: dict[SampleKey, ScoreRecord]

    @property
    def name(self) -> str:
        return str(self.summary.get("run_name", self.path.name))

    def status(self, key: SampleKey) -> str:
        """A sample's one status: its score record's, else what its generation came to."""
        score = self.scores.get(key)
        if score is not None:
            return score.status
        response = self.responses[key]
        return "generation_failed" if response.status == "failed" else response.status

    def per_prompt_scores(self, reward: str) -> dict[str, list[float]]:
        """Scored samples' scores for ``reward``, by prompt (failures and errors left out)."""
        by_prompt: dict[str, list[float]] = defaultdict(list)
        for (prompt, _), record in sorted(self.scores.items()):
            result = record.rewards.get(reward) or {}
            if record.status in ("scored", "score_error") and "score" in result:
                by_prompt[prompt].append(float(result["score"]))
        return dict(by_prompt)


def load_run(path: str | Path) -> RunFiles:
    path = Path(path)
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise RewardflowError(f"{path}: not a finished run (no summary.json)")
    responses = records_by_key(
        sorted((path / "responses").glob("shard-*.jsonl")), "response", ResponseRecord.from_dict
    )
    scores = records_by_key(
        sorted((path / "scores").glob("shard-*.jsonl")), "score", ScoreRecord.from_dict
    )
    return RunFiles(path, json.loads(summary_path.read_text()), responses, scores)
