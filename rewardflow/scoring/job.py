"""The scoring stage: run every configured reward on every response of one shard.

A reward is user code, so the stage assumes it can fail in every way: an exception (or an
unusable return value) is recorded as that reward's error for that sample; a reward that hangs
is stopped after ``timeout_s``; one that crashes its process (a segfault, ``os._exit``, the
OOM killer) costs only that sample's result for that reward. To make the last two possible,
rewards run in worker processes (``pebble``'s process pool, which kills a timed-out worker and
replaces a dead one), never in the job's own process. The workers also use all of the job's
cores, and each runs rewards in its main thread, where math-verify's alarm-based timeout works.

A task of the pool costs about 0.2 ms of CPU between the job and the worker (pickling, pipes,
a future), more than a cheap reward such as the math one, so samples go to the workers in
chunks: one task runs every reward on several samples, as many as take about
:data:`CHUNK_TARGET_S` by the time measured so far (:class:`ChunkSizer`; the first samples of a
shard, and every sample of rewards too slow to share a task, go one task per (sample, reward)).
A chunk has the timeout of one reward, ``timeout_s``. A chunk that times out or whose worker
dies says only that one of its pairs did, so its samples are scored again one task per
(sample, reward): the timeout or the crash lands on exactly the pair that caused it, with the
same error as without chunks, and the chunk-mates score normally. The price is time, never a
result: a hanging reward costs up to about twice ``timeout_s`` (its chunk's, then its own), a
crashing one two more worker starts (a pair is blamed for a worker's death only once it has
killed two, see :class:`_ShardTasks`), and their chunk-mates are scored twice. Rewards are
assumed not to depend on being scored once (a reward with side effects, such as the LLM judge,
keeps them idempotent; the judge caches its verdicts). In a chunk, each reward still gets its
own copy of the record, as it would in a task of its own.

A reward that raises ``SystemExit`` (``sys.exit``), ``KeyboardInterrupt`` or
``asyncio.CancelledError`` gets that as its error too: pebble's workers ignore SIGINT, so in a
worker those can only come from the reward itself. A real Ctrl-C reaches the job's process,
which stops the pool at once (rather than waiting for every scheduled reward) and exits.

Each worker is set up by :func:`_init_worker` before it runs any reward:

* a memory limit (``scoring.memory_limit_mb``, the soft ``RLIMIT_AS``), so one runaway sample
  gets a ``MemoryError`` -- recorded as its error, naming the limit -- instead of taking the
  machine's memory until its timeout; the other samples score normally;
* no secrets in its environment: API keys are for the generation client, not for reward code
  or whatever it starts. Withheld are ``model.api_key_env`` and every variable whose name
  looks like a secret (:func:`withheld_env_names`). A reward that needs a key names it in
  ``params.api_key_env`` (as ``llm_judge`` does); that variable, and only when such a reward
  is configured, stays. Keeping it in the environment, rather than handing it over in memory,
  keeps every reward's plain ``os.environ`` lookup working; model-written code never sees it
  anyway, since the code reward starts its programs with an environment of its own. (With
  fork-started workers ``/proc/<pid>/environ`` still shows the inherited block, so the job
  and its workers are made non-dumpable: another process of the same user can read neither
  their ``environ`` nor their memory. The price: no core dumps, and py-spy or gdb cannot
  attach to a scoring job.)

Samples whose generation failed are carried through as ``generation_failed`` with no score,
never as a zero.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import re
import resource
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, TimeoutError, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pebble import ProcessExpired, ProcessPool

from rewardflow.config.scoring import ScoringSettings
from rewardflow.jsonl import read_jsonl, write_jsonl_atomic
from rewardflow.progress import Progress
from rewardflow.records import ResponseRecord, ScoreRecord
from rewardflow.rewards.code_isolation import make_non_dumpable
from rewardflow.rewards.loader import RewardSpec, load_rewards
from rewardflow.rewards.result import to_reward_result

logger = logging.getLogger(__name__)


# Names of environment variables that hold secrets: API_KEY/TOKEN/SECRET/PASSWORD/CREDENTIALS
# as a whole ``_``-separated word (so TOKENIZERS_PARALLELISM is not one), or ending in _KEY.
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)(?:_|$)|_KEY$", re.IGNORECASE
)

# Set in a worker by _init_worker, so a MemoryError can name the limit that caused it.
_WORKER_MEMORY_LIMIT_MB: int | None = None


def _describe(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"SystemExit: the reward called sys.exit({error.code!r})"
    if isinstance(error, MemoryError) and _WORKER_MEMORY_LIMIT_MB is not None:
        return (
            "MemoryError: the reward went over the scoring workers' memory limit "
            f"(scoring.memory_limit_mb: {_WORKER_MEMORY_LIMIT_MB})"
        )
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_reward(spec: RewardSpec, record: ResponseRecord) -> dict[str, Any]:
    """One reward on one response: its result as a dict, or ``{"error": ...}``."""
    conversation = [*record.messages, {"role": "assistant", "content": record.response or ""}]
    try:
        raw = spec.function(conversation, record.ground_truth, **spec.params)
        return to_reward_result(raw).to_dict()
    except KeyboardInterrupt as error:
        # Where SIGINT is ignored (a pool worker) this can only be the reward's own; elsewhere
        # it may be the user's Ctrl-C, which must stop the caller.
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            raise
        return {"error": _describe(error)}
    except BaseException as error:  # user code: any failure is data about this sample
        return {"error": _describe(error)}


def weighted_score(
    results: Mapping[str, dict[str, Any]], weights: Mapping[str, float]
) -> float | None:
    """Weighted mean of the weighted rewards; None without weights or if one has no score."""
    if not weights or any("score" not in results.get(name, {}) for name in weights):
        return None
    total = sum(weights.values())
    if total <= 0:
        return None
    return sum(results[name]["score"] * weight for name, weight in weights.items()) / total


def combine(
    record: ResponseRecord,
    results: Mapping[str, dict[str, Any]],
    primary: str,
    weights: Mapping[str, float] | None = None,
) -> ScoreRecord:
    """The score record of one sample from its rewards' results."""
    if record.status != "ok":
        return ScoreRecord(
            id=record.id,
            sample_index=record.sample_index,
            status="not_attempted" if record.status == "not_attempted" else "generation_failed",
            score=None,
            rewards={},
            error=record.error.message if record.error else "generation failed",
            metadata=record.metadata,
        )
    primary_result = results[primary]
    failed = "error" in primary_result
    return ScoreRecord(
        id=record.id,
        sample_index=record.sample_index,
        status="score_error" if failed else "scored",
        score=None if failed else primary_result["score"],
        rewards=dict(results),
        error=primary_result["error"] if failed else None,
        metadata=record.metadata,
        weighted_score=weighted_score(results, weights or {}),
    )


