"""The spend guard: a run never spends more than its budget of tokens or dollars.

Before each request, a generation job checks that what the run has spent on its shard, plus
what its requests in flight may still cost, plus this request's worst case (estimated prompt
tokens + ``max_tokens``), fits the shard's share of the budget (``budget / shards``, so the
shares add up to the budget whatever runs at once). When it would not, the job stops sending:
the samples it did not send are recorded as ``not_attempted`` (not failed), and the run ends
with a message saying what was spent and what the rest would need.

What a run has spent is read back from its own cache journals (every response a shard's job
received is there, with its usage), so the count survives crashes and reruns: a run killed
half way and restarted does not get its budget back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardflow.config.generation import Price
from rewardflow.errors import RewardflowError
from rewardflow.jsonl import read_jsonl_tolerant

__all__ = [
    "BudgetExhausted",
    "Price",
    "Spend",
    "SpendGuard",
    "check_run_complete",
    "spent_by_writer",
]


@dataclass
class Spend:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Mapping[str, int] | None) -> None:
        self.prompt_tokens += int((usage or {}).get("prompt_tokens", 0))
        self.completion_tokens += int((usage or {}).get("completion_tokens", 0))


def spent_by_writer(cache_root: str | Path, writer_name: str) -> Spend:
    """Tokens of every response this writer (one run's shard) has received, in any partition."""
    spend = Spend()
    pattern = re.compile(re.escape(writer_name) + r"(-\d+)?\.jsonl")
    for journal in Path(cache_root).glob("*/*.jsonl"):
        if pattern.fullmatch(journal.name):
            for entry in read_jsonl_tolerant(journal):
                spend.add(entry.get("usage"))
    return spend


class SpendGuard:
    """Admits a request only if its worst case fits what is left of the shard's budget."""

    def __init__(
        self,
        max_tokens: float | None,
        max_cost_usd: float | None,
        price: Price | None,
        already_spent: Spend,
    ) -> None:
        self.max_tokens = max_tokens
        self.max_cost_usd = max_cost_usd
        self.price = price
        self.spent = already_spent
        self._reserved_prompt = 0
        self._reserved_completion = 0

    def _fits(self, prompt_tokens: int, completion_tokens: int) -> bool:
        prompt = self.spent.prompt_tokens + self._reserved_prompt + prompt_tokens
        completion = self.spent.completion_tokens + self._reserved_completion + completion_tokens
        if self.max_tokens is not None and prompt + completion > self.max_tokens:
            return False
        return not (
            self.max_cost_usd is not None
            and self.price is not None
            and self.price.cost(prompt, completion) > self.max_cost_usd
        )

    def try_reserve(self, prompt_tokens: int, completion_tokens: int) -> bool:
        """Reserve a request's worst case; False (reserving nothing) if it would not fit."""
        if not self._fits(prompt_tokens, completion_tokens):
            return False
        self._reserved_prompt += prompt_tokens
        self._reserved_completion += completion_tokens
        return True

    def settle(
        self, prompt_tokens: int, completion_tokens: int, usage: Mapping[str, int] | None
    ) -> None:
        """Replace a reservation by what the request actually used (nothing if it failed)."""
        self._reserved_prompt -= prompt_tokens
        self._reserved_completion -= completion_tokens
        self.spent.add(usage)

    def spent_cost_usd(self) -> float | None:
        if self.price is None:
            return None
        return self.price.cost(self.spent.prompt_tokens, self.spent.completion_tokens)


class BudgetExhausted(RewardflowError):
    """The run stopped sending because its budget was reached; raising it resumes the run."""


def check_run_complete(summary: Mapping[str, Any]) -> str:
    """A one-line verdict on a finished run; raises BudgetExhausted if samples went unsent."""
    generation = summary.get("generation") or {}
    unsent = summary["counts"].get("not_attempted", 0)
    if unsent:
        notes = "\n  ".join(generation.get("budget_notes") or [])
        raise BudgetExhausted(
            f"{summary['run_name']}: {unsent} samples were not sent because the budget was "
            f"reached; results so far are in the summary.\n  {notes}"
        )
    return f"{summary['run_name']}: complete, {summary['counts']['samples']} samples"
