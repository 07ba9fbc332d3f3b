"""The report's figures and tables, on a handful of synthetic records.

Every figure is drawn from a small data helper, so the tests assert on the numbers plotted
(a failure must never be drawn as a 0) and check that the files are real PNG images.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from rewardflow.config import section_defaults
from rewardflow.config.summary import SummarySettings
from rewardflow.errors import ConfigError, DatasetError
from rewardflow.jsonl import write_json_atomic, write_jsonl_atomic
from rewardflow.records import GenerationError, ResponseRecord, ScoreRecord
from rewardflow.reporting.report import (
    JITTER,
    ReportData,
    build_report,
    distribution_title,
    group_estimates,
    group_file_name,
    jitter,
    last_user_text,
    length_score_points,
    plot_group_scores,
    read_report_data,
    render_sample_table,
    sample_reason,
    score_distribution,
    table_samples,
    token_counts,
    tokens_title,
    use_log_scale,
)
from rewardflow.reporting.run_files import read_samples
from rewardflow.summary.aggregate import tally_run
from rewardflow.summary.run_metrics import breakdowns

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XSS = "<script>alert(1)</script>"
LONG_RESPONSE = "step " * 200 + "the answer is 7"
# The response status behind each score status.
GENERATION_STATUS = {
    "scored": "ok",
    "score_error": "ok",
    "generation_failed": "failed",
    "not_attempted": "not_attempted",
}


def pair(
    prompt_id: str,
    index: int = 0,
    *,
    status: str = "scored",
    score: float | None = None,
    response: str | None = "42",
    topic: str | None = "add",
    question: str = "What is 40 + 2?",
    finish_reason: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A response record and its score record, built through the record classes."""
    generated = status in ("scored", "score_error")
    error = None
    if status == "generation_failed":
        error = GenerationError("ModelInvalidRequestError", "context too long", attempts=3)
    elif status == "not_attempted":
        error = GenerationError("BudgetExhausted", "not sent: the run's budget was reached")
    metadata = {} if topic is None else {"topic": topic}
    response_record = ResponseRecord(
        id=prompt_id,
        sample_index=index,
        status=GENERATION_STATUS[status],
        messages=[
            {"role": "system", "content": "Be careful."},
            {"role": "user", "content": question},
        ],
        ground_truth="42",
        response=response if generated else None,
        finish_reason=finish_reason if generated else None,
        usage={"prompt_tokens": 20, "completion_tokens": len(response or "")}
        if generated
        else None,
        error=error,
        metadata=metadata,
    )
    if status == "scored":
        rewards = {"accuracy": {"score": score, "reason": f"graded {score}"}}
    elif status == "score_error":
        rewards = {"accuracy": {"error": "ValueError: boom"}}
    else:
        rewards = {}
    score_record = ScoreRecord(
        id=prompt_id,
        sample_index=index,
        status=status,
        score=score if status == "scored" else None,
        rewards=rewards,
        error=(
            "ValueError: boom" if status == "score_error" else (error.message if error else None)
        ),
        metadata=metadata,
    )
    return response_record.to_dict(), score_record.to_dict()


def synthetic_pairs() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        pair("q1", 0, score=1.0, response="42"),
        pair("q1", 1, score=0.0, response="41"),
        pair("q2", status="generation_failed"),
        pair("q3", status="not_attempted", topic="sub"),
        pair("q4", status="score_error", response="forty-two", topic="sub"),
        pair("q5", score=0.5, response=XSS, topic="sub", question="Is <b>this</b> bold?"),
        pair("q6", score=0.25, response=LONG_RESPONSE, topic=None),
    ]


def write_shards(directory: Path, pairs, shards: int = 2) -> tuple[list[Path], list[Path]]:
    """Responses and scores in ``shards`` files each, as the workflow writes them."""
    responses, scores = [], []
    for shard in range(shards):
        part = pairs[shard::shards]
        responses.append(directory / f"responses-{shard}.jsonl")
        scores.append(directory / f"scores-{shard}.jsonl")
        write_jsonl_atomic(responses[-1], [response for response, _ in part])
        write_jsonl_atomic(scores[-1], [score for _, score in part])
    return responses, scores


