"""Rule build_viewer: the summary and the viewer's data tags -> results/<run>/viewer.html."""

import json
import logging
from pathlib import Path

from rewardflow.reporting.viewer import ViewerData, assemble_viewer
from rewardflow.rule_script import run_rule


def main(snakemake) -> None:
    stats = assemble_viewer(
        snakemake.input.summary,
        snakemake.input.data,
        ViewerData(**json.loads(Path(snakemake.input.counts).read_text(encoding="utf-8"))),
        snakemake.output.viewer,
        snakemake.params.group_fields,
    )
    logging.info(
        "viewer: %s (%d samples, %d prompts, %.1f MB)",
        stats.path,
        stats.samples,
        stats.prompts,
        stats.bytes / 1e6,
    )


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
