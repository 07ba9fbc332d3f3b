"""Record dicts: exactly what ``dataclasses.asdict`` gave (the JSONL contract), without its copy."""

import dataclasses

from rewardflow.jsonl import dumps
from rewardflow.records import GenerationError, PromptRecord, ResponseRecord, ScoreRecord

MESSAGES = [{"role": "user", "content": "What is 2+2?"}]
METADATA = {"id": "p1", "tags": ["a", {"nested": [1, 2]}]}


def asdict_without(record, *optional):
    data = dataclasses.asdict(record)
    for name in optional:
        if data[name] is None:
            del data[name]
    return data


def same_line(record_dict, expected):
    # Equal dicts with the same key order serialise to the same line.
    assert record_dict == expected
    assert dumps(record_dict) == dumps(expected)


def test_prompt_record_dicts():
    plain = PromptRecord("p1", MESSAGES, "4", METADATA, {"file": "d.jsonl", "line": 1})
    same_line(plain.to_dict(), asdict_without(plain, "responses", "choices"))
    full = dataclasses.replace(plain, responses=["4", "5"], choices={"order": [1, 0]})
    same_line(full.to_dict(), asdict_without(full))


def test_response_record_dicts_with_and_without_an_error():
    ok = ResponseRecord(
        "p1", 0, "ok", MESSAGES, "4", "4", "stop", {"total_tokens": 5}, "m", "k", None, METADATA
    )
    same_line(ok.to_dict(), asdict_without(ok, "choices"))
    failed = ResponseRecord(
        "p1", 1, "failed", MESSAGES, "4", None, error=GenerationError("E", "boom", 3),
        choices={"order": [0]},
    )  # fmt: skip
    same_line(failed.to_dict(), asdict_without(failed))
    assert failed.to_dict()["error"] == {"type": "E", "message": "boom", "attempts": 3}
    assert ResponseRecord.from_dict(failed.to_dict()) == failed


def test_score_record_dict():
    record = ScoreRecord(
        "p1", 0, "scored", 1.0, {"accuracy": {"score": 1.0, "metrics": {}}}, None, METADATA, 0.5
    )
    same_line(record.to_dict(), dataclasses.asdict(record))
