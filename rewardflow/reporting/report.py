"""The run's report: figures and sample tables for Snakemake's ``--report``.

Pure functions over the records and summary.json (no Snakemake import), so a notebook or a
test can call them. The group figures draw the summary's breakdowns rather than estimating the
groups again, so a figure and summary.md never disagree.
Each ``plot_*`` function draws exactly what a small data helper beside it returns
(:func:`score_distribution`, :func:`group_estimates`, :func:`length_score_points`,
:func:`token_counts`, :func:`table_samples`), so every plotted number can be asserted without
reading pixels. Those helpers read a :class:`ReportData`, which the run's samples are reduced
to in one streaming pass: per sample only the numbers a figure plots, and of the sample tables
only the rows they show, so the report's memory does not grow with the records' size.

Failures are kept apart from scores here as everywhere else: a failed or unsent generation and
a crashing reward have no score, so they are counted beside the histogram and listed in their
own table, never drawn as a 0. An answer cut off at ``max_tokens`` is scored like any other,
but flagged in its reason and counted in the histogram's title, so a "wrong" answer that never
finished is told apart from a wrong one. Figures are PNG files and tables self-contained HTML files
(inline CSS, no script), so the report renders offline.
"""

from __future__ import annotations

import html
import json
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rewardflow.errors import ConfigError, DatasetError
from rewardflow.jsonl import write_text_atomic
from rewardflow.reporting.run_files import Sample, read_samples
from rewardflow.rewards._messages import content_text, shorten
from rewardflow.summary.statistics import Estimate
from rewardflow.summary.tally import TRUNCATED

# Agg renders to files without a display, so the rule also runs on a headless node or in a
# cluster job (switching is allowed after pyplot's import, before any figure exists).
matplotlib.use("Agg")

SCORE_DISTRIBUTION = "score_distribution.png"
LENGTH_VS_SCORE = "length_vs_score.png"
TOKENS = "tokens.png"
LOWEST_SAMPLES = "lowest_samples.html"
FAILED_SAMPLES = "failed_samples.html"

MAX_GROUPS = 30
TEXT_PREVIEW_CHARS = 300
# Lengths spanning more than this factor are drawn on a log axis, or the short ones would
# collapse into the first pixel column.
LOG_SCALE_RATIO = 50.0
JITTER = 0.03
DPI = 100

# Metadata field names become file names (group_<field>.png), so they are kept to safe ones.
_SAFE_FIELD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")

# The failed table lists failures first, then score errors, then what the budget left unsent.
_FAILED_ORDER = {"generation_failed": 0, "score_error": 1, "not_attempted": 2}

TableKind = Literal["lowest", "failed"]


# --- the run's samples, reduced to what the report shows -----------------------------------

TABLE_ROWS = 25


@dataclass
class _Table:
    """The first ``limit`` samples of a table by their sort order, and how many qualify.

    Kept by sorting and cutting whenever twice the rows accumulate, so a table of a million
    qualifying samples holds at most ``2 * limit`` of them.
    """

    limit: int
    rows: list[tuple[tuple[Any, ...], Sample]] = field(default_factory=list)
    total: int = 0

    def add(self, order: tuple[Any, ...], sample: Sample) -> None:
        self.total += 1
        self.rows.append((order, sample))
        if len(self.rows) >= 2 * max(self.limit, 1):
            self._cut()

    def _cut(self) -> None:
        self.rows.sort(key=lambda row: row[0])
        del self.rows[self.limit :]

    def top(self) -> list[Sample]:
        self._cut()
        return [sample for _, sample in self.rows]


