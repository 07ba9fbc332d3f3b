import json
import math

import pytest

from rewardflow.config import section_defaults
from rewardflow.config.summary import SummarySettings
from rewardflow.jsonl import write_jsonl_atomic
from rewardflow.records import GenerationError, ResponseRecord
from rewardflow.rewards.loader import RewardSpec
from rewardflow.scoring.job import run_reward, score_record
from rewardflow.summary.aggregate import aggregate_run, render_markdown, summarize
from rewardflow.summary.statistics import estimate_mean, wilson_interval

Z = 1.96


def wilson_by_quadratic(successes, total, z=Z):
    """Wilson bounds as the roots of (phat - p)^2 = z^2 p (1 - p) / n, solved for p."""
    phat = successes / total
    a = 1 + z * z / total
    b = -(2 * phat + z * z / total)
    c = phat * phat
    root = math.sqrt(b * b - 4 * a * c)
    return ((-b - root) / (2 * a), (-b + root) / (2 * a))


# --- stats -------------------------------------------------------------------------------


def test_wilson_interval_eight_of_ten_matches_hand_computation():
    low, high = wilson_interval(8, 10)
    expected_low, expected_high = wilson_by_quadratic(8, 10)
    assert low == pytest.approx(expected_low, abs=5e-4)
    assert high == pytest.approx(expected_high, abs=5e-4)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)


@pytest.mark.parametrize(("successes", "total"), [(1, 3), (5, 10), (37, 50), (2, 100)])
def test_wilson_interval_matches_quadratic_roots(successes, total):
    low, high = wilson_interval(successes, total, z=Z)
    expected_low, expected_high = wilson_by_quadratic(successes, total)
    assert low == pytest.approx(expected_low, abs=1e-9)
    assert high == pytest.approx(expected_high, abs=1e-9)
    assert low < successes / total < high


def test_wilson_interval_with_no_data_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_all_successes_is_not_degenerate():
    low, high = wilson_interval(20, 20)
    assert high == 1.0
    assert 0.8 < low < 1.0
    assert low == pytest.approx(wilson_by_quadratic(20, 20)[0], abs=5e-4)


def test_wilson_interval_no_successes():
    low, high = wilson_interval(0, 20)
    assert low == 0.0
    assert 0.0 < high < 0.2


def test_wilson_interval_narrows_with_more_data():
    small = wilson_interval(8, 10)
    large = wilson_interval(800, 1000)
    assert large[1] - large[0] < small[1] - small[0]


def test_estimate_mean_single_binary_samples_use_wilson():
    estimate = estimate_mean({"a": [1.0], "b": [1.0], "c": [0.0], "d": [1.0]})
    assert estimate.method == "wilson"
    assert estimate.mean == pytest.approx(0.75)
    assert (estimate.low, estimate.high) == pytest.approx(wilson_by_quadratic(3, 4), abs=5e-4)
    assert (estimate.prompts, estimate.samples) == (4, 4)
    as_written = estimate.to_dict()
    assert list(as_written) == ["mean", "ci95", "ci_method", "prompts", "samples"]
    assert as_written["mean"] == 0.75
    assert [round(bound, 4) for bound in as_written["ci95"]] == [0.3006, 0.9544]  # 3 of 4
    assert (as_written["ci_method"], as_written["prompts"], as_written["samples"]) == (
        "wilson", 4, 4
    )  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_estimate_mean_several_samples_bootstrap_over_prompts(seed):
    scores = {"a": [1.0, 0.0], "b": [1.0, 1.0], "c": [0.0, 0.0], "d": [1.0, 0.0]}
    estimate = estimate_mean(scores, seed=seed)
    # The prompt means are 0.5, 1, 0, 0.5 (mean 0.5), and the bootstrap resamples those four.
    # One drawn prompt mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4: Binomial(2, 1/2)/2,
    # so the mean of four draws is Binomial(8, 1/2)/8. P(0) = 1/256 = 0.4% and P(<= 1/8) =
    # 9/256 = 3.5%: the 2.5% quantile is 1/8, and by symmetry the 97.5% quantile is 7/8. Both
    # sit on a wide step of the distribution, so 2000 resamples find them whatever the seed.
    assert estimate.method == "bootstrap over prompts"
    assert (estimate.mean, estimate.low, estimate.high) == (0.5, 0.125, 0.875)
    assert (estimate.prompts, estimate.samples) == (4, 8)


