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

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewardflow.config.generation import (
    BudgetSettings,
    GenerationJobSettings,
    GenerationStageSettings,
    LaunchSettings,
    ModelSettings,
    ResponseIdentity,
)
from rewardflow.config.prompts import PromptSettings
from rewardflow.errors import ModelAuthError, ModelClientError, ModelServerError, RewardflowError
from rewardflow.generation.budget import Price, Spend, SpendGuard, spent_by_writer
from rewardflow.generation.cache import (
    CachedResponse,
    CacheWriter,
    Claim,
    GroupSync,
    JournalTail,
    ResponseCache,
    fingerprint_key,
)
from rewardflow.generation.client import (
    ChatClient,
    ChatRequest,
    ClientSettings,
    ClientStats,
    ResilientClient,
)
from rewardflow.generation.endpoint import (
    WatchedServerClient,
    client_class,
    endpoint_identity,
    model_endpoint,
    read_api_key,
    request_seed,
)
from rewardflow.generation.launch import LaunchedServer
from rewardflow.generation.limits import (
    PaceSettings,
    estimate_prompt_tokens,
    learned_from,
    make_request_limiter,
)
from rewardflow.generation.rate_memory import RateMemory
from rewardflow.jsonl import read_jsonl, write_json_atomic, write_jsonl_atomic
from rewardflow.progress import Progress
from rewardflow.prompts import choices
from rewardflow.records import GenerationError, PromptRecord, ResponseRecord

logger = logging.getLogger(__name__)


class GenerationIncomplete(RewardflowError):
    """More samples failed than ``generation.max_failed_fraction`` allows."""


#: Where, under the cache root, jobs find the model servers they share (see shared_server).
SERVERS_DIR = ".servers"
#: How often a job looks whether a response another process is requesting has landed.
CLAIM_POLL_S = 0.25
#: How often a job that waits on other processes' claims says so in its log.
WAITING_LOG_S = 30.0


@dataclass(frozen=True)
class WorkItem:
    """One sample to obtain: a prompt, which sample of it, and its cache key.

    Samples with equal keys are interchangeable; the first one in plan order stands for them
    when the request is built, and for a shared greedy key that is sample 0.
    """

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


def build_request(item: WorkItem, settings: ResponseIdentity) -> ChatRequest:
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


class _FreshLook:
    """One journal read for all the claims taken in one turn of the event loop.

    A key claimed just now may have landed while it was unclaimed, so each claim is followed
    by a look at the journals that starts after it was taken. With many requests finishing at
    once, the workers that took their claims meanwhile share the next look instead of
    listing and stat-ing every journal of the partition once each.
    """

    def __init__(self, tail: JournalTail) -> None:
        self._tail = tail
        self._next: asyncio.Future[None] | None = None

    async def after_claim(self) -> None:
        """Return once a read of the journals that started after this call has finished."""
        if self._next is None:
            loop = asyncio.get_running_loop()
            self._next = loop.create_future()
            loop.call_soon(self._read, self._next)
        await asyncio.shield(self._next)

    def _read(self, done: asyncio.Future[None]) -> None:
        self._next = None  # later claims wait for a later read
        try:
            self._tail.read_new()
        except Exception as error:  # each waiter raises it, as its own read_new would have
            done.set_exception(error)
        else:
            done.set_result(None)


@dataclass
class Requested:
    """What :func:`request_missing` obtained, by cache key."""

    responses: dict[str, CachedResponse] = field(default_factory=dict)
    failures: dict[str, GenerationError] = field(default_factory=dict)
    #: Keys whose response another process requested while this job waited for it.
    from_other_jobs: set[str] = field(default_factory=set)
    sent: int = 0


