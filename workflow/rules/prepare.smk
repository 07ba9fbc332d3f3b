rule prepare_prompts:
    input:
        # Editing the dataset file reruns everything after it; the cache answers every
        # request whose prompt did not change (editing ground truths sends none).
        dataset_files(config),
    output:
        shards=expand(results_path("{{run}}/prompts/shard-{shard}.jsonl"), shard=SHARDS),
    log:
        "logs/{run}/prepare_prompts.log",
    conda:
        "../../environment.yml"
    params:
        step=step_params_of(settings=prepare_params(config)),
        files=files_of_run,
    shell:
        run_script("prepare_prompts")
