"""What a generation job must obtain: one item per (prompt, sample), with its cache key.

Planned before anything else, so that the cache look-up decides what is missing before the
request phase (:mod:`rewardflow.generation.fetch`) is even imported; what that phase returns
is defined here too, so that a job with nothing missing never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rewardflow.config.generation import ResponseIdentity
from rewardflow.config.prompts import PromptSettings
from rewardflow.generation.cache import CachedResponse, fingerprint_key
from rewardflow.jsonl import read_jsonl
from rewardflow.prompts import choices
from rewardflow.records import GenerationError, PromptRecord


@dataclass(frozen=True)
class WorkItem:
    """One sample to obtain: a prompt, which sample of it, and its cache key.

    Samples with equal keys are interchangeable; the first one in plan order stands for them
    when the request is built, and for a shared greedy key that is sample 0.
    """

    prompt: PromptRecord
    sample_index: int
    key: str


def read_prompts(path: str | Path) -> list[PromptRecord]:
    return [PromptRecord.from_dict(data) for _, data in read_jsonl(path)]


def shares_greedy_samples(identity: ResponseIdentity, independent_samples: bool) -> bool:
    """At temperature 0 a model decodes greedily, so sample i would repeat sample 0."""
    return identity.temperature == 0 and not independent_samples


def plan_work(
    prompts: Sequence[PromptRecord],
    identity: ResponseIdentity,
    samples: int,
    independent_samples: bool = False,
    prompt_settings: PromptSettings | None = None,
) -> list[WorkItem]:
    """One item per sample; each sample's prompt as it sees it (``prompt.shuffle_options``)."""
    greedy = shares_greedy_samples(identity, independent_samples)
    fingerprint = identity.fingerprint
    items = []
    for prompt in prompts:
        for index in range(samples):
            sample = (
                choices.for_sample(prompt, index, prompt_settings) if prompt_settings else prompt
            )
            key = fingerprint_key(fingerprint, sample.messages, 0 if greedy else index)
            items.append(WorkItem(sample, index, key))
    return items


def distinct_requests(items: Sequence[WorkItem]) -> list[WorkItem]:
    """One item per cache key, the first in plan order: identical requests are sent once."""
    first: dict[str, WorkItem] = {}
    for item in items:
        first.setdefault(item.key, item)
    return list(first.values())


@dataclass
class Requested:
    """What :func:`~rewardflow.generation.fetch.request_missing` obtained, by cache key."""

    responses: dict[str, CachedResponse] = field(default_factory=dict)
    failures: dict[str, GenerationError] = field(default_factory=dict)
    #: Keys whose response another process requested while this job waited for it.
    from_other_jobs: set[str] = field(default_factory=set)
    sent: int = 0


@dataclass(frozen=True)
class Fetched:
    """What a job's request phase (:func:`~rewardflow.generation.fetch.fetch_missing`) did:
    its responses and failures, and how it went; all zero for a job with nothing missing."""

    requested: Requested = field(default_factory=Requested)
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    adaptive_rate_rpm: float | None = None
