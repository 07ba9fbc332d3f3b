for job in SHARD_JOBS:

    rule:
        name:
            job.rule_name("score_responses")
        input:
            responses=job.paths(results_path("{run}/responses/shard-{shard}.jsonl")),
            # The rewards' own source files (unless installed code) and files their params
            # name: editing one rescores every shard.
            rewards=reward_files(config),
        output:
            scores=job.paths(results_path("{run}/scores/shard-{shard}.jsonl")),
        log:
            job.job_file("logs/{run}/score_responses/shard-{shard}.log"),
        benchmark:
            job.job_file("benchmarks/{run}/score_responses/shard-{shard}.tsv")
        conda:
            "../../environment.yml"
        threads: scoring_threads
        params:
            step=step_params_of(
                rewards=config["rewards"], timeout_s=config["scoring"]["timeout_s"]
            ),
            files=files_of(job),
        shell:
            run_script("score_responses")
