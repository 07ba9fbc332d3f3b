"""The scoring stage: run every configured reward on every response of one shard.

A reward is user code, so the stage assumes it can fail in every way: an exception (or an
unusable return value) is recorded as that reward's error for that sample; a reward that hangs
is stopped after ``timeout_s``; one that crashes its process (a segfault, ``os._exit``, the
OOM killer) costs only that sample's result for that reward. To make the last two possible,
rewards run in worker processes (``pebble``'s process pool, which kills a timed-out worker and
replaces a dead one), never in the job's own process. The workers also use all of the job's
cores, and each runs rewards in its main thread, where math-verify's alarm-based timeout works.

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

import logging
import os
import re
import resource
import signal
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, TimeoutError
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


def _run_in_worker(reward_name: str, record: dict[str, Any]) -> dict[str, Any]:
    return run_reward(_WORKER_REWARDS[reward_name], ResponseRecord.from_dict(record))


def _outcome(future: Future[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    """A worker's result, or the error that stands for it."""
    try:
        return future.result()
    except TimeoutError:
        return {"error": f"timed out after {timeout_s:g}s"}
    except ProcessExpired as error:
        return {"error": f"the reward's worker process died (exit code {error.exitcode})"}
    except Exception as error:  # e.g. a result that could not be sent back (unpicklable)
        return {"error": f"{type(error).__name__}: {error}"}


def iter_responses(path: str | Path) -> Iterator[ResponseRecord]:
    for _, data in read_jsonl(path):
        yield ResponseRecord.from_dict(data)


def score_shard(
    responses_path: str | Path,
    output_path: str | Path,
    reward_configs: Sequence[Mapping[str, Any]],
    settings: ScoringSettings,
    workers: int = 1,
) -> dict[str, int]:
    """Score one shard's responses into ``output_path``; return counts by status.

    Each (sample, reward) pair is one task in a pool of ``workers`` processes, so a timeout
    (``settings.timeout_s``) or a crash is pinned to exactly that pair.
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
    pool = ProcessPool(max_workers=max(1, workers), initializer=_init_worker, initargs=(setup,))
    try:
        pending = [
            {
                spec.name: pool.schedule(
                    _run_in_worker, args=(spec.name, record.to_dict()), timeout=timeout_s
                )
                for spec in rewards
            }
            if record.status == "ok"
            else {}
            for record in records
        ]
        for record, futures in zip(records, pending, strict=True):
            results = {name: _outcome(future, timeout_s) for name, future in futures.items()}
            result = combine(record, results, primary, weights)
            counts[result.status] += 1
            if result.status == "score_error":
                logger.warning("%s sample %d: %s", result.id, result.sample_index, result.error)
            scored.append(result.to_dict())
            progress.advance(failed=result.status != "scored")
    except BaseException:
        pool.stop()  # a Ctrl-C must not wait for every reward still scheduled
        raise
    else:
        pool.close()
    finally:
        pool.join()
    write_jsonl_atomic(output_path, scored)
    progress.finish()
    return counts