async def request_missing(
    items: Sequence[WorkItem],
    client: ChatClient,
    settings: ResponseIdentity,
    cache: ResponseCache,
    tail: JournalTail,
    writer: CacheWriter,
    concurrency: int,
    progress: Progress,
    guard: SpendGuard | None = None,
) -> Requested:
    """Obtain a response for each distinct key of ``items``, at most ``concurrency`` at a time.

    A key is requested only under its claim, and only if ``tail`` (this partition's journals)
    does not hold it by then; a key claimed by another live process waits, without taking a
    worker, until its response lands or its claim comes free. Keys left unsent because the spend
    guard refused them are in no field of the result. Raises ModelAuthError as soon as any
    request is refused for its credentials, and ModelServerError as soon as a request finds the
    server this job launched dead.
    """
    result = Requested()
    todo = distinct_requests(items)
    unresolved = len(todo)
    # Claimed keys (priority 0) go before fresh ones (1), so a claim is not held idle while
    # other processes wait for it; the stop markers (-1) go before both.
    queue: asyncio.PriorityQueue[tuple[int, int, WorkItem | None, Claim | None]]
    queue = asyncio.PriorityQueue()
    order = itertools.count()
    for item in todo:
        queue.put_nowait((1, next(order), item, None))
    waiting: dict[str, WorkItem] = {}
    synced = GroupSync(writer)
    look = _FreshLook(tail)
    # Errors after which no request can succeed: the key was refused, the server is gone.
    fatal: list[ModelAuthError | ModelServerError] = []
    stop = asyncio.Event()

    def finish() -> None:
        if not stop.is_set():
            stop.set()
            for _ in range(concurrency):
                queue.put_nowait((-1, next(order), None, None))

    def resolved(failed: bool = False, retries: int = 0) -> None:
        nonlocal unresolved
        unresolved -= 1
        progress.advance(failed=failed, retries=retries)
        if unresolved == 0:
            finish()

    def landed(item: WorkItem) -> bool:
        """Take the key's response if ``tail`` has seen some process put it in the cache."""
        if item.key not in tail.found:
            return False
        result.responses[item.key] = tail.found[item.key]
        result.from_other_jobs.add(item.key)
        resolved()
        return True

    async def send(item: WorkItem) -> bool:
        """Send one claimed request; False when the budget refused it."""
        request = build_request(item, settings)
        worst_prompt = estimate_prompt_tokens(request.messages)
        worst_completion = settings.max_tokens
        if guard is not None and not guard.try_reserve(worst_prompt, worst_completion):
            return False
        usage = None
        result.sent += 1
        try:
            answer = await client.complete(request)
            usage = answer.usage
        except ModelAuthError:
            raise
        except ModelClientError as error:
            attempts = getattr(error, "attempts", 1)
            result.failures[item.key] = GenerationError(type(error).__name__, str(error), attempts)
            resolved(failed=True, retries=attempts - 1)
            logger.warning("%s sample %d failed: %s", item.prompt.id, item.sample_index, error)
            return True
        finally:
            if guard is not None:
                guard.settle(worst_prompt, worst_completion, usage)
        result.responses[item.key] = writer.append(
            key=item.key,
            sample_index=item.sample_index,
            response=answer.content,
            finish_reason=answer.finish_reason,
            usage=answer.usage,
            model=answer.model,
            latency_s=answer.latency_s,
        )
        # Written back before the claim goes, so that a waiter on another node sees it.
        await synced.synced()
        resolved(retries=answer.attempts - 1)
        return True

    async def worker() -> None:
        while True:
            _, _, item, claim = await queue.get()
            if item is None or stop.is_set():
                if claim is not None:
                    claim.release()
                return
            claim = claim or cache.try_claim(item.key)
            if claim is None:
                waiting[item.key] = item  # another process is requesting it
                continue
            try:
                await look.after_claim()  # it may have landed since we last looked
                if landed(item):
                    continue
                if not await send(item):
                    finish()  # the budget is reached: send nothing more
            except (ModelAuthError, ModelServerError) as error:
                fatal.append(error)
                finish()
            finally:
                claim.release()

    async def watch_claims() -> None:
        """Take a waited-for key once it lands, or hand it to a worker once its claim is free."""
        last_log = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CLAIM_POLL_S)
            if not waiting or stop.is_set():
                continue
            tail.read_new()
            for key, item in list(waiting.items()):
                if landed(item):
                    del waiting[key]
                elif (claim := cache.try_claim(key)) is not None:
                    del waiting[key]
                    queue.put_nowait((0, next(order), item, claim))
            if waiting and time.monotonic() - last_log >= WAITING_LOG_S:
                last_log = time.monotonic()
                logger.info(
                    "%s: waiting for %d responses that another job is requesting (claims in %s)",
                    progress.label, len(waiting), cache.partition,
                )  # fmt: skip

    if todo:
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(concurrency, len(todo))):
                    group.create_task(worker())
                group.create_task(watch_claims())
        finally:
            while not queue.empty():
                _, _, _, claim = queue.get_nowait()
                if claim is not None:
                    claim.release()
    tail.read_new()
    for item in waiting.values():
        landed(item)  # the budget stopped this job: still take what others have obtained
    if fatal:
        raise fatal[0]
    return result


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


def launched_without_limits(launch: LaunchSettings | None) -> bool:
    """A server this job launched batches its own load: no client-side rate limits."""
    return launch is not None and not launch.rate_limits


def job_concurrency(generation: GenerationJobSettings, model: ModelSettings) -> int:
    """Requests in flight: ``model.launch.concurrency`` for a launched server."""
    return model.launch.concurrency if model.launch else generation.concurrency


