"""Rule aggregate_scores: all shards -> summary.json and summary.md."""

import logging

from rewardflow.config.summary import SummarySettings
from rewardflow.rule_script import run_rule
from rewardflow.summary.aggregate import aggregate_run


def main(snakemake) -> None:
    summary = aggregate_run(
        SummarySettings.from_config(snakemake.params.settings),
        snakemake.input.responses,
        snakemake.input.scores,
        snakemake.input.generation_stats,
        snakemake.output.json,
        snakemake.output.markdown,
    )
    primary = summary["rewards"][summary["primary_reward"]]
    logging.info(
        "%s: %s = %s over %d scored samples; summary in %s",
        summary["run_name"],
        summary["primary_reward"],
        primary["mean"],
        primary["scored"],
        snakemake.output.markdown,
    )


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