@pytest.fixture
def shards(tmp_path) -> tuple[list[Path], list[Path]]:
    return write_shards(tmp_path, synthetic_pairs())


@pytest.fixture
def run(shards) -> ReportData:
    return read_report_data(*shards, "accuracy")


def table_rows(page: str) -> list[tuple[str, int, str]]:
    """(id, sample index, status) of each row of a rendered table, in order."""
    pattern = r"<tr><td>\d+</td><td>([^<]*)</td><td>(\d+)</td><td>([^<]*)</td>"
    return [(id_, int(index), status) for id_, index, status in re.findall(pattern, page)]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header; fails unless the file is a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# --- loading -------------------------------------------------------------------------------


def test_read_samples_pairs_each_response_with_its_own_score(tmp_path):
    pairs = synthetic_pairs()
    responses, _ = write_shards(tmp_path, pairs)
    # Scores in other files and another order must still be joined by (id, sample_index).
    shuffled = tmp_path / "scores-shuffled.jsonl"
    write_jsonl_atomic(shuffled, [score for _, score in reversed(pairs)])

    samples = list(read_samples(responses, [shuffled]))

    assert [sample.key for sample in samples] == [
        (response["id"], response["sample_index"]) for response, _ in pairs[0::2] + pairs[1::2]
    ]  # in the order of the response shards
    for sample in samples:
        assert (sample.score.id, sample.score.sample_index) == sample.key
    assert {sample.key: sample.primary_score for sample in samples}[("q1", 1)] == 0.0


def test_read_samples_refuses_responses_without_scores(tmp_path):
    responses, scores = write_shards(tmp_path, synthetic_pairs())

    with pytest.raises(DatasetError, match="3 responses without a score"):
        list(read_samples(responses, scores[:1]))


@pytest.mark.parametrize("kind", ["response", "score"])
def test_read_samples_refuses_a_repeated_sample_at_its_second_line(tmp_path, kind):
    pairs = synthetic_pairs()
    responses, scores = write_shards(tmp_path, pairs)
    repeated = (responses if kind == "response" else scores)[1]
    first_line = repeated.read_text(encoding="utf-8").splitlines(keepends=True)[0]
    with repeated.open("a", encoding="utf-8") as handle:
        handle.write(first_line)
    line = len(repeated.read_text(encoding="utf-8").splitlines())

    with pytest.raises(DatasetError, match=re.escape(f"{repeated}:{line}: {kind} ('q1', 1)")):
        list(read_samples(responses, scores))


def test_read_samples_tells_keys_that_share_a_hash_apart(tmp_path):
    # hash(-1) == hash(-2) in CPython, so these two keys share their hash: the compact record
    # of the keys seen suspects them, and the check against the files clears them.
    pairs = [pair("q1", -1, score=1.0), pair("q1", -2, score=0.0)]
    assert hash(("q1", -1)) == hash(("q1", -2))
    responses, scores = write_shards(tmp_path, pairs, shards=1)

    samples = list(read_samples(responses, scores))

    assert [sample.key for sample in samples] == [("q1", -1), ("q1", -2)]


def test_jitter_is_the_standard_library_draws_at_once():
    draws = random.Random(0)
    assert jitter(1000).tolist() == [draws.uniform(-JITTER, JITTER) for _ in range(1000)]


# --- score distribution --------------------------------------------------------------------


def test_failures_are_counted_beside_the_histogram_never_as_zero(run):
    data = score_distribution(run)

    assert sorted(data.scores) == [0.0, 0.25, 0.5, 1.0]  # the one 0 is q1's real wrong answer
    assert (data.failed, data.not_attempted, data.score_errors) == (1, 1, 1)