def test_estimate_mean_weights_each_prompt_once():
    estimate = estimate_mean({"a": [0.5, 0.7], "b": [0.4, 0.6, 0.5], "c": [0.7]})
    assert estimate.mean == pytest.approx((0.6 + 0.5 + 0.7) / 3)
    assert estimate.mean != pytest.approx((0.5 + 0.7 + 0.4 + 0.6 + 0.5 + 0.7) / 6)
    assert estimate.samples == 6


def test_estimate_mean_non_binary_single_samples_use_the_bootstrap():
    estimate = estimate_mean({"a": [0.5], "b": [1.0], "c": [0.0]})
    assert estimate.method == "bootstrap over prompts"
    assert 0.0 <= estimate.low <= estimate.mean <= estimate.high <= 1.0
    assert estimate_mean({"a": [0.5], "b": [1.0], "c": [0.0]}) == estimate  # seeded


def test_estimate_mean_clips_interval_to_unit_range():
    estimate = estimate_mean({"a": [1.0, 1.0], "b": [0.0, 1.0]})
    assert estimate.low >= 0.0
    assert estimate.high == 1.0


def test_estimate_mean_one_prompt_several_samples():
    estimate = estimate_mean({"only": [1.0, 0.0, 1.0]})
    assert estimate.mean == pytest.approx(2 / 3)
    assert (estimate.low, estimate.high) == (0.0, 1.0)
    assert "one prompt" in estimate.method


def test_estimate_mean_without_scores_is_none():
    assert estimate_mean({}) is None
    assert estimate_mean({"a": [], "b": []}) is None
    assert estimate_mean({"a": [], "b": [1.0]}).prompts == 1


# --- scoring -----------------------------------------------------------------------------


def exact_match(messages, ground_truth, **kwargs):
    if messages[-1]["content"] == "boom":
        raise ValueError("cannot parse boom")
    return messages[-1]["content"].strip() == ground_truth


def always_crashes(messages, ground_truth, **kwargs):
    raise RuntimeError("helper reward is broken")


def with_metrics(messages, ground_truth, bonus=0.0, **kwargs):
    return {
        "score": min(1.0, 0.5 + bonus),
        "reason": "fixed",
        "metrics": {"format": float("####" in messages[-1]["content"])},
    }


def out_of_range(messages, ground_truth, **kwargs):
    return 1.5


def spec(name, function, primary=False, params=None):
    return RewardSpec(
        name=name,
        function=function,
        reference=f"tests:{function.__name__}",
        params=params or {},
        primary=primary,
    )


def response(prompt_id, text, ground_truth="4", sample_index=0, usage=None, finish_reason=None):
    return ResponseRecord(
        id=prompt_id,
        sample_index=sample_index,
        status="ok",
        messages=[{"role": "user", "content": f"question {prompt_id}"}],
        ground_truth=ground_truth,
        response=text,
        finish_reason=finish_reason,
        usage=usage,
        metadata={"topic": "arith"},
    )


def failed(prompt_id, sample_index=0, error_type="ModelGenerationError"):
    return ResponseRecord(
        id=prompt_id,
        sample_index=sample_index,
        status="failed",
        messages=[{"role": "user", "content": f"question {prompt_id}"}],
        ground_truth="4",
        response=None,
        error=GenerationError(type=error_type, message="HTTP 503: down", attempts=5),
    )


