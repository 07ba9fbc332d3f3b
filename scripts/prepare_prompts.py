"""Rule prepare_prompts: dataset rows -> one prompt JSONL per shard."""

import logging

from rewardflow.config.prompts import PrepareSettings
from rewardflow.prompts.prepare import prepare_prompts
from rewardflow.rule_script import run_rule


def main(snakemake) -> None:
    # The params hold exactly the sections that decide the prompts (config.prepare_params).
    settings = PrepareSettings.from_config(snakemake.params.settings)
    count = prepare_prompts(settings, snakemake.output.shards)
    logging.info("wrote %d prompts into %d shards", count, len(snakemake.output.shards))


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
