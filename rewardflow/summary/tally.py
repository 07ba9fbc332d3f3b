"""One pass over a run's records, keeping per prompt only what the summary's statistics need.

The summary's intervals are bootstraps over prompts, so per-prompt score lists cannot be
replaced by a running mean; but everything else about a sample (its messages, its response
text, its reasons) can be dropped the moment it has been counted. :class:`RunTally` takes the
score records, then the response records, one at a time (from shard files read lazily), and
keeps counters plus, per prompt, compact arrays of floats: memory grows with the number of
scored values, not with the size of the records, and no record outlives its own step.

The order of everything kept is the order the in-memory computation had (first appearance in
the files, values in file order), so the sums, and so the summary, are the same to the bit.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rewardflow.config.summary import SummarySettings
from rewardflow.records import ResponseRecord, ScoreRecord

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
TRUNCATED = "length"
MISSING_LABEL = "(missing)"
_UNSCORED = ("generation_failed", "not_attempted")

Extractor = Callable[[str], str | None]


def _values() -> array[float]:
    return array("d")


@dataclass(slots=True)
class RewardTally:
    """One reward's scores by prompt (failed generations left out), errors, sub-metrics."""

    scores: dict[str, array[float]] = field(default_factory=dict)
    errors: int = 0
    metrics: dict[str, dict[str, array[float]]] = field(default_factory=dict)


@dataclass(slots=True)
class _Scored:
    """A prompt's scored samples: sample indices and primary scores, in file order, and the
    group labels of its lowest-indexed scored sample (the one that stands for the prompt)."""

    indices: array[int] = field(default_factory=lambda: array("q"))
    scores: array[float] = field(default_factory=_values)
    first_index: int = 0
    labels: tuple[str, ...] = ()
    answers: list[str | None] | None = None


@dataclass(frozen=True)
class ScoredSamples:
    """The scored samples of each prompt in sample order, prompts sorted by id: the population
    every pass@k, maj@k, spread and breakdown is estimated over."""

    scores: Mapping[str, Sequence[float]]
    #: Each prompt's extracted answers, aligned with ``scores``; None without an extractor.
    answers: Mapping[str, Sequence[str | None]] | None
    #: Group label of each prompt, by metadata field.
    labels: Mapping[str, Mapping[str, str]]


def group_label(value: object) -> str:
    return MISSING_LABEL if value is None else str(value)


