"""The generation stage: answer every (prompt, sample) of one shard, paying only for misses.

Order of work, and why:

1. Compute each sample's cache key and look it up, before touching the network, so a rerun
   after success, failure, Ctrl-C or ``kill -9`` requests only what is missing.
2. Only if something is missing: read the API key (a missing one stops the job before any
   request) and open the endpoint.
3. Send the missing requests with bounded concurrency; each success is appended to the cache
   journal the moment it arrives. A sample whose retries are exhausted becomes a failure record
   (never an empty answer). An authentication error stops the whole job at once: every further
   request would fail the same way.
4. Publish the shard file atomically, in prompt order, unless more than
   ``generation.max_failed_fraction`` of its samples failed: then the job fails without
   publishing, and a rerun retries just the failed samples.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rewardflow.adaptive import AdaptiveRate
from rewardflow.budget import Spend, SpendGuard, price_of, spent_by_writer
from rewardflow.cache import (
    CachedResponse,
    CacheWriter,
    GenerationSettings,
    ResponseCache,
    cache_key,
)
from rewardflow.client import ChatClient, ChatRequest, ClientStats, OpenAIChatClient
from rewardflow.endpoint import endpoint_identity, model_base_url, read_api_key, request_seed
from rewardflow.errors import ModelAuthError, ModelClientError, RewardflowError
from rewardflow.jsonl import read_jsonl, write_json_atomic, write_jsonl_atomic
from rewardflow.limits import RateBudget, RequestLimiter, estimate_prompt_tokens
from rewardflow.progress import Progress
from rewardflow.records import GenerationError, PromptRecord, ResponseRecord

logger = logging.getLogger(__name__)


class GenerationIncomplete(RewardflowError):
    """More samples failed than ``generation.max_failed_fraction`` allows."""


@dataclass(frozen=True)
class WorkItem:
    """One sample to obtain: a prompt, which sample of it, and its cache key."""

    prompt: PromptRecord
    sample_index: int
    key: str


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

    def line(self) -> str:
        return (
            f"{self.samples} samples: {self.cached} from cache, {self.requested} requested "
            f"({self.attempts} HTTP attempts, {self.retries} retries, {self.rate_limited} "
            f"rate-limited) in {self.request_seconds:.1f}s, {self.failed} failed"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_prompts(path: str | Path) -> list[PromptRecord]:
    return [PromptRecord.from_dict(data) for _, data in read_jsonl(path)]


def plan_work(
    prompts: Sequence[PromptRecord], settings: GenerationSettings, samples: int
) -> list[WorkItem]:
    return [
        WorkItem(prompt, index, cache_key(settings, prompt.messages, index))
        for prompt in prompts
        for index in range(samples)
    ]


def build_request(item: WorkItem, settings: GenerationSettings) -> ChatRequest:
    return ChatRequest(
        model=settings.model,
        messages=item.prompt.messages,
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_tokens=settings.max_tokens,
        stop=settings.stop,
        seed=request_seed(settings, item.sample_index),
        extra_body=settings.extra_body,
    )


async def request_missing(
    items: Sequence[WorkItem],
    client: ChatClient,
    settings: GenerationSettings,
    writer: CacheWriter,
    concurrency: int,
    progress: Progress,
    guard: SpendGuard | None = None,
) -> tuple[dict[str, CachedResponse], dict[str, GenerationError]]:
    """Fetch ``items`` with at most ``concurrency`` requests in flight.

    Returns the new responses (already in the cache) and the failures, both by cache key.
    Items left unsent because the spend guard refused them are in neither. Raises
    ModelAuthError as soon as any request is refused for its credentials.
    """
    responses: dict[str, CachedResponse] = {}
    failures: dict[str, GenerationError] = {}
    queue: asyncio.Queue[WorkItem] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    auth_failure: list[ModelAuthError] = []
    budget_exhausted: list[bool] = []

    async def worker() -> None:
        while not auth_failure and not budget_exhausted:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            request = build_request(item, settings)
            worst_prompt = estimate_prompt_tokens(request.messages)
            worst_completion = settings.max_tokens
            if guard is not None and not guard.try_reserve(worst_prompt, worst_completion):
                budget_exhausted.append(True)
                return
            usage = None
            try:
                answer = await client.complete(request)
                usage = answer.usage
            except ModelAuthError as error:
                auth_failure.append(error)
                return
            except ModelClientError as error:
                attempts = getattr(error, "attempts", 1)
                failures[item.key] = GenerationError(type(error).__name__, str(error), attempts)
                progress.advance(failed=True, retries=attempts - 1)
                logger.warning("%s sample %d failed: %s", item.prompt.id, item.sample_index, error)
                continue
            finally:
                if guard is not None:
                    guard.settle(worst_prompt, worst_completion, usage)
            responses[item.key] = writer.append(
                key=item.key,
                sample_index=item.sample_index,
                response=answer.content,
                finish_reason=answer.finish_reason,
                usage=answer.usage,
                model=answer.model,
                latency_s=answer.latency_s,
            )
            progress.advance(retries=answer.attempts - 1)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(items))):
            group.create_task(worker())
    if auth_failure:
        raise auth_failure[0]
    return responses, failures


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


def cache_root(config: Mapping[str, Any]) -> Path:
    """The shared cache, or with ``cache.shared: false`` one private to this run."""
    if config["cache"]["shared"]:
        return Path(config["cache"]["dir"])
    return Path("results") / config["run_name"] / "cache"


def jobs_sharing_limits(config: Mapping[str, Any]) -> int:
    """How many generation jobs run at once, and so split the provider's limits."""
    return min(int(config["generation"]["parallel_jobs"]), int(config["shards"]))


