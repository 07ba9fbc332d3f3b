"""Rule build_viewer_data: every shard -> the viewer's data tags, beside the summary step."""

import logging

from rewardflow.config.generation import CacheSettings, ModelSettings
from rewardflow.jsonl import write_json_atomic
from rewardflow.reporting.viewer import write_viewer_data
from rewardflow.rule_script import run_rule


def main(snakemake) -> None:
    data = write_viewer_data(
        snakemake.input.responses,
        snakemake.input.scores,
        snakemake.output.data,
        CacheSettings.from_config(snakemake.config).root,
        ModelSettings.from_config(snakemake.config).name,
    )
    write_json_atomic(snakemake.output.counts, data.to_dict())
    logging.info("viewer data: %d samples, %d prompts", data.samples, data.prompts)


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
