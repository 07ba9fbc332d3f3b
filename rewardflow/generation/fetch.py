"""The request phase of a generation job: obtain the responses its cache look-up lacks.

Imported only by a job with something to request (:func:`rewardflow.generation.job.generate_shard`),
so that a job whose samples are all cached loads none of it: asyncio, the HTTP client and its
retries, the rate limits, the launcher (``tests/unit/test_import_costs.py``). Steps 2 and 3 of
the job's order of work (see :mod:`rewardflow.generation.job`) happen here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from rewardflow.config.generation import (
    BudgetSettings,
    GenerationJobSettings,
    GenerationStageSettings,
    LaunchSettings,
    ModelSettings,
    ResponseIdentity,
)
from rewardflow.errors import ModelAuthError, ModelClientError, ModelServerError
from rewardflow.generation.budget import SpendGuard, spent_by_writer
from rewardflow.generation.cache import (
    CacheWriter,
    Claim,
    JournalTail,
    ResponseCache,
)
from rewardflow.generation.client import (
    ChatClient,
    ChatRequest,
    ClientSettings,
    ResilientClient,
)
from rewardflow.generation.endpoint import (
    WatchedServerClient,
    client_class,
    model_endpoint,
    read_api_key,
    request_seed,
)
from rewardflow.generation.identity import endpoint_identity
from rewardflow.generation.launch import LaunchedServer
from rewardflow.generation.limits import (
    PaceSettings,
    estimate_prompt_tokens,
    learned_from,
    make_request_limiter,
)
from rewardflow.generation.rate_memory import RateMemory
from rewardflow.generation.work import Fetched, Requested, WorkItem, distinct_requests
from rewardflow.progress import Progress
from rewardflow.records import GenerationError

logger = logging.getLogger(__name__)


#: Where, under the cache root, jobs find the model servers they share (see shared_server).
SERVERS_DIR = ".servers"


#: How often a job looks whether a response another process is requesting has landed.
CLAIM_POLL_S = 0.25


#: How often a job that waits on other processes' claims says so in its log.
WAITING_LOG_S = 30.0


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


def fetch_missing(
    missing: Sequence[WorkItem],
    settings: GenerationStageSettings,
    identity: ResponseIdentity,
    cache: ResponseCache,
    tail: JournalTail,
    writer_name: str,
    label: str,
    server_log: str | Path | None = None,
) -> Fetched:
    """Request the ``missing`` samples (steps 2 and 3 of the job): read the API key, open the
    endpoint (starting or sharing its server), send under the job's limits, and save what the
    adaptive pace learned for the next job."""
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
    stats = client.stats
    return Fetched(requested, stats.attempts, stats.retries, stats.rate_limited, seconds, settled)


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


class GroupSync:
    """:meth:`CacheWriter.sync` for many concurrent requests: one ``fdatasync`` covers many.

    Each caller appends, then awaits :meth:`synced`, which returns once a sync that *started
    after* its append has finished, the guarantee :meth:`CacheWriter.sync` gives before a
    claim is released. Syncs run one at a time in a thread; whoever gets the turn syncs
    everything appended so far, so the requests that finished meanwhile are released by that
    one sync instead of queueing a sync each (which also held up the appends behind them).
    """

    def __init__(self, writer: CacheWriter) -> None:
        self._writer = writer
        self._lock = asyncio.Lock()
        #: Appends announced so far, and how many of them a finished sync covers.
        self._appended = 0
        self._synced = 0

    async def synced(self) -> None:
        """Return once this caller's append (made just before the call) is synced."""
        # Counted before the first await, so the count names exactly the appends made so far.
        self._appended += 1
        mine = self._appended
        async with self._lock:
            if self._synced >= mine:
                return  # a sync that started after our append has finished
            covers = self._appended
            await asyncio.to_thread(self._writer.sync)
            self._synced = max(self._synced, covers)
