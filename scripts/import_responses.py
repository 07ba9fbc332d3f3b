"""Rule import_responses: responses already in the data -> response records (no requests)."""

import logging

from rewardflow.generation.job import import_responses
from rewardflow.rule_script import run_rule


def main(snakemake) -> None:
    count = import_responses(
        snakemake.input.prompts, snakemake.output.responses, snakemake.params.model
    )
    logging.info("%s: imported %d responses", snakemake.wildcards.shard, count)


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
