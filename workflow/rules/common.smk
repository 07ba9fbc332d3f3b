# Set-up shared by every rule: config validation, paths, and the params helpers.
# Rules call these helpers and hold no logic of their own.

import os
import sys
from pathlib import Path
from types import SimpleNamespace

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
    scoring_workers,
    shard_names,
    validate_config,
)
from rewardflow.config.scoring import JUDGE_FUNCTION
from rewardflow.config.shard_jobs import jobs_per_step, parallel_jobs_note, shard_jobs
from rewardflow.errors import RewardflowError
from rewardflow.run_script import (
    CONFIG_ENV,
    PYTHON_ENV,
    SCRIPTS_ENV,
    SHARD_PLACEHOLDER,
    config_for_jobs,
    group_files,
    job_files,
    run_files,
    step_params,
)


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
# The jobs of each per-shard step: every shard, or groups of them (rewardflow.config.shard_jobs).
SHARD_JOBS = shard_jobs(config, RUN, SHARDS)


def _deploys_software():
    """Conda or a container: jobs then use that environment's python, as script: does."""
    settings = getattr(workflow, "deployment_settings", None)
    methods = (
        {method.name for method in settings.deployment_method} if settings else set()
    )
    return bool(methods & {"CONDA", "APPTAINER"})


# What rewardflow.run_script needs besides its arguments; the jobs inherit it. Set here rather
# than written into the shell commands, whose text Snakemake compares between runs.
try:
    os.environ[CONFIG_ENV] = config_for_jobs(config)
except ValueError as error:
    raise WorkflowError(str(error)) from None
os.environ[SCRIPTS_ENV] = str(Path(workflow.basedir) / "scripts")
os.environ[PYTHON_ENV] = "python" if _deploys_software() else sys.executable


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


_SCORES_WITH_A_JUDGE = any(
    reward["function"] == JUDGE_FUNCTION for reward in config["rewards"]
)


def scoring_threads(wildcards):
    """Worker processes per scoring job (rewardflow.config.scoring_workers): the configured
    number, else this machine's cores shared among the step's jobs, or a submission's on a cluster.
    Evaluated per job, once the executor is known, as generation_threads is.
    """
    try:
        cores = workflow.cores
    except WorkflowError:
        # No --cores: --unlock, --report, --lint and the like, which run no scoring job.
        return 1
    return scoring_workers(
        config["scoring"]["threads"],
        cores,
        jobs_per_step(config),
        local=workflow.local_exec,
        judge=_SCORES_WITH_A_JUDGE,
    )


def run_script(name):
    """The shell command of a rule: scripts/<name>.py through rewardflow.run_script.

    Snakemake's script: preamble costs each job a Snakemake import (see
    rewardflow/run_script.py). The rule gives params.step (step_params_of) and params.files
    (files_of_job, files_of, or files_of_run for a once-per-run rule).
    """
    return (
        f'"${PYTHON_ENV}" -m rewardflow.run_script {name} '
        "{params.step:q} {params.files:q} {log:q} {threads}"
    )


def step_params_of(**params):
    """params.step: the rule's params as one JSON text; a value may be a function of the
    wildcards, as in Snakemake's own params. Compared between runs like any param.

    Always a function: Snakemake formats a string param with the wildcards, and the JSON may
    hold braces of its own (a judge's prompt template's "{response}").
    """

    def step(wildcards):
        return step_params(
            {
                name: value(wildcards) if callable(value) else value
                for name, value in params.items()
            }
        )

    return step


def files_of_job(wildcards, input, output):
    """params.files: the job's named files and wildcards. A function of input and output, so
    Snakemake leaves it out of its params comparison (the files are compared as files).
    """
    return job_files(dict(input.items()), dict(output.items()), dict(wildcards.items()))


def per_shard_params(job, **params):
    """The params that differ by shard, functions of the wildcards. They are part of
    params.step for one job per shard; a group's job gets them through files_of instead.
    """
    return {} if job.grouped else params


def files_of(job, **per_shard):
    """params.files of a step's job: files_of_job, or for a group of shards its file templates
    and shards, with the per_shard_params (functions of the wildcards) as templates too.
    """
    if not job.grouped:
        return files_of_job
    templates = {
        name: value(SimpleNamespace(run=RUN, shard=SHARD_PLACEHOLDER))
        for name, value in per_shard.items()
    }

    def files(wildcards, input, output):
        return group_files(
            RUN, job.shards, dict(input.items()), dict(output.items()), templates
        )

    return files


def files_of_run(wildcards, input, output):
    """params.files of a once-per-run rule: every shard's files as one template per list."""
    return run_files(
        dict(input.items()), dict(output.items()), dict(wildcards.items()), SHARDS
    )


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
    from rewardflow.workflow_start import preload_in_background

    try:
        preflight_checks(config)
    except RewardflowError as error:
        raise WorkflowError(str(error)) from None
    if workflow.execution_settings.keep_metadata:
        # The first finished job's metadata record imports pandas; do it while jobs run.
        preload_in_background()
    if (note := parallel_jobs_note(config)) is not None:
        logger.warning(note)
    if SHARD_JOBS[0].grouped and not workflow.local_exec:
        logger.warning(
            f"jobs_per_step: {len(SHARD_JOBS)} runs the {len(SHARDS)} shards in groups, "
            "one job per group: rules such as "
            f"{SHARD_JOBS[0].rule_name('generate_responses')}, which a profile's "
            "settings for generate_responses do not reach; set jobs_per_step: null for one "
            "job per shard on a cluster (docs/workflow.md, 'Shards and jobs')"
        )


# Snakemake's scheduler leaves a non-daemon timer armed that would hold the exit up to a second.
onsuccess:
    from rewardflow.workflow_exit import cancel_pending_timers

    cancel_pending_timers()


onerror:
    from rewardflow.workflow_exit import cancel_pending_timers

    cancel_pending_timers()