def _primary(rewards: Sequence[RewardSpec]) -> str:
    return next(spec.name for spec in rewards if spec.primary)


def _weights(rewards: Sequence[RewardSpec]) -> dict[str, float]:
    return {spec.name: float(spec.weight) for spec in rewards if spec.weight is not None}


def score_record(record: ResponseRecord, rewards: Sequence[RewardSpec]) -> ScoreRecord:
    """Score one sample in this process (for tests and tools; the stage uses workers)."""
    ok = record.status == "ok"
    results = {spec.name: run_reward(spec, record) for spec in rewards} if ok else {}
    return combine(record, results, _primary(rewards), _weights(rewards))


# --- worker side: each worker process is set up once, then loads the rewards once -----------

_WORKER_REWARDS: dict[str, RewardSpec] = {}


@dataclass(frozen=True)
class WorkerSetup:
    """What :func:`_init_worker` needs; one picklable value, so adding a field is one line."""

    reward_configs: Sequence[Mapping[str, Any]]
    memory_limit_mb: int | None
    withheld_env: tuple[str, ...] = ()


def withheld_env_names(
    names: Iterable[str],
    reward_configs: Sequence[Mapping[str, Any]],
    extra: Iterable[str] = (),
) -> list[str]:
    """The variables among ``names`` reward workers go without: secrets, and ``extra``.

    ``extra`` is for names whose shape says nothing (``model.api_key_env`` may be anything).
    A variable a configured reward names in ``params.api_key_env`` is kept: that reward
    needs it (the LLM judge calls its model with it).
    """
    needed = {
        str(entry["params"]["api_key_env"])
        for entry in reward_configs
        if isinstance(entry.get("params"), Mapping) and entry["params"].get("api_key_env")
    }
    present = set(names)
    wanted = (set(extra) & present) | {name for name in present if _SECRET_NAME.search(name)}
    return sorted(wanted - needed)


