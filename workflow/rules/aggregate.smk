rule aggregate_scores:
    input:
        responses=response_shards,
        scores=score_shards,
    output:
        json="results/{run}/summary.json",
        markdown=report(
            "results/{run}/summary.md",
            caption="../report/summary.rst",
            category="Summary",
        ),
    params:
        settings=config,
    log:
        "logs/{run}/aggregate_scores.log",
    script:
        "../../scripts/aggregate_scores.py"
