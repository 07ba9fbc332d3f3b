"""Rule score_responses: one shard's responses -> one score record per sample."""

import logging

from rewardflow.rule_script import run_rule
from rewardflow.score import score_shard


def main(snakemake) -> None:
    counts = score_shard(
        snakemake.input.responses,
        snakemake.output.scores,
        snakemake.params.rewards,
        workers=snakemake.threads,
        timeout_s=snakemake.params.timeout_s,
    )
    logging.info("%s: %s", snakemake.wildcards.shard, counts)


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by Snakemake