def test_a_misspelt_reward_is_an_error_not_all_score_errors(shards):
    with pytest.raises(ConfigError, match="accurcy"):
        score_distribution(read_report_data(*shards, "accurcy"))


# --- groups --------------------------------------------------------------------------------


def breakdowns_of(scores: list[ScoreRecord], field: str) -> dict[str, Any]:
    """The breakdowns by ``field`` as the aggregate stage computes them from the records."""
    settings = SummarySettings.from_config({
        "run_name": "r", "model": {"name": "m"}, "prices": {}, "generation": {"samples": 1},
        "metrics": {**section_defaults("metrics"), "group_by": [field]},
        "rewards": [{"name": "accuracy"}],
    })  # fmt: skip
    scored = tally_run(settings, [], scores).scored_samples()
    return breakdowns(scored, [field], resamples=300, seed=1)


def summary_of(pairs) -> dict[str, Any]:
    """summary.json's breakdowns by topic, as the aggregate stage computes them."""
    scores = [ScoreRecord.from_dict(score) for _, score in pairs]
    return {"breakdowns": breakdowns_of(scores, "topic")}


def written(mean: float, low: float, high: float, prompts: int) -> dict[str, Any]:
    """One group as summary.json holds it."""
    return {"mean": mean, "ci95": [low, high], "ci_method": "bootstrap over prompts",
            "prompts": prompts, "samples": 2 * prompts}  # fmt: skip


def test_group_figures_are_the_summarys_breakdowns_best_first():
    # Intervals no estimator would give these means: a bar re-estimated would show.
    breakdown = {
        "sub": written(0.5, 0.11, 0.77, prompts=3),
        "(missing)": written(0.25, 0.2, 0.3, prompts=1),
        "add": written(0.75, 0.05, 0.99, prompts=2),
    }

    groups = group_estimates(breakdown)

    assert [group.label for group in groups] == ["add", "sub", "(missing)"]
    add, sub, missing = (group.estimate for group in groups)
    assert (add.mean, add.low, add.high, add.prompts, add.samples) == (0.75, 0.05, 0.99, 2, 4)
    assert (sub.mean, sub.low, sub.high, sub.prompts, sub.samples) == (0.5, 0.11, 0.77, 3, 6)
    assert (missing.mean, missing.low, missing.high) == (0.25, 0.2, 0.3)
    assert {group.estimate.method for group in groups} == {"bootstrap over prompts"}


def test_beyond_the_limit_only_the_largest_groups_are_drawn():
    # g00 has 1 prompt ... g39 has 40; means cycle so that size and rank disagree.
    breakdown = {f"g{i:02d}": written((i % 7) / 7, 0.0, 1.0, prompts=i + 1) for i in range(40)}

    groups = group_estimates(breakdown, max_groups=30)

    assert {group.label for group in groups} == {f"g{i:02d}" for i in range(10, 40)}
    assert [group.label for group in groups[:5]] == ["g13", "g20", "g27", "g34", "g12"]
    means = [group.estimate.mean for group in groups]
    assert means == sorted(means, reverse=True)


def test_a_summary_without_the_breakdown_is_an_error(tmp_path):
    responses, scores = write_shards(tmp_path, synthetic_pairs())
    summary = tmp_path / "summary.json"
    write_json_atomic(summary, {"primary_reward": "accuracy", "breakdowns": {}})

    with pytest.raises(DatasetError, match="no breakdown by 'topic'.*rerun the aggregate"):
        build_report(summary, responses, scores, tmp_path / "report", ["topic"])


def test_group_plot_of_an_absent_field_is_one_missing_group(tmp_path):
    path = tmp_path / "group.png"
    pairs = synthetic_pairs()
    scores = [ScoreRecord.from_dict(score) for _, score in pairs]
    breakdown = breakdowns_of(scores, "no_such_field")["no_such_field"]

    plot_group_scores(breakdown, "no_such_field", path)

    assert [group.label for group in group_estimates(breakdown)] == ["(missing)"]
    assert png_size(path)[0] > 100


