"""Rule build_viewer: a run's summary and shards -> results/<run>/viewer.html."""

import logging
from pathlib import Path

from rewardflow.config.generation import CacheSettings, ModelSettings
from rewardflow.reporting.viewer import build_viewer
from rewardflow.rule_script import run_rule


def main(snakemake) -> None:
    stats = build_viewer(
        Path(snakemake.input.summary).parent,
        snakemake.output.viewer,
        snakemake.params.group_fields,
        CacheSettings.from_config(snakemake.config).root,
        ModelSettings.from_config(snakemake.config).name,
    )
    logging.info(
        "viewer: %s (%d samples, %d prompts, %.1f MB)",
        stats.path,
        stats.samples,
        stats.prompts,
        stats.bytes / 1e6,
    )


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