def job_budget(config: Mapping[str, Any]) -> RateBudget:
    """This job's share of the run's rate limits (see rewardflow.limits)."""
    generation = config["generation"]
    run_budget = RateBudget(generation["requests_per_minute"], generation["tokens_per_minute"])
    return run_budget.share(jobs_sharing_limits(config))


def make_client(config: Mapping[str, Any], base_url: str, api_key: str | None) -> OpenAIChatClient:
    generation = config["generation"]
    largest_request = int(generation["max_tokens"]) * 2
    return OpenAIChatClient(
        base_url,
        api_key,
        api_key_env=config["model"].get("api_key_env"),
        timeout_s=float(generation["timeout_s"]),
        max_attempts=int(generation["max_attempts"]),
        max_request_time_s=float(generation["max_request_time_s"]),
        connection_limit=int(generation["concurrency"]),
        limiter=RequestLimiter(
            job_budget(config),
            largest_request,
            adaptive=AdaptiveRate(share=jobs_sharing_limits(config))
            if generation["adaptive_rate"]
            else None,
        ),
    )


@dataclass(frozen=True)
class _Fetched:
    responses: dict[str, CachedResponse]
    failures: dict[str, GenerationError]
    stats: ClientStats
    seconds: float
    adaptive_rate_rpm: float | None = None


def _fetch_missing(
    missing: Sequence[WorkItem],
    config: Mapping[str, Any],
    settings: GenerationSettings,
    cache: ResponseCache,
    writer_name: str,
    label: str,
) -> _Fetched:
    api_key = read_api_key(config)
    guard = make_spend_guard(config, writer_name)
    with cache.writer(writer_name) as writer, model_base_url(config) as base_url:
        client = make_client(config, base_url, api_key)
        progress = Progress(label, total=len(missing), client_stats=client.stats)
        concurrency = int(config["generation"]["concurrency"])

        async def fetch() -> tuple[dict[str, CachedResponse], dict[str, GenerationError]]:
            try:
                return await request_missing(
                    missing, client, settings, writer, concurrency, progress, guard
                )
            finally:
                await client.aclose()

        started = time.monotonic()
        responses, failures = asyncio.run(fetch())
        seconds = time.monotonic() - started
    progress.finish()
    adaptive = client.limiter.adaptive
    # A pace that never met a limit says nothing worth pinning: report only a found one.
    settled = round(adaptive.run_rate_per_minute, 1) if adaptive and adaptive.found_limit else None
    if settled is not None:
        logger.info(
            "%s: adaptive rate settled at %.0f requests/minute for the run; set "
            "generation.requests_per_minute to pin it",
            label, settled,
        )  # fmt: skip
    return _Fetched(responses, failures, client.stats, seconds, settled)


