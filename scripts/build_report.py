"""Rule build_report: summary and shards -> the figures and tables of the HTML report."""

import logging
from pathlib import Path

from rewardflow.reporting.report import build_report
from rewardflow.rule_script import run_rule


def main(snakemake) -> None:
    paths = build_report(
        snakemake.input.summary,
        snakemake.input.responses,
        snakemake.input.scores,
        Path(snakemake.output.score_distribution).parent,
        snakemake.params.group_fields,
    )
    logging.info("report figures and tables: %s", ", ".join(str(path) for path in paths))


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