class RunTally:
    """Counters and per-prompt arrays of a run, fed score records first, then responses.

    Scores come first so that a response needs no lookup table of its own: its answer is
    extracted only when its sample was scored, and a cut-off answer is checked against the
    score already kept.
    """

    def __init__(self, settings: SummarySettings, extractor: Extractor | None = None) -> None:
        self.settings = settings
        self.extractor = extractor
        self._ids: dict[str, str] = {}  # one string object per prompt id, however often seen
        self.statuses: Counter[str] = Counter()
        self.rewards = {name: RewardTally() for name in settings.rewards}
        self.weighted: dict[str, array[float]] = {}
        self._scored: dict[str, _Scored] = {}
        self.response_prompts: set[str] = set()
        self.responses = Counter[str]()
        self.usage = dict.fromkeys(USAGE_FIELDS, 0)
        self._paid: set[str] = set()
        self.failure_types: Counter[str] = Counter()
        self._cut: set[tuple[str, int]] = set()
        self._responses_started = False

    def _id(self, prompt_id: str) -> str:
        return self._ids.setdefault(prompt_id, prompt_id)

    # --- score records --------------------------------------------------------------------

    def add_score(self, record: ScoreRecord) -> None:
        if self._responses_started:
            raise RuntimeError("RunTally takes every score record before the responses")
        prompt = self._id(record.id)
        self.statuses[record.status] += 1
        if record.status not in _UNSCORED:
            for name, reward in self.rewards.items():
                self._add_reward(reward, prompt, record.rewards.get(name, {}))
        if record.weighted_score is not None:
            self.weighted.setdefault(prompt, _values()).append(record.weighted_score)
        if record.status == "scored" and record.score is not None:
            self._add_scored(prompt, record)

    @staticmethod
    def _add_reward(reward: RewardTally, prompt: str, result: Mapping[str, object]) -> None:
        if "error" in result or "score" not in result:
            reward.errors += 1
            return
        reward.scores.setdefault(prompt, _values()).append(float(result["score"]))  # type: ignore[arg-type]
        for metric, value in (result.get("metrics") or {}).items():  # type: ignore[attr-defined]
            by_prompt = reward.metrics.setdefault(metric, {})
            by_prompt.setdefault(prompt, _values()).append(float(value["score"]))

    def _add_scored(self, prompt: str, record: ScoreRecord) -> None:
        scored = self._scored.get(prompt)
        if scored is None:
            scored = self._scored[prompt] = _Scored(first_index=record.sample_index)
        elif record.sample_index >= scored.first_index:
            scored.indices.append(record.sample_index)
            scored.scores.append(float(record.score or 0.0))
            return
        scored.indices.append(record.sample_index)
        scored.scores.append(float(record.score or 0.0))
        scored.first_index = record.sample_index
        scored.labels = tuple(
            group_label(record.metadata.get(name)) for name in self.settings.metrics.group_by
        )

    # --- response records -----------------------------------------------------------------

    def add_response(self, record: ResponseRecord) -> None:
        self._responses_started = True
        prompt = self._id(record.id)
        self.response_prompts.add(prompt)
        self.responses[record.status] += 1
        # Samples sharing one response (coalesced) paid for it once.
        if not record.cache_key or record.cache_key not in self._paid:
            if record.cache_key:
                self._paid.add(record.cache_key)
            for name in USAGE_FIELDS:
                self.usage[name] += int((record.usage or {}).get(name, 0))
        if record.status == "failed" and record.error is not None:
            self.failure_types[record.error.type] += 1
        if record.status != "ok":
            return
        if record.finish_reason == TRUNCATED:
            self._cut.add((prompt, record.sample_index))
        scored = self._scored.get(prompt)
        if self.extractor is not None and scored is not None:
            if scored.answers is None:
                scored.answers = [None] * len(scored.indices)
            for position, index in enumerate(scored.indices):
                if index == record.sample_index:
                    scored.answers[position] = self.extractor(record.response or "")

    # --- what the statistics are computed from --------------------------------------------

    def _score_of(self, prompt: str, index: int) -> float | None:
        scored = self._scored.get(prompt)
        if scored is None:
            return None
        for position, scored_index in enumerate(scored.indices):
            if scored_index == index:
                return scored.scores[position]
        return None

    def truncation_counts(self) -> tuple[int, int]:
        """Generated samples cut off at ``max_tokens``, and how many of those scored below the
        pass threshold (their answer may be wrong only because it never finished)."""
        threshold = self.settings.metrics.pass_threshold
        below = 0
        for prompt, index in self._cut:
            score = self._score_of(prompt, index)
            below += score is not None and score < threshold
        return len(self._cut), below

    def scored_samples(self) -> ScoredSamples:
        scores: dict[str, list[float]] = {}
        answers: dict[str, list[str | None]] = {}
        labels: dict[str, dict[str, str]] = {name: {} for name in self.settings.metrics.group_by}
        for prompt in sorted(self._scored):
            scored = self._scored[prompt]
            order = sorted(range(len(scored.indices)), key=scored.indices.__getitem__)
            scores[prompt] = [scored.scores[i] for i in order]
            if self.extractor is not None:
                found = scored.answers or [None] * len(order)
                answers[prompt] = [found[i] for i in order]
            for name, label in zip(self.settings.metrics.group_by, scored.labels, strict=True):
                labels[name][prompt] = label
        return ScoredSamples(scores, answers if self.extractor is not None else None, labels)