class ReportData:
    """What the report draws, from one pass over the run's samples (:meth:`add` each).

    ``reward`` is the reward of the histogram (the primary one); ``table_rows`` how many rows
    each sample table keeps. Per sample only numbers are kept (a score, a length, two token
    counts); whole records only for the rows of the tables.
    """

    def __init__(self, reward: str, table_rows: int = TABLE_ROWS) -> None:
        self.reward = reward
        self.table_rows = table_rows
        self.reward_names: set[str] = set()
        self.scores: array[float] = array("d")
        self.unscored = {"generation_failed": 0, "not_attempted": 0, "score_error": 0}
        self.truncated = 0
        self.lengths: array[int] = array("q")
        self.length_scores: array[float] = array("d")
        self.prompt_tokens: array[int] = array("q")
        self.completion_tokens: array[int] = array("q")
        self.tables: dict[TableKind, _Table] = {
            "lowest": _Table(table_rows),
            "failed": _Table(table_rows),
        }

    def add(self, sample: Sample) -> None:
        score = sample.score
        self.reward_names.update(score.rewards)
        result = score.rewards.get(self.reward) or {}
        if score.status in ("generation_failed", "not_attempted"):
            self.unscored[score.status] += 1
        elif "error" in result or result.get("score") is None:
            self.unscored["score_error"] += 1
        else:
            self.scores.append(float(result["score"]))
            self.truncated += is_cut_off(sample)
        primary = sample.primary_score
        if primary is not None:
            self.lengths.append(len(sample.response.response or ""))
            self.length_scores.append(primary)
            self.tables["lowest"].add((primary, sample.key), sample)
        if score.status in _FAILED_ORDER:
            self.tables["failed"].add((_FAILED_ORDER[score.status], sample.key), sample)
        usage = sample.response.usage
        if usage:
            self.prompt_tokens.append(int(usage.get("prompt_tokens", 0)))
            self.completion_tokens.append(int(usage.get("completion_tokens", 0)))


def read_report_data(
    response_paths: Iterable[str | Path],
    score_paths: Iterable[str | Path],
    reward: str,
    table_rows: int = TABLE_ROWS,
) -> ReportData:
    """Stream the run's samples (:func:`~rewardflow.reporting.run_files.read_samples`: a
    response without its score, or the reverse, is an error) into a :class:`ReportData`."""
    data = ReportData(reward, table_rows)
    for sample in read_samples(response_paths, score_paths):
        data.add(sample)
    return data


# --- figures: shared plumbing --------------------------------------------------------------


@contextmanager
def _figure(
    path: str | Path, width: float = 7.0, height: float = 4.0, columns: int = 1
) -> Iterator[tuple[Figure, Any]]:
    """A figure that is saved to ``path`` and always closed, so many reports do not leak."""
    figure, axes = plt.subplots(ncols=columns, figsize=(width, height), squeeze=False)
    try:
        yield figure, axes[0] if columns > 1 else axes[0][0]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.tight_layout()
        figure.savefig(path, dpi=DPI)
    finally:
        plt.close(figure)


def _no_data(axes: Axes, message: str) -> None:
    """An empty run still gets every figure (Snakemake expects them), saying why it is empty."""
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


# --- score distribution --------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreDistribution:
    """The scores of one reward, and how many samples have none (and why)."""

    scores: Sequence[float]
    failed: int = 0
    not_attempted: int = 0
    score_errors: int = 0
    truncated: int = 0  # of the scores: answers cut off at max_tokens


def score_distribution(run: ReportData) -> ScoreDistribution:
    """The histogram reward's scores of the samples it scored; everything else only counted.

    Read from each sample's ``rewards[reward]`` so any reward can be plotted; for the primary
    reward this is exactly the score records' ``scored`` / ``score_error`` split.
    """
    _check_reward_exists(run)
    return ScoreDistribution(
        run.scores,
        run.unscored["generation_failed"],
        run.unscored["not_attempted"],
        run.unscored["score_error"],
        run.truncated,
    )


def is_cut_off(sample: Sample) -> bool:
    """Whether the answer stopped at ``max_tokens`` rather than finishing."""
    return sample.response.status == "ok" and sample.response.finish_reason == TRUNCATED


def distribution_title(data: ScoreDistribution, reward: str) -> str:
    """What the histogram holds and, beside it, what it leaves out."""
    title = (
        f"{reward}: {len(data.scores)} scored samples\n"
        f"not in the histogram: failed {data.failed}, not attempted {data.not_attempted}, "
        f"score errors {data.score_errors}"
    )
    if data.truncated:
        title += f"\ncut off at max_tokens: {data.truncated} (in the histogram)"
    return title


def _check_reward_exists(run: ReportData) -> None:
    """A misspelt reward name would otherwise show every sample as a score error."""
    names = sorted(run.reward_names)
    if names and run.reward not in names:
        raise ConfigError(f"no sample has a reward named {run.reward!r}; the run has {names}")


