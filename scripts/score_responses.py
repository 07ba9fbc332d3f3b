"""Rule score_responses: one shard's responses -> one score record per sample."""

import logging

from rewardflow.config.generation import CacheSettings
from rewardflow.rewards.judge import with_run_settings
from rewardflow.rule_script import run_rule
from rewardflow.scoring.job import score_shard


def main(snakemake) -> None:
    # Operational knobs come from the validated config rather than params, so changing them
    # does not make Snakemake rescore finished shards.
    config = snakemake.config
    counts = score_shard(
        snakemake.input.responses,
        snakemake.output.scores,
        with_run_settings(
            snakemake.params.rewards, CacheSettings.from_config(config).root, snakemake.threads
        ),
        workers=snakemake.threads,
        timeout_s=snakemake.params.timeout_s,
        memory_limit_mb=config["scoring"]["memory_limit_mb"],
        secret_env=[name for name in [config["model"].get("api_key_env")] if name],
    )
    logging.info("%s: %s", snakemake.wildcards.shard, counts)


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by Snakemake
