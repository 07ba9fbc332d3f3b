"""One pass over a run's records, keeping per sample only the numbers the summary needs, flat.

The summary's intervals are bootstraps over prompts, so per-prompt scores cannot be replaced
by a running mean (nor can the within-prompt spread or pass@k), but everything else about a
sample (its messages, its response text, its reasons) is dropped the moment it is counted.
:class:`RunTally` takes the score records, then the response records, one at a time, and
appends what it keeps to typed columns (``array``: 4 bytes per prompt index, 8 per sample
index or value), never one Python object per sample:

* per prompt: its id once, in the id -> index table (the id string and a dict entry,
  ~150 bytes; the bootstrap needs the ids' order);
* per score record: 12 bytes per reward score, 12 per sub-metric, 12 per weighted score, and
  for a scored sample 20 bytes plus 4 per ``metrics.group_by`` field;
* per response: 8 bytes per response with a cache key (its 64-bit digest, to pay a shared
  response once), 20 per extracted answer (plus each distinct answer once), 12 per answer
  cut off at ``max_tokens``.

That is ~60-100 bytes per sample, so a million samples take tens of MB. The columns are grouped
by prompt only at the end, with numpy, in the order the in-memory computation had (values in
file order within a prompt, scored samples by sample index), so the summary is the same to the
bit.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardflow.config.summary import SummarySettings
from rewardflow.records import ResponseRecord, ScoreRecord
from rewardflow.summary.statistics import Clusters

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
TRUNCATED = "length"
MISSING_LABEL = "(missing)"
_UNSCORED = ("generation_failed", "not_attempted")
#: Response digests waiting to be checked against those already paid for, in one numpy step.
_PAID_BATCH = 1 << 16
_NO_ANSWER = -1

Extractor = Callable[[str], str | None]
_Ints = npt.NDArray[np.int64]


def group_label(value: object) -> str:
    return MISSING_LABEL if value is None else str(value)


class _Interned:
    """Distinct strings numbered in order of appearance: a column stores the number."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str] = []

    def code(self, name: str) -> int:
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code


@dataclass(slots=True)
class _Values:
    """(prompt index, value) rows, in file order."""

    prompts: array[int] = field(default_factory=lambda: array("i"))
    values: array[float] = field(default_factory=lambda: array("d"))

    def add(self, prompt: int, value: float) -> None:
        self.prompts.append(prompt)
        self.values.append(value)

    def clusters(self, ids: Sequence[str], rank: _Ints) -> Clusters:
        """Grouped by prompt, prompts in id order, values in file order within a prompt."""
        prompts = _view(self.prompts, np.int32)
        order = np.argsort(rank[prompts], kind="stable")
        return _grouped(prompts[order], _view(self.values, np.float64)[order], ids)


def _empty() -> _Ints:
    return np.zeros(0, dtype=np.int64)