def plot_score_distribution(run: ReportData, path: str | Path) -> None:
    """Histogram of the scores, with the unscored samples counted in the title, not as 0."""
    data = score_distribution(run)
    primary_reward = run.reward
    with _figure(path) as (_, axes):
        axes.set_title(distribution_title(data, primary_reward), fontsize=10)
        if not data.scores:
            _no_data(axes, "no scored samples")
            return
        scores = (
            np.frombuffer(data.scores, dtype=np.float64)
            if isinstance(data.scores, array)
            else data.scores
        )
        axes.hist(scores, bins=20, range=(0.0, 1.0), color="#4c72b0", edgecolor="white")
        axes.set_xlim(0.0, 1.0)
        axes.set_xlabel(f"{primary_reward} score")
        axes.set_ylabel("samples")


# --- mean score by metadata group ----------------------------------------------------------


@dataclass(frozen=True)
class GroupEstimate:
    """The mean primary score of the prompts whose metadata field has one value."""

    label: str
    estimate: Estimate


def group_estimates(
    breakdown: Mapping[str, Mapping[str, Any]], max_groups: int = MAX_GROUPS
) -> list[GroupEstimate]:
    """The groups of one of summary.json's ``breakdowns``, best first; beyond ``max_groups``
    only the largest (most prompts) are kept, since a figure of hundreds of bars says nothing.

    The figures are the summary's own, computed once by the aggregate stage, so the figure and
    summary.md always agree on a group; groups with no scored sample are not in the summary.
    """
    groups = [GroupEstimate(label, Estimate.from_dict(data)) for label, data in breakdown.items()]
    groups.sort(key=lambda group: (-group.estimate.prompts, group.label))
    kept = groups[:max_groups]
    kept.sort(key=lambda group: (-group.estimate.mean, group.label))
    return kept


def summary_breakdown(summary: Mapping[str, Any], field: str) -> Mapping[str, Mapping[str, Any]]:
    """The summary's groups by ``field``; an error when the summary has none for it."""
    breakdowns = summary.get("breakdowns") or {}
    if field not in breakdowns:
        raise DatasetError(
            f"summary.json has no breakdown by {field!r} (metrics.group_by); rerun the "
            "aggregate step so that the summary and the report come from the same config"
        )
    return breakdowns[field]


def plot_group_scores(
    breakdown: Mapping[str, Mapping[str, Any]], field: str, path: str | Path
) -> None:
    """Horizontal bars of the mean primary score per group, with 95% intervals."""
    groups = group_estimates(breakdown)
    hidden = len(breakdown) - len(groups)
    with _figure(path, width=8.0, height=1.5 + 0.32 * max(len(groups), 1)) as (_, axes):
        title = f"mean primary score by {field} (95% interval, clustered by prompt)"
        if hidden:
            title += f"\n{hidden} smaller groups not shown; summary.md lists every group"
        axes.set_title(title)
        if not groups:
            _no_data(axes, "no scored samples")
            return
        means = [group.estimate.mean for group in groups]
        errors = [
            [group.estimate.mean - group.estimate.low for group in groups],
            [group.estimate.high - group.estimate.mean for group in groups],
        ]
        labels = [f"{shorten(group.label, 40)} (n={group.estimate.prompts})" for group in groups]
        positions = range(len(groups))
        axes.barh(positions, means, xerr=errors, color="#4c72b0", ecolor="black", capsize=3)
        axes.set_yticks(list(positions), labels, fontsize=8)
        axes.invert_yaxis()  # the first (best) group on top
        axes.set_xlim(0.0, 1.0)
        axes.set_xlabel("mean score over prompts")


# --- response length vs score --------------------------------------------------------------


def length_score_points(run: ReportData) -> list[tuple[int, float]]:
    """(response length in characters, primary score) of each scored sample."""
    return list(zip(run.lengths, run.length_scores, strict=True))


def use_log_scale(lengths: Sequence[int] | npt.NDArray[np.int64]) -> bool:
    """Whether lengths span so wide a range that a linear axis would hide the short ones."""
    if not len(lengths):
        return False
    return int(np.max(lengths)) / max(int(np.min(lengths)), 1) > LOG_SCALE_RATIO


def jitter(count: int, seed: int = 0) -> npt.NDArray[np.float64]:
    """``count`` offsets in [-JITTER, JITTER]: the numbers ``random.Random(seed).uniform(-JITTER,
    JITTER)`` draws one by one (numpy's legacy Mersenne Twister seeded with ``[seed]`` is the
    standard library's generator), drawn at once into one array rather than a list."""
    uniform = np.random.RandomState([seed]).random_sample(count)
    return -JITTER + (JITTER - -JITTER) * uniform


