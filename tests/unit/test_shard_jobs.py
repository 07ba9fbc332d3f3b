"""How the per-shard steps are cut into jobs (rewardflow.config.shard_jobs)."""

from __future__ import annotations

import pytest

from rewardflow.config import shard_labels, validate_config
from rewardflow.config.generation import RateSettings
from rewardflow.config.shard_jobs import (
    ShardJob,
    jobs_per_step,
    parallel_jobs_note,
    shard_groups,
    shard_jobs,
)


@pytest.mark.parametrize("shards, jobs", [(128, 16), (17, 16), (10, 3), (5, 5), (3, 1)])
def test_groups_are_consecutive_balanced_and_cover_every_shard_once(shards, jobs):
    labels = shard_labels(shards)

    groups = shard_groups(labels, jobs)

    assert len(groups) == jobs
    assert [shard for group in groups for shard in group] == labels
    sizes = [len(group) for group in groups]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the first groups take the extra shards


@pytest.mark.parametrize(
    "shards, limit, expected", [(128, 16, 16), (8, 16, 8), (128, None, 128), (4, 1, 1)]
)
def test_jobs_per_step_is_the_limit_or_every_shard(shards, limit, expected):
    assert jobs_per_step({"shards": shards, "jobs_per_step": limit}) == expected


def test_up_to_the_limit_each_step_is_the_one_rule_with_the_shard_wildcard():
    config = {"shards": 16, "jobs_per_step": 16}

    (job,) = shard_jobs(config, "run", shard_labels(16))

    assert not job.grouped
    assert job.rule_name("score_responses") == "score_responses"
    pattern = "results/{run}/scores/shard-{shard}.jsonl"
    assert job.paths(pattern) == pattern
    assert job.job_file("logs/{run}/score_responses/shard-{shard}.log") == (
        "logs/{run}/score_responses/shard-{shard}.log"
    )


def test_beyond_the_limit_each_group_is_a_rule_naming_its_shards_and_their_files():
    jobs = shard_jobs({"shards": 128, "jobs_per_step": 16}, "big", shard_labels(128))

    assert len(jobs) == 16
    second = jobs[1]
    assert second == ShardJob("big", tuple(f"{index:03d}" for index in range(8, 16)))
    assert second.rule_name("generate_responses") == "generate_responses_008_015"
    assert second.paths("results/{run}/scores/shard-{shard}.jsonl") == [
        f"results/big/scores/shard-{index:03d}.jsonl" for index in range(8, 16)
    ]
    assert second.job_file("logs/{run}/score_responses/shard-{shard}.log") == (
        "logs/big/score_responses/shards-008-015.log"
    )


@pytest.mark.parametrize(
    "shards, limit, parallel_jobs, sharing",
    [(128, 16, 32, 16), (128, 16, 2, 2), (3, 16, 8, 3), (128, None, 32, 32)],
)
def test_rate_limits_are_split_among_the_generation_jobs_that_can_run_at_once(
    shards, limit, parallel_jobs, sharing
):
    # Split among more jobs than can run, each would hold too small a share (never the limit).
    config = {
        "shards": shards,
        "jobs_per_step": limit,
        "generation": {
            "parallel_jobs": parallel_jobs,
            "requests_per_minute": None,
            "tokens_per_minute": 60_000,
            "adaptive_rate": True,
        },
    }

    assert RateSettings.from_config(config).jobs_sharing_limits == sharing


@pytest.mark.parametrize(
    "shards, limit, parallel_jobs, warned",
    [(64, 8, 16, True), (64, 8, 8, False), (64, None, 16, False), (4, 8, 16, False)],
)
def test_a_parallel_jobs_setting_the_groups_cannot_reach_is_warned_about(
    shards, limit, parallel_jobs, warned
):
    # Only the groups' count can be raised by the user here; fewer shards than parallel_jobs
    # is the shard count's choice, and one job per shard reaches any parallel_jobs.
    generation = {"parallel_jobs": parallel_jobs}
    config = {"shards": shards, "jobs_per_step": limit, "generation": generation}

    note = parallel_jobs_note(config)

    assert (note is not None) == warned
    if warned:
        assert f"parallel_jobs is {parallel_jobs}" in note
        assert f"jobs_per_step to {parallel_jobs}" in note


def test_by_default_more_than_eight_shards_run_as_eight_jobs_per_step():
    config = validate_config(
        {
            "run_name": "x",
            "shards": 16,
            "dataset": {"path": "d.jsonl"},
            "model": {"provider": "simulator", "name": "m"},
            "rewards": [{"name": "r", "function": "m:f"}],
        }
    )

    jobs = shard_jobs(config, "x", shard_labels(16))

    assert [job.shards for job in jobs] == [(f"{2 * n:03d}", f"{2 * n + 1:03d}") for n in range(8)]
    assert parallel_jobs_note(config) is None  # the default parallel_jobs (2) fits
