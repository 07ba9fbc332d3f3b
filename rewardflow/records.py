"""The records that flow between stages, one JSON object per JSONL line.

These shapes are a contract with users, who read the shard files directly; docs/records.md
documents every field. Add fields, never rename or remove them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from rewardflow.jsonl import read_jsonl
from rewardflow.redaction import redact

Message = dict[str, str]


def _fields(record: Any) -> dict[str, Any]:
    """A record's fields in declaration order, as :func:`dataclasses.asdict` gives them.

    Without asdict's deep copy of every nested list and dict: a shard writes one record per
    sample, and the copy cost more than the JSON encoding. The values are JSON values that
    the records never change, and callers serialise the dict rather than mutate it.
    """
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


GenerationStatus = Literal["ok", "failed", "not_attempted"]
ScoreStatus = Literal["scored", "score_error", "generation_failed", "not_attempted"]


@dataclass(frozen=True)
class PromptRecord:
    """One prompt, as written by the prepare stage to ``prompts/shard-NNN.jsonl``."""

    id: str
    messages: list[Message]
    ground_truth: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    responses: list[str] | None = None
    #: With ``prompt.shuffle_options``: the options' order and the right letter (sample 0's).
    choices: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        record = _fields(self)
        for optional in ("responses", "choices"):
            if record[optional] is None:
                del record[optional]
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptRecord:
        return cls(
            id=data["id"],
            messages=data["messages"],
            ground_truth=data.get("ground_truth"),
            metadata=data.get("metadata") or {},
            source=data.get("source") or {},
            responses=data.get("responses"),
            choices=data.get("choices"),
        )


@dataclass(frozen=True)
class GenerationError:
    """Why a sample has no response. ``type`` is the error class name, e.g. ModelAuthError.

    Every failure record passes here, whatever raised it, so this is where a secret an error
    text might quote (a provider echoing the API key) is masked before it reaches a file.
    """

    type: str
    message: str
    attempts: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", redact(self.message))


@dataclass(frozen=True)
class ResponseRecord:
    """One sample of one prompt, as written to ``responses/shard-NNN.jsonl``.

    A failed request has ``status: failed``, ``response: null`` and an ``error``; it is never
    written as an empty answer.
    """

    id: str
    sample_index: int
    status: GenerationStatus
    messages: list[Message]
    ground_truth: str | None
    response: str | None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    model: str | None = None
    cache_key: str | None = None
    error: GenerationError | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: With ``prompt.shuffle_options``: this sample's order of the options and right letter.
    choices: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        record = _fields(self)
        if self.error is not None:
            record["error"] = asdict(self.error)
        if self.choices is None:
            del record["choices"]
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResponseRecord:
        error = data.get("error")
        return cls(
            id=data["id"],
            sample_index=int(data["sample_index"]),
            status=data["status"],
            messages=data["messages"],
            ground_truth=data.get("ground_truth"),
            response=data.get("response"),
            finish_reason=data.get("finish_reason"),
            usage=data.get("usage"),
            model=data.get("model"),
            cache_key=data.get("cache_key"),
            error=GenerationError(**error) if error else None,
            metadata=data.get("metadata") or {},
            choices=data.get("choices"),
        )


@dataclass(frozen=True)
class ScoreRecord:
    """The rewards of one sample, as written to ``scores/shard-NNN.jsonl``.

    ``score`` is the primary reward's score; it is null unless ``status`` is ``scored``, so a
    failed generation or a crashing reward can never be averaged in as a zero.
    """

    id: str
    sample_index: int
    status: ScoreStatus
    score: float | None
    rewards: dict[str, dict[str, Any]]
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    weighted_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _fields(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreRecord:
        return cls(
            id=data["id"],
            sample_index=int(data["sample_index"]),
            status=data["status"],
            score=data.get("score"),
            rewards=data.get("rewards") or {},
            error=data.get("error"),
            metadata=data.get("metadata") or {},
            weighted_score=data.get("weighted_score"),
        )


_Parsed = TypeVar("_Parsed")


def iter_records(
    paths: Iterable[str | Path], parse: Callable[[dict[str, Any]], _Parsed]
) -> Iterator[tuple[Path, int, _Parsed]]:
    """``(file, line number, record)`` for each line of each shard file in turn, parsed one
    line at a time: the one reader of a run's shards, for the summary, the report, the viewer
    and the commands that read a finished run. Nothing is held beyond the current line, so a
    streaming caller needs no memory for the run's size. A malformed line is a DatasetError
    naming the file and line."""
    for name in paths:
        path = Path(name)
        for line_number, data in read_jsonl(path):
            yield path, line_number, parse(data)


def read_records(
    paths: Iterable[str | Path], parse: Callable[[dict[str, Any]], _Parsed]
) -> Iterator[_Parsed]:
    """The records of each shard file in turn (:func:`iter_records` without the locations)."""
    for _, _, record in iter_records(paths, parse):
        yield record
