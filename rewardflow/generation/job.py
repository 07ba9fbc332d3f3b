"""The generation stage: answer every (prompt, sample) of one shard, paying only for misses.

Order of work, and why:

1. Compute each sample's cache key and look it up, before touching the network, so a rerun
   after success, failure, Ctrl-C or ``kill -9`` requests only what is missing. At temperature
   0 every sample of a prompt gets sample 0's key (greedy decoding repeats itself), unless
   ``generation.independent_samples`` asks for separate requests.
2. Only if something is missing: read the API key (a missing one stops the job before any
   request) and open the endpoint.
3. Send one request per missing *key* with bounded concurrency (rows with identical keys share
   it), each under a claim on its key (:meth:`ResponseCache.try_claim`): a key another job or
   run is requesting right now is not sent again; this job waits for its response to land in
   the cache, and takes the request over if that process dies. Each success is appended to the
   cache journal the moment it arrives. A sample whose retries are exhausted becomes a failure
   record (never an empty answer). An authentication error stops the whole job at once: every
   further request would fail the same way.
4. Publish the shard file atomically, in prompt order, unless more than
   ``generation.max_failed_fraction`` of its samples failed: then the job fails without
   publishing, and a rerun retries just the failed samples.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rewardflow.config.generation import GenerationStageSettings, ResponseIdentity
from rewardflow.errors import RewardflowError
from rewardflow.generation.budget import Price, Spend, spent_by_writer
from rewardflow.generation.cache import CachedResponse, ResponseCache
from rewardflow.generation.identity import endpoint_identity
from rewardflow.generation.work import (
    Fetched,
    WorkItem,
    distinct_requests,
    plan_work,
    read_prompts,
    shares_greedy_samples,
)
from rewardflow.jsonl import write_json_atomic, write_jsonl_atomic
from rewardflow.records import GenerationError, ResponseRecord

logger = logging.getLogger(__name__)


class GenerationIncomplete(RewardflowError):
    """More samples failed than ``generation.max_failed_fraction`` allows."""


@dataclass(frozen=True)
class GenerationReport:
    """What one generation job did; published beside the shard as ``shard-NNN.stats.json``."""

    samples: int
    cached: int
    requested: int
    failed: int
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    request_seconds: float = 0.0
    adaptive_rate_rpm: float | None = None
    not_attempted: int = 0
    spent_prompt_tokens: int = 0
    spent_completion_tokens: int = 0
    budget_note: str | None = None
    #: Requests saved: samples answered by an identical request of this job or another one.
    coalesced: int = 0
    #: Of those, samples whose response another job or run requested while this one waited.
    coalesced_other_jobs: int = 0
    #: Samples beyond the first at temperature 0, given sample 0's (greedy) response.
    greedy_shared: int = 0

    def line(self) -> str:
        return (
            f"{self.samples} samples: {self.cached} from cache, {self.requested} requested "
            f"({self.attempts} HTTP attempts, {self.retries} retries, {self.rate_limited} "
            f"rate-limited) in {self.request_seconds:.1f}s, {self.coalesced} requests saved by "
            f"coalescing, {self.failed} failed"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def assemble_records(
    items: Sequence[WorkItem],
    responses: Mapping[str, CachedResponse],
    failures: Mapping[str, GenerationError],
) -> list[ResponseRecord]:
    records: list[ResponseRecord] = []
    for item in items:
        common = {
            "id": item.prompt.id,
            "sample_index": item.sample_index,
            "messages": item.prompt.messages,
            "ground_truth": item.prompt.ground_truth,
            "cache_key": item.key,
            "metadata": item.prompt.metadata,
            "choices": item.prompt.choices,
        }
        if item.key in responses:
            cached = responses[item.key]
            records.append(
                ResponseRecord(
                    status="ok",
                    response=cached.response,
                    finish_reason=cached.finish_reason,
                    usage=cached.usage,
                    model=cached.model,
                    **common,
                )
            )
        elif item.key in failures:
            records.append(
                ResponseRecord(status="failed", response=None, error=failures[item.key], **common)
            )
        else:
            not_sent = GenerationError("BudgetExhausted", "not sent: the run's budget was reached")
            records.append(
                ResponseRecord(status="not_attempted", response=None, error=not_sent, **common)
            )
    return records


def _budget_note(
    label: str,
    records: Sequence[ResponseRecord],
    spent: Spend,
    max_tokens: int,
    price: Price | None,
) -> str:
    """What was spent and roughly what the unsent samples would need, for the user."""
    unsent = sum(1 for record in records if record.status == "not_attempted")
    answered = [record for record in records if record.usage]
    per_sample = (
        sum(record.usage.get("total_tokens", 0) for record in answered) / len(answered)
        if answered
        else float(max_tokens)
    )
    cost = f" (${price.cost(spent.prompt_tokens, spent.completion_tokens):.4f})" if price else ""
    return (
        f"{label}: budget reached after {spent.tokens} tokens{cost} on this shard; "
        f"{unsent} samples not sent, needing about {round(unsent * per_sample)} more tokens. "
        "Raise budget.max_tokens / budget.max_cost_usd and rerun: only they will be requested."
    )


def generate_shard(
    prompts_path: str | Path,
    output_path: str | Path,
    settings: GenerationStageSettings,
    writer_name: str,
    stats_path: str | Path | None = None,
    server_log: str | Path | None = None,
) -> GenerationReport:
    """Generate one shard's responses and publish ``output_path``; see the module docstring.

    ``server_log`` receives the output of a model server the job launches (``model.launch``).
    """
    label = Path(prompts_path).stem
    generation = settings.generation
    identity = ResponseIdentity.of(
        generation, settings.model.name, endpoint_identity(settings.model)
    )
    independent = generation.independent_samples
    items = plan_work(
        read_prompts(prompts_path), identity, generation.samples, independent, settings.prompt
    )
    cache = ResponseCache(settings.cache.root, identity)
    tail = cache.tail(item.key for item in items)
    responses = dict(tail.read_new())
    missing = [item for item in items if item.key not in responses]
    logger.info(
        "%s: %d samples, %d in cache (%s), %d to request",
        label, len(items), len(items) - len(missing), cache.partition,
        len(distinct_requests(missing)),
    )  # fmt: skip
    fetched = Fetched()
    if missing:
        # Imported only now: a job whose samples are all cached loads no part of the request
        # phase (asyncio, the HTTP client, the limits, the launcher).
        from rewardflow.generation.fetch import fetch_missing

        fetched = fetch_missing(
            missing, settings, identity, cache, tail, writer_name, label, server_log
        )
    requested = fetched.requested
    responses.update(requested.responses)
    failures = requested.failures
    records = assemble_records(items, responses, failures)
    not_attempted = sum(1 for record in records if record.status == "not_attempted")
    failed = sum(1 for record in records if record.status == "failed")
    spent = spent_by_writer(cache.root, writer_name)
    budget_note = (
        _budget_note(label, records, spent, generation.max_tokens, settings.budget.price)
        if not_attempted
        else None
    )
    if budget_note:
        logger.warning(budget_note)
    report = GenerationReport(
        samples=len(items),
        cached=len(items) - len(missing),
        requested=requested.sent,
        failed=failed,
        attempts=fetched.attempts,
        retries=fetched.retries,
        rate_limited=fetched.rate_limited,
        request_seconds=round(fetched.seconds, 3),
        adaptive_rate_rpm=fetched.adaptive_rate_rpm,
        not_attempted=not_attempted,
        spent_prompt_tokens=spent.prompt_tokens,
        spent_completion_tokens=spent.completion_tokens,
        budget_note=budget_note,
        coalesced=len(missing) - requested.sent - not_attempted,
        coalesced_other_jobs=sum(1 for i in missing if i.key in requested.from_other_jobs),
        greedy_shared=sum(1 for item in items if item.sample_index > 0)
        if shares_greedy_samples(identity, independent)
        else 0,
    )
    allowed = generation.max_failed_fraction
    if failed and failed > allowed * len(items):
        raise GenerationIncomplete(
            f"{label}: {failed} of {len(items)} samples failed (allowed: "
            f"generation.max_failed_fraction={allowed}); first error: "
            f"{next(iter(failures.values())).message}. Finished responses are cached: rerun to "
            "retry only the failed samples, or raise generation.max_failed_fraction to accept them."
        )
    if stats_path is not None:
        write_json_atomic(stats_path, report.to_dict())
    write_jsonl_atomic(output_path, (record.to_dict() for record in records))
    return report


def import_responses(prompts_path: str | Path, output_path: str | Path, model: str) -> int:
    """Score-only mode: turn responses already in the data into response records."""
    records = []
    for prompt in read_prompts(prompts_path):
        for index, text in enumerate(prompt.responses or []):
            records.append(
                ResponseRecord(
                    id=prompt.id,
                    sample_index=index,
                    status="ok",
                    messages=prompt.messages,
                    ground_truth=prompt.ground_truth,
                    response=text,
                    model=model,
                    metadata=prompt.metadata,
                )
            )
    return write_jsonl_atomic(output_path, (record.to_dict() for record in records))
