# Set-up shared by every rule: config validation, paths, and the params helpers.
# Rules call these helpers and hold no logic of their own.

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from rewardflow.config import (
    RESULTS_DIR,
    aggregate_files,
    aggregate_params,
    canonical,
    capped_shards,
    dataset_files,
    generation_files,
    generation_params,
    load_schema,
    prepare_params,
    reward_files,
    shard_names,
    validate_config,
)
from rewardflow.errors import RewardflowError


def results_path(path):
    """``path`` inside the results directory, which rewardflow.config.paths defines once."""
    return f"{RESULTS_DIR}/{path}"


try:
    _validated = validate_config(
        config, load_schema(workflow.source_path("../schemas/config.schema.yaml"))
    )
except RewardflowError as error:
    raise WorkflowError(str(error)) from None
# Filled-in defaults must be visible to every job, so the config dict is updated in place;
# its keys are sorted, so that params do not depend on the order they were written in.
config.clear()
config.update(canonical(_validated))

# At most generation.parallel_jobs generation jobs run at once, locally or on a cluster, so
# that each job's 1/parallel_jobs share of the rate limits adds up to the configured total.
workflow.register_resource("generation_jobs", config["generation"]["parallel_jobs"])

RUN = config["run_name"]
# An empty shard would still cost a generation and a scoring job. The capped count replaces
# config["shards"], so that every job divides the budget and rate limits by the shards it has.
_shards, _prompts = capped_shards(config)
if _shards < config["shards"]:
    logger.warning(
        f"shards: {config['shards']} is more than the {_prompts} prompts; "
        f"using {_shards} shards (one per prompt)"
    )
    config["shards"] = _shards
SHARDS = shard_names(config)


wildcard_constraints:
    run=RUN,
    shard=r"\d+",


def final_outputs():
    return [
        results_path(f"{RUN}/summary.json"),
        results_path(f"{RUN}/summary.md"),
        results_path(f"{RUN}/run_complete.txt"),
        *expand(rules.build_report.output, run=RUN),
        results_path(f"{RUN}/viewer.html"),
    ]


def prompt_shards(wildcards):
    return expand(
        results_path("{run}/prompts/shard-{shard}.jsonl"), run=RUN, shard=SHARDS
    )


def response_shards(wildcards):
    return expand(
        results_path("{run}/responses/shard-{shard}.jsonl"), run=RUN, shard=SHARDS
    )


def generation_stats(wildcards):
    """Per-shard generation reports; none when responses are imported instead."""
    if not config["generation"]["enabled"]:
        return []
    return expand(
        results_path("{run}/responses/shard-{shard}.stats.json"), run=RUN, shard=SHARDS
    )


def score_shards(wildcards):
    return expand(
        results_path("{run}/scores/shard-{shard}.jsonl"), run=RUN, shard=SHARDS
    )


def scoring_threads():
    """Worker processes per scoring job: the configured number, else every core we have."""
    if config["scoring"]["threads"]:
        return config["scoring"]["threads"]
    try:
        return workflow.cores
    except WorkflowError:
        # No --cores: --unlock, --report, --lint and the like, which run no scoring job.
        return 1


def generation_threads(wildcards):
    """No core on this machine, one on a cluster.

    A generation job mostly waits on the network: holding a core would keep a finished
    shard's scoring waiting for the last generation job (generation_jobs still caps how many
    run). A cluster's scheduler must give each submitted job a CPU, and the SLURM executor
    asks for exactly the threads (--cpus-per-task=0 is refused). Evaluated per job, once the
    executor is known, which the Snakefile's parse is not.
    """
    return 0 if workflow.local_exec else 1


def writer_name(wildcards):
    """Each shard job appends to its own cache journal, so jobs never share a file."""
    return f"{wildcards.run}.shard-{wildcards.shard}"


onstart:
    from rewardflow.preflight import preflight_checks

    try:
        preflight_checks(config)
    except RewardflowError as error:
        raise WorkflowError(str(error)) from None