def _view(column: array[int] | array[float], dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A column's numbers as a numpy array, without copying them."""
    return np.frombuffer(column, dtype=dtype) if len(column) else np.zeros(0, dtype=dtype)


def _grouped(
    sorted_prompts: npt.NDArray[np.integer], values: npt.NDArray[np.float64], ids: Sequence[str]
) -> Clusters:
    """Clusters from rows already sorted by prompt (every row of a prompt together)."""
    count = len(sorted_prompts)
    starts = np.flatnonzero(np.diff(sorted_prompts, prepend=-1)) if count else _empty()
    offsets = np.append(starts, count).astype(np.int64)
    keys = [ids[prompt] for prompt in sorted_prompts[starts].tolist()]
    return Clusters(keys, offsets, values)


@dataclass(slots=True)
class RewardTally:
    """One reward's scores by prompt (failed generations left out), errors, sub-metrics."""

    scores: _Values = field(default_factory=_Values)
    errors: int = 0
    metrics: dict[str, _Values] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredSamples:
    """The scored samples of each prompt in sample order, prompts sorted by id: the population
    every pass@k, maj@k, spread and breakdown is estimated over."""

    scores: Clusters
    #: Each scored sample's extracted answer (a number into ``answer_texts``, -1 for none),
    #: aligned with ``scores.values``; None without an extractor.
    answers: npt.NDArray[np.int32] | None
    answer_texts: Sequence[str]
    #: Per ``metrics.group_by`` field: each prompt's label (a number into ``label_names``),
    #: aligned with ``scores.keys``.
    labels: dict[str, npt.NDArray[np.int32]]
    label_names: dict[str, Sequence[str]]

    def answer_lists(self) -> Iterator[list[str | None]]:
        """Each prompt's answers in sample order, one list at a time (none without an
        extractor)."""
        if self.answers is None:
            return
        texts, codes = self.answer_texts, self.answers
        offsets = self.scores.offsets.tolist()
        for start, end in zip(offsets, offsets[1:], strict=False):
            yield [
                texts[code] if code != _NO_ANSWER else None for code in codes[start:end].tolist()
            ]


def _digest(text: str) -> int:
    """A 64-bit digest: the key of a response paid for (a collision between two of a run's
    cache keys, chance ~n^2 / 2^65, would leave one response's tokens out of the usage)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class RunTally:
    """Counters and per-sample columns of a run, fed score records first, then responses.

    Scores come first so that a response needs no lookup table of its own: its answer is
    extracted only when its prompt has a scored sample.
    """

    def __init__(self, settings: SummarySettings, extractor: Extractor | None = None) -> None:
        self.settings = settings
        self.extractor = extractor
        self._prompts: dict[str, int] = {}  # prompt id -> index, one entry per prompt
        self._ids: list[str] = []
        self.statuses: Counter[str] = Counter()
        self.rewards = {name: RewardTally() for name in settings.rewards}
        self.weighted = _Values()
        # Scored samples: prompt, sample index, primary score, and each group_by label.
        self._scored = _Values()
        self._scored_indices: array[int] = array("q")
        self._labels = {name: (array("i"), _Interned()) for name in settings.metrics.group_by}
        self._has_scored = bytearray()  # per prompt
        self._has_response = bytearray()  # per prompt
        self.prompts_with_responses = 0
        self.responses = Counter[str]()
        self.usage = dict.fromkeys(USAGE_FIELDS, 0)
        self._paid: _Ints = _empty()  # sorted digests of the cache keys paid for
        self._paying: array[int] = array("q")
        self._paying_usage: array[int] = array("q")
        self.failure_types: Counter[str] = Counter()
        self._cut_prompts: array[int] = array("i")
        self._cut_indices: array[int] = array("q")
        self._answer_prompts: array[int] = array("i")
        self._answer_indices: array[int] = array("q")
        self._answer_codes: array[int] = array("i")
        self._answers = _Interned()
        self._responses_started = False
        self._rank: _Ints | None = None

    def _prompt(self, prompt_id: str) -> int:
        index = self._prompts.get(prompt_id)
        if index is None:
            index = self._prompts[prompt_id] = len(self._ids)
            self._ids.append(prompt_id)
            self._has_scored.append(0)
            self._has_response.append(0)
        return index

    # --- score records --------------------------------------------------------------------

    def add_score(self, record: ScoreRecord) -> None:
        if self._responses_started:
            raise RuntimeError("RunTally takes every score record before the responses")
        prompt = self._prompt(record.id)
        self.statuses[record.status] += 1
        if record.status not in _UNSCORED:
            for name, reward in self.rewards.items():
                self._add_reward(reward, prompt, record.rewards.get(name, {}))
        if record.weighted_score is not None:
            self.weighted.add(prompt, record.weighted_score)
        if record.status == "scored" and record.score is not None:
            self._scored.add(prompt, float(record.score or 0.0))
            self._scored_indices.append(record.sample_index)
            self._has_scored[prompt] = 1
            for name, (codes, labels) in self._labels.items():
                codes.append(labels.code(group_label(record.metadata.get(name))))

    @staticmethod
    def _add_reward(reward: RewardTally, prompt: int, result: dict[str, object]) -> None:
        if "error" in result or "score" not in result:
            reward.errors += 1
            return
        reward.scores.add(prompt, float(result["score"]))  # type: ignore[arg-type]
        for metric, value in (result.get("metrics") or {}).items():  # type: ignore[attr-defined]
            reward.metrics.setdefault(metric, _Values()).add(prompt, float(value["score"]))

    # --- response records -----------------------------------------------------------------

    def add_response(self, record: ResponseRecord) -> None:
        self._responses_started = True
        prompt = self._prompt(record.id)
        if not self._has_response[prompt]:
            self._has_response[prompt] = 1
            self.prompts_with_responses += 1
        self.responses[record.status] += 1
        usage = record.usage or {}
        if record.cache_key:
            # Samples sharing one response (coalesced) paid for it once: the first one counts.
            self._paying.append(_digest(record.cache_key))
            self._paying_usage.extend(int(usage.get(name, 0)) for name in USAGE_FIELDS)
            if len(self._paying) >= _PAID_BATCH:
                self._settle_paid()
        else:
            for name in USAGE_FIELDS:
                self.usage[name] += int(usage.get(name, 0))
        if record.status == "failed" and record.error is not None:
            self.failure_types[record.error.type] += 1
        if record.status != "ok":
            return
        if record.finish_reason == TRUNCATED:
            self._cut_prompts.append(prompt)
            self._cut_indices.append(record.sample_index)
        if self.extractor is not None and self._has_scored[prompt]:
            answer = self.extractor(record.response or "")
            self._answer_prompts.append(prompt)
            self._answer_indices.append(record.sample_index)
            self._answer_codes.append(_NO_ANSWER if answer is None else self._answers.code(answer))

    def _settle_paid(self) -> None:
        """Add the usage of the batch's responses whose key was not paid for before (the first
        of each key, in file order), and remember their keys."""
        if not self._paying:
            return
        digests = np.array(self._paying, dtype=np.int64)
        usage = np.array(self._paying_usage, dtype=np.int64).reshape(-1, len(USAGE_FIELDS))
        self._paying, self._paying_usage = array("q"), array("q")
        distinct, first = np.unique(digests, return_index=True)
        new = ~_isin_sorted(distinct, self._paid)
        for name, total in zip(USAGE_FIELDS, usage[first[new]].sum(axis=0).tolist(), strict=True):
            self.usage[name] += total
        self._paid = np.union1d(self._paid, distinct[new])

    # --- what the statistics are computed from --------------------------------------------

    def finish(self) -> None:
        """Settle the usage still batched: call once every record has been added."""
        self._settle_paid()

    def _id_rank(self) -> _Ints:
        """Each prompt index's position in id order (computed once all records are in)."""
        self._settle_paid()
        if self._rank is None or len(self._rank) != len(self._ids):
            by_id = sorted(range(len(self._ids)), key=self._ids.__getitem__)
            order = np.array(by_id, dtype=np.int64)
            del by_id
            self._rank = np.empty(len(order), dtype=np.int64)
            self._rank[order] = np.arange(len(order), dtype=np.int64)
        return self._rank

    def clusters(self, values: _Values) -> Clusters:
        """A column of (prompt, value) rows (a reward's, a sub-metric's, the weighted scores)
        grouped by prompt, prompts in id order, values in file order."""
        return values.clusters(self._ids, self._id_rank())

    def _scored_keys(self) -> tuple[_Ints, _Ints]:
        return _view(self._scored.prompts, np.int32).astype(np.int64), _view(
            self._scored_indices, np.int64
        )

    def truncation_counts(self) -> tuple[int, int]:
        """Generated samples cut off at ``max_tokens``, and how many of those scored below the
        pass threshold (their answer may be wrong only because it never finished)."""
        if not self._cut_prompts:
            return 0, 0
        cut = np.unique(  # a sample cut off twice (a repeated record) counts once
            np.column_stack(
                (
                    _view(self._cut_prompts, np.int32).astype(np.int64),
                    _view(self._cut_indices, np.int64),
                )
            ),
            axis=0,
        )
        found = _lookup(self._scored_keys(), (cut[:, 0], cut[:, 1]), last=False)
        scores = _view(self._scored.values, np.float64)
        hit = found >= 0
        below = int(np.count_nonzero(scores[found[hit]] < self.settings.metrics.pass_threshold))
        return len(cut), below

    def scored_samples(self) -> ScoredSamples:
        prompts, indices = self._scored_keys()
        # By prompt, then sample index; equal indices (a repeated record) stay in file order.
        order = np.lexsort((indices, self._id_rank()[prompts]))
        clusters = _grouped(
            prompts[order], _view(self._scored.values, np.float64)[order], self._ids
        )
        first_rows = order[clusters.offsets[:-1]]  # each prompt's lowest sample index
        labels = {
            name: _view(codes, np.int32)[first_rows] for name, (codes, _) in self._labels.items()
        }
        label_names = {name: interned.names for name, (_, interned) in self._labels.items()}
        answers = None
        if self.extractor is not None:
            answers = np.full(len(order), _NO_ANSWER, dtype=np.int32)
            if self._answer_prompts:
                table = (
                    _view(self._answer_prompts, np.int32),
                    _view(self._answer_indices, np.int64),
                )
                found = _lookup(table, (prompts[order], indices[order]), last=True)
                codes = _view(self._answer_codes, np.int32)
                answers[found >= 0] = codes[found[found >= 0]]
        return ScoredSamples(clusters, answers, self._answers.names, labels, label_names)


