"""``rewardflow-compare``: two or more runs side by side, on the prompts they share.

Comparing checkpoint A with checkpoint B is only meaningful on the same prompts, and a
difference is only news if it is bigger than noise; so every run is compared with the first
(the baseline) on their shared prompts, with a paired bootstrap interval for the difference of
means and, when both runs have one pass/fail sample per prompt, McNemar's test.

    rewardflow-compare results/base results/candidate [--reward accuracy] [--out cmp.md]
        [--viewer pair.html]

``--viewer`` writes the paired results viewer (rewardflow/viewer/): every shared prompt with
both runs' responses side by side, the prompts whose verdict changed first.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardflow.errors import RewardflowError
from rewardflow.jsonl import write_text_atomic
from rewardflow.metrics import McNemar, PairedDiff, mcnemar, paired_bootstrap_diff
from rewardflow.run_files import RunFiles, load_run
from rewardflow.viewer import write_viewer


@dataclass(frozen=True)
class Comparison:
    baseline: str
    candidate: str
    reward: str
    paired: PairedDiff
    mcnemar: McNemar | None


def _binary(scores: dict[str, list[float]]) -> dict[str, bool] | None:
    """Per-prompt pass/fail, if every prompt has exactly one 0/1 score."""
    if not all(len(values) == 1 and values[0] in (0.0, 1.0) for values in scores.values()):
        return None
    return {prompt: values[0] == 1.0 for prompt, values in scores.items()}


def compare(
    baseline: RunFiles, candidate: RunFiles, reward: str, resamples: int = 2000, seed: int = 0
) -> Comparison:
    a, b = baseline.per_prompt_scores(reward), candidate.per_prompt_scores(reward)
    paired = paired_bootstrap_diff(
        {p: sum(v) / len(v) for p, v in a.items()},
        {p: sum(v) / len(v) for p, v in b.items()},
        resamples=resamples,
        seed=seed,
    )
    binary_a, binary_b = _binary(a), _binary(b)
    test = mcnemar(binary_a, binary_b) if binary_a is not None and binary_b is not None else None
    return Comparison(baseline.name, candidate.name, reward, paired, test)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def render_markdown(comparisons: Sequence[Comparison]) -> str:
    first = comparisons[0]
    lines = [
        f"# rewardflow comparison: {first.reward}",
        "",
        f"Baseline `{first.baseline}`; each run is compared with it on the prompts both "
        "scored (failed generations and score errors excluded).",
        "",
        "| run | shared prompts | baseline mean | run mean | difference | 95% interval "
        "(paired bootstrap) | p (bootstrap) | McNemar |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for item in comparisons:
        paired = item.paired
        test = (
            f"{item.mcnemar.a_only} vs {item.mcnemar.b_only} discordant, p = "
            f"{item.mcnemar.p_value:.4g} ({item.mcnemar.method})"
            if item.mcnemar
            else "n/a (not one pass/fail sample per prompt)"
        )
        lines.append(
            f"| {item.candidate} | {paired.shared} | {_pct(paired.mean_a)} | "
            f"{_pct(paired.mean_b)} | {100 * paired.diff:+.1f} pts | "
            f"{100 * paired.low:+.1f} to {100 * paired.high:+.1f} pts | {paired.p_value:.4g} | "
            f"{test} |"
        )
    return "\n".join(lines) + "\n"


def render_html(markdown: str) -> str:
    """The same table as a self-contained HTML page (no external resources)."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    body = []
    for index, row in enumerate(rows):
        if index == 1:
            continue  # the Markdown alignment row
        cells = [html.escape(cell.strip()) for cell in row.strip("|").split("|")]
        tag = "th" if index == 0 else "td"
        body.append("<tr>" + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>")
    intro = "".join(
        f"<p>{html.escape(line.lstrip('# '))}</p>"
        for line in markdown.splitlines()
        if line and not line.startswith("|")
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>rewardflow comparison</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px}"
        "table{border-collapse:collapse}</style>"
        f"{intro}<table>{''.join(body)}</table>"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rewardflow-compare", description=__doc__.split("\n")[0])
    parser.add_argument(
        "runs", nargs="+", help="run directories, results/<run_name>; first is the baseline"
    )
    parser.add_argument("--reward", help="reward to compare (default: the baseline's primary)")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--html", type=Path, help="also write a self-contained HTML page here")
    parser.add_argument(
        "--viewer",
        type=Path,
        metavar="OUT",
        help="also write the paired results viewer (exactly two runs) as one HTML file here",
    )
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give at least two run directories")
    if args.viewer and len(args.runs) != 2:
        parser.error("--viewer pairs exactly two runs: give a baseline and one candidate")
    try:
        runs = [load_run(path) for path in args.runs]
        reward = args.reward or runs[0].summary["primary_reward"]
        comparisons = [compare(runs[0], run, reward, args.resamples, args.seed) for run in runs[1:]]
    except (RewardflowError, ValueError) as error:
        print(f"rewardflow-compare: {error}", file=sys.stderr)
        return 1
    markdown = render_markdown(comparisons)
    print(markdown)
    if args.out:
        write_text_atomic(args.out, markdown)
    if args.html:
        write_text_atomic(args.html, render_html(markdown))
    if args.viewer:
        paired = dataclasses.asdict(comparisons[0].paired)
        try:
            write_viewer(runs, args.viewer, comparison={"reward": reward, **paired})
        except RewardflowError as error:
            print(f"rewardflow-compare: {error}", file=sys.stderr)
            return 1
        print(f"paired viewer: {args.viewer}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
