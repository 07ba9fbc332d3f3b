"""How the per-shard steps (generation or import, scoring) are cut into Snakemake jobs.

Every job costs Snakemake scheduling and bookkeeping, a fresh interpreter and the step's
imports: about 0.1 s of wall time each on a 2-core machine, whatever the shard holds. With one
job per shard, 128 shards would cost four times what 16 cost for the same prompts. So a step
runs as at most ``jobs_per_step`` jobs: with more shards than that, each job takes a group of
consecutive shards and runs them one after another in one process, writing one file per shard
as ever (docs/workflow.md, "Shards and jobs").

The default, 8, is four waves of the default two generation jobs at a time: scoring a wave's
groups overlaps the next wave's generation, and only the last wave's scoring (a quarter of it)
is left after the last request. Fewer jobs save start-up, more jobs shorten that tail; 8 was
no slower than 16 for a slow reward behind a slow endpoint and faster for everything else
measured (docs/performance.md, "Fourth session of 2026-12-02").

A job holds a fixed list of output files, and Snakemake rules cannot declare a varying number
of outputs per job, so a group is a rule of its own (``score_responses_008_015``: the shards
it holds). With no more shards than ``jobs_per_step``, a step stays the one rule with the
``{shard}`` wildcard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rewardflow.run_script import SHARD_PLACEHOLDER


@dataclass(frozen=True)
class ShardJob:
    """The rule of one step for one group of shards, or for every shard (``shards`` None)."""

    run: str
    shards: tuple[str, ...] | None = None

    @property
    def grouped(self) -> bool:
        return self.shards is not None

    def rule_name(self, step: str) -> str:
        """``step`` itself for the per-shard rule; ``step_FIRST_LAST`` for a group."""
        if self.shards is None:
            return step
        return f"{step}_{self.shards[0]}_{self.shards[-1]}"

    def paths(self, pattern: str) -> str | list[str]:
        """A per-shard file ``pattern`` (with ``{run}`` and ``{shard}``) for this job.

        The pattern itself for the per-shard rule (Snakemake fills in the wildcards); every
        shard's path for a group.
        """
        if self.shards is None:
            return pattern
        return [self.template(pattern).replace(SHARD_PLACEHOLDER, shard) for shard in self.shards]

    def template(self, pattern: str) -> str:
        """``pattern`` with the run filled in and ``{shard}`` left for each shard."""
        return pattern.replace("{run}", self.run)

    def job_file(self, pattern: str) -> str:
        """A file the whole job writes once (its log, its benchmark), from a per-shard pattern.

        ``shard-{shard}`` becomes ``shards-FIRST-LAST`` for a group.
        """
        if self.shards is None:
            return pattern
        span = f"shards-{self.shards[0]}-{self.shards[-1]}"
        return self.template(pattern).replace(f"shard-{SHARD_PLACEHOLDER}", span)


def jobs_per_step(config: Mapping[str, Any]) -> int:
    """The most jobs a per-shard step runs as: ``jobs_per_step``, or every shard when null."""
    shards = int(config["shards"])
    limit = config.get("jobs_per_step")
    return shards if limit is None else max(1, min(shards, int(limit)))


def parallel_jobs_note(config: Mapping[str, Any]) -> str | None:
    """A warning when the shards run in fewer groups than ``generation.parallel_jobs`` asks to
    run at once: only ``jobs_per_step`` generation jobs exist, so the rest cannot happen."""
    parallel = int(config["generation"]["parallel_jobs"])
    limit = config.get("jobs_per_step")
    if limit is None or int(config["shards"]) <= limit or parallel <= limit:
        return None
    return (
        f"generation.parallel_jobs is {parallel}, but jobs_per_step: {limit} runs the "
        f"{config['shards']} shards as {limit} generation jobs, so at most {limit} run at once; "
        f"set jobs_per_step to {parallel} or more to run {parallel}"
    )


def shard_groups(shards: Sequence[str], jobs: int) -> list[tuple[str, ...]]:
    """``shards`` cut into ``jobs`` runs of consecutive shards, sizes differing by at most one.

    Consecutive, so that a group's files sit together in a listing and its rule name (first and
    last shard) says which it holds; the first groups take the extra shards.
    """
    jobs = max(1, min(jobs, len(shards)))
    size, extra = divmod(len(shards), jobs)
    groups, start = [], 0
    for index in range(jobs):
        stop = start + size + (1 if index < extra else 0)
        groups.append(tuple(shards[start:stop]))
        start = stop
    return groups


def shard_jobs(config: Mapping[str, Any], run: str, shards: Sequence[str]) -> list[ShardJob]:
    """The jobs of each per-shard step: one per-shard rule, or one rule per group of shards."""
    jobs = jobs_per_step(config)
    if jobs >= len(shards):
        return [ShardJob(run)]
    return [ShardJob(run, group) for group in shard_groups(shards, jobs)]
