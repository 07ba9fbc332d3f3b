"""The HTML report end to end: the demo run, then `snakemake --report`, as a user runs them.

The report must open offline: every figure and table is embedded in the one HTML file, and
nothing is loaded from a CDN.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO, run_snakemake

pytestmark = pytest.mark.integration

DEMO_CONFIG = ("--config", "simulator={'latency_ms': 5}")
REPORT_FILES = (
    "score_distribution.png",
    "length_vs_score.png",
    "tokens.png",
    "lowest_samples.html",
    "failed_samples.html",
)
# A caption sentence of each figure and table (workflow/report/*.rst), as the report shows it.
CAPTIONS = (
    "Distribution of the primary reward",
    "Response length in characters",
    "Prompt and completion tokens per sample",
    "The lowest-scoring scored samples",
    "Samples without a score",
)
EXTERNAL_RESOURCE = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """The demo, run once for this module exactly as the quick start runs it."""
    workdir = tmp_path_factory.mktemp("report")
    for name in ("config", "examples"):
        (workdir / name).symlink_to(REPO / name)
    result = run_snakemake(workdir, *DEMO_CONFIG)
    assert result.returncode == 0, result.output
    return workdir


def make_report(workdir: Path, *config: str) -> str:
    result = run_snakemake(workdir, *config, "--report", "report.html")
    assert result.returncode == 0, result.output
    return (workdir / "report.html").read_text(encoding="utf-8")


def test_the_report_embeds_every_figure_and_table_and_loads_nothing_remote(demo_dir):
    for name in REPORT_FILES:
        assert (demo_dir / "results" / "demo" / "report" / name).stat().st_size > 0

    page = make_report(demo_dir, *DEMO_CONFIG)

    missing = [name for name in REPORT_FILES + CAPTIONS if name not in page]
    assert not missing, f"report.html lacks {missing}"
    assert "report/group_" not in page  # the demo config has no metrics.group_by
    assert not EXTERNAL_RESOURCE.findall(page)
    assert "@import" not in page


def test_group_by_adds_one_figure_per_field_without_new_requests(demo_dir):
    config = (*DEMO_CONFIG, "metrics={'group_by': ['answer']}")

    rerun = run_snakemake(demo_dir, *config)

    assert rerun.returncode == 0, rerun.output
    assert "build_report" in rerun.ran_rules
    # Responses are neither requested nor scored again for a report setting.
    assert not {"generate_responses", "score_responses"} & set(rerun.ran_rules)
    page = make_report(demo_dir, *config)
    assert "group_answer.png" in page
    assert "Mean primary score per value of a metadata field" in page


def test_the_viewers_pass_over_the_samples_runs_without_waiting_for_the_summary(tmp_path):
    # The pass over every sample is the viewer's cost; it needs only the shards, so it is a
    # step of its own that can run beside aggregate_scores (at 100,000 prompts the summary
    # takes 3 s and that pass 5 s, which used to run one after the other).
    for name in ("config", "examples"):
        (tmp_path / name).symlink_to(REPO / name)

    partial = run_snakemake(tmp_path, "--until", "build_viewer_data", *DEMO_CONFIG)

    assert partial.returncode == 0, partial.output
    assert "build_viewer_data" in partial.ran_rules
    assert "aggregate_scores" not in partial.ran_rules
    data = tmp_path / "results" / "demo" / "viewer" / "data.html"
    part = data.read_text(encoding="utf-8")

    complete = run_snakemake(tmp_path, *DEMO_CONFIG)

    assert complete.returncode == 0, complete.output
    assert "build_viewer_data" not in complete.ran_rules  # its data was still there
    page = (tmp_path / "results" / "demo" / "viewer.html").read_text(encoding="utf-8")
    assert part in page and 'id="rf-samples-0"' in part
    assert not data.exists()  # a temporary file, once the page is built