def _isin_sorted(values: _Ints, sorted_table: _Ints) -> npt.NDArray[np.bool_]:
    if not len(sorted_table):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_table, values), len(sorted_table) - 1)
    return sorted_table[at] == values


def _lookup(table: tuple[_Ints, _Ints], queries: tuple[_Ints, _Ints], *, last: bool) -> _Ints:
    """For each (prompt, sample index) query, the row of ``table`` with that key (the first in
    table order, or the last with ``last``), or -1. Both are (prompts, sample indices)."""
    (table_prompts, table_indices), (query_prompts, query_indices) = table, queries
    if not len(table_prompts) or not len(query_prompts):
        return np.full(len(query_prompts), -1, dtype=np.int64)
    low = min(int(table_indices.min()), int(query_indices.min()))
    high = max(int(table_indices.max()), int(query_indices.max()))
    if low >= 0 and high < 2**31:  # (prompt, index) packs into one int64 as it is
        width = high + 1
        keys = table_prompts.astype(np.int64) * width + table_indices
        wanted = query_prompts.astype(np.int64) * width + query_indices
    else:  # sample indices numbered densely first
        _, dense = np.unique(np.concatenate((table_indices, query_indices)), return_inverse=True)
        width = int(dense.max()) + 1
        keys = table_prompts.astype(np.int64) * width + dense[: len(table_indices)]
        wanted = query_prompts.astype(np.int64) * width + dense[len(table_indices) :]
        del dense
    order = np.argsort(keys, kind="stable")  # equal keys stay in table order
    ordered = keys[order]
    del keys
    at = np.searchsorted(ordered, wanted, side="right" if last else "left") - (1 if last else 0)
    at = np.clip(at, 0, len(ordered) - 1)
    return np.where(ordered[at] == wanted, order[at], -1)