def _limit_memory(limit_mb: int | None) -> None:
    """Cap this process's address space (soft limit, so the code sandbox may set its own)."""
    if limit_mb is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = limit_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _init_worker(setup: WorkerSetup) -> None:
    """Set up one reward worker process; runs before it takes any task.

    The rewards are loaded before the memory limit applies, so importing a big library is never
    what fails (a failing initializer would make pebble start the worker again and again).
    """
    global _WORKER_MEMORY_LIMIT_MB
    # pebble's workers already ignore SIGINT; run_reward relies on it, so say it here too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    make_non_dumpable()  # inherited at fork already; said again for spawned workers
    for name in setup.withheld_env:
        os.environ.pop(name, None)  # also unsets it for every process the worker starts
    _WORKER_REWARDS.clear()
    _WORKER_REWARDS.update({spec.name: spec for spec in load_rewards(setup.reward_configs)})
    _limit_memory(setup.memory_limit_mb)
    _WORKER_MEMORY_LIMIT_MB = setup.memory_limit_mb


def _run_in_worker(reward_name: str, record: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """One (sample, reward) pair: its result, and the seconds it took (for the chunk sizer)."""
    started = time.perf_counter()
    result = run_reward(_WORKER_REWARDS[reward_name], ResponseRecord.from_dict(record))
    return result, time.perf_counter() - started


def _run_chunk_in_worker(
    reward_names: Sequence[str], records: Sequence[bytes]
) -> tuple[list[list[dict[str, Any]]], float]:
    """Every reward on every record of a chunk, one after the other in this (main) thread.

    Each record comes pickled and is unpickled afresh for each reward, so every reward gets its
    own copy, as it does in a task of its own: one that changes the record (its messages) cannot
    change what the next reward sees. Returns each record's results in ``reward_names`` order,
    and the seconds the chunk took.
    """
    started = time.perf_counter()
    results = [
        [
            run_reward(_WORKER_REWARDS[name], ResponseRecord.from_dict(pickle.loads(record)))
            for name in reward_names
        ]
        for record in records
    ]
    return results, time.perf_counter() - started


def _outcome(future: Future[Any], timeout_s: float) -> tuple[dict[str, Any], float | None]:
    """A single task's result and its seconds, or the error that stands for it (and None)."""
    try:
        result, seconds = future.result()
        return result, seconds
    except TimeoutError:
        return {"error": f"timed out after {timeout_s:g}s"}, None
    except ProcessExpired as error:
        return {"error": f"the reward's worker process died (exit code {error.exitcode})"}, None
    except Exception as error:  # e.g. a result that could not be sent back (unpicklable)
        return {"error": f"{type(error).__name__}: {error}"}, None


def iter_responses(path: str | Path) -> Iterator[ResponseRecord]:
    for _, data in read_jsonl(path):
        yield ResponseRecord.from_dict(data)


# --- chunks: several samples per task, as many as fit in a fraction of a second -------------

#: Worker time a chunk aims at (at most a tenth of ``timeout_s``): long enough that pebble's
#: cost per task (pickling, pipes, a future; about 0.2 ms of the job's and the worker's CPU)
#: is lost in it, short enough that every worker stays busy to the end of a shard and that a
#: chunk which fails costs little to score again.
CHUNK_TARGET_S = 0.1
#: At most this many samples per chunk, however cheap the rewards (bounds one message's size).
MAX_CHUNK = 256
#: Tasks kept waiting per worker, so that none runs dry while this process takes results and
#: sizes the next chunk (with fewer, one task per pair cost more CPU and time than scheduling all
#: at once did). Only this many are sized before the timing they could use comes in.
QUEUED_PER_WORKER = 8
#: Weight of the newest timing in the running mean of the seconds per (sample, reward).
_SMOOTHING = 0.3
#: New pools a shard may start after pebble declares one broken (see :class:`_ShardTasks`);
#: beyond that the job stops with an error instead of going round again.
MAX_POOL_RENEWALS = 3


@dataclass
class ChunkSizer:
    """How many samples the next task takes, from the time (sample, reward) pairs took so far.

    One sample means no chunk: one task per reward, as for the first samples of a shard (no
    timing yet) and for rewards too slow for two samples to fit in the target. Each timing is
    the worker's own (the reward calls only, not the queue), from chunks and single tasks alike,
    so a reward that gets slower shrinks the chunks back to single tasks. A failed task says
    nothing about the cost of the others and is not counted. ``unscheduled`` caps a chunk at
    a fair share of what is left, so the end of a shard is spread over every worker.
    """

    rewards: int
    workers: int
    timeout_s: float
    max_chunk: int = MAX_CHUNK
    seconds_per_pair: float | None = None

    def observe(self, pairs: int, seconds: float) -> None:
        per_pair = seconds / max(1, pairs)
        if self.seconds_per_pair is None:
            self.seconds_per_pair = per_pair
        else:
            self.seconds_per_pair += _SMOOTHING * (per_pair - self.seconds_per_pair)

    def next_size(self, unscheduled: int) -> int:
        if self.seconds_per_pair is None or self.max_chunk <= 1:
            return 1
        target = min(CHUNK_TARGET_S, self.timeout_s / 10)
        fits = int(target / max(self.seconds_per_pair * self.rewards, 1e-9))
        fair_share = -(-unscheduled // (2 * self.workers))
        return max(1, min(fits, fair_share, self.max_chunk))


class _ShardTasks:
    """The pool's tasks for one shard's ``ok`` samples, and their results as they come in.

    A sample is scored either in a chunk (one task, every reward on several samples, with the
    timeout of one reward) or alone (one task per reward, each with its own timeout). A chunk
    that times out, whose worker dies, or that fails in any other way is scored again alone,
    sample by sample, so the error lands on exactly the (sample, reward) that caused it, worded
    as it always was, and its chunk-mates score normally.

    Two races of pebble's are absorbed here. pebble pins a dead worker on the task it last
    heard that worker start; when its watcher thread sees the death before the messages the
    worker sent just before dying are read (the result of the pair it had finished, the start
    of the one that killed it), the death lands on the finished pair, and the killing one is
    left to time out. So a pair alone is blamed for a death only when it dies again, scored
    once more. And when no task is marked as running at that moment, pebble declares the whole
    pool broken and fails every task: those tasks go to a new pool (``renew_pool``).
    """

    def __init__(
        self,
        pool: ProcessPool,
        records: Sequence[ResponseRecord],
        reward_names: Sequence[str],
        timeout_s: float,
        sizer: ChunkSizer,
        renew_pool: Callable[[], ProcessPool],
    ) -> None:
        self.pool, self.records, self.names = pool, records, tuple(reward_names)
        self.timeout_s, self.sizer, self.renew_pool = timeout_s, sizer, renew_pool
        self.pending: dict[Future[Any], tuple[tuple[int, str] | list[int], ProcessPool]] = {}
        self.results: list[dict[str, dict[str, Any]] | None] = [None] * len(records)
        self._partial: dict[int, dict[str, dict[str, Any]]] = {}
        self._died_once: set[tuple[int, str]] = set()
        self.tasks = self.chunks = self.rescored_chunks = self.largest_chunk = 0
        self.renewed_pools = 0

    def schedule(self, indices: Sequence[int]) -> None:
        """Score these samples: alone if one, else as one chunk."""
        if len(indices) == 1:
            record = self.records[indices[0]].to_dict()  # once for all of its rewards
            for name in self.names:
                self._send((indices[0], name), record)
            return
        self._send(list(indices))
        self.chunks += 1
        self.largest_chunk = max(self.largest_chunk, len(indices))

    def _send(
        self, owner: tuple[int, str] | list[int], record: dict[str, Any] | None = None
    ) -> None:
        """One task to the pool: a (sample index, reward) pair (``record``: that sample's dict,
        if already made), or a chunk's sample indices."""
        if isinstance(owner, tuple):
            index, name = owner
            record = record if record is not None else self.records[index].to_dict()
            function, args = _run_in_worker, (name, record)
        else:
            blobs = [
                pickle.dumps(self.records[i].to_dict(), pickle.HIGHEST_PROTOCOL) for i in owner
            ]
            function, args = _run_chunk_in_worker, (self.names, blobs)
        try:
            future = self.pool.schedule(function, args=args, timeout=self.timeout_s)
        except RuntimeError:
            if self.pool.active:  # not pebble's broken pool: a bug, not a race
                raise
            self._leave_broken_pool(self.pool)
            future = self.pool.schedule(function, args=args, timeout=self.timeout_s)
        self.pending[future] = (owner, self.pool)
        self.tasks += 1

    def _leave_broken_pool(self, broken: ProcessPool) -> None:
        """Move every task still waiting on ``broken`` to a new pool.

        A broken pool fails the tasks its workers had taken, but never those still queued, so
        they are cancelled and sent again with the others.
        """
        if broken is self.pool:
            self.renewed_pools += 1
            if self.renewed_pools > MAX_POOL_RENEWALS:
                raise RuntimeError(
                    f"the scoring workers' pool broke {self.renewed_pools} times in this shard "
                    "(pebble lost track of a worker that died); stopping rather than looping"
                )
            logger.warning("the scoring workers' pool broke (pebble); starting a new one")
            self.pool = self.renew_pool()
        stranded = [(future, owner) for future, (owner, pool) in self.pending.items()
                    if pool is broken]  # fmt: skip
        for future, owner in stranded:
            del self.pending[future]
            future.cancel()
            self._send(owner)

    def collect(self) -> None:
        """Wait for at least one task to finish, and take what finished."""
        done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        for future in done:
            entry = self.pending.pop(future, None)
            if entry is None:  # already sent again, with the rest of its broken pool's tasks
                continue
            owner, pool = entry
            if isinstance(future.exception(), BrokenProcessPool):
                self._leave_broken_pool(pool)
                self._send(owner)
            elif isinstance(owner, tuple):
                self._single_done(future, *owner)
            else:
                self._chunk_done(future, owner)

    def _single_done(self, future: Future[Any], index: int, name: str) -> None:
        if isinstance(future.exception(), ProcessExpired) and (index, name) not in self._died_once:
            self._died_once.add((index, name))  # pebble may have blamed the wrong pair
            self._send((index, name))
            return
        result, seconds = _outcome(future, self.timeout_s)
        if seconds is not None:
            self.sizer.observe(1, seconds)
        partial = self._partial.setdefault(index, {})
        partial[name] = result
        if len(partial) == len(self.names):
            del self._partial[index]
            self.results[index] = {name: partial[name] for name in self.names}

    def _chunk_done(self, future: Future[Any], indices: list[int]) -> None:
        try:
            chunk_results, seconds = future.result()
        except Exception:  # a timeout, a dead worker, anything: score them alone
            self.rescored_chunks += 1
            first, last = self.records[indices[0]], self.records[indices[-1]]
            logger.info(
                "a chunk of %d samples (%s sample %d to %s sample %d) failed (%s); scoring "
                "them again one task per reward",
                len(indices), first.id, first.sample_index, last.id, last.sample_index,
                _outcome(future, self.timeout_s)[0]["error"],
            )  # fmt: skip
            for index in indices:
                self.schedule([index])
            return
        self.sizer.observe(len(indices) * len(self.names), seconds)
        for index, results in zip(indices, chunk_results, strict=True):
            self.results[index] = dict(zip(self.names, results, strict=True))


class _JobWorkers:
    """The job's worker pool and chunk sizer, kept for the next shard the job scores.

    A job over a group of shards (rewardflow.config.shard_jobs) scores them one after another;
    a fresh pool for each would fork and load the rewards again, and a fresh sizer would start
    again from one task per reward, which costs more than scoring a small shard. The pool is
    kept only for the same rewards, limits and worker count, and is closed when the job's
    process exits (or stopped at once on an error).
    """

    def __init__(self) -> None:
        self._key: tuple[bytes, int, float, int] | None = None
        self._pool: ProcessPool | None = None
        self._sizer: ChunkSizer | None = None
        self._setup: tuple[WorkerSetup, int] | None = None
        atexit.register(self.close)

    def get(
        self, setup: WorkerSetup, workers: int, rewards: int, timeout_s: float, max_chunk: int
    ) -> tuple[ProcessPool, ChunkSizer]:
        key = (pickle.dumps(setup), workers, timeout_s, max_chunk)
        if self._pool is None or self._sizer is None or key != self._key:
            self.close()
            self._setup = (setup, workers)
            self._pool = self._new_pool()
            self._sizer = ChunkSizer(rewards, workers, timeout_s, max_chunk)
            self._key = key
        return self._pool, self._sizer

    def renew(self) -> ProcessPool:
        """A new pool in place of one pebble has broken, with the same workers."""
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
        self._pool = self._new_pool()
        return self._pool

    def _new_pool(self) -> ProcessPool:
        assert self._setup is not None, "get() sets the pool up first"
        setup, workers = self._setup
        return ProcessPool(max_workers=workers, initializer=_init_worker, initargs=(setup,))

    def stop(self) -> None:
        """Stop the workers now, whatever they are running."""
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
        self._pool = self._sizer = self._key = None

    def close(self) -> None:
        """Let the workers finish (they are idle between shards) and end them."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
        self._pool = self._sizer = self._key = None


_JOB_WORKERS = _JobWorkers()


def score_shard(
    responses_path: str | Path,
    output_path: str | Path,
    reward_configs: Sequence[Mapping[str, Any]],
    settings: ScoringSettings,
    workers: int = 1,
    max_chunk: int = MAX_CHUNK,
) -> dict[str, int]:
    """Score one shard's responses into ``output_path``; return counts by status.

    The samples go to a pool of ``workers`` processes in chunks of several samples per task
    (every reward on each), as many as take about :data:`CHUNK_TARGET_S` by the time measured
    so far (at most ``max_chunk``; 1 gives one task per (sample, reward), as before chunks),
    since the pool's cost per task is larger than a cheap reward's. A chunk has the timeout of
    one reward (``settings.timeout_s``); one that times out or whose worker dies is scored
    again one task per (sample, reward), so the timeout or crash is pinned to exactly that
    pair, with the same error as ever. The price: a hanging reward costs up to about twice
    ``timeout_s`` (its chunk's, then its own), and its chunk-mates are scored twice.
    ``settings.memory_limit_mb`` caps each worker (None: no cap); ``settings.withheld_env``
    names variables to withhold from the workers besides those that look like secrets (see
    the module docstring).
    """
    timeout_s = settings.timeout_s
    rewards = load_rewards(reward_configs)  # in this process too: fail fast, before any work
    make_non_dumpable()  # the job holds the API keys; see the module docstring
    primary, weights = _primary(rewards), _weights(rewards)
    records = list(iter_responses(responses_path))
    setup = WorkerSetup(
        reward_configs=reward_configs,
        memory_limit_mb=settings.memory_limit_mb,
        withheld_env=tuple(withheld_env_names(os.environ, reward_configs, settings.withheld_env)),
    )
    if setup.withheld_env:  # names only, never values
        logger.info("reward workers run without %s", ", ".join(setup.withheld_env))
    progress = Progress(f"scoring {Path(responses_path).stem}", total=len(records))
    counts = {"scored": 0, "score_error": 0, "generation_failed": 0, "not_attempted": 0}
    scored: list[dict[str, Any]] = []
    workers = max(1, workers)
    to_score = [index for index, record in enumerate(records) if record.status == "ok"]
    pool, sizer = _JOB_WORKERS.get(setup, workers, len(rewards), timeout_s, max_chunk)
    names = [spec.name for spec in rewards]
    tasks = _ShardTasks(pool, records, names, timeout_s, sizer, _JOB_WORKERS.renew)
    scheduled, queue = 0, QUEUED_PER_WORKER * workers
    try:
        for index, record in enumerate(records):  # in order: the output, its log, progress
            while record.status == "ok" and tasks.results[index] is None:
                while scheduled < len(to_score) and len(tasks.pending) < queue:
                    size = sizer.next_size(len(to_score) - scheduled)
                    tasks.schedule(to_score[scheduled : scheduled + size])
                    scheduled += size
                tasks.collect()
            result = combine(record, tasks.results[index] or {}, primary, weights)
            counts[result.status] += 1
            if result.status == "score_error":
                logger.warning("%s sample %d: %s", result.id, result.sample_index, result.error)
            scored.append(result.to_dict())
            progress.advance(failed=result.status != "scored")
    except BaseException:
        _JOB_WORKERS.stop()  # a Ctrl-C must not wait for every reward still scheduled
        raise
    write_jsonl_atomic(output_path, scored)
    logger.info(
        "%d samples went to the workers in %d tasks: %d chunks of up to %d samples, %d of them "
        "scored again one task per reward",
        len(to_score), tasks.tasks, tasks.chunks, tasks.largest_chunk, tasks.rescored_chunks,
    )  # fmt: skip
    progress.finish()
    return counts