# --- length and tokens ---------------------------------------------------------------------


def test_length_points_are_the_scored_samples_only(run):
    points = length_score_points(run)

    assert sorted(points) == sorted(
        [(2, 1.0), (2, 0.0), (len(XSS), 0.5), (len(LONG_RESPONSE), 0.25)]
    )


@pytest.mark.parametrize(
    ("lengths", "log"), [([], False), ([10, 400], False), ([10, 4000], True), ([0, 60], True)]
)
def test_log_scale_only_for_a_wide_range_of_lengths(lengths, log):
    assert use_log_scale(lengths) is log


def test_token_counts_skip_samples_without_usage(run):
    prompt_tokens, completion_tokens = token_counts(run)

    assert prompt_tokens == [20] * 5  # q2 failed and q3 was not sent: no usage
    assert sorted(completion_tokens) == sorted([2, 2, 9, len(XSS), len(LONG_RESPONSE)])


def test_tokens_title_states_the_cost_only_when_known():
    usage = {"prompt_tokens": 1000, "completion_tokens": 234, "total_tokens": 1234}

    assert tokens_title({"usage": usage, "cost_usd": None}) == (
        "1,234 tokens (1,000 prompt + 234 completion)"
    )
    assert tokens_title({"usage": usage, "cost_usd": 0.01234}).endswith("estimated cost $0.0123")


# --- tables --------------------------------------------------------------------------------


def test_lowest_table_lists_scored_samples_lowest_first(run):
    rows, total = table_samples(run, "lowest", limit=3)

    assert total == 4
    assert [sample.key for sample in rows] == [("q1", 1), ("q6", 0), ("q5", 0)]
    page = render_sample_table(run, "lowest", limit=3)
    assert table_rows(page) == [("q1", 1, "scored"), ("q6", 0, "scored"), ("q5", 0, "scored")]
    assert "3 of 4 shown" in page


def test_failed_table_lists_every_unscored_sample_and_no_scored_one(run):
    page = render_sample_table(run, "failed")

    assert table_rows(page) == [
        ("q2", 0, "generation_failed"),
        ("q4", 0, "score_error"),
        ("q3", 0, "not_attempted"),
    ]
    assert "ModelInvalidRequestError: context too long (3 attempts)" in page
    assert "ValueError: boom" in page
    assert "budget was reached" in page


def test_tables_escape_every_record_field(run):
    page = render_sample_table(run, "lowest")

    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Is &lt;b&gt;this&lt;/b&gt; bold?" in page
    assert "<script" not in page  # the page itself runs nothing either


def test_long_text_is_previewed_with_the_full_text_in_details(run):
    page = render_sample_table(run, "lowest")

    preview, full = LONG_RESPONSE[:300], LONG_RESPONSE
    assert f"{preview}…</div><details>" in page
    assert f'<div class="text">{full}</div></details>' in page
    assert page.count("<details>") == 1  # short texts are shown whole


def test_reason_and_prompt_come_from_the_records(shards):
    samples = {sample.key: sample for sample in read_samples(*shards)}

    assert sample_reason(samples[("q1", 0)]) == "accuracy: graded 1.0"
    assert sample_reason(samples[("q3", 0)]).startswith("BudgetExhausted: not sent")
    assert last_user_text(samples[("q5", 0)].response.messages) == "Is <b>this</b> bold?"


CUT_OFF = "cut off at max_tokens (finish_reason: length)"


@pytest.fixture
def shards_with_cut_off_answers(tmp_path) -> tuple[list[Path], list[Path]]:
    pairs = [
        *synthetic_pairs(),
        pair("q7", score=0.0, response="Let's compute 40 + 2.\n40 +", finish_reason="length"),
        pair("q8", score=1.0, response="The answer is 42", finish_reason="length"),
        pair("q9", score=0.0, response="41", finish_reason="stop"),
    ]
    return write_shards(tmp_path, pairs)