def plot_length_vs_score(run: ReportData, path: str | Path) -> None:
    """Scatter of length against score; scores are jittered since they are often just 0 or 1."""
    with _figure(path) as (_, axes):
        count = len(run.lengths)
        axes.set_title(f"response length vs primary score ({count} scored samples)")
        if not count:
            _no_data(axes, "no scored samples")
            return
        # Flat arrays, not a list of points: a million points as tuples take ~100 MB.
        lengths = np.frombuffer(run.lengths, dtype=np.int64)
        scores = np.frombuffer(run.length_scores, dtype=np.float64) + jitter(count)
        if use_log_scale(lengths):
            axes.set_xscale("log")
            lengths = np.maximum(lengths, 1)
        axes.scatter(lengths, scores, s=12, alpha=0.5, color="#4c72b0", linewidths=0)
        axes.set_xlabel("response length (characters)")
        axes.set_ylabel("primary score (jittered)")
        axes.set_ylim(-0.1, 1.1)


# --- tokens and cost -----------------------------------------------------------------------


def token_counts(run: ReportData) -> tuple[list[int], list[int]]:
    """Prompt and completion tokens of each sample that reported usage."""
    return list(run.prompt_tokens), list(run.completion_tokens)


def tokens_title(summary: Mapping[str, Any]) -> str:
    """Totals from the summary, so the figure states the same numbers as summary.json."""
    usage = summary.get("usage") or {}
    title = (
        f"{usage.get('total_tokens', 0):,} tokens ({usage.get('prompt_tokens', 0):,} prompt "
        f"+ {usage.get('completion_tokens', 0):,} completion)"
    )
    if summary.get("cost_usd") is not None:
        title += f", estimated cost ${summary['cost_usd']:,.4f}"
    return title


def plot_tokens_and_cost(summary: Mapping[str, Any], run: ReportData, path: str | Path) -> None:
    """Per-sample histograms of prompt and completion tokens, side by side (their scales
    differ), titled with the run's totals and cost."""
    prompt_tokens = np.frombuffer(run.prompt_tokens, dtype=np.int64) if run.prompt_tokens else []
    completion_tokens = (
        np.frombuffer(run.completion_tokens, dtype=np.int64) if run.completion_tokens else []
    )
    with _figure(path, width=9.0, columns=2) as (figure, axes):
        figure.suptitle(tokens_title(summary), fontsize=10)
        for axis, values, name in zip(
            axes, (prompt_tokens, completion_tokens), ("prompt", "completion"), strict=True
        ):
            axis.set_title(f"{name} tokens per sample", fontsize=9)
            if not len(values):
                _no_data(axis, "no usage reported")
                continue
            axis.hist(values, bins=30, color="#4c72b0", edgecolor="white")
            axis.set_xlabel("tokens")
            axis.set_ylabel("samples")


# --- sample tables -------------------------------------------------------------------------


def table_samples(
    run: ReportData, kind: TableKind, limit: int = TABLE_ROWS
) -> tuple[list[Sample], int]:
    """The rows of a table (at most ``limit``, and at most the ``table_rows`` the data kept)
    and how many samples qualify in all.

    ``lowest``: scored samples, lowest score first. ``failed``: samples without a score,
    generation failures first, then score errors, then unsent ones.
    """
    if kind not in run.tables:
        raise ValueError(f"kind must be 'lowest' or 'failed', got {kind!r}")
    table = run.tables[kind]
    return table.top()[:limit], table.total


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The prompt as the model last saw it: the final user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def sample_reason(sample: Sample) -> str:
    """Why the sample scored as it did: the error if there is one, else each reward's reason,
    led by a note when the answer was cut off at ``max_tokens``."""
    error = sample.response.error
    if error is not None:
        text = f"{error.type}: {error.message}"
        if sample.response.status == "failed":
            text += f" ({error.attempts} attempt{'' if error.attempts == 1 else 's'})"
        return text
    reasons = (
        [sample.score.error]
        if sample.score.error
        else [
            f"{name}: {result['reason']}" if result.get("reason") else name
            for name, result in sample.score.rewards.items()
        ]
    )
    if is_cut_off(sample):
        reasons.insert(0, f"cut off at max_tokens (finish_reason: {TRUNCATED})")
    return "; ".join(reasons)


