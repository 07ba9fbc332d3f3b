rule score_responses:
    input:
        responses="results/{run}/responses/shard-{shard}.jsonl",
    output:
        scores="results/{run}/scores/shard-{shard}.jsonl",
    log:
        "logs/{run}/score_responses/shard-{shard}.log",
    benchmark:
        "benchmarks/{run}/score_responses/shard-{shard}.tsv"
    conda:
        "../../environment.yml"
    threads: scoring_threads()
    params:
        rewards=config["rewards"],
        timeout_s=config["scoring"]["timeout_s"],
    script:
        "../../scripts/score_responses.py"
