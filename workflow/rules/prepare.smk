rule prepare_prompts:
    output:
        shards=expand("results/{{run}}/prompts/shard-{shard}.jsonl", shard=SHARDS),
    params:
        settings=prepare_params(config),
    log:
        "logs/{run}/prepare_prompts.log",
    script:
        "../../scripts/prepare_prompts.py"