def _text_cell(text: str | None) -> str:
    """Escaped text, cut to a preview with the full text behind a <details> toggle."""
    if text is None:
        return '<td><span class="none">none</span></td>'
    if len(text) <= TEXT_PREVIEW_CHARS:
        return f'<td><div class="text">{html.escape(text)}</div></td>'
    preview = html.escape(text[:TEXT_PREVIEW_CHARS])
    return (
        f'<td><div class="text">{preview}…</div><details><summary>full text '
        f'({len(text):,} characters)</summary><div class="text">{html.escape(text)}</div>'
        "</details></td>"
    )


def _row(rank: int, sample: Sample) -> str:
    score = sample.primary_score
    cells = [
        f"<td>{rank}</td>",
        f"<td>{html.escape(sample.response.id)}</td>",
        f"<td>{sample.response.sample_index}</td>",
        f"<td>{html.escape(sample.score.status)}</td>",
        f"<td>{'' if score is None else f'{score:.3g}'}</td>",
        _text_cell(sample_reason(sample)),
        _text_cell(last_user_text(sample.response.messages)),
        _text_cell(sample.response.response),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


_TABLE_TITLES = {
    "lowest": "Lowest-scoring samples",
    "failed": "Failed, score-error and not-attempted samples",
}
_COLUMNS = ("#", "id", "sample", "status", "score", "reason / error", "prompt", "response")
_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
.text { white-space: pre-wrap; word-break: break-word; max-width: 40em; }
.none { color: #888; font-style: italic; }
summary { cursor: pointer; color: #36c; }
"""


def render_sample_table(run: ReportData, kind: TableKind, limit: int = TABLE_ROWS) -> str:
    """A complete HTML page: inline CSS, no script, every record field escaped."""
    rows, total = table_samples(run, kind, limit)
    title = _TABLE_TITLES[kind]
    header = "".join(f"<th>{name}</th>" for name in _COLUMNS)
    body = "\n".join(_row(rank, sample) for rank, sample in enumerate(rows, start=1))
    if not rows:
        body = f'<tr><td colspan="{len(_COLUMNS)}">none</td></tr>'
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n<p>{len(rows)} of {total} shown.</p>\n"
        f"<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
        "</body>\n</html>\n"
    )


def write_sample_table(
    run: ReportData, path: str | Path, kind: TableKind, limit: int = TABLE_ROWS
) -> None:
    """Write the ``lowest`` or ``failed`` samples table to ``path``."""
    write_text_atomic(path, render_sample_table(run, kind, limit))


# --- everything at once --------------------------------------------------------------------


def group_file_name(field: str) -> str:
    """``group_<field>.png``; a field that would not make a plain file name is refused."""
    if not field or not set(field) <= _SAFE_FIELD or field.startswith("."):
        raise ConfigError(
            f"metrics.group_by: {field!r} cannot name a file; use a metadata field whose name "
            "has only letters, digits, '_', '.' and '-'"
        )
    return f"group_{field}.png"


def build_report(
    summary_path: str | Path,
    response_paths: Iterable[str | Path],
    score_paths: Iterable[str | Path],
    out_dir: str | Path,
    group_fields: Sequence[str],
) -> list[Path]:
    """Write every figure and table of the report into ``out_dir``; return their paths.

    The file names are fixed, since the workflow's rule declares them as outputs.
    """
    out_dir = Path(out_dir)
    summary = json.loads(Path(summary_path).read_text(encoding="utf-8"))
    group_paths = {name: out_dir / group_file_name(name) for name in group_fields}
    run = read_report_data(response_paths, score_paths, summary["primary_reward"])
    plot_score_distribution(run, out_dir / SCORE_DISTRIBUTION)
    for name, path in group_paths.items():
        plot_group_scores(summary_breakdown(summary, name), name, path)
    plot_length_vs_score(run, out_dir / LENGTH_VS_SCORE)
    plot_tokens_and_cost(summary, run, out_dir / TOKENS)
    write_sample_table(run, out_dir / LOWEST_SAMPLES, "lowest")
    write_sample_table(run, out_dir / FAILED_SAMPLES, "failed")
    return [
        out_dir / SCORE_DISTRIBUTION,
        *group_paths.values(),
        out_dir / LENGTH_VS_SCORE,
        out_dir / TOKENS,
        out_dir / LOWEST_SAMPLES,
        out_dir / FAILED_SAMPLES,
    ]
