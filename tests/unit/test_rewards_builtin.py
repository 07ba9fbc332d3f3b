"""Tests for the built-in rewards: text, format, choice, length and JSON.

Each reward gets its hard cases as table rows (so a regression names the case), then every
reward goes through the same adversarial inputs: empty and ``None`` content, no assistant
message, a 1 MB response, odd Unicode. Those must score 0 (or a valid score) with a reason and
never raise; only misconfiguration raises ``ValueError``. Finally the config examples in the
docstrings and in docs/rewards.md are loaded and run, so the documentation cannot drift.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from conftest import REPO

from rewardflow.rewards.choice import multiple_choice
from rewardflow.rewards.format import tag_count, think_answer_format
from rewardflow.rewards.json_rewards import json_fields, json_schema, json_valid
from rewardflow.rewards.length import cosine_scaled_length, length_reward, repetition_penalty
from rewardflow.rewards.loader import load_reward_function, load_rewards
from rewardflow.rewards.result import RewardResult, to_reward_result
from rewardflow.rewards.text import exact_match, normalize_answer, normalized_match, regex_match

Reward = Callable[..., RewardResult]


def conversation(response: Any) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Answer the question."},
        {"role": "user", "content": "What is it?"},
        {"role": "assistant", "content": response},
    ]


def run(reward: Reward, response: Any, ground_truth: Any = None, **params: Any) -> RewardResult:
    """Call ``reward`` as the pipeline does and check that the result is a usable one."""
    result = reward(conversation(response), ground_truth, **params)
    assert isinstance(result, RewardResult)
    assert to_reward_result(result) is result  # a score in [0, 1]
    assert all(0.0 <= metric.score <= 1.0 for metric in result.metrics.values())
    assert result.reason
    return result


def score(reward: Reward, response: Any, ground_truth: Any = None, **params: Any) -> float:
    return run(reward, response, ground_truth, **params).score


# --- exact_match ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "ground_truth", "params", "expected"),
    [
        ("Paris", "Paris", {}, 1.0),
        ("  Paris\n", " Paris ", {}, 1.0),
        ("paris", "Paris", {}, 0.0),
        ("paris", "Paris", {"case_sensitive": False}, 1.0),
        ("STRASSE", "straße", {"case_sensitive": False}, 1.0),  # case folding, not lower()
        ("Paris.", "Paris", {}, 0.0),
        ("Paris London", "Paris", {}, 0.0),
        ("cafe\u0301", "caf\u00e9", {}, 1.0),  # the same text in NFD and NFC
        ("42", 42, {}, 1.0),
    ],
)
def test_exact_match(response: str, ground_truth: Any, params: dict, expected: float) -> None:
    assert score(exact_match, response, ground_truth, **params) == expected


@pytest.mark.parametrize("params", [{"case_sensitive": "false"}, {"case_sensitive": 0}])
def test_exact_match_refuses_a_non_boolean_case_sensitive(params: dict) -> None:
    with pytest.raises(ValueError, match="case_sensitive"):
        exact_match(conversation("Paris"), "Paris", **params)


@pytest.mark.parametrize(
    "reward", [exact_match, normalized_match, multiple_choice, cosine_scaled_length]
)
@pytest.mark.parametrize("ground_truth", [None, "", "   "])
def test_rewards_that_compare_need_a_ground_truth(reward: Reward, ground_truth: Any) -> None:
    with pytest.raises(ValueError, match="ground_truth"):
        reward(conversation("The answer is (C), 5"), ground_truth)


# --- normalized_match ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Eiffel Tower.", "eiffel tower"),
        ("  An   apple!  ", "apple"),
        ("well-known", "wellknown"),  # SQuAD deletes punctuation, it does not split on it
        ("the theater", "theater"),  # articles are whole words only
        ("\uff30\uff41\uff52\uff49\uff53", "paris"),  # full-width letters (NFKC)
        ("\u00bfQu\u00e9?", "qu\u00e9"),  # Unicode punctuation
        ("\u201cHamlet\u201d", "hamlet"),
        ("$5 + 3", "5 3"),  # string.punctuation holds symbols too
        ("The.", ""),
    ],
)
def test_normalize_answer(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


@pytest.mark.parametrize(
    ("response", "ground_truth", "expected"),
    [
        ("The Eiffel Tower.", "eiffel tower", 1.0),
        ("Eiffel  Tower!", "The Eiffel Tower", 1.0),
        ("\uff30\uff21\uff32\uff29\uff33", "Paris", 1.0),
        ("Paris or London", "Paris", 0.0),
        ("Athens", "thens", 0.0),
        ("a", "the", 0.0),  # both normalise to nothing: not a match
    ],
)
def test_normalized_match(response: str, ground_truth: str, expected: float) -> None:
    assert score(normalized_match, response, ground_truth) == expected


def test_normalized_match_explains_an_empty_normalised_ground_truth() -> None:
    assert "empty after normalisation" in run(normalized_match, "The", "The.").reason


# --- regex_match ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "params", "expected"),
    [
        ("it is 12", {"pattern": r"\d+"}, 1.0),
        ("it is twelve", {"pattern": r"\d+"}, 0.0),
        ("12", {"pattern": r"\d+", "mode": "fullmatch"}, 1.0),
        ("12\n", {"pattern": r"\d+", "mode": "fullmatch"}, 1.0),  # surrounding space ignored
        ("12 apples", {"pattern": r"\d+", "mode": "fullmatch"}, 0.0),
        ("ANSWER: yes", {"pattern": "answer: yes"}, 0.0),
        ("ANSWER: yes", {"pattern": "answer: yes", "flags": ["IGNORECASE"]}, 1.0),
        ("ANSWER: yes", {"pattern": "answer: yes", "flags": "i"}, 1.0),
        ("a\nb", {"pattern": "a.b"}, 0.0),
        ("a\nb", {"pattern": "a.b", "flags": ["DOTALL"]}, 1.0),
        ("x\nend", {"pattern": "^end$", "flags": ["MULTILINE"]}, 1.0),
    ],
)
def test_regex_match_without_a_group(response: str, params: dict, expected: float) -> None:
    assert score(regex_match, response, None, **params) == expected


ANSWER_GROUP = {"pattern": r"Answer:\s*(?P<answer>[^\n]+)", "compare_group": "answer"}


@pytest.mark.parametrize(
    ("response", "ground_truth", "params", "expected"),
    [
        ("Answer: The Eiffel Tower.", "eiffel tower", ANSWER_GROUP, 1.0),
        ("Answer: Rome", "Paris", ANSWER_GROUP, 0.0),
        # several candidates: the last one is the answer
        ("Answer: 3\nno wait.\nAnswer: 5", "5", ANSWER_GROUP, 1.0),
        ("Answer: 3\nno wait.\nAnswer: 5", "3", ANSWER_GROUP, 0.0),
        ("Answer: 5", "5", {"pattern": r"Answer: (\d+)", "compare_group": 1}, 1.0),
        # the last match in which the group took part
        ("Answer: 5 then foo", "5", {"pattern": r"Answer: (\d+)|(foo)", "compare_group": 1}, 1.0),
        ("no answer here", "5", ANSWER_GROUP, 0.0),
        ("Answer: 5", "5", {**ANSWER_GROUP, "mode": "fullmatch"}, 1.0),
        ("So. Answer: 5", "5", {**ANSWER_GROUP, "mode": "fullmatch"}, 0.0),
    ],
)
def test_regex_match_compare_group(
    response: str, ground_truth: str, params: dict, expected: float
) -> None:
    assert score(regex_match, response, ground_truth, **params) == expected


def test_regex_match_reports_whether_the_pattern_matched_separately() -> None:
    result = run(regex_match, "Answer: Rome", "Paris", **ANSWER_GROUP)
    assert result.metrics["pattern_matched"].score == 1.0
    assert "'Rome'" in result.reason


@pytest.mark.parametrize(
    ("params", "ground_truth", "message"),
    [
        ({}, None, "needs a pattern"),
        ({"pattern": ""}, None, "needs a pattern"),
        ({"pattern": "("}, None, "invalid pattern"),
        ({"pattern": "a", "flags": ["NOPE"]}, None, "unknown flag"),
        ({"pattern": "a", "flags": [1]}, None, "flags"),
        ({"pattern": "a", "mode": "match"}, None, "mode"),
        ({"pattern": "(a)", "compare_group": 2}, "a", "1 groups"),
        ({"pattern": "(a)", "compare_group": "x"}, "a", "not a named group"),
        ({"pattern": "(a)", "compare_group": 1.5}, "a", "compare_group"),
        ({"pattern": "(a)", "compare_group": 1}, None, "ground_truth"),
    ],
)
def test_regex_match_misconfiguration_raises(params: dict, ground_truth: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        regex_match(conversation("a"), ground_truth, **params)


def test_regex_match_scores_an_empty_response_0_even_if_the_pattern_accepts_it() -> None:
    assert score(regex_match, "", None, pattern=".*") == 0.0


# --- think_answer_format -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected", "failing"),
    [
        ("<think>x</think><answer>5</answer>", 1.0, set()),
        ("  <think>\nI add.\n</think>\n\n<answer>\n5\n</answer>\n", 1.0, set()),
        ("<think>x</think><answer>5</answer> Hope this helps!", 0.0, {"layout"}),
        ("Sure! <think>x</think><answer>5</answer>", 0.0, {"layout"}),
        ("<think>x</think> so <answer>5</answer>", 0.0, {"layout"}),
        ("<answer>5</answer><think>x</think>", 0.0, {"layout"}),
        ("<think>x<answer>5</answer></think>", 0.0, {"layout"}),  # nested
        ("<think> \n</think><answer>5</answer>", 0.0, {"think", "layout"}),  # blank think
        ("<think>x</think><answer></answer>", 0.0, {"answer", "layout"}),
        ("<think>x</think><answer>5", 0.0, {"answer", "layout"}),  # cut off
        ("<think>x</think><think>y</think><answer>5</answer>", 0.0, {"think", "layout"}),
        ("<think>x</think><answer>5</answer><answer>6</answer>", 0.0, {"answer", "layout"}),
        ("</think>x<think><answer>5</answer>", 0.0, {"think", "layout"}),
        ("<Think>x</Think><answer>5</answer>", 0.0, {"think", "layout"}),  # case-sensitive
        ("<think id=1>x</think><answer>5</answer>", 0.0, {"think", "layout"}),
        ("The answer is 5.", 0.0, {"think", "answer", "layout"}),
        ("<think>\u05e9\u05dc\u05d5\u05dd \U0001f914</think><answer>\u4e94</answer>", 1.0, set()),
    ],
)
def test_think_answer_format(response: str, expected: float, failing: set[str]) -> None:
    result = run(think_answer_format, response)
    assert result.score == expected
    assert {name for name, metric in result.metrics.items() if metric.score < 1.0} == failing


def test_think_answer_format_tags_can_be_renamed() -> None:
    params = {"think_tag": "reasoning", "answer_tag": "solution"}
    assert score(think_answer_format, "<reasoning>a</reasoning><solution>b</solution>", **params)
    assert not score(think_answer_format, "<think>a</think><answer>b</answer>", **params)


@pytest.mark.parametrize(
    "params",
    [{"think_tag": ""}, {"think_tag": "a b"}, {"answer_tag": "<answer>"}, {"answer_tag": "think"}],
)
def test_think_answer_format_refuses_bad_tag_names(params: dict) -> None:
    with pytest.raises(ValueError, match="think_answer_format"):
        think_answer_format(conversation("x"), None, **params)


# --- tag_count -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "params", "expected"),
    [
        ("<think>x</think><answer>5</answer>", {}, 1.0),
        ("<answer>5</answer> stuff <think>x</think>", {}, 1.0),  # order is not tag_count's job
        ("<think>x</think> 5", {}, 0.5),
        ("<think>x</think>y</think><answer>5</answer>", {}, 0.75),
        ("<think>x</think><think>y</think><answer>5</answer>", {}, 0.5),
        ("<think>x", {}, 0.25),
        ("no tags", {}, 0.0),
        ("<reasoning>x</reasoning>", {"tags": ["reasoning"]}, 1.0),
        ("<a>1</a><b>2", {"tags": ["a", "b", "c"]}, 0.5),
    ],
)
def test_tag_count(response: str, params: dict, expected: float) -> None:
    assert score(tag_count, response, **params) == pytest.approx(expected)


def test_tag_count_has_a_metric_per_tag() -> None:
    result = run(tag_count, "<think>x</think><answer>5")
    assert {name: metric.score for name, metric in result.metrics.items()} == {
        "think": 1.0,
        "answer": 0.5,
    }
    assert "</answer> x0" in result.reason


@pytest.mark.parametrize("tags", ["think", [], ["a", "a"], ["<x>"], [1]])
def test_tag_count_refuses_bad_tags(tags: Any) -> None:
    with pytest.raises(ValueError, match="tags"):
        tag_count(conversation("x"), None, tags=tags)


# --- multiple_choice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "chosen"),
    [
        # answer statements
        ("The answer is (C)", "C"),
        ("The answer is C.", "C"),
        ("Answer: C", "C"),
        ("**Answer:** (c)", "C"),
        ("The correct answer is: **C**", "C"),
        ("The correct option is C.", "C"),
        ("Final answer: C) 18", "C"),
        ("The answer is option C", "C"),
        ("I choose C.", "C"),
        ("Option (C) is correct.", "C"),
        ("\\boxed{C}", "C"),
        ("So the answer is $\\boxed{\\text{C}}$.", "C"),
        ("\\boxed{(c)}", "C"),
        # the last statement wins
        ("The answer is B. Wait, let me recheck. The answer is C.", "C"),
        ("Answer: B\n\\boxed{C}", "C"),
        ("\\boxed{B}\nHmm, no. Answer: C", "C"),
        ("The answer is C. (A) is wrong and (B) is a trap.", "C"),
        ("The answer is C, not B.", "C"),
        ("The answer is B. Checking again, the answer is not C; it is B.", "B"),
        # articles and pronouns are not choices
        ("A farmer has 3 cows. I think the answer is C.", "C"),
        ("I think (C) is right.", "C"),
        ("Answer: A farmer would sell them. The answer is D.", "D"),
        ("The answer is A because the farmer sells them.", "A"),
        ("The answer is I.", "I"),
        # no statement: the whole response, or formatted letters that agree
        ("C", "C"),
        ("c", "C"),
        ("(C).", "C"),
        ("**C**", "C"),
        ("C) 18", "C"),
        ("C. Because 18 is the total.", "C"),
        ("It must be **C**, since 18 = 3 * 6. So **C**.", "C"),
        ("Looking at the table, (C) fits.", "C"),
    ],
)
def test_multiple_choice_reads_the_chosen_letter(response: str, chosen: str) -> None:
    result = run(multiple_choice, response, chosen)
    assert result.score == 1.0, result.reason
    assert result.metrics["answer_found"].score == 1.0


@pytest.mark.parametrize(
    "response",
    [
        "A farmer has 3 cows and sells 2.",
        "I think it is about 18.",
        "Answer: A farmer would sell them.",
        "Answer: I think about 18.",
        "The answer is not C.",
        "The answer is either A or B.",
        "A) 12\nB) 15\nC) 18\nD) 20",  # the options listed, none chosen
        "(A) 12 (B) 15 (C) 18 (D) 20",
        "**A** or **B**",
        "Answer: Cats are mammals.",
        "The answer is c, I guess",  # a lower-case letter in running text
        "The answer is 18.",
    ],
)
def test_multiple_choice_finds_no_answer_where_there_is_none(response: str) -> None:
    result = run(multiple_choice, response, "C")
    assert result.score == 0.0
    assert result.metrics["answer_found"].score == 0.0, result.reason


def test_multiple_choice_says_when_formatted_letters_disagree() -> None:
    assert "ambiguous" in run(multiple_choice, "(A) 12 (B) 15", "A").reason


def test_multiple_choice_wrong_letter_is_an_answer_found_but_scores_0() -> None:
    result = run(multiple_choice, "The answer is (B)", "C")
    assert result.score == 0.0
    assert result.metrics["answer_found"].score == 1.0
    assert "chose B" in result.reason and "expected C" in result.reason


def test_multiple_choice_letters_limit_the_choices() -> None:
    assert score(multiple_choice, "The answer is E", "E") == 1.0
    with pytest.raises(ValueError, match="ground truth"):
        multiple_choice(conversation("The answer is E"), "E", letters="ABCD")
    result = run(multiple_choice, "The answer is E. Earlier I said (B).", "B", letters="ABCD")
    assert result.score == 1.0  # "E" is not an option, so the statement names no choice
    assert score(multiple_choice, "The answer is 2", "B", letters=["a", "b"]) == 0.0


@pytest.mark.parametrize("ground_truth", ["C", "(C)", "c", "C.", " [C] ", "**C**"])
def test_multiple_choice_ground_truth_letter_forms(ground_truth: str) -> None:
    assert score(multiple_choice, "Answer: C", ground_truth) == 1.0


CITIES = ["London", "Berlin", "Paris", "Paris, Texas"]


@pytest.mark.parametrize(
    ("response", "ground_truth", "options", "expected"),
    [
        ("The answer is Paris.", "C", CITIES, 1.0),
        ("The answer is paris", "Paris", CITIES, 1.0),  # ground truth as option text
        ("The answer is Paris, Texas.", "D", CITIES, 1.0),  # the longest option text wins
        ("Paris", "C", CITIES, 1.0),
        ("  **Paris.** ", "C", CITIES, 1.0),
        ("The answer is Parisian food.", "C", CITIES, 0.0),  # not the exact option text
        ("Paris is lovely.", "C", CITIES, 0.0),  # mentioning an option is not choosing it
        ("The answer is (C)", "Paris", CITIES, 1.0),
        ("The answer is C++", "D", ["Java", "Rust", "C", "C++"], 1.0),
        ("The answer is C", "C", ["Java", "Rust", "C", "C++"], 1.0),  # letter, not text "C"
        ("The answer is I only.", "A", ["I only", "II only", "I and II"], 1.0),
        ("The answer is II only.", "B", ["I only", "II only", "I and II"], 1.0),
        ("The answer is 1.5", "B", [1, 1.5, 2], 1.0),
        ("The answer is 1.5", "A", [1, 1.5, 2], 0.0),
        ("\\boxed{Berlin}", "B", CITIES, 1.0),
        ("The answer is Berlin", "B", {"A": "Berlin", "B": "Berlin "}, None),
        ("The answer is Rome", "(B)", {"(A)": "Rome", "B": "Oslo"}, 0.0),
        ("The answer is Rome", "(A)", {"(A)": "Rome", "B": "Oslo"}, 1.0),
    ],
)
def test_multiple_choice_with_option_texts(
    response: str, ground_truth: str, options: Any, expected: float | None
) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="two options"):
            multiple_choice(conversation(response), ground_truth, options=options)
        return
    assert score(multiple_choice, response, ground_truth, options=options) == expected


@pytest.mark.parametrize(
    ("params", "ground_truth", "message"),
    [
        ({"letters": "AAB"}, "A", "letters"),
        ({"letters": "A1"}, "A", "letters"),
        ({"letters": ""}, "A", "letters"),
        ({"letters": 5}, "A", "letters"),
        ({"letters": [1, 2]}, "A", "letters"),
        ({"letters": ["AB", "C"]}, "A", "letters"),
        ({"options": ["x"] * 11}, "A", "11 options"),
        ({"options": {"Z": "x"}, "letters": "AB"}, "A", "keys"),
        ({"options": "London"}, "A", "list or a mapping"),
        ({"options": ["x", ""]}, "A", "non-empty"),
        ({"options": ["x", None]}, "A", "non-empty"),
        ({"options": [True, False]}, "A", "quote it in YAML"),
        ({}, "Paris", "no options"),
        ({"options": CITIES}, "Rome", "option's text"),
    ],
)
def test_multiple_choice_misconfiguration_raises(
    params: dict, ground_truth: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        multiple_choice(conversation("The answer is A"), ground_truth, **params)


# --- length_reward -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "params", "expected"),
    [
        (5, {"max_chars": 10}, 1.0),
        (10, {"max_chars": 10}, 1.0),
        (15, {"max_chars": 10}, 0.5),
        (20, {"max_chars": 10}, 0.0),
        (50, {"max_chars": 10}, 0.0),
        (5, {"min_chars": 10}, 0.5),
        (500, {"min_chars": 10}, 1.0),
        (10, {"target_chars": 10}, 1.0),
        (5, {"target_chars": 10}, 0.5),
        (15, {"target_chars": 10}, 0.5),
        (12, {"min_chars": 8, "max_chars": 16}, 1.0),
        (4, {"min_chars": 8, "max_chars": 16}, 0.5),
        (20, {"min_chars": 8, "max_chars": 16}, 0.75),
        (7, {"min_chars": 0, "max_chars": 7.0}, 1.0),
    ],
)
def test_length_reward_formula(length: int, params: dict, expected: float) -> None:
    assert score(length_reward, "x" * length, **params) == pytest.approx(expected)


def test_length_reward_counts_words_or_normalised_characters() -> None:
    assert score(length_reward, "one two  three\nfour", unit="words", max_chars=2) == 0.0
    assert score(length_reward, "one two three", unit="words", max_chars=2) == 0.5
    assert score(length_reward, "  \n abc \n", max_chars=3) == 1.0  # surrounding space
    assert score(length_reward, "cafe\u0301", target_chars=4) == 1.0  # one é, not two
    result = run(length_reward, "abcdef", max_chars=3)
    assert result.metrics["in_range"].score == 0.0 and "6 chars" in result.reason


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"target_chars": 10, "max_chars": 20},
        {"min_chars": 20, "max_chars": 10},
        {"max_chars": 0},
        {"target_chars": 0},
        {"min_chars": -1},
        {"target_chars": "10"},
        {"max_chars": float("inf")},
        {"max_chars": 10, "unit": "tokens"},
    ],
)
def test_length_reward_misconfiguration_raises(params: dict) -> None:
    with pytest.raises(ValueError, match="length_reward"):
        length_reward(conversation("abc"), None, **params)


# --- cosine_scaled_length ------------------------------------------------------------------


def padded(answer: str, length: int) -> str:
    """A response of exactly ``length`` characters ending in ``answer``."""
    return "x" * (length - len(answer)) + answer


@pytest.mark.parametrize(
    ("length", "correct", "raw"),
    [
        (20, True, None),  # near max_value_correct
        (50, True, 0.75),  # cos(pi/2) = 0: halfway between 0.5 and 1.0
        (100, True, 0.5),  # min_value_correct at max_len
        (200, True, 0.5),  # capped; open-r1's cosine would wrap back up to 1.0
        (50, False, -0.75),
        (100, False, -0.5),  # max_value_wrong at max_len
        (300, False, -0.5),
    ],
)
def test_cosine_scaled_length_values(length: int, correct: bool, raw: float | None) -> None:
    response = padded(" The answer is 5" if correct else " The answer is 6", length)
    result = run(cosine_scaled_length, response, "5", max_len=100)
    assert result.metrics["correct"].score == (1.0 if correct else 0.0)
    if raw is not None:
        assert result.score == pytest.approx((raw + 1) / 2)
        assert f"open-r1 value {raw:.4f}" in result.metrics["length"].reason
    else:
        assert 0.95 < result.score < 1.0  # cos(0.2 pi) = 0.81: v = 0.95, score 0.98


@pytest.mark.parametrize(
    ("length", "scale"), [(2, 0.999), (25, 0.8536), (50, 0.5), (100, 0.0), (250, 0.0)]
)
def test_cosine_scaled_length_metric_is_the_capped_cosine(length: int, scale: float) -> None:
    result = run(cosine_scaled_length, padded(" 5", length), "5", max_len=100)
    assert result.metrics["length"].score == pytest.approx(scale, abs=1e-3)


def test_cosine_scaled_length_prefers_short_correct_and_long_wrong_answers() -> None:
    def at(length: int, answer: str) -> float:
        return score(cosine_scaled_length, padded(answer, length), "5", max_len=100)

    correct = [at(length, " The answer is 5") for length in (20, 40, 60, 80, 100)]
    wrong = [at(length, " The answer is 6") for length in (20, 40, 60, 80, 100)]
    assert correct == sorted(correct, reverse=True) and len(set(correct)) == 5
    assert wrong == sorted(wrong) and len(set(wrong)) == 5
    assert min(correct) > max(wrong)


def test_cosine_scaled_length_uses_the_configured_correctness_check(tmp_path: Any) -> None:
    params = {"correct": "rewardflow.rewards.text:exact_match", "max_len": 10}
    assert run(cosine_scaled_length, "PARIS", "paris", **params).metrics["correct"].score == 0.0
    with_params = {**params, "correct_params": {"case_sensitive": False}}
    assert run(cosine_scaled_length, "PARIS", "paris", **with_params).metrics["correct"].score
    check_file = tmp_path / "check.py"
    check_file.write_text("def check(messages, ground_truth, **kwargs):\n    return 0.6\n")
    from_file = {"correct": f"{check_file}:check", "max_len": 10}
    assert not run(cosine_scaled_length, "x", None, **from_file).metrics["correct"].score
    lenient = {**from_file, "correct_threshold": 0.5}
    assert run(cosine_scaled_length, "x", None, **lenient).metrics["correct"].score == 1.0
    by_callable = {"correct": lambda messages, ground_truth, **kwargs: True, "max_len": 10}
    assert run(cosine_scaled_length, "x", None, **by_callable).metrics["correct"].score == 1.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_value_wrong": -2.0}, "min_value_wrong"),
        ({"max_value_correct": 1.5}, "max_value_correct"),
        ({"min_value_correct": 0.9, "max_value_correct": 0.8}, "above"),
        ({"max_len": 0}, "max_len"),
        ({"max_len": "1000"}, "max_len"),
        ({"correct": "no_such_module_xyz:check"}, "correct"),
        ({"correct": "rewardflow.rewards.text:no_such_function"}, "correct"),
        ({"correct": 3}, "correct"),
        ({"correct_params": ["x"]}, "correct_params"),
        ({"correct_threshold": 2}, "correct_threshold"),
    ],
)
def test_cosine_scaled_length_misconfiguration_raises(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cosine_scaled_length(conversation("The answer is 5"), "5", **params)


# --- repetition_penalty --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "params", "expected"),
    [
        ("the quick brown fox jumps over the lazy dog", {}, 1.0),
        ("a b c a b c a b c", {}, 3 / 7),  # 7 trigrams, 3 distinct
        ("a b c a b c a b c", {"max_penalty": -0.5}, 1 - 0.5 * (4 / 7)),
        ("a b c a b c a b c", {"max_penalty": 0.0}, 1.0),
        ("A b C a B c", {}, 0.75),  # lower-cased: abc bca cab abc
        ("a b c a b c", {"ngram_size": 1}, 0.5),
        ("hello world", {}, 1.0),  # fewer words than ngram_size: nothing can repeat
        ("go " * 10_000, {}, 1 / 9_998),
    ],
)
def test_repetition_penalty(response: str, params: dict, expected: float) -> None:
    assert score(repetition_penalty, response, **params) == pytest.approx(expected)


def test_repetition_penalty_keeps_the_open_r1_value_in_the_reason() -> None:
    result = run(repetition_penalty, "a b c a b c a b c")
    assert "open-r1 penalty -0.5714" in result.reason
    assert result.metrics["distinct_ngrams"].score == pytest.approx(3 / 7)


@pytest.mark.parametrize(
    "params",
    [{"max_penalty": 0.5}, {"max_penalty": -1.5}, {"ngram_size": 0}, {"ngram_size": "3"}],
)
def test_repetition_penalty_misconfiguration_raises(params: dict) -> None:
    with pytest.raises(ValueError, match="repetition_penalty"):
        repetition_penalty(conversation("a b c"), None, **params)


# --- json_valid ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected", "source"),
    [
        ('{"a": 1}', 1.0, "whole response"),
        ("  [1, 2]\n", 1.0, "whole response"),
        ('"just a string"', 1.0, "whole response"),
        ('Here you go:\n```json\n{"a": 1}\n```\nDone.', 1.0, "```json block"),
        ('```JSON\n{"a": 1}\n```', 1.0, "```json block"),
        ('The result is {"a": [1, {"b": "}"}]} as asked.', 1.0, "span"),
        ('The 5" screen: {"a": 1}', 1.0, "span"),  # a stray quote in prose
        ('Use [brackets] like so: {"a": 2}', 1.0, "span"),  # the first span is not JSON
        ('x {"a": oops, "b": {"c": 1}} y', 0.0, "span"),  # valid JSON nested in invalid
        ('```json\n{"a": 1, }\n```\n{"b": 2}', 0.0, "```json block"),  # the block is judged
        ('```json\n{"a": 1', 0.0, "```json block"),  # cut off mid-block
        ('{"a": 1', 0.0, ""),  # cut off, no closing brace
        ('{"a": NaN}', 0.0, ""),
        ("Infinity", 0.0, ""),
        ("no json here", 0.0, ""),
        ("[" * 100_000 + "]" * 100_000, 0.0, ""),  # too deep for the parser
        ('{"\u540d\u524d": "\u5024 \U0001f600"}', 1.0, "whole response"),
    ],
)
def test_json_valid(response: str, expected: float, source: str) -> None:
    result = run(json_valid, response)
    assert result.score == expected, result.reason
    assert result.metrics["valid_json"].score == expected
    assert source in result.reason


def test_json_valid_without_extraction_needs_the_whole_response() -> None:
    fenced = '```json\n{"a": 1}\n```'
    assert score(json_valid, fenced) == 1.0
    assert score(json_valid, fenced, extract=False) == 0.0
    assert score(json_valid, ' {"a": 1} ', extract=False) == 1.0
    with pytest.raises(ValueError, match="extract"):
        json_valid(conversation("{}"), None, extract="no")


def test_json_valid_does_not_raise_on_an_overlong_integer() -> None:
    assert score(json_valid, "9" * 5000) == 0.0  # Python refuses ints past 4300 digits


# --- json_schema ---------------------------------------------------------------------------

ORDER_SCHEMA = {
    "type": "object",
    "required": ["id", "items"],
    "properties": {
        "id": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["price"],
                "properties": {"price": {"type": "number", "minimum": 0}},
            },
        },
    },
}


@pytest.mark.parametrize(
    ("response", "expected", "in_reason"),
    [
        ('{"id": "x", "items": [{"price": 2.5}]}', 1.0, "conforms"),
        ('Sure: ```json\n{"id": "x", "items": []}\n```', 1.0, "```json block"),
        ('{"id": "x", "items": [{"price": 1}, {"price": "abc"}]}', 0.0, "$.items[1].price"),
        ('{"id": "x", "items": [{"price": -1}]}', 0.0, "$.items[0].price"),
        ('{"items": []}', 0.0, "'id' is a required property"),
        ('{"id": 5, "items": 3}', 0.0, "(2 violations)"),
        ("[1, 2]", 0.0, "is not of type 'object'"),
    ],
)
def test_json_schema(response: str, expected: float, in_reason: str) -> None:
    result = run(json_schema, response, schema=ORDER_SCHEMA)
    assert result.score == expected
    assert result.metrics["valid_json"].score == 1.0
    assert result.metrics["schema_valid"].score == expected
    assert in_reason in result.reason, result.reason


def test_json_schema_on_invalid_json_reports_both_metrics() -> None:
    result = run(json_schema, '{"id": ', schema=ORDER_SCHEMA)
    assert result.score == 0.0
    assert result.metrics["valid_json"].score == 0.0
    assert "not checked" in result.metrics["schema_valid"].reason


def test_json_schema_reason_stays_short_for_a_huge_offending_value() -> None:
    response = json.dumps({"id": "x" * 1_000_000, "items": "not a list"})
    result = run(json_schema, response, schema={"properties": {"id": {"type": "integer"}}})
    assert len(result.reason) < 400


def test_json_schema_checks_formats() -> None:
    schema = {"type": "object", "properties": {"mail": {"format": "email"}}}
    assert score(json_schema, '{"mail": "a@example.com"}', schema=schema) == 1.0
    assert score(json_schema, '{"mail": "not an address"}', schema=schema) == 0.0


def test_json_schema_from_a_file(tmp_path: Any) -> None:
    json_file = tmp_path / "schema.json"
    json_file.write_text(json.dumps(ORDER_SCHEMA))
    yaml_file = tmp_path / "schema.yaml"
    yaml_file.write_text(yaml.safe_dump(ORDER_SCHEMA))
    for path in (json_file, yaml_file):
        assert score(json_schema, '{"id": "x", "items": []}', schema_path=str(path)) == 1.0
        assert score(json_schema, '{"id": "x"}', schema_path=str(path)) == 0.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "exactly one"),
        ({"schema": {}, "schema_path": "x.json"}, "exactly one"),
        ({"schema": {"type": "nope"}}, "invalid schema"),
        ({"schema": {"properties": {"a": {"minimum": "zero"}}}}, "invalid schema"),
        ({"schema": ["type", "object"]}, "mapping"),
        ({"schema": {"type": "object", "x": {1, 2}}}, "not JSON data"),
        ({"schema_path": "/no/such/schema.json"}, "cannot read"),
        ({"schema_path": 5}, "file path"),
    ],
)
def test_json_schema_misconfiguration_raises(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        json_schema(conversation("{}"), None, **params)


def test_json_schema_refuses_a_schema_file_that_is_not_json(tmp_path: Any) -> None:
    bad = tmp_path / "schema.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        json_schema(conversation("{}"), None, schema_path=str(bad))


# --- json_fields ---------------------------------------------------------------------------

ORDER = '{"customer": "Maria Lopez", "quantity": 3, "gift": false, "tags": ["blue", "mug"]}'


@pytest.mark.parametrize(
    ("response", "expected", "wrong"),
    [
        (ORDER, 1.0, []),
        # Strings are compared as answers (case, spacing, punctuation); numbers by value.
        ('Here: {"customer": "maria  lopez.", "quantity": 3.0, "gift": false,'
         ' "tags": ["Blue", "mug"], "extra": 1}', 1.0, []),
        ('{"customer": "Maria Lopez", "quantity": "3", "gift": 0, "tags": ["mug", "blue"]}',
         0.25, ["quantity", "gift", "tags"]),
        ('{"customer": "Maria Lopez", "quantity": 4}', 0.25, ["quantity", "gift", "tags"]),
        ("[1, 2]", 0.0, ["customer", "quantity", "gift", "tags"]),
    ],
)  # fmt: skip
def test_json_fields(response: str, expected: float, wrong: list[str]) -> None:
    result = run(json_fields, response, ORDER)
    assert result.score == expected
    failed = [name for name, metric in result.metrics.items() if metric.score == 0.0]
    assert failed == [f"field.{key}" for key in wrong]
    assert result.metrics["valid_json"].score == 1.0


def test_json_fields_options_and_reasons() -> None:
    half = '{"customer": "maria lopez", "quantity": 3}'
    truth = '{"customer": "Maria Lopez", "quantity": 3}'
    assert run(json_fields, half, truth, normalize_strings=False).score == 0.5
    result = run(json_fields, '{"customer": "Maria Lopez", "quantity": 5}', truth,
                 all_or_nothing=True)  # fmt: skip
    assert result.score == 0.0
    assert result.metrics["field.quantity"].reason == "got 5, expected 3"
    assert run(json_fields, '{"customer": "Maria', truth).metrics["valid_json"].score == 0.0


@pytest.mark.parametrize("ground_truth", [None, "", "[1]", "{}", "not json", '"text"'])
def test_json_fields_needs_a_json_object_as_ground_truth(ground_truth: Any) -> None:
    with pytest.raises(ValueError, match="json_fields: the ground truth"):
        json_fields(conversation("{}"), ground_truth)


# --- every built-in: odd input -------------------------------------------------------------

# Each built-in with a configuration, a ground truth, and a response it scores 1.0.
BUILTINS: dict[str, tuple[Reward, Any, dict[str, Any], str]] = {
    "exact_match": (exact_match, "Paris", {}, "Paris"),
    "normalized_match": (normalized_match, "Paris", {}, "paris."),
    "regex_match": (regex_match, None, {"pattern": ".*"}, "anything"),
    "regex_match_group": (regex_match, "5", {"pattern": r"(\d+)", "compare_group": 1}, "5"),
    "think_answer_format": (think_answer_format, None, {}, "<think>a</think><answer>b</answer>"),
    "tag_count": (tag_count, None, {}, "<think>a</think><answer>b</answer>"),
    "multiple_choice": (multiple_choice, "C", {}, "The answer is (C)."),
    "length_reward": (length_reward, None, {"max_chars": 100}, "short"),
    "cosine_scaled_length": (cosine_scaled_length, "5", {"max_len": 10**9}, "5"),
    "repetition_penalty": (repetition_penalty, None, {}, "no repeats at all here"),
    "json_valid": (json_valid, None, {}, "{}"),
    "json_schema": (json_schema, None, {"schema": {"type": "object"}}, "{}"),
    "json_fields": (json_fields, '{"a": 1}', {}, '{"a": 1.0}'),
}

ODD_CONVERSATIONS = {
    "empty": conversation(""),
    "whitespace": conversation(" \n\t\u00a0"),
    "None content": conversation(None),
    "empty content parts": conversation([]),
    "no content key": [{"role": "user", "content": "q"}, {"role": "assistant"}],
    "no assistant message": [{"role": "user", "content": "The answer is (C). {} 5"}],
    "no messages": [],
    "messages is None": None,
}


@pytest.mark.parametrize("case", list(BUILTINS))
def test_each_builtin_scores_its_good_response_1(case: str) -> None:
    reward, ground_truth, params, good = BUILTINS[case]
    assert score(reward, good, ground_truth, **params) == 1.0


@pytest.mark.parametrize("odd", list(ODD_CONVERSATIONS))
@pytest.mark.parametrize("case", list(BUILTINS))
def test_odd_conversations_score_0_with_a_reason(case: str, odd: str) -> None:
    reward, ground_truth, params, good = BUILTINS[case]
    result = reward(ODD_CONVERSATIONS[odd], ground_truth, **params)
    assert to_reward_result(result).score == 0.0
    expected_reason = "no assistant message" if "assistant" in odd or "messages" in odd else "empty"
    assert expected_reason in result.reason
    # The same metric keys as on a scored response, so per-metric means are over all samples.
    normal = reward(conversation(good), ground_truth, **params)
    assert set(result.metrics) == set(normal.metrics)


@pytest.mark.parametrize("case", list(BUILTINS))
def test_content_parts_and_message_objects_are_read(case: str) -> None:
    reward, ground_truth, params, good = BUILTINS[case]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": good}]}]
    assert reward(parts, ground_truth, **params).score == 1.0
    objects = [SimpleNamespace(role="user", content="q"), SimpleNamespace(role="assistant")]
    objects[1].content = good
    assert reward(objects, ground_truth, **params).score == 1.0


@pytest.mark.parametrize("case", list(BUILTINS))
def test_only_the_last_assistant_message_is_graded(case: str) -> None:
    reward, ground_truth, params, good = BUILTINS[case]
    messages = [{"role": "assistant", "content": good}, *conversation("")]
    assert reward(messages, ground_truth, **params).score == 0.0


# Text any built-in reads as text: `.*` matches it, it is under 100 characters, no word repeats.
ANY_TEXT = {"regex_match", "length_reward", "repetition_penalty"}
# Odd Unicode, and the built-ins (BUILTINS keys) that score it 1.0; every other one scores 0.0.
UNICODE_RESPONSES: dict[str, tuple[str, set[str]]] = {
    "bidi override, Hebrew, emoji ZWJ sequence, then (C) and 5": (
        "\u202e\u05e9\u05dc\u05d5\u05dd (C) \U0001f469\u200d\U0001f469\u200d\U0001f467 5",
        ANY_TEXT | {"multiple_choice", "regex_match_group", "cosine_scaled_length"},
    ),
    "lone surrogates, one in a JSON object": (
        '\ud800 lone surrogate {"a": "\udfff"}',
        ANY_TEXT | {"json_valid", "json_schema"},  # an object, but "a" is not 1
    ),
    "control characters and a BOM": ("\x00\x01 control characters \ufeff", ANY_TEXT),
    # Full-width letters are not read as an answer letter: multiple_choice finds none.
    "full-width 'Answer: C'": ("\uff21\uff4e\uff53\uff57\uff45\uff52: \uff23", ANY_TEXT),
    # 1,000 characters once composed: over length_reward's 100.
    "e + combining acute, 1000 times": ("e\u0301" * 1000, {"regex_match", "repetition_penalty"}),
}


@pytest.mark.parametrize("response", list(UNICODE_RESPONSES))
@pytest.mark.parametrize("case", list(BUILTINS))
def test_odd_unicode_is_scored_for_what_it_says(case: str, response: str) -> None:
    reward, ground_truth, params, _ = BUILTINS[case]
    text, full_marks = UNICODE_RESPONSES[response]
    expected = 1.0 if case in full_marks else 0.0
    # cosine_scaled_length's cosine gives 1 - 2e-16 and 5e-17 rather than exactly 1 and 0.
    assert score(reward, text, ground_truth, **params) == pytest.approx(expected, abs=1e-9)


MEGABYTE = 1_000_000
HUGE_RESPONSES = {
    "prose": ("The farmer sells A cows; I think. " * (MEGABYTE // 34))[:MEGABYTE],
    "brackets": ('{["(' * (MEGABYTE // 4))[:MEGABYTE],
    "markers": ("The answer is (C) \\boxed{ <think> ```json\n" * (MEGABYTE // 42))[:MEGABYTE],
}


@pytest.mark.parametrize("shape", list(HUGE_RESPONSES))
@pytest.mark.parametrize("case", list(BUILTINS))
def test_a_megabyte_response_is_scored_with_a_short_reason(case: str, shape: str) -> None:
    # How long it takes is measured by bench/unit_timings.py.
    reward, ground_truth, params, _ = BUILTINS[case]
    result = run(reward, HUGE_RESPONSES[shape], ground_truth, **params)
    assert len(result.reason) < 1000
    assert all(len(metric.reason) < 1000 for metric in result.metrics.values())


def test_a_megabyte_response_with_its_answer_at_the_end() -> None:
    filler = "Let me think about the options again. " * (MEGABYTE // 38)
    assert score(multiple_choice, filler + "The answer is (C).", "C") == 1.0
    assert score(regex_match, filler + "Answer: 5", "5", **ANSWER_GROUP) == 1.0
    assert score(json_valid, filler + '```json\n{"a": 1}\n```') == 1.0


# --- documentation -------------------------------------------------------------------------

PUBLIC_REWARDS = {
    "rewardflow.rewards.text:exact_match": exact_match,
    "rewardflow.rewards.text:normalized_match": normalized_match,
    "rewardflow.rewards.text:regex_match": regex_match,
    "rewardflow.rewards.format:think_answer_format": think_answer_format,
    "rewardflow.rewards.format:tag_count": tag_count,
    "rewardflow.rewards.choice:multiple_choice": multiple_choice,
    "rewardflow.rewards.length:length_reward": length_reward,
    "rewardflow.rewards.length:cosine_scaled_length": cosine_scaled_length,
    "rewardflow.rewards.length:repetition_penalty": repetition_penalty,
    "rewardflow.rewards.json_rewards:json_valid": json_valid,
    "rewardflow.rewards.json_rewards:json_schema": json_schema,
}

# A (response, ground truth) pair that each docstring's and the docs' config examples score 1.0.
EXAMPLE_CASES = {
    "exact_match": ("PARIS", "paris"),
    "normalized_match": ("The Eiffel Tower.", "eiffel tower"),
    "regex_match": ("Thinking...\nFinal answer: The Eiffel Tower", "eiffel tower"),
    "tag_count": ("<think>a</think><answer>b</answer>", None),
    "multiple_choice": ("The answer is maybe.", "C"),
    "length_reward": ("A short answer.", None),
    "cosine_scaled_length": ("(C)", "C"),  # short and correct, with any of the checks shown
    "repetition_penalty": ("each word here is different from the others", None),
    "json_valid": ('{"name": "Ada", "age": 36}', None),
    "json_schema": ('{"name": "Ada", "age": 36}', None),
    # Only in docs/rewards.md, not in a docstring:
    "json_fields": ('{"name": "ADA.", "age": 36.0}', '{"name": "Ada", "age": 36}'),
    "math_reward": ("So she has 1,200 apples.\n#### 1200", "1200"),
}


def _example_case(name: str, params: dict[str, Any]) -> tuple[str, Any]:
    if name == "think_answer_format":
        think, answer = params.get("think_tag", "think"), params.get("answer_tag", "answer")
        return f"<{think}>a</{think}><{answer}>b</{answer}>", None
    return EXAMPLE_CASES[name]


def _config_example(function: Reward) -> list[dict[str, Any]]:
    docstring = inspect.getdoc(function) or ""
    match = re.search(r"Config::\n\n((?:    .*\n|\n)+)", docstring + "\n")
    assert match, f"{function.__name__}'s docstring has no 'Config::' example"
    return yaml.safe_load(inspect.cleandoc(match.group(1)))["rewards"]


def _check_example(entry: dict[str, Any]) -> None:
    spec = load_rewards([entry])[0]
    name = spec.function.__name__
    response, ground_truth = _example_case(name, spec.params)
    result = run(spec.function, response, ground_truth, **spec.params)
    if name == "cosine_scaled_length":
        assert result.metrics["correct"].score == 1.0 and result.score > 0.99, result.reason
    else:
        assert result.score == 1.0, (entry, result.reason)


@pytest.mark.parametrize("reference", list(PUBLIC_REWARDS))
def test_each_docstring_has_a_working_config_example(reference: str) -> None:
    function = PUBLIC_REWARDS[reference]
    entries = _config_example(function)
    assert [entry["function"] for entry in entries] == [reference]
    assert load_reward_function(reference) is function
    _check_example(entries[0])


DOCS = REPO / "docs" / "rewards.md"


def _docs_examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    entries = []
    for block in blocks:
        loaded = yaml.safe_load(block)
        if isinstance(loaded, dict) and "rewards" in loaded:
            entries.extend(loaded["rewards"])
    return entries


def test_docs_show_every_builtin_with_a_config_example() -> None:
    documented = {entry["function"] for entry in _docs_examples()}
    missing = set(PUBLIC_REWARDS) - documented
    assert not missing, f"docs/rewards.md has no YAML example for {sorted(missing)}"
    assert "rewardflow.rewards.math:math_reward" in documented


def test_docs_config_examples_work() -> None:
    checked = set()
    for entry in _docs_examples():
        if not entry["function"].startswith("rewardflow."):
            continue  # a reward file of the reader's own
        spec = load_rewards([entry])[0]
        if spec.function.__name__ in EXAMPLE_CASES or entry["function"] in PUBLIC_REWARDS:
            _check_example(entry)
            checked.add(spec.function.__name__)
        else:  # the code sandbox and the judge have their own tests; here the config loads
            assert spec.params == entry.get("params", {}), entry
    assert {"math_reward", "json_fields"} <= checked
