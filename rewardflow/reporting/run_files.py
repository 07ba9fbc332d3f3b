"""Reading a finished run's files back: what the compare and inspect commands share.

A run directory is ``results/<run_name>/`` as the workflow writes it; the shard JSONL files
are read directly, which is exactly what users are invited to do too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rewardflow.errors import DatasetError, RewardflowError
from rewardflow.jsonl import read_jsonl
from rewardflow.records import ResponseRecord, ScoreRecord

SampleKey = tuple[str, int]
_Record = TypeVar("_Record", ResponseRecord, ScoreRecord)


def records_by_key(
    paths: Iterable[str | Path], kind: str, parse: Callable[[dict[str, Any]], _Record]
) -> dict[SampleKey, _Record]:
    """Records of all shards by (id, sample_index), in file order; a repeated key is an error."""
    records: dict[SampleKey, _Record] = {}
    for path in paths:
        for line_number, data in read_jsonl(path):
            record = parse(data)
            key = (record.id, record.sample_index)
            if key in records:
                raise DatasetError(f"{path}:{line_number}: {kind} {key} appears twice")
            records[key] = record
    return records


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