def pace_settings(settings: GenerationStageSettings) -> PaceSettings:
    """What decides this job's request pace (see rewardflow.generation.limits)."""
    rate, generation, model = settings.rate, settings.generation, settings.model
    return PaceSettings(
        requests_per_minute=rate.requests_per_minute,
        tokens_per_minute=rate.tokens_per_minute,
        adaptive=rate.adaptive_rate,
        parallel_jobs=rate.jobs_sharing_limits,
        concurrency=job_concurrency(generation, model),
        largest_request_tokens=generation.max_tokens * 2,
        unlimited=launched_without_limits(model.launch),
    )


def rate_memory(settings: GenerationStageSettings) -> RateMemory:
    """What jobs learn about this endpoint's rate, and who shares it, next to the cache."""
    model = settings.model
    return RateMemory(settings.cache.root, endpoint_identity(model), model.name)


def make_client(
    settings: GenerationStageSettings,
    base_url: str | None,
    api_key: str | None,
    server: LaunchedServer | None = None,
    memory: RateMemory | None = None,
) -> ResilientClient:
    """The configured provider's client, inside the job's limits and retries."""
    generation, model = settings.generation, settings.model
    client_settings = ClientSettings(
        base_url=base_url,
        api_key=api_key,
        api_key_env=model.api_key_env,
        timeout_s=generation.timeout_s,
        connection_limit=job_concurrency(generation, model),
        options=dict(model.options),
    )
    client = client_class(model.provider)(client_settings)
    return ResilientClient(
        client if server is None else WatchedServerClient(client, server),
        max_attempts=generation.max_attempts,
        max_request_time_s=generation.max_request_time_s,
        limiter=make_request_limiter(pace_settings(settings), memory),
    )


@dataclass(frozen=True)
class _Fetched:
    requested: Requested
    stats: ClientStats
    seconds: float
    adaptive_rate_rpm: float | None = None


def _fetch_missing(
    missing: Sequence[WorkItem],
    settings: GenerationStageSettings,
    identity: ResponseIdentity,
    cache: ResponseCache,
    tail: JournalTail,
    writer_name: str,
    label: str,
    server_log: str | Path | None = None,
) -> _Fetched:
    model = settings.model
    api_key = read_api_key(model.api_key_env)
    guard = make_spend_guard(settings.budget, cache.root, writer_name)
    # The client is built (and a custom one imported) before a server takes minutes to load.
    client_class(model.provider)
    memory = rate_memory(settings)
    with (
        memory.joined(writer_name),
        cache.writer(writer_name) as writer,
        model_endpoint(model, server_log, cache.root / SERVERS_DIR) as endpoint,
    ):
        client = make_client(settings, endpoint.base_url, api_key, endpoint.server, memory)
        total = len(distinct_requests(missing))
        progress = Progress(label, total=total, client_stats=client.stats)
        concurrency = job_concurrency(settings.generation, model)

        async def fetch() -> Requested:
            try:
                return await request_missing(
                    missing, client, identity, cache, tail, writer, concurrency, progress, guard
                )
            finally:
                await client.aclose()

        started = time.monotonic()
        requested = asyncio.run(fetch())
        seconds = time.monotonic() - started
    progress.finish()
    adaptive = client.limiter.adaptive
    learned = adaptive and learned_from(adaptive, client.stats.attempts, concurrency)
    if learned:
        memory.save(learned)
    # A pace that never met a limit says nothing worth pinning: report only a found one.
    settled = round(adaptive.run_rate_per_minute, 1) if adaptive and adaptive.found_limit else None
    if settled is not None:
        logger.info(
            "%s: adaptive rate settled at %.0f requests/minute for the run; set "
            "generation.requests_per_minute to pin it",
            label, settled,
        )  # fmt: skip
    return _Fetched(requested, client.stats, seconds, settled)


def make_spend_guard(
    budget: BudgetSettings, cache_root: Path, writer_name: str
) -> SpendGuard | None:
    """This shard's guard over its share of ``budget``; None when no budget is set."""
    if not budget.limited:
        return None  # and the journals need not be read
    return SpendGuard(
        budget.shard_max_tokens,
        budget.shard_max_cost_usd,
        budget.price,
        spent_by_writer(cache_root, writer_name),
    )


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
    fetched = (
        _fetch_missing(missing, settings, identity, cache, tail, writer_name, label, server_log)
        if missing
        else _Fetched(Requested(), ClientStats(), 0.0)
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
        attempts=fetched.stats.attempts,
        retries=fetched.stats.retries,
        rate_limited=fetched.stats.rate_limited,
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
