rule prepare_prompts:
    output:
        shards=expand("results/{{run}}/prompts/shard-{shard}.jsonl", shard=SHARDS),
    log:
        "logs/{run}/prepare_prompts.log",
    conda:
        "../../environment.yml"
    params:
        settings=prepare_params(config),
    script:
        "../../scripts/prepare_prompts.py"
