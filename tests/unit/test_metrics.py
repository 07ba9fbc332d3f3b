"""Estimators in rewardflow.summary.statistics against values computed by hand in each test."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import pytest

from rewardflow.summary.statistics import (
    McNemar,
    PairedDiff,
    bootstrap_mean_ci,
    maj_at_k,
    majority_vote,
    mcnemar,
    mean_pass_at_k,
    paired_bootstrap_diff,
    pass_at_k,
    spread,
)

# --- pass@k ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 0, 3, 0.0),  # no correct sample: C(10,3)/C(10,3) = 1
        (10, 3, 3, 85 / 120),  # 1 - C(7,3)/C(10,3) = 1 - 35/120
        (6, 1, 2, 1 / 3),  # 1 - C(5,2)/C(6,2) = 1 - 10/15
        (4, 3, 2, 1.0),  # n - c = 1 < k: every pair holds a correct sample
        (5, 5, 5, 1.0),
        (5, 0, 5, 0.0),
        (5, 1, 5, 1.0),  # the only 5-subset contains the correct sample
    ],
)
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("n", "c"), [(1, 0), (1, 1), (5, 2), (10, 7), (16, 1), (200, 37)])
def test_pass_at_1_is_the_fraction_correct(n, c):
    assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    n, c, k = 3000, 10, 200
    with pytest.raises(OverflowError):
        float(math.comb(n, k))
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6), (0, 0, 1), (3, 1, -1)],
)
def test_pass_at_k_rejects_impossible_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# --- mean pass@k ----------------------------------------------------------------------------

T, F = True, False
CORRECT = {
    "p1": [T, F, F, T, F],  # n=5, c=2: pass@2 = 0.7, pass@1 = 0.4
    "p2": [F] * 10,  # pass@k = 0
    "p3": [T],  # only one sample: skipped for k >= 2
}


def test_mean_pass_at_k_skips_prompts_with_fewer_than_k_samples():
    assert mean_pass_at_k(CORRECT, 2) == pytest.approx((0.7 + 0.0) / 2)


def test_mean_pass_at_1_weights_each_prompt_once():
    # Per prompt 2/5, 0/10, 1/1, not pooled (3/16).
    assert mean_pass_at_k(CORRECT, 1) == pytest.approx((0.4 + 0.0 + 1.0) / 3)


def test_mean_pass_at_k_with_a_single_qualifying_prompt():
    assert mean_pass_at_k(CORRECT, 6) == 0.0


def test_mean_pass_at_k_is_none_when_no_prompt_qualifies():
    assert mean_pass_at_k(CORRECT, 11) is None
    assert mean_pass_at_k({}, 1) is None


def test_mean_pass_at_k_rejects_k_below_one():
    with pytest.raises(ValueError):
        mean_pass_at_k(CORRECT, 0)


# --- majority vote and maj@k ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["4", "5", "4"], "4"),
        (["5", "4", "4", "5"], "5"),  # tie: "5" appeared first
        (["4", "5", "5", "4"], "4"),  # same tie, other order
        ([None, None, "3"], "3"),  # None never wins, even when most frequent
        ([None, "a", None, None, "b", "b"], "b"),
        ([None, "x", "y"], "x"),
        ([None, None], None),
        ([], None),
    ],
)
def test_majority_vote(answers, expected):
    assert majority_vote(answers) == expected


SAMPLES = {
    "p1": [("4", T), ("5", F), ("4", T)],  # majority "4": correct
    "p2": [("5", F), ("4", T), ("4", T), ("5", F)],  # first 3: "4" wins; all 4: tie -> "5"
    "p3": [(None, F), (None, F), ("7", T)],  # the one real answer wins
    "p4": [(None, F), (None, F), (None, F)],  # nothing extracted: wrong
    "p5": [("1", T)],  # too few samples for k >= 2
}


def test_maj_at_k_over_the_first_k_samples():
    # k=3: p1 right, p2 ("5","4","4" -> "4") right, p3 right, p4 wrong, p5 skipped.
    assert maj_at_k(SAMPLES, 3) == pytest.approx(3 / 4)


def test_maj_at_k_breaks_ties_by_first_occurrence():
    # k=4: only p2 qualifies and "5" (wrong) wins the 2-2 tie.
    assert maj_at_k(SAMPLES, 4) == 0.0


def test_maj_at_1_is_the_first_sample_with_none_counted_wrong():
    # p1 "4" right, p2 "5" wrong, p3 None wrong, p4 None wrong, p5 "1" right.
    assert maj_at_k(SAMPLES, 1) == pytest.approx(2 / 5)


def test_maj_at_k_counts_all_none_prompt_as_wrong_not_skipped():
    assert maj_at_k({"p4": SAMPLES["p4"]}, 3) == 0.0


def test_maj_at_k_uses_the_first_majority_sample_verdict():
    samples = {"p": [("4", F), ("5", T), ("4", T)]}
    assert maj_at_k(samples, 3) == 0.0


def test_maj_at_k_is_none_when_no_prompt_qualifies():
    assert maj_at_k(SAMPLES, 5) is None


def test_maj_at_k_rejects_k_below_one():
    with pytest.raises(ValueError):
        maj_at_k(SAMPLES, 0)


# --- cluster bootstrap ----------------------------------------------------------------------

MIXED = {f"p{i}": [(i * i % 17) / 16, (i * 5 % 13) / 12] for i in range(30)}


def test_bootstrap_is_deterministic_for_a_seed_and_depends_on_it():
    first = bootstrap_mean_ci(MIXED, resamples=500, seed=1)
    assert bootstrap_mean_ci(MIXED, resamples=500, seed=1) == first
    assert bootstrap_mean_ci(MIXED, resamples=500, seed=2) != first


def test_bootstrap_interval_contains_the_mean_of_prompt_means():
    mean, low, high = bootstrap_mean_ci(MIXED, resamples=500)
    prompt_means = [sum(values) / len(values) for values in MIXED.values()]
    assert mean == pytest.approx(sum(prompt_means) / len(prompt_means))
    assert low < mean < high


def test_bootstrap_matches_the_exact_bootstrap_distribution():
    # Prompt means 0, 0, 1. A resample's mean is j/3 with j ~ Binomial(3, 1/3):
    # P(0) = 8/27 = .296, P(1/3) = 12/27 = .444, P(2/3) = 6/27 = .222, P(1) = 1/27 = .037.
    # Cumulative: .296, .741, .963, 1. The 80% interval's 10% and 90% quantiles: 0 and 2/3.
    clusters = {"a": [0.0], "b": [0.0, 0.0], "c": [1.0]}
    mean, low, high = bootstrap_mean_ci(clusters, resamples=4000, confidence=0.8)
    assert mean == pytest.approx(1 / 3)
    assert low == 0.0
    assert high == pytest.approx(2 / 3)


def test_bootstrap_weighs_each_prompt_once_and_resamples_prompts():
    # Pooled samples would give mean 100/101 and a tight interval near 1. Per prompt the means
    # are 1 and 0; two-prompt resamples have mean 0 or 1 with probability 1/4 each.
    clusters = {"many": [1.0] * 100, "one": [0.0]}
    assert bootstrap_mean_ci(clusters) == (0.5, 0.0, 1.0)


def test_bootstrap_interval_narrows_with_more_prompts():
    def width(prompts: int) -> float:
        clusters = {f"p{i}": [float(i % 2)] for i in range(prompts)}
        _, low, high = bootstrap_mean_ci(clusters, resamples=500)
        return high - low

    # The width shrinks like 1/sqrt(prompts): about 0.6 for 10 prompts, 0.1 for 400.
    assert width(400) < width(10) / 3


def test_bootstrap_confidence_sets_the_interval_width():
    # 400 prompts, half scoring 0 and half 1: the bootstrap standard error of the mean is
    # 0.5 / sqrt(400) = 0.025 and the resampled means are close to normal, so the central
    # 95% interval is about 2 * 1.96 * 0.025 = 0.098 wide and the 50% one 2 * 0.674 * 0.025.
    clusters = {f"p{i}": [float(i % 2)] for i in range(400)}
    _, low95, high95 = bootstrap_mean_ci(clusters, confidence=0.95)
    _, low50, high50 = bootstrap_mean_ci(clusters, confidence=0.5)
    assert high95 - low95 == pytest.approx(0.098, rel=0.1)
    assert high50 - low50 == pytest.approx(2 * 0.674 * 0.025, rel=0.15)
    assert (low95 + high95) / 2 == pytest.approx(0.5, abs=0.01)


def test_bootstrap_of_one_prompt_is_its_mean():
    mean, low, high = bootstrap_mean_ci({"p": [0.2, 0.4, 0.9]})
    assert mean == pytest.approx(0.5)
    assert low == mean == high


@pytest.mark.parametrize(
    ("clusters", "kwargs"),
    [
        ({}, {}),
        ({"p": []}, {}),
        ({"p": [1.0]}, {"resamples": 0}),
        ({"p": [1.0]}, {"confidence": 1.0}),
        ({"p": [1.0]}, {"confidence": 0.0}),
    ],
)
def test_bootstrap_rejects_bad_arguments(clusters, kwargs):
    with pytest.raises(ValueError):
        bootstrap_mean_ci(clusters, **kwargs)


# --- paired bootstrap -----------------------------------------------------------------------

RUN_A = {f"p{i}": (i * 7 % 11) / 20 for i in range(25)}


def test_paired_bootstrap_with_a_constant_improvement():
    run_b = {key: value + 0.2 for key, value in RUN_A.items()}
    result = paired_bootstrap_diff(RUN_A, run_b)
    assert isinstance(result, PairedDiff)
    assert result.shared == 25
    assert result.mean_a == pytest.approx(sum(RUN_A.values()) / 25)
    assert result.mean_b == pytest.approx(result.mean_a + 0.2)
    assert result.diff == pytest.approx(0.2)
    assert result.low == pytest.approx(0.2)
    assert result.high == pytest.approx(0.2)
    assert result.p_value == 0.0  # no resample reaches zero


def test_paired_bootstrap_diff_is_b_minus_a():
    run_b = {key: value - 0.3 for key, value in RUN_A.items()}
    result = paired_bootstrap_diff(RUN_A, run_b)
    assert result.diff == pytest.approx(-0.3)
    assert result.high == pytest.approx(-0.3)


def test_paired_bootstrap_uses_only_shared_prompts():
    run_a = {"x": 0.5, "y": 0.1, "only_a": 100.0}
    run_b = {"only_b": -100.0, "y": 0.3, "x": 0.7}
    result = paired_bootstrap_diff(run_a, run_b)
    assert result.shared == 2
    assert result.mean_a == pytest.approx(0.3)
    assert result.mean_b == pytest.approx(0.5)
    assert result.diff == pytest.approx(0.2)
    assert (result.low, result.high) == (pytest.approx(0.2), pytest.approx(0.2))


def test_paired_bootstrap_of_identical_runs():
    result = paired_bootstrap_diff(RUN_A, dict(RUN_A))
    assert (result.diff, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_bootstrap_matches_the_exact_bootstrap_distribution():
    # Per-prompt differences 1, 1, -1. With j ~ Binomial(3, 1/3) draws of -1 the resample mean
    # is (3 - 2j)/3: P(1) = 8/27, P(1/3) = 12/27, P(-1/3) = 6/27, P(-1) = 1/27.
    # P(diff* <= 0) = 7/27, P(diff* >= 0) = 20/27, so p = 2 * 7/27 = 14/27 = 0.519.
    # The 80% interval: the 10% quantile is -1/3 (cumulative 1/27, 7/27), the 90% quantile 1.
    run_a = {"x": 0.0, "y": 0.0, "z": 1.0}
    run_b = {"x": 1.0, "y": 1.0, "z": 0.0}
    result = paired_bootstrap_diff(run_a, run_b, resamples=20000, confidence=0.8)
    assert result.diff == pytest.approx(1 / 3)
    assert result.p_value == pytest.approx(14 / 27, abs=0.03)
    assert result.low == pytest.approx(-1 / 3)
    assert result.high == 1.0


def test_paired_bootstrap_p_value_is_capped_at_one():
    # Differences +1 and -1: P(diff* <= 0) = P(diff* >= 0) = 3/4, and 2 * 3/4 > 1.
    result = paired_bootstrap_diff({"x": 0.0, "y": 1.0}, {"x": 1.0, "y": 0.0})
    assert result.p_value == 1.0


def test_paired_bootstrap_is_deterministic_for_a_seed_and_depends_on_it():
    run_b = {key: (value * 13) % 1 for key, value in RUN_A.items()}
    first = paired_bootstrap_diff(RUN_A, run_b, resamples=500, seed=3)
    assert paired_bootstrap_diff(RUN_A, run_b, resamples=500, seed=3) == first
    assert paired_bootstrap_diff(RUN_A, run_b, resamples=500, seed=4) != first


@pytest.mark.parametrize(("run_a", "run_b"), [({}, {}), ({"x": 1.0}, {"y": 1.0})])
def test_paired_bootstrap_needs_shared_prompts(run_a, run_b):
    with pytest.raises(ValueError):
        paired_bootstrap_diff(run_a, run_b)


# --- McNemar --------------------------------------------------------------------------------


def paired_verdicts(
    a_only: int, b_only: int, both_right: int = 0, both_wrong: int = 0
) -> tuple[dict[str, bool], dict[str, bool]]:
    pairs = (
        [(True, False)] * a_only
        + [(False, True)] * b_only
        + [(True, True)] * both_right
        + [(False, False)] * both_wrong
    )
    run_a = {f"p{i}": left for i, (left, _) in enumerate(pairs)}
    run_b = {f"p{i}": right for i, (_, right) in enumerate(pairs)}
    return run_a, run_b


def test_mcnemar_exact_matches_hand_computed_binomial():
    # n = 7 discordant: p = 2 * (C(7,0) + C(7,1)) / 2^7 = 2 * 8/128 = 0.125.
    result = mcnemar(*paired_verdicts(a_only=1, b_only=6, both_right=5, both_wrong=3))
    assert result == McNemar(
        shared=15, a_only=1, b_only=6, statistic=1.0, p_value=0.125, method="exact binomial"
    )


@pytest.mark.parametrize(
    ("a_only", "b_only", "expected"),
    [
        (0, 5, 2 / 32),  # 2 * C(5,0) / 2^5
        (2, 10, 2 * (1 + 12 + 66) / 4096),  # 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12
        (3, 3, 1.0),  # 2 * 42/64 > 1: capped
        (6, 1, 0.125),  # symmetric in the two runs
    ],
)
def test_mcnemar_exact_p_values(a_only, b_only, expected):
    result = mcnemar(*paired_verdicts(a_only, b_only))
    assert result.method == "exact binomial"
    assert result.p_value == pytest.approx(expected, abs=1e-15)


def test_mcnemar_chi_square_with_continuity_correction():
    # (|10 - 30| - 1)^2 / 40 = 361/40 = 9.025; chi-square(1) tail = erfc(sqrt(9.025 / 2)).
    result = mcnemar(*paired_verdicts(a_only=10, b_only=30, both_right=50))
    assert (result.shared, result.a_only, result.b_only) == (90, 10, 30)
    assert result.method == "chi-square, continuity-corrected"
    assert result.statistic == pytest.approx(9.025)
    assert result.p_value == pytest.approx(0.002663, abs=1e-6)


def test_mcnemar_chi_square_tail_matches_the_normal_table():
    # (|5 - 20| - 1)^2 / 25 = 7.84 = 2.8^2, so p = P(|Z| > 2.8) = 2 * (1 - 0.99744) = 0.00511.
    result = mcnemar(*paired_verdicts(a_only=5, b_only=20))
    assert result.statistic == pytest.approx(7.84)
    assert result.p_value == pytest.approx(0.00511, abs=1e-5)


def test_mcnemar_switches_to_chi_square_at_25_discordant_pairs():
    assert mcnemar(*paired_verdicts(10, 14)).method == "exact binomial"
    assert mcnemar(*paired_verdicts(10, 15)).method == "chi-square, continuity-corrected"


def test_mcnemar_without_discordant_pairs():
    result = mcnemar(*paired_verdicts(0, 0, both_right=4, both_wrong=2))
    assert (result.shared, result.a_only, result.b_only, result.p_value) == (6, 0, 0, 1.0)


def test_mcnemar_ignores_concordant_and_unshared_prompts():
    run_a, run_b = paired_verdicts(a_only=1, b_only=6, both_right=40, both_wrong=40)
    run_a["only_in_a"] = True
    run_b["only_in_b"] = True
    result = mcnemar(run_a, run_b)
    assert (result.shared, result.a_only, result.b_only) == (87, 1, 6)
    assert result.p_value == 0.125


def test_mcnemar_needs_shared_prompts():
    with pytest.raises(ValueError):
        mcnemar({"x": True}, {"y": False})


def test_results_are_frozen():
    result = mcnemar(*paired_verdicts(1, 6))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p_value = 0.0  # type: ignore[misc]


# --- spread ---------------------------------------------------------------------------------


def test_spread_summarises_within_prompt_disagreement():
    clusters = {
        "p1": [1.0, 0.0],  # population std 0.5
        "p2": [1.0, 1.0, 1.0],  # std 0, agree
        "p3": [0.0, 1.0, 1.0, 1.0],  # mean 3/4, variance 3/16, std sqrt(3)/4 = 0.4330
        "p4": [0.5],  # one sample: skipped
    }
    assert spread(clusters) == {
        "prompts_with_repeats": 3,
        "mean_within_prompt_std": pytest.approx((0.5 + 0.0 + math.sqrt(3) / 4) / 3),
        "disagreement_rate": pytest.approx(2 / 3),
    }


def test_spread_of_identical_non_binary_samples_is_exactly_zero():
    result = spread({"p": [0.1, 0.1, 0.1], "q": [0.7, 0.7]})
    assert result["mean_within_prompt_std"] == 0.0
    assert result["disagreement_rate"] == 0.0


@pytest.mark.parametrize("clusters", [{}, {"p": [1.0], "q": [0.0], "r": []}])
def test_spread_without_repeated_samples(clusters):
    assert spread(clusters) == {
        "prompts_with_repeats": 0,
        "mean_within_prompt_std": None,
        "disagreement_rate": None,
    }


def test_bootstrap_interval_does_not_depend_on_the_order_of_the_clusters():
    clusters = {f"p{i}": [float(i % 3) / 2, float(i % 2)] for i in range(12)}
    backwards = dict(reversed(list(clusters.items())))
    assert bootstrap_mean_ci(backwards, resamples=300, seed=5) == bootstrap_mean_ci(
        clusters, resamples=300, seed=5
    )