def test_run_reward_passes_conversation_ground_truth_and_params():
    seen = {}

    def recorder(messages, ground_truth, **kwargs):
        seen.update(messages=messages, ground_truth=ground_truth, kwargs=kwargs)
        return 1

    result = run_reward(spec("r", recorder, params={"tolerance": 0.1}), response("p", "four"))
    assert result == {"score": 1.0, "reason": "", "is_score_valid": True, "metrics": {}}
    assert seen["messages"] == [
        {"role": "user", "content": "question p"},
        {"role": "assistant", "content": "four"},
    ]
    assert seen["ground_truth"] == "4"
    assert seen["kwargs"] == {"tolerance": 0.1}


def test_score_record_scores_a_good_sample():
    record = score_record(response("p1", "4"), [spec("accuracy", exact_match, primary=True)])
    assert record.status == "scored"
    assert record.score == 1.0
    assert record.error is None
    assert record.rewards["accuracy"]["score"] == 1.0
    assert record.metadata == {"topic": "arith"}
    assert (record.id, record.sample_index) == ("p1", 0)


def test_reward_error_on_one_sample_affects_only_that_sample():
    rewards = [spec("accuracy", exact_match, primary=True)]
    good = score_record(response("p1", "4", sample_index=0), rewards)
    bad = score_record(response("p1", "boom", sample_index=1), rewards)
    wrong = score_record(response("p1", "5", sample_index=2), rewards)
    assert good.status == "scored" and good.score == 1.0
    assert wrong.status == "scored" and wrong.score == 0.0
    assert bad.status == "score_error"
    assert bad.score is None
    assert bad.rewards == {"accuracy": {"error": "ValueError: cannot parse boom"}}
    assert bad.error == "ValueError: cannot parse boom"


def test_unusable_reward_value_is_a_score_error():
    record = score_record(response("p", "4"), [spec("bad", out_of_range, primary=True)])
    assert record.status == "score_error"
    assert record.score is None
    assert record.rewards["bad"]["error"].startswith("RewardResultError:")


def test_failed_generation_is_not_scored():
    calls = []

    def counting(messages, ground_truth, **kwargs):
        calls.append(1)
        return 1.0

    record = score_record(failed("p9"), [spec("accuracy", counting, primary=True)])
    assert record.status == "generation_failed"
    assert record.score is None
    assert record.rewards == {}
    assert record.error == "HTTP 503: down"
    assert calls == []


def test_non_primary_reward_error_keeps_status_scored():
    rewards = [
        spec("accuracy", exact_match, primary=True),
        spec("helper", always_crashes),
        spec("format", with_metrics, params={"bonus": 0.25}),
    ]
    record = score_record(response("p1", "#### 4", ground_truth="#### 4"), rewards)
    assert record.status == "scored"
    assert record.score == 1.0
    assert record.error is None
    assert record.rewards["helper"] == {"error": "RuntimeError: helper reward is broken"}
    assert record.rewards["format"]["score"] == 0.75
    assert record.rewards["format"]["metrics"]["format"]["score"] == 1.0


def test_primary_reward_decides_the_score_even_when_not_first():
    rewards = [spec("format", with_metrics), spec("accuracy", exact_match, primary=True)]
    record = score_record(response("p1", "5"), rewards)
    assert record.score == 0.0
    assert record.rewards["format"]["score"] == 0.5


# --- aggregation -------------------------------------------------------------------------

CONFIG = {
    "run_name": "unit-run",
    "model": {"name": "acme/model-7b"},
    "rewards": [
        {"name": "accuracy", "function": "tests:exact_match"},
        {"name": "format", "function": "tests:with_metrics"},
    ],
}
REWARDS = [spec("accuracy", exact_match, primary=True), spec("format", with_metrics)]


def settings(config: dict) -> SummarySettings:
    """The summary's settings from ``config`` and the schema's defaults for what it leaves out."""
    defaults = {"prices": {}, "generation": {"samples": 1}, "metrics": section_defaults("metrics")}
    return SummarySettings.from_config({**defaults, **config})


