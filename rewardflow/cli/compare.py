"""``rewardflow compare``: two or more runs side by side, on the prompts they share.

The statistics are in :mod:`rewardflow.reporting.compare`, the paired viewer in
:mod:`rewardflow.reporting.viewer`;
this module parses, loads the runs and writes what was asked for.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from rewardflow.cli import options
from rewardflow.cli.errors import UsageError
from rewardflow.errors import RewardflowError
from rewardflow.jsonl import write_text_atomic
from rewardflow.reporting.compare import compare, render_html, render_markdown
from rewardflow.reporting.run_files import load_run
from rewardflow.reporting.viewer import write_viewer


def add_parser(commands: argparse._SubParsersAction, **named: Any) -> argparse.ArgumentParser:
    """Register the command; ``named`` is its name, aliases and one-line help (cli/main.py)."""
    parser = commands.add_parser(
        **named,
        description="Compare every run with the first (the baseline) on the prompts both "
        "scored: the difference of means with a paired-bootstrap 95%% interval and p-value, "
        "and McNemar's test when both runs have one pass/fail sample per prompt. Prints a "
        "Markdown table.",
    )
    options.add_run(
        parser, many=True, help="run directories, results/<run_name>; first is the baseline"
    )
    parser.add_argument(
        "--reward", metavar="NAME", help="reward to compare (default: the baseline's primary)"
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="also write the Markdown table here"
    )
    parser.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a self-contained HTML page here"
    )
    parser.add_argument(
        "--viewer",
        type=Path,
        metavar="FILE",
        help="also write the paired results viewer (exactly two runs) as one HTML file here",
    )
    options.add_json(parser)
    parser.add_argument(
        "--resamples", type=int, default=2000, metavar="N", help="bootstrap resamples (%(default)s)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seeds the bootstrap resampling (%(default)s)",
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if len(args.runs) < 2:
        raise UsageError("give at least two run directories")
    if args.viewer and len(args.runs) != 2:
        raise UsageError("--viewer pairs exactly two runs: give a baseline and one candidate")
    runs = [load_run(path) for path in args.runs]
    reward = args.reward or runs[0].summary["primary_reward"]
    try:
        comparisons = [compare(runs[0], run, reward, args.resamples, args.seed) for run in runs[1:]]
    except ValueError as error:  # e.g. no shared prompts, or a reward neither run has
        raise RewardflowError(str(error)) from error
    markdown = render_markdown(comparisons)
    if args.json:
        for comparison in comparisons:
            print(json.dumps(dataclasses.asdict(comparison)))
    else:
        print(markdown)
    if args.out:
        write_text_atomic(args.out, markdown)
    if args.html:
        write_text_atomic(args.html, render_html(markdown))
    if args.viewer:
        paired = dataclasses.asdict(comparisons[0].paired)
        write_viewer(runs, args.viewer, comparison={"reward": reward, **paired})
        print(f"paired viewer: {args.viewer}", file=sys.stderr)
    return 0
