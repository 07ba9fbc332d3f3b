"""Reading a finished run's files back: what the compare and inspect commands share.

A run directory is ``results/<run_name>/`` as the workflow writes it; the shard JSONL files
are read directly, which is exactly what users are invited to do too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardflow.errors import RewardflowError
from rewardflow.jsonl import read_jsonl
from rewardflow.records import ResponseRecord, ScoreRecord


@dataclass(frozen=True)
class RunFiles:
    """One run's summary, responses and scores, joined by (prompt id, sample index)."""

    path: Path
    summary: dict[str, Any]
    responses: dict[tuple[str, int], ResponseRecord]
    scores: dict[tuple[str, int], ScoreRecord]

    @property
    def name(self) -> str:
        return str(self.summary.get("run_name", self.path.name))

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
    responses = {
        (record.id, record.sample_index): record
        for shard in sorted((path / "responses").glob("shard-*.jsonl"))
        for record in (ResponseRecord.from_dict(data) for _, data in read_jsonl(shard))
    }
    scores = {
        (record.id, record.sample_index): record
        for shard in sorted((path / "scores").glob("shard-*.jsonl"))
        for record in (ScoreRecord.from_dict(data) for _, data in read_jsonl(shard))
    }
    return RunFiles(path, json.loads(summary_path.read_text()), responses, scores)