def run_records():
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    responses = [
        response("p1", "4", usage=usage),
        response("p2", "#### 4", ground_truth="#### 4", usage=usage),
        response("p3", "5", usage=usage),
        failed("p4"),
        failed("p5"),
    ]
    return responses, [score_record(r, REWARDS) for r in responses]


def test_summarize_counts_and_excludes_failures_from_the_mean():
    responses, scores = run_records()
    summary = summarize(settings(CONFIG), responses, scores)
    assert summary["counts"] == {
        "prompts": 5,
        "samples": 5,
        "generated": 3,
        "failed": 2,
        "not_attempted": 0,
        "scored": 3,
        "score_errors": 0,
        "truncated": 0,
        "truncated_below_pass": 0,
    }
    accuracy = summary["rewards"]["accuracy"]
    assert accuracy["mean"] == pytest.approx(2 / 3)
    assert accuracy["mean"] != pytest.approx(2 / 5)
    assert accuracy["scored"] == 3
    assert accuracy["errors"] == 0
    assert accuracy["prompts"] == 3
    assert accuracy["ci_method"] == "wilson"
    assert accuracy["ci95"] == pytest.approx(list(wilson_by_quadratic(2, 3)), abs=5e-4)
    assert summary["primary_reward"] == "accuracy"
    assert summary["run_name"] == "unit-run"
    assert summary["model"] == "acme/model-7b"
    assert summary["usage"] == {"prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36}


def test_truncated_answers_are_counted_and_those_that_fail_are_flagged():
    responses = [
        response("p1", "4", finish_reason="stop"),
        response("p2", "The answer is", finish_reason="length"),  # cut off before the answer
        response("p3", "4", finish_reason="length"),  # cut off, yet right
        response("p4", "5", finish_reason="stop"),
        failed("p5"),
    ]
    scores = [score_record(r, REWARDS) for r in responses]
    summary = summarize(settings(CONFIG), responses, scores)
    assert summary["counts"]["truncated"] == 2
    assert summary["counts"]["truncated_below_pass"] == 1
    markdown = render_markdown(summary)
    assert "**2 of 4 generated samples were cut off at `generation.max_tokens`**" in markdown
    assert "1 of them scored below the pass threshold" in markdown


def test_without_truncation_the_summary_says_nothing_about_it():
    responses, scores = run_records()
    assert "cut off" not in render_markdown(summarize(settings(CONFIG), responses, scores))


def test_failures_are_counted_by_error_type():
    responses = [
        response("p1", "4"),
        failed("p2", error_type="ModelUnusableResponseError"),
        failed("p3", error_type="ModelUnusableResponseError"),
        failed("p4"),
    ]
    scores = [score_record(r, REWARDS) for r in responses]
    summary = summarize(settings(CONFIG), responses, scores)
    assert summary["failure_types"] == {"ModelUnusableResponseError": 2, "ModelGenerationError": 1}
    assert (
        "Failed generations by error: ModelUnusableResponseError 2, ModelGenerationError 1."
        in render_markdown(summary)
    )
    ok_only = [response("p1", "4")]
    ok_summary = summarize(settings(CONFIG), ok_only, [score_record(ok_only[0], REWARDS)])
    assert ok_summary["failure_types"] == {}


def test_summarize_reports_metrics_of_a_reward():
    responses, scores = run_records()
    fmt = summarize(settings(CONFIG), responses, scores)["rewards"]["format"]
    assert fmt["mean"] == pytest.approx(0.5)
    assert fmt["metrics"]["format"]["mean"] == pytest.approx(1 / 3)
    assert fmt["metrics"]["format"]["samples"] == 3


def test_summarize_counts_score_errors_apart():
    responses = [
        response("p1", "4"),
        response("p1", "boom", sample_index=1),
        response("p2", "4"),
        response("p2", "5", sample_index=1),
        failed("p3"),
    ]
    scores = [score_record(r, REWARDS[:1]) for r in responses]
    config = {**CONFIG, "rewards": CONFIG["rewards"][:1]}
    summary = summarize(settings(config), responses, scores)
    assert summary["counts"] == {
        "prompts": 3,
        "samples": 5,
        "generated": 4,
        "failed": 1,
        "not_attempted": 0,
        "scored": 3,
        "score_errors": 1,
        "truncated": 0,
        "truncated_below_pass": 0,
    }
    accuracy = summary["rewards"]["accuracy"]
    assert accuracy["errors"] == 1
    assert accuracy["scored"] == 3
    # p1 -> [1.0] (its crashed sample excluded), p2 -> [1.0, 0.0]; each prompt weighted once
    assert accuracy["mean"] == pytest.approx((1.0 + 0.5) / 2)
    assert accuracy["ci_method"] == "bootstrap over prompts"


def test_summarize_with_nothing_scored_has_no_mean():
    responses = [failed("p1"), failed("p2")]
    scores = [score_record(r, REWARDS) for r in responses]
    summary = summarize(settings(CONFIG), responses, scores)
    assert summary["rewards"]["accuracy"]["mean"] is None
    assert summary["rewards"]["accuracy"]["ci95"] is None
    assert summary["counts"]["failed"] == 2
    markdown = render_markdown(summary)
    assert "| accuracy | n/a | n/a |" in markdown


def test_render_markdown_contains_counts_reward_and_mean():
    responses, scores = run_records()
    markdown = render_markdown(summarize(settings(CONFIG), responses, scores))
    assert markdown.startswith("# rewardflow summary: unit-run")
    assert "primary reward `accuracy`" in markdown
    assert "`acme/model-7b`" in markdown
    assert "| 5 | 5 | 3 | 2 | 0 | 3 | 0 |" in markdown
    assert "| accuracy | 66.7% |" in markdown
    assert "| format / format | 33.3% |" in markdown
    assert "Tokens: 30 prompt + 6 completion = 36 (no price for this model" in markdown


def test_cost_comes_from_the_price_table_and_is_null_without_a_price():
    responses, scores = run_records()
    priced = {**CONFIG, "prices": {"acme/model-7b": {"prompt": 2.0, "completion": 10.0}}}
    summary = summarize(settings(priced), responses, scores)
    # 30 prompt tokens at $2/M + 6 completion tokens at $10/M
    assert summary["cost_usd"] == pytest.approx((30 * 2.0 + 6 * 10.0) / 1e6)
    assert "estimated cost $0.0001." in render_markdown(summary)
    other = {**CONFIG, "prices": {"another/model": {"prompt": 1.0, "completion": 1.0}}}
    assert summarize(settings(other), responses, scores)["cost_usd"] is None


def test_aggregate_run_writes_json_and_markdown(tmp_path):
    responses, scores = run_records()
    response_paths = [tmp_path / "responses" / f"shard-{i:03d}.jsonl" for i in range(2)]
    score_paths = [tmp_path / "scores" / f"shard-{i:03d}.jsonl" for i in range(2)]
    for index in range(2):
        write_jsonl_atomic(response_paths[index], [r.to_dict() for r in responses[index::2]])
        write_jsonl_atomic(score_paths[index], [s.to_dict() for s in scores[index::2]])
    summary_json = tmp_path / "summary.json"
    summary_md = tmp_path / "summary.md"
    reports = []
    for index, (requested, retries) in enumerate([(3, 1), (2, 4)]):
        path = tmp_path / f"shard-{index}.stats.json"
        path.write_text(
            json.dumps({"requested": requested, "cached": 1, "attempts": requested + retries,
                        "retries": retries, "rate_limited": 1, "request_seconds": 2.5 * index})
        )  # fmt: skip
        reports.append(path)
    summary = aggregate_run(
        settings(CONFIG), response_paths, score_paths, reports, summary_json, summary_md
    )
    on_disk = json.loads(summary_json.read_text(encoding="utf-8"))
    assert on_disk == summary
    assert on_disk["counts"]["samples"] == 5
    assert on_disk["rewards"]["accuracy"]["mean"] == pytest.approx(2 / 3)
    assert on_disk["generation"] == {
        "cached": 2, "requested": 5, "attempts": 10, "retries": 5, "rate_limited": 2,
        "request_seconds_max": 2.5, "adaptive_rate_rpm": None, "not_attempted": 0,
        "spent_prompt_tokens": 0, "spent_completion_tokens": 0, "budget_notes": [],
        "coalesced": 0, "coalesced_other_jobs": 0, "greedy_shared": 0,
    }  # fmt: skip
    markdown = summary_md.read_text(encoding="utf-8")
    assert markdown.startswith("# rewardflow summary: unit-run")
    assert "| accuracy | 66.7% |" in markdown
    assert markdown == render_markdown(summary)


def graded(messages, ground_truth, **kwargs):
    """A graded score with a sub-metric, so every interval of the summary is a bootstrap one."""
    length = len(messages[-1]["content"])
    return {"score": (length % 5) / 4, "metrics": {"long": float(length > 15)}}


def graded_run(resamples: int, seed: int) -> dict:
    rewards = [
        RewardSpec(name="graded", function=graded, reference="tests:graded", primary=True,
                   weight=1.0),
    ]  # fmt: skip
    responses = [
        response(f"p{prompt}", "x" * (prompt * 3 + sample), sample_index=sample)
        for prompt in range(12)
        for sample in range(2)
    ]
    config = {
        **CONFIG,
        "rewards": [{"name": "graded", "function": "tests:graded"}],
        "metrics": {
            **section_defaults("metrics"),
            "bootstrap_resamples": resamples,
            "seed": seed,
            "group_by": ["topic"],
        },
    }
    return summarize(settings(config), responses, [score_record(r, rewards) for r in responses])


def intervals(summary: dict) -> dict[str, list[float]]:
    """Every bootstrap interval of a graded_run summary, by what it estimates."""
    reward = summary["rewards"]["graded"]
    return {
        "reward": reward["ci95"],
        "sub-metric": reward["metrics"]["long"]["ci95"],
        "weighted": summary["weighted"]["ci95"],
        "breakdown": summary["breakdowns"]["topic"]["arith"]["ci95"],
    }


def test_every_bootstrap_interval_follows_the_configured_resamples_and_seed():
    # docs/configuration.md: metrics.bootstrap_resamples and metrics.seed apply to every
    # bootstrap interval, the reward means, their sub-metrics and the weighted score included.
    summary = graded_run(resamples=300, seed=11)
    reward = summary["rewards"]["graded"]
    lengths = [(prompt * 3 + sample) for prompt in range(12) for sample in range(2)]
    assert reward["mean"] == pytest.approx(sum((n % 5) / 4 for n in lengths) / 24)
    assert reward["metrics"]["long"]["mean"] == pytest.approx(sum(n > 15 for n in lengths) / 24)
    assert reward["ci_method"] == "bootstrap over prompts"
    # The one reward, weighted 1, is its own weighted mean: the same figure.
    assert summary["weighted"] == {key: reward[key] for key in summary["weighted"]}

    # With one resample the percentile interval is that one resampled mean: a point.
    assert all(low == high for low, high in intervals(graded_run(1, seed=11)).values())
    assert all(low < high for low, high in intervals(summary).values())
    # Another seed draws other resamples, for every interval.
    other_seed = intervals(graded_run(300, seed=12))
    assert all(other_seed[name] != ci for name, ci in intervals(summary).items())


def test_a_breakdown_is_estimated_as_the_headline_mean_is():
    # Every prompt has the same topic, so its one group is the whole run: the same figure.
    summary = graded_run(resamples=300, seed=11)
    headline = {key: summary["rewards"]["graded"][key] for key in ("mean", "ci95", "ci_method")}
    group = summary["breakdowns"]["topic"]["arith"]
    assert {key: group[key] for key in ("mean", "ci95", "ci_method")} == headline
