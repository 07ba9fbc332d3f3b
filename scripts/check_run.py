"""Rule check_run: fail the run, keeping its summary, if samples went unsent for budget."""

import json
import logging
from pathlib import Path

from rewardflow.generation.budget import check_run_complete
from rewardflow.rule_script import run_rule


def main(snakemake) -> None:
    verdict = check_run_complete(json.loads(Path(snakemake.input.summary).read_text()))
    Path(snakemake.output.flag).write_text(verdict + "\n")
    logging.info(verdict)


run_rule(snakemake.log[0], main, snakemake)  # noqa: F821 - injected by rewardflow.run_script
