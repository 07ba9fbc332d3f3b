"""Rule score_responses: one shard's responses -> one score record per sample."""

import logging

from rewardflow.rewards.loader import load_rewards
from rewardflow.rule_script import run_rule
from rewardflow.score import score_shard


def main(snakemake) -> None:
    rewards = load_rewards(snakemake.params.rewards)
    counts = score_shard(snakemake.input.responses, snakemake.output.scores, rewards)
    logging.info("%s: %s", snakemake.wildcards.shard, counts)


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by Snakemake
