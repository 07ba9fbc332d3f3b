"""Rule score_responses: one shard's responses -> one score record per sample."""

import logging

from rewardflow.config.scoring import ScoringSettings, with_run_settings
from rewardflow.rule_script import run_rule
from rewardflow.scoring.job import score_shard


def main(snakemake) -> None:
    # The rewards come from params (changing one rescores); the operational settings come from
    # the validated config, so changing them does not make Snakemake rescore finished shards.
    settings = ScoringSettings.from_config(snakemake.config)
    counts = score_shard(
        snakemake.input.responses,
        snakemake.output.scores,
        with_run_settings(snakemake.params.rewards, settings.cache_dir, snakemake.threads),
        settings,
        workers=snakemake.threads,
    )
    logging.info("%s: %s", snakemake.wildcards.shard, counts)


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