def make_spend_guard(config: Mapping[str, Any], writer_name: str) -> SpendGuard | None:
    """This shard's guard over its share of ``budget``; None when no budget is set."""
    budget = config["budget"]
    if budget["max_tokens"] is None and budget["max_cost_usd"] is None:
        return None
    shards = int(config["shards"])
    max_tokens, max_cost = budget["max_tokens"], budget["max_cost_usd"]
    return SpendGuard(
        None if max_tokens is None else max_tokens / shards,
        None if max_cost is None else max_cost / shards,
        price_of(config),
        spent_by_writer(cache_root(config), writer_name),
    )


def _budget_note(
    label: str, records: Sequence[ResponseRecord], spent: Spend, config: Mapping[str, Any]
) -> str:
    """What was spent and roughly what the unsent samples would need, for the user."""
    unsent = sum(1 for record in records if record.status == "not_attempted")
    answered = [record for record in records if record.usage]
    per_sample = (
        sum(record.usage.get("total_tokens", 0) for record in answered) / len(answered)
        if answered
        else float(config["generation"]["max_tokens"])
    )
    price = price_of(config)
    cost = f" (${price.cost(spent.prompt_tokens, spent.completion_tokens):.4f})" if price else ""
    return (
        f"{label}: budget reached after {spent.tokens} tokens{cost} on this shard; "
        f"{unsent} samples not sent, needing about {round(unsent * per_sample)} more tokens. "
        "Raise budget.max_tokens / budget.max_cost_usd and rerun: only they will be requested."
    )


def generate_shard(
    prompts_path: str | Path,
    output_path: str | Path,
    config: Mapping[str, Any],
    writer_name: str,
    stats_path: str | Path | None = None,
) -> GenerationReport:
    """Generate one shard's responses and publish ``output_path``; see the module docstring."""
    label = Path(prompts_path).stem
    settings = GenerationSettings.from_config(config, endpoint_identity(config))
    items = plan_work(read_prompts(prompts_path), settings, int(config["generation"]["samples"]))
    cache = ResponseCache(cache_root(config), settings)
    responses = cache.load(wanted={item.key for item in items})
    missing = [item for item in items if item.key not in responses]
    logger.info(
        "%s: %d samples, %d in cache (%s), %d to request",
        label, len(items), len(items) - len(missing), cache.partition, len(missing),
    )  # fmt: skip
    fetched = (
        _fetch_missing(missing, config, settings, cache, writer_name, label)
        if missing
        else _Fetched({}, {}, ClientStats(), 0.0)
    )
    responses.update(fetched.responses)
    failures = fetched.failures
    records = assemble_records(items, responses, failures)
    not_attempted = sum(1 for record in records if record.status == "not_attempted")
    spent = spent_by_writer(cache_root(config), writer_name)
    budget_note = _budget_note(label, records, spent, config) if not_attempted else None
    if budget_note:
        logger.warning(budget_note)
    report = GenerationReport(
        samples=len(items),
        cached=len(items) - len(missing),
        requested=len(missing) - not_attempted,
        failed=len(failures),
        attempts=fetched.stats.attempts,
        retries=fetched.stats.retries,
        rate_limited=fetched.stats.rate_limited,
        request_seconds=round(fetched.seconds, 3),
        adaptive_rate_rpm=fetched.adaptive_rate_rpm,
        not_attempted=not_attempted,
        spent_prompt_tokens=spent.prompt_tokens,
        spent_completion_tokens=spent.completion_tokens,
        budget_note=budget_note,
    )
    allowed = float(config["generation"]["max_failed_fraction"])
    if failures and len(failures) > allowed * len(items):
        raise GenerationIncomplete(
            f"{label}: {len(failures)} of {len(items)} samples failed (allowed: "
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
