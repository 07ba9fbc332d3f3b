"""Rule generate_responses: one shard's prompts -> responses, through the response cache."""

import logging
from pathlib import Path

from rewardflow.config.generation import GenerationStageSettings
from rewardflow.generation.job import generate_shard
from rewardflow.rule_script import run_rule


def main(snakemake) -> None:
    report = generate_shard(
        snakemake.input.prompts,
        snakemake.output.responses,
        # From the whole validated config: params.settings only decides reruns, while
        # operational knobs (concurrency, timeouts, cache location) must reach the job without
        # being params.
        GenerationStageSettings.from_config(snakemake.config),
        snakemake.params.writer_name,
        snakemake.output.stats,
        # A launched model server's own output, beside the job's log (not a declared log:
        # most runs launch no server).
        server_log=Path(snakemake.log[0]).with_suffix(".server.log"),
    )
    logging.info("%s: %s", snakemake.wildcards.shard, report.line())


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
