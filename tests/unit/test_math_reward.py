"""Tests for the built-in math reward: extraction, number normalisation, and the fallback.

Most cases are the ways a correct answer gets written differently from its ground truth
(``$1,200.`` vs ``1200``) and the ways a naive grader picks the wrong number (the first one, or
``700`` out of ``#### 70000``). Each is a row of a table so that a regression names the case.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from rewardflow.config.scoring import ScoringSettings
from rewardflow.rewards import math as math_module
from rewardflow.rewards.math import extract_final_answer, math_reward, parse_number
from rewardflow.rewards.result import RewardResult, to_reward_result

REPO = Path(__file__).resolve().parents[2]

UNICODE_MINUS = "\u2212"


def conversation(response: Any) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Solve the problem."},
        {"role": "user", "content": "How many?"},
        {"role": "assistant", "content": response},
    ]


def score(response: Any, ground_truth: str, **kwargs: Any) -> float:
    return math_reward(conversation(response), ground_truth, **kwargs).score


def load_table() -> ModuleType:
    """The graded cases in tests/data/math_cases.py (shared with bench/math_agreement.py)."""
    spec = importlib.util.spec_from_file_location(
        "math_cases", REPO / "tests" / "data" / "math_cases.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLE = load_table()


@pytest.fixture
def no_math_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if math-verify is reached: plain numbers must not need it."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"math-verify called with {args!r}")

    monkeypatch.setattr(math_module, "_mv_parse", forbidden)
    monkeypatch.setattr(math_module, "_mv_verify", forbidden)


# --- parse_number --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("18", Fraction(18)),
        ("1,200", Fraction(1200)),
        ("3,000,000", Fraction(3_000_000)),
        ("1{,}200", Fraction(1200)),
        ("1\\,200", Fraction(1200)),
        ("1,200.50", Fraction(240_100, 200)),
        ("0.25", Fraction(1, 4)),
        (".5", Fraction(1, 2)),
        ("$18", Fraction(18)),
        ("\\$18", Fraction(18)),
        ("18.00", Fraction(18)),
        ("18 dollars.", Fraction(18)),
        ("18.", Fraction(18)),
        ("**18**", Fraction(18)),
        ("$18$", Fraction(18)),
        ("\\(18\\)", Fraction(18)),
        ("\\boxed{1,200}", Fraction(1200)),
        ("18 \\text{ cm}", Fraction(18)),
        ("90^\\circ", Fraction(90)),
        ("-3", Fraction(-3)),
        (f"{UNICODE_MINUS}3", Fraction(-3)),
        ("-$5", Fraction(-5)),
        ("$-5", Fraction(-5)),
        ("+7", Fraction(7)),
        ("1/2", Fraction(1, 2)),
        ("\\frac{1}{2}", Fraction(1, 2)),
        ("\\dfrac{1}{2}", Fraction(1, 2)),
        ("\\tfrac{3}{4}", Fraction(3, 4)),
        ("\\dfrac12", Fraction(1, 2)),
        ("-\\frac{1}{2}", Fraction(-1, 2)),
        ("\\frac{-1}{2}", Fraction(-1, 2)),
        ("50%", Fraction(50)),
        ("50\\%", Fraction(50)),
        ("50 percent", Fraction(50)),
        ("1e5", Fraction(100_000)),
        ("1234567890123", Fraction(1_234_567_890_123)),
        ("  42  ", Fraction(42)),
        # locale separators: spaces (also no-break and thin) and dots between thousands, and
        # a decimal comma before anything but a group of exactly three digits
        ("2 000", Fraction(2000)),
        ("1\u00a0234\u00a0567", Fraction(1_234_567)),
        ("1\u202f234\u202f567", Fraction(1_234_567)),
        ("1.234.567", Fraction(1_234_567)),
        ("3,15", Fraction(315, 100)),
        ("1,20", Fraction(12, 10)),
        ("12,34", Fraction(1234, 100)),
        ("1.500,5", Fraction(3001, 2)),
        ("1 500,5", Fraction(3001, 2)),
        ("3,15 €", Fraction(315, 100)),
        ("45,00 $", Fraction(45)),
        ("25 \\text{ cm}^2", Fraction(25)),
        ("5 m/s", Fraction(5)),
    ],
)
def test_parse_number_reads_plain_numbers_exactly(text: str, value: Fraction) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "x=5",
        "2\\pi",
        "2 pi",  # not 2: pi is not a unit
        "5 x",  # a variable, not a unit
        "\\frac{\\sqrt{2}}{2}",
        "1, 2, 3",  # a list, not 123
        "1,2,3",  # a list, not 1.2 and 3
        "1/0",
        "1e999999",  # would be a million-digit integer
        "9" * 500,  # longer than any real answer; int() would also refuse past 4300 digits
        "--5",
        "-$-5",
    ],
)
def test_parse_number_rejects_what_is_not_one_plain_number(text: str) -> None:
    assert parse_number(text) is None


def test_parse_number_rejects_non_strings() -> None:
    assert parse_number(None) is None  # type: ignore[arg-type]
    assert parse_number(18) is None  # type: ignore[arg-type]


# --- extract_final_answer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        # each marker on its own
        ("\\boxed{18}", "18"),
        ("#### 18", "18"),
        ("The answer is 18", "18"),
        ("Answer: 18", "18"),
        ("answer: 18", "18"),
        ("**Final Answer:** 1,200", "1,200"),
        ("The final answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("We get 18 apples.", "18"),
        # ground truths and answers of any length
        ("#### 70000", "70000"),
        ("#### 1234567890123", "1234567890123"),
        ("#### 3,000,000", "3,000,000"),
        # priority: \boxed, then ####, then "answer is", then the last number
        ("The answer is 3. #### 4 \\boxed{5}", "5"),
        ("\\boxed{5} then #### 4", "5"),
        ("#### 4\nThe answer is 3", "4"),
        ("The answer is 3, since 3 < 10", "3"),
        # the final answer wins when the text has several numbers
        ("First 12, then 5 more gives 17. The answer is 17", "17"),
        ("I think 3... actually 4", "4"),
        ("\\boxed{3} no wait \\boxed{4}", "4"),
        ("The answer is 3. Hmm, no. The answer is 4.", "4"),
        # nested braces and wrappers inside the box
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("$\\boxed{\\frac{\\sqrt{2}}{2}}$", "\\frac{\\sqrt{2}}{2}"),
        ("\\boxed{\\text{18 dollars}}", "18 dollars"),
        ("\\fbox{7}", "7"),
        # a box cut off by max_tokens does not hide an earlier, closed one
        ("\\boxed{3} and finally \\boxed{\\frac{4}{", "3"),
        # a markdown heading is not a GSM8K marker
        ("#### Step 1\nWe need 5 apples.\n#### Final answer\nSo 6 apples", "6"),
        # "the answer is" followed by prose is not an answer
        ("The answer is 17. I hope the answer is correct.", "17"),
        ("Final Answer: The final answer is $18$. I hope it is correct.", "18"),
        ("The answer is therefore 18 apples, since 3 * 6 = 18.", "18"),
        # a computation after the marker: its result is the answer
        ("The answer is 3 + 4 = 7.", "7"),
        ("The answer is $2\\pi$.", "2\\pi"),
        ("The answer is x = 5.", "x = 5"),
        ("The answer is B.", "B"),
        # number formatting survives extraction
        ("The total is $1,200.", "1,200"),
        ("That is 50% of them.", "50%"),
        ("so x = -3", "-3"),
        (f"so x = {UNICODE_MINUS}3", f"{UNICODE_MINUS}3"),
        ("pages 10-12", "12"),  # a hyphen between numbers is not a minus sign
        ("it was 0.25 of the cake", "0.25"),
        ("1, 2, 3", "3"),  # a list, not the number 123
        ("the ratio is 3/4", "3/4"),
        ("\u7b54\u6848\u662f 18\u3002", "18"),  # CJK text around the number
        # locale separators and decimal commas
        ("It costs 3,15 \u20ac", "3,15"),
        ("That is 2 000 people.", "2 000"),
        ("so 1,2,3", "3"),  # the end of a list, not 2.3
        # boxes joined by a comma or "or" are one answer; prose between boxes is a revision
        ("\\boxed{3}, \\boxed{4}", "3, 4"),
        ("$x = \\boxed{-1}$ or $x = \\boxed{2}$", "-1, 2"),
        ("\\boxed{3}. That is wrong, so \\boxed{4}", "4"),
        # "Answer" followed directly by a formula
        ("Answer \\( (10+2) \\)", "(10+2)"),
        # a number followed by a relation or an operator is not the answer on its own
        ("The answer is $-2 \\le x$.", "-2 \\le x"),
        ("The answer is 5 \\times 3 = 15", "15"),
    ],
)
def test_extract_final_answer(text: str, answer: str) -> None:
    assert extract_final_answer(text) == answer


@pytest.mark.parametrize("text", ["", "   \n", "no numbers here", "The answer is correct."])
def test_extract_final_answer_returns_none_without_an_answer(text: str) -> None:
    assert extract_final_answer(text) is None


# --- math_reward: equal answers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "ground_truth"),
    [
        ("1,200", "1200"),
        ("1200", "1,200"),
        ("The total is 1,200 dollars.", "1,200"),
        ("$18", "18"),
        ("18.00", "18"),
        ("18 dollars.", "18"),
        ("18.", "18"),
        ("**18**", "18"),
        ("The answer is **$18**.", "18"),
        ("-3", "-3"),
        (f"{UNICODE_MINUS}3", "-3"),
        ("-3", f"{UNICODE_MINUS}3"),
        ("1/2", "0.5"),
        ("0.5", "1/2"),
        ("50%", "0.5"),  # a percent is also its value / 100, as math-verify reads it
        ("0.5", "50\\%"),
        ("It costs 3,15 \u20ac.", "3.15"),
        ("2 000", "2000"),
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{1}{2}", "0.5"),
        ("0.5", "\\frac{1}{2}"),
        ("50%", "50"),  # GSM8K convention: a trailing percent is the number itself
        ("50", "50%"),
        ("The answer is 18", "18"),
        ("#### 18", "18"),
        ("\\boxed{18}", "18"),
        ("\\boxed{1,200}", "1200"),
        ("70000", "#### 70000"),  # reward-kit reads this ground truth as 700
        ("He earns 700 * 100 = 70000.\n#### 70000", "70000"),
        ("1234567890123", "1234567890123"),
        ("First 12, then 5 more gives 17. The answer is 17", "17"),
        ("I think 3... actually 4", "4"),
        ("That makes 3,000,000", "3000000"),
        ("0.25", "1/4"),
        ("So the answer is $\\boxed{70}$.", "70"),
        ("Janet sells 16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18", "Janet ... = 18\n#### 18"),
    ],
)
def test_equal_answers_score_1(no_math_verify: None, response: str, ground_truth: str) -> None:
    assert score(response, ground_truth) == 1.0


@pytest.mark.parametrize(
    ("response", "ground_truth"),
    [
        ("#### 700", "#### 70000"),
        ("#### 70000", "700"),
        ("3", "-3"),
        ("1234567890124", "1234567890123"),  # integers are exact, whatever the tolerance
        ("12", "1,200"),
        ("0.5", "5"),
        ("5%", "0.5"),
        ("2,75", "275"),  # a decimal comma, not a thousands separator
        ("I think 17... actually 18", "17"),  # the last number wins
        ("1, 2, 3", "123"),
    ],
)
def test_different_answers_score_0(no_math_verify: None, response: str, ground_truth: str) -> None:
    assert score(response, ground_truth) == 0.0


# --- math_reward: the result it returns ----------------------------------------------------


def test_reason_says_what_was_extracted_and_compared() -> None:
    result = math_reward(conversation("So she has 18 left.\n#### 18"), "18")
    assert isinstance(result, RewardResult)
    assert result.score == 1.0
    assert result.reason == "extracted 18 (from '#### 18'), expected 18: match"
    assert result.metrics["answer_found"].score == 1.0
    assert "####" in result.metrics["answer_found"].reason
    assert to_reward_result(result) is result


def test_reason_on_a_mismatch_shows_normalised_values() -> None:
    result = math_reward(conversation("The answer is $1,200."), "1/2")
    assert result.score == 0.0
    assert result.reason == "extracted 1200 (from 'answer is $1,200'), expected 0.5: no match"
    assert result.metrics["answer_found"].score == 1.0


@pytest.mark.parametrize("content", [None, "", "   \n\t"])
def test_empty_response_scores_0_without_an_answer(content: Any) -> None:
    result = math_reward(conversation(content), "18")
    assert result.score == 0.0
    assert result.reason == "empty response"
    assert result.metrics["answer_found"].score == 0.0


def test_response_without_numbers_scores_0_with_a_reason() -> None:
    result = math_reward(conversation("I am not sure how to solve this."), "18")
    assert result.score == 0.0
    assert result.reason == "no answer or number in the response"
    assert result.metrics["answer_found"].score == 0.0
    assert result.metrics["answer_found"].reason


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": "18"}],
        [{"role": "system", "content": "#### 18"}, {"role": "user", "content": "q"}],
        None,
    ],
)
def test_no_assistant_message_scores_0(messages: Any) -> None:
    result = math_reward(messages, "18")
    assert result.score == 0.0
    assert result.reason == "no assistant message"
    assert result.metrics["answer_found"].score == 0.0


def test_only_the_last_assistant_message_is_graded() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "#### 18"},
        {"role": "user", "content": "are you sure?"},
        {"role": "assistant", "content": "Sorry, #### 19"},
        {"role": "user", "content": "ok, 18 it is"},
    ]
    assert math_reward(messages, "19").score == 1.0
    assert math_reward(messages, "18").score == 0.0


def test_content_parts_and_message_objects_are_read() -> None:
    parts = [{"type": "text", "text": "Let me think."}, {"type": "text", "text": "#### 18"}]
    assert score(parts, "18") == 1.0
    objects = [
        SimpleNamespace(role="user", content="q"),
        SimpleNamespace(role="assistant", content="18"),
    ]
    assert math_reward(objects, "18").score == 1.0  # type: ignore[arg-type]


@pytest.mark.parametrize("ground_truth", [None, "", "   "])
def test_missing_ground_truth_raises(ground_truth: str | None) -> None:
    with pytest.raises(ValueError, match="ground_truth"):
        math_reward(conversation("#### 18"), ground_truth)


def test_numeric_ground_truth_is_accepted() -> None:
    assert math_reward(conversation("#### 18"), 18).score == 1.0  # type: ignore[arg-type]


def test_unknown_kwargs_are_ignored() -> None:
    assert score("#### 18", "18", weight=2, dataset="gsm8k") == 1.0


def test_result_is_deterministic() -> None:
    messages = conversation("I think 3... actually 4. So \\boxed{4}")
    assert math_reward(messages, "4") == math_reward(messages, "4")


# --- tolerance -----------------------------------------------------------------------------


def test_default_tolerance_absorbs_decimal_rounding_only() -> None:
    assert score("0.333333", "1/3") == 1.0
    assert score("0.3333", "1/3") == 0.0


def test_tolerance_kwarg() -> None:
    assert score("0.3333", "1/3", tolerance=1e-3) == 1.0
    assert score("0.333333", "1/3", tolerance=0) == 0.0
    assert score("1/3", "1/3", tolerance=0) == 1.0
    # integers stay exact: a tolerance is for rounding, not for wrong digits
    assert score("1234567890124", "1234567890123", tolerance=0.01) == 0.0


@pytest.mark.parametrize("tolerance", [-1e-6, float("nan"), float("inf"), "1e-6", True])
def test_invalid_tolerance_raises(tolerance: Any) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        math_reward(conversation("18"), "18", tolerance=tolerance)


# --- math-verify fallback ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "ground_truth", "expected"),
    [
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}", 1.0),
        ("The answer is $\\frac{\\sqrt{2}}{2}$.", "\\frac{1}{\\sqrt{2}}", 1.0),
        ("\\boxed{x=5}", "5", 1.0),
        ("\\boxed{x = 5}", "x=5", 1.0),
        ("The answer is 12 + 5", "17", 1.0),
        ("\\boxed{1+x^2}", "x^2+1", 1.0),
        ("\\boxed{2\\pi}", "2\\pi", 1.0),
        ("\\boxed{3\\pi}", "2\\pi", 0.0),
        ("\\boxed{\\sqrt{3}}", "\\frac{\\sqrt{2}}{2}", 0.0),
        ("The answer is yes", "18", 0.0),
    ],
)
def test_symbolic_answers_fall_back_to_math_verify(
    response: str, ground_truth: str, expected: float
) -> None:
    result = math_reward(conversation(response), ground_truth)
    assert result.score == expected, result.reason
    assert result.metrics["answer_found"].score == 1.0


def test_math_verify_parse_failure_of_the_response_scores_0_with_a_reason() -> None:
    result = math_reward(conversation("\\boxed{\\frac{}{}{{}}}"), "\\frac{\\sqrt{2}}{2}")
    assert result.score == 0.0
    assert "no match" in result.reason


@pytest.mark.parametrize("error", [RuntimeError("sympy blew up"), ValueError("bad latex")])
def test_math_verify_exceptions_on_the_response_become_score_0(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    import math_verify

    parse = math_verify.parse

    def broken_on_the_response(text: str, *args: Any, **kwargs: Any) -> Any:
        if "x=5" in text:
            raise error
        return parse(text, *args, **kwargs)

    monkeypatch.setattr(math_verify, "parse", broken_on_the_response)
    result = math_reward(conversation("\\boxed{x=5}"), "\\frac{\\sqrt{2}}{2}")
    assert result.score == 0.0
    assert f"math-verify failed ({type(error).__name__})" in result.reason


def test_math_verify_exception_on_the_expected_answer_is_a_score_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import math_verify

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("sympy blew up")

    monkeypatch.setattr(math_verify, "parse", broken)
    # an expected answer no other test uses, so that no cached reading of it exists
    with pytest.raises(ValueError, match=r"cannot judge the expected answer.*RuntimeError"):
        math_reward(conversation("\\boxed{x=5}"), "\\frac{\\sqrt{7}}{13}")


@pytest.mark.parametrize(
    "ground_truth",
    [
        "\\frac{}{}{{}}",  # LaTeX math-verify cannot read
        "\\begin{tikzpicture}\\draw (0,0) -- (1,1);\\end{tikzpicture}",
        "???",
        "+".join(["x"] * 200),  # longer than any formula math-verify is given
    ],
)
def test_an_expected_answer_nobody_can_judge_is_a_score_error(ground_truth: str) -> None:
    # issue 12: "an answer format it cannot judge is an error, not a 0", whatever the response
    for response in ("\\boxed{5}", "", "no idea"):
        with pytest.raises(ValueError, match="cannot judge the expected answer"):
            math_reward(conversation(response), ground_truth)


def test_math_verify_timeout_becomes_score_0(monkeypatch: pytest.MonkeyPatch) -> None:
    # math-verify's TimeoutException derives from BaseException: `except Exception` misses it.
    import math_verify
    from math_verify.errors import TimeoutException

    def too_slow(*args: Any, **kwargs: Any) -> Any:
        raise TimeoutException("Operation timed out!")

    monkeypatch.setattr(math_verify, "verify", too_slow)
    result = math_reward(conversation("\\boxed{x=5}"), "\\frac{\\sqrt{2}}{2}")
    assert result.score == 0.0
    assert "math-verify failed (TimeoutException)" in result.reason


def test_math_verify_works_outside_the_main_thread() -> None:
    # With its default timeouts math-verify calls signal.signal, which raises ValueError in any
    # thread but the main one; the reward must switch the timeouts off there.
    results: list[RewardResult | BaseException] = []

    def run() -> None:
        try:
            results.append(
                math_reward(conversation("\\boxed{\\frac{1}{\\sqrt{2}}}"), "\\frac{\\sqrt{2}}{2}")
            )
        except BaseException as exc:  # reported below, not lost in the thread
            results.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)
    assert len(results) == 1
    result = results[0]
    assert isinstance(result, RewardResult), result
    assert result.score == 1.0, result.reason


def test_overlong_response_answer_is_not_handed_to_math_verify() -> None:
    answer = "+".join(["x"] * 200)
    result = math_reward(conversation(f"\\boxed{{{answer}}}"), "x+1")
    assert result.score == 0.0
    assert "too long" in result.reason


def test_word_answers_need_no_math_verify(no_math_verify: None) -> None:
    # math-verify reads "Monday" as m*o*n*d*a*y, the same product as "Dynamo"
    assert score("The answer is B.", "B") == 1.0
    assert score("\\boxed{\\text{Monday}}", "monday") == 1.0
    assert score("The answer is Dynamo.", "Monday") == 0.0


def test_identical_text_needs_no_comparison_by_math_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    assert score("\\boxed{x}", "\\frac{\\sqrt{2}}{2}") == 0.0  # the expected answer is read once

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("math-verify called")

    monkeypatch.setattr(math_module, "_mv_parse", forbidden)
    monkeypatch.setattr(math_module, "_mv_verify", forbidden)
    assert score("\\boxed{\\dfrac{\\sqrt{2}}{2}}", "\\frac{\\sqrt{2}}{2}") == 1.0


# --- the graded table (tests/data/math_cases.py) ---------------------------------------------


def _reward_verdict(expected: str, response: str) -> bool | None:
    try:
        return math_reward(conversation(response), expected).score == 1.0
    except ValueError:
        return None  # a score error


@pytest.mark.parametrize(
    "case",
    [
        case
        for case in TABLE.CASES
        if (case.expected, case.response) not in TABLE.KNOWN_DISAGREEMENTS
    ],
    ids=lambda case: f"{case.family}:{case.expected}|{case.response}"[:80],
)
def test_reward_agrees_with_the_careful_verdict(case: Any) -> None:
    assert _reward_verdict(case.expected, case.response) is case.verdict


def test_known_disagreements_are_exactly_the_disagreements() -> None:
    # The list cannot rot: a fixed case must leave it, a new disagreement must join it.
    disagreements = {
        (case.expected, case.response)
        for case in TABLE.CASES
        if _reward_verdict(case.expected, case.response) is not case.verdict
    }
    assert disagreements == set(TABLE.KNOWN_DISAGREEMENTS)


def test_known_disagreements_are_listed_in_the_docs() -> None:
    docs = (REPO / "docs" / "rewards.md").read_text()
    missing = [
        pair
        for pair in TABLE.KNOWN_DISAGREEMENTS
        if f"`{pair[0]}`" not in docs or f"`{pair[1]}`" not in docs
    ]
    assert not missing, f"docs/rewards.md does not list: {missing}"


def test_the_table_is_big_and_balanced_enough() -> None:
    families: dict[str, list[bool]] = defaultdict(list)
    for case in TABLE.CASES:
        families[case.family].append(case.verdict)
    assert len(TABLE.CASES) >= 200
    assert len({(case.expected, case.response) for case in TABLE.CASES}) == len(TABLE.CASES)
    for family, verdicts in families.items():
        assert any(verdicts) and not all(verdicts), f"{family} needs right and wrong answers"


def _issue_pairs() -> list[list[Any]]:
    groups: dict[frozenset[str], list[Any]] = defaultdict(list)
    for case in TABLE.CASES:
        if case.issue:
            groups[frozenset((case.expected, case.response))].append(case)
    return list(groups.values())


@pytest.mark.parametrize("cases", _issue_pairs(), ids=lambda cases: cases[0].expected[:40])
def test_issue_12_pairs_are_scored_right_both_ways_given(cases: list[Any]) -> None:
    # Each (expected, response) pair of issue 12 was scored wrong; where the table has it in
    # both directions (\frac4{4} and \cfrac{2}{3}), the reversed one was the wrong one.
    for case in cases:
        result = math_reward(conversation(case.response), case.expected)
        assert result.score == 1.0, result.reason


# --- adversarial inputs --------------------------------------------------------------------


def test_huge_response_ending_in_a_gsm8k_marker() -> None:
    response = "lorem ipsum 7 dolor sit amet " * 36_000 + "#### 42"
    assert len(response) > 1_000_000
    result = math_reward(conversation(response), "42")  # bench/unit_timings.py times it
    assert result.score == 1.0
    assert result.reason == "extracted 42 (from '#### 42'), expected 42: match"


@pytest.mark.parametrize(
    "response",
    [
        "\\boxed{" * 100_000,  # unclosed boxes: each brace scan is bounded
        "answer is " * 100_000,  # a marker repeated with nothing after it
        "#### " * 100_000,
        "1" * 1_000_000,  # one million-digit number
        "1e999999",
        "{" * 100_000 + "}" * 100_000,
    ],
)
def test_degenerate_responses_score_0_and_do_not_raise(response: str) -> None:
    result = math_reward(conversation(response), "42")  # bench/unit_timings.py times them
    assert result.score == 0.0


def test_unicode_text_around_the_answer() -> None:
    response = "Die Lösung: 3 × 6 = 18 \u00e4pfel \U0001f34e. \u7b54\u6848\u662f 18\u3002"
    assert score(response, "18") == 1.0
    assert score("\u00a0#### 18\u00a0\u2003", "18") == 1.0
    assert score("\u0000\ufffd\U0001f600", "18") == 0.0


@pytest.mark.parametrize("content", [None, 18, ["#### 18"], [{"type": "image_url"}, "#### 18"]])
def test_none_ish_and_odd_content_does_not_raise(content: Any) -> None:
    result = math_reward(conversation(content), "18")
    assert result.score in (0.0, 1.0)
    assert result.score == (0.0 if content is None else 1.0)


def test_scoring_workers_judge_formulas_and_report_unreadable_expected_answers(
    tmp_path: Path,
) -> None:
    # The scoring stage runs rewards in pebble worker processes, in their main thread, where
    # math-verify's SIGALRM timeouts are on; an expected answer nobody can read is a score
    # error for that row only.
    from rewardflow.jsonl import read_jsonl, write_jsonl_atomic
    from rewardflow.records import ResponseRecord
    from rewardflow.scoring.job import score_shard

    pairs = [
        (TABLE.PM, TABLE.PM.replace("pmatrix", "bmatrix")),  # 1 via math-verify
        ("\\text{B}", "The answer is (B)."),  # 1 via the word comparison
        ("[2,5)", "$[2,5]$"),  # 0 via math-verify
        ("\\frac{}{}{{}}", "\\boxed{1}"),  # a score error
        ("1200", "It costs $1 200."),  # 1 via the plain-number path
    ]
    responses = tmp_path / "responses.jsonl"
    records = [
        ResponseRecord(
            id=f"p{index}",
            sample_index=0,
            status="ok",
            messages=[{"role": "user", "content": "q"}],
            ground_truth=expected,
            response=response,
        )
        for index, (expected, response) in enumerate(pairs)
    ]
    write_jsonl_atomic(responses, [record.to_dict() for record in records])
    rewards = [{"name": "accuracy", "function": "rewardflow.rewards.math:math_reward"}]
    scores = tmp_path / "scores.jsonl"
    counts = score_shard(responses, scores, rewards, ScoringSettings.defaults(), workers=1)
    assert counts["scored"] == 4 and counts["score_error"] == 1
    written = {row["id"]: row for _, row in read_jsonl(tmp_path / "scores.jsonl")}
    assert [written[f"p{index}"]["score"] for index in (0, 1, 2, 4)] == [1.0, 1.0, 0.0, 1.0]
    assert written["p3"]["status"] == "score_error"
    assert "cannot judge the expected answer" in written["p3"]["error"]
