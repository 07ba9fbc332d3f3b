"""Two or more runs side by side, on the prompts they share (``rewardflow compare``).

Comparing checkpoint A with checkpoint B is only meaningful on the same prompts, and a
difference is only news if it is bigger than noise; so every run is compared with the first
(the baseline) on their shared prompts, with a paired bootstrap interval for the difference of
means and, when both runs have one pass/fail sample per prompt, McNemar's test.

    rewardflow compare results/base results/candidate [--reward accuracy] [--out cmp.md]
        [--viewer pair.html]

``--viewer`` writes the paired results viewer (rewardflow/reporting/viewer/): every shared
prompt with
both runs' responses side by side, the prompts whose verdict changed first.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from rewardflow.reporting.run_files import RunFiles
from rewardflow.summary.statistics import McNemar, PairedDiff, mcnemar, paired_bootstrap_diff


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
