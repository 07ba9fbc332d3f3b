if config["generation"]["enabled"]:

    # params.settings holds only what decides the responses, so a change there reruns the
    # shard (and the cache answers what it can); operational knobs such as concurrency and
    # timeouts are read from the config inside the job and never cause a rerun.
    rule generate_responses:
        input:
            prompts=results_path("{run}/prompts/shard-{shard}.jsonl"),
            files=generation_files(config),
        output:
            responses=results_path("{run}/responses/shard-{shard}.jsonl"),
            stats=results_path("{run}/responses/shard-{shard}.stats.json"),
        log:
            "logs/{run}/generate_responses/shard-{shard}.log",
        benchmark:
            "benchmarks/{run}/generate_responses/shard-{shard}.tsv"
        conda:
            "../../environment.yml"
        # Locally 0: scoring of finished shards overlaps generation (see generation_threads).
        threads: generation_threads
        resources:
            generation_jobs=1,
            gpu=(config["model"]["launch"] or {}).get("gpus", 0),
        params:
            step=step_params_of(
                settings=generation_params(config), writer_name=writer_name
            ),
            files=files_of_job,
        shell:
            run_script("generate_responses")

else:

    rule import_responses:
        input:
            prompts=results_path("{run}/prompts/shard-{shard}.jsonl"),
        output:
            responses=results_path("{run}/responses/shard-{shard}.jsonl"),
        log:
            "logs/{run}/import_responses/shard-{shard}.log",
        conda:
            "../../environment.yml"
        params:
            step=step_params_of(model=config["model"]["name"]),
            files=files_of_job,
        shell:
            run_script("import_responses")