@pytest.fixture
def run_with_cut_off_answers(shards_with_cut_off_answers) -> ReportData:
    return read_report_data(*shards_with_cut_off_answers, "accuracy")


def test_an_answer_cut_off_at_max_tokens_says_so_in_its_reason(
    shards_with_cut_off_answers, run_with_cut_off_answers
):
    samples = {sample.key: sample for sample in read_samples(*shards_with_cut_off_answers)}

    assert sample_reason(samples[("q7", 0)]) == f"{CUT_OFF}; accuracy: graded 0.0"
    assert sample_reason(samples[("q9", 0)]) == "accuracy: graded 0.0"
    page = render_sample_table(run_with_cut_off_answers, "lowest")
    assert page.count(CUT_OFF) == 2  # q7 and q8, not the finished q9


def test_the_histogram_counts_the_cut_off_answers_it_contains(run_with_cut_off_answers, tmp_path):
    data = score_distribution(run_with_cut_off_answers)

    assert data.truncated == 2
    assert len(data.scores) == 7  # cut-off answers are scored, so they stay in the histogram
    assert "cut off at max_tokens: 2 (in the histogram)" in distribution_title(data, "accuracy")


def test_tables_keep_only_the_rows_they_show(tmp_path):
    pairs = [pair(f"q{i:02d}", score=(i * 7 % 20) / 20) for i in range(40)]

    data = read_report_data(*write_shards(tmp_path, pairs), "accuracy", table_rows=3)

    assert len(data.tables["lowest"].rows) < 2 * 3  # never the 40 records
    rows, total = table_samples(data, "lowest")
    assert total == 40
    assert [sample.key for sample in rows] == [("q00", 0), ("q20", 0), ("q03", 0)]


def test_unknown_table_kind_is_refused(run):
    with pytest.raises(ValueError, match="kind"):
        table_samples(run, "best")  # type: ignore[arg-type]


# --- the whole report ----------------------------------------------------------------------


def write_summary(path: Path, cost: float | None = 0.5, pairs=None) -> Path:
    """A summary.json as the aggregate stage writes it, with the breakdowns of ``pairs``."""
    usage = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
    summary = {"primary_reward": "accuracy", "usage": usage, "cost_usd": cost}
    write_json_atomic(path, {**summary, **summary_of(pairs or synthetic_pairs())})
    return path


def test_build_report_writes_every_figure_and_table(tmp_path):
    responses, scores = write_shards(tmp_path, synthetic_pairs())
    summary = write_summary(tmp_path / "summary.json")

    paths = build_report(summary, responses, scores, tmp_path / "report", ["topic"])

    assert [path.name for path in paths] == [
        "score_distribution.png",
        "group_topic.png",
        "length_vs_score.png",
        "tokens.png",
        "lowest_samples.html",
        "failed_samples.html",
    ]
    for path in paths:
        assert path.parent == tmp_path / "report"
        if path.suffix == ".png":
            width, height = png_size(path)
            assert width >= 300 and height >= 200
        else:
            assert path.read_text().startswith("<!doctype html>")


def test_a_run_where_everything_failed_still_gets_every_file(tmp_path):
    pairs = [pair("q1", status="generation_failed"), pair("q2", status="not_attempted")]
    responses, scores = write_shards(tmp_path, pairs)
    summary = write_summary(tmp_path / "summary.json", cost=None, pairs=pairs)

    paths = build_report(summary, responses, scores, tmp_path / "report", ["topic"])

    assert all(path.stat().st_size > 0 for path in paths)
    assert len(table_rows((tmp_path / "report" / "failed_samples.html").read_text())) == 2


@pytest.mark.parametrize("field", ["", "a/b", "../x", ".hidden", "two words"])
def test_group_fields_that_cannot_name_a_file_are_refused(field):
    with pytest.raises(ConfigError, match="metrics.group_by"):
        group_file_name(field)
