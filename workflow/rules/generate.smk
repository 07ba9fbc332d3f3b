# One rule per step for every shard, or, with more shards than jobs_per_step, one rule per group
# of consecutive shards (shard_jobs in common.smk; docs/workflow.md, "Shards and jobs").
if config["generation"]["enabled"]:

    for job in SHARD_JOBS:

        # params.settings holds only what decides the responses, so a change there reruns the
        # shard (and the cache answers what it can); operational knobs such as concurrency and
        # timeouts are read from the config inside the job and never cause a rerun.
        rule:
            name:
                job.rule_name("generate_responses")
            input:
                prompts=job.paths(results_path("{run}/prompts/shard-{shard}.jsonl")),
                files=generation_files(config),
            output:
                responses=job.paths(results_path("{run}/responses/shard-{shard}.jsonl")),
                stats=job.paths(
                    results_path("{run}/responses/shard-{shard}.stats.json")
                ),
            log:
                job.job_file("logs/{run}/generate_responses/shard-{shard}.log"),
            benchmark:
                job.job_file("benchmarks/{run}/generate_responses/shard-{shard}.tsv")
            conda:
                "../../environment.yml"
            # Locally 0: scoring of finished shards overlaps generation (see generation_threads).
            threads: generation_threads
            resources:
                generation_jobs=1,
                gpu=(config["model"]["launch"] or {}).get("gpus", 0),
            params:
                step=step_params_of(
                    settings=generation_params(config),
                    **per_shard_params(job, writer_name=writer_name),
                ),
                files=files_of(job, writer_name=writer_name),
            shell:
                run_script("generate_responses")

else:

    for job in SHARD_JOBS:

        rule:
            name:
                job.rule_name("import_responses")
            input:
                prompts=job.paths(results_path("{run}/prompts/shard-{shard}.jsonl")),
            output:
                responses=job.paths(results_path("{run}/responses/shard-{shard}.jsonl")),
            log:
                job.job_file("logs/{run}/import_responses/shard-{shard}.log"),
            conda:
                "../../environment.yml"
            params:
                step=step_params_of(model=config["model"]["name"]),
                files=files_of(job),
            shell:
                run_script("import_responses")
