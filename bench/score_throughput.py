"""Benchmark: responses scored per second per core by the math reward on GSM8K.

Builds responses from the real GSM8K test split (../shared/data/gsm8k/test.jsonl): each
reference solution, ending "#### N", in several answer styles (####, \\boxed{}, "The answer is",
a wrong final number), then scores them three ways, side by side in one run:

* in-process, one core: the reward's own cost;
* the scoring stage (``score_shard``) with 1 worker process and with 2: what the pipeline
  delivers, worker start-up and inter-process traffic included.

Usage::

    .venv/bin/python bench/score_throughput.py [--copies 4]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from rewardflow.config.scoring import ScoringSettings
from rewardflow.jsonl import write_jsonl_atomic
from rewardflow.records import ResponseRecord
from rewardflow.rewards.loader import load_rewards
from rewardflow.scoring.job import score_record, score_shard

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
REWARDS = [{"name": "accuracy", "function": "rewardflow.rewards.math:math_reward"}]


def styled(solution: str, answer: str, style: int) -> str:
    reasoning = solution.rsplit("####", 1)[0].strip()
    return [
        f"{reasoning}\n#### {answer}",
        f"{reasoning}\nSo the final answer is \\boxed{{{answer}}}.",
        f"{reasoning}\nThe answer is {answer}.",
        f"{reasoning}\n#### {answer}1",  # a wrong answer
    ][style % 4]


def build_records(copies: int) -> list[ResponseRecord]:
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    records = []
    for copy in range(copies):
        for index, row in enumerate(rows):
            answer = re.search(r"####\s*(.+?)\s*$", row["answer"], re.MULTILINE).group(1)
            records.append(
                ResponseRecord(
                    id=f"{index}-{copy}",
                    sample_index=0,
                    status="ok",
                    messages=[{"role": "user", "content": row["question"]}],
                    ground_truth=answer,
                    response=styled(row["answer"], answer, index + copy),
                )
            )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="passes over the 1,319 problems")
    args = parser.parse_args()
    records = build_records(args.copies)
    print(f"{len(records)} GSM8K-style responses, math reward")

    rewards = load_rewards(REWARDS)
    started = time.perf_counter()
    in_process = [score_record(record, rewards) for record in records]
    seconds = time.perf_counter() - started
    accuracy = sum(r.score or 0 for r in in_process) / len(in_process)
    print(
        f"{'in-process, 1 core':<28} {len(records) / seconds:9.0f} responses/s per core "
        f"(accuracy {accuracy:.3f})"
    )

    with tempfile.TemporaryDirectory() as tmp:
        responses = Path(tmp) / "responses.jsonl"
        write_jsonl_atomic(responses, [record.to_dict() for record in records])
        settings = ScoringSettings.defaults()
        for workers in (1, 2):
            started = time.perf_counter()
            counts = score_shard(
                responses, Path(tmp) / "scores.jsonl", REWARDS, settings, workers=workers
            )
            seconds = time.perf_counter() - started
            label = f"score_shard, {workers} worker(s)"
            per_core = len(records) / seconds / workers
            print(
                f"{label:<28} {per_core:9.0f} responses/s per core "
                f"({len(records) / seconds:.0f}/s in all; {counts['scored']} scored)"
            )


if __name__ == "__main__":
    main()
