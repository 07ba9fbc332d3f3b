"""The built-in math reward: does the response's final answer equal the expected one?

Grading free-form maths answers goes wrong in two directions. Too strict, and ``$1,200.`` is
marked wrong against ``1200``. Too loose, and ``#### 70000`` is read as ``700`` (reward-kit's
bug), or a response that says "I think 3... actually 4" is graded on its first number. This
module does the common case (a plain number, possibly with currency, thousands separators, a
percent sign or a LaTeX fraction) with regular expressions and exact :class:`~fractions.Fraction`
arithmetic, because the pipeline scores hundreds of responses per second per core and a float
cannot even tell ``1234567890123`` from ``1234567890124`` reliably once tolerance is involved.

Only when one side is not a plain number (``\\frac{\\sqrt{2}}{2}``, ``x=5``, ``2\\pi``) do we
fall back to math-verify, which parses LaTeX into SymPy. It is imported lazily, so the
plain-number path never pays for SymPy, and it is fenced in: its timeouts rely on
``signal.alarm``, which only works in the main thread, so elsewhere we disable them and bound
the input length instead, and any failure becomes a score of 0 with a reason, never an
exception.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rewardflow.rewards._messages import last_assistant_text, quote
from rewardflow.rewards.result import MetricResult, RewardResult

__all__ = ["extract_final_answer", "math_reward", "parse_number"]

DEFAULT_TOLERANCE = 1e-6
"""Relative tolerance for non-integer comparisons, so ``0.333333`` matches ``1/3``."""

# A number longer than this is not an answer anyone means to compare; refusing it also keeps
# ``int()`` below Python's 4300-digit conversion limit and ``str()`` of the value cheap.
_MAX_NUMBER_CHARS = 400
# math-verify hands its input to SymPy, which can take minutes on adversarial LaTeX. Outside
# the main thread it runs without a timeout, so the input length is the only bound we have.
_MAX_SYMBOLIC_CHARS = 300
# Seconds math-verify may spend per parse/compare when it can use signal.alarm (main thread).
_MATH_VERIFY_TIMEOUT_S = 5
# How far a ``\boxed{`` may extend; bounds the brace scan when a response is cut off mid-box.
_MAX_BOXED_CHARS = 2000
# How many markers (boxes, ``####``, "answer is") are tried, last first, before giving up on a
# rule. Real responses have a handful; a degenerate one repeating a marker 100,000 times must
# not cost 100,000 scans.
_MAX_CANDIDATES = 16
# How much of the line after ``####`` or "answer is" is looked at.
_MAX_SPAN_CHARS = 300

# --- the number grammar --------------------------------------------------------------------
# ASCII digits only (re.ASCII below): "\d" would accept Arabic-Indic or full-width digits, and
# "\w" in the look-behinds would treat CJK characters as word characters, so "答案是18" would
# have no number in it.
_SIGN = "[-+\u2212\ufe63\uff0d]"  # ASCII, unicode minus, small and full-width hyphen-minus
_MINUS_SIGNS = frozenset("-\u2212\ufe63\uff0d")
_CURRENCY = r"(?:\\?\$|[\u20ac\u00a3\u00a5])"  # $ \$ € £ ¥
# "1,200", LaTeX's "1{,}200" and "1\\,200" are thousands separators only before groups of exactly
# three digits; "1, 2, 3" (comma then space) and "12,34" are not, so they fall apart into numbers.
_INTEGER = r"(?:[0-9]{1,3}(?:(?:,|\{,\}|\\,)[0-9]{3})+(?![0-9])|[0-9]+)"
_UNSIGNED = rf"(?:{_INTEGER}(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]{{1,3}}(?![0-9]))?"
_LATEX_FRAC = (
    rf"\\[dt]?frac\s*(?:\{{\s*{_SIGN}?{_UNSIGNED}\s*\}}\s*\{{\s*{_SIGN}?{_UNSIGNED}\s*\}}"
    r"|[0-9][0-9])"
)
_TOKEN = (
    rf"(?P<sign>{_SIGN})?(?:{_CURRENCY}\s?)?(?P<sign2>{_SIGN})?"
    rf"(?P<body>{_LATEX_FRAC}|{_UNSIGNED}(?:/{_UNSIGNED})?)"
    r"(?P<pct>\s?\\?%)?"
)
# The look-behinds stop a number from starting inside a word ("CO2"), right after a closing
# bracket ("f(x)-3" is not -3) or in the middle of a dotted run ("1.2.5").
_NUMBER_TOKEN = re.compile(r"(?<![\w)\]}])(?<![0-9]\.)" + _TOKEN, re.ASCII)
_PLAIN_NUMBER = re.compile(_TOKEN, re.ASCII)
_FRAC_PARTS = re.compile(rf"\{{\s*({_SIGN}?{_UNSIGNED})\s*\}}\s*\{{\s*({_SIGN}?{_UNSIGNED})\s*\}}")

# --- answer markers ------------------------------------------------------------------------
_BOXED_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)
_GSM8K_MARKER = re.compile(r"#{4,}[ \t]*")
# "The answer is 18", "Answer: 18", "**Final Answer:** 18", "the answer would be 18".
_ANSWER_PHRASE = re.compile(
    r"\banswer[*_]*\s*(?:(?:is|would\s+be|should\s+be|will\s+be)\b\s*:?|[:=])[\s*_]*",
    re.IGNORECASE,
)
# A number followed by one of these starts an expression, a computation or a list ("2\\pi",
# "3x", "3 + 4 = 7", "1, 2, 3"), so the number alone is not the answer.
_CONTINUES_EXPRESSION = re.compile(r"[A-Za-z\\^_({!]|\s*(?:[=+*/^\u00d7\u00f7]|-\s|,\s*[0-9])")
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
_FIRST_WORD = re.compile(r"[A-Za-z]{2,}\b")
# First words after "the answer is" that mean the phrase is not followed by an answer
# ("the answer is correct", "the answer is not 5, it is 6").
_NON_ANSWER_WORDS = frozenset(
    {
        *("answer", "not", "correct", "incorrect", "wrong", "right", "the", "that", "this"),
        *("as", "below", "above", "shown", "given", "unknown", "undefined", "clear", "obvious"),
    }
)

# --- clean-up of an extracted answer -------------------------------------------------------
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_THIN_SPACE_IN_NUMBER = re.compile(r"(?<=[0-9])\\[,!;: ](?=[0-9]{3})")
_LATEX_SPACING = re.compile(r"\\[,!;: ]|~|\\quad|\\qquad|\\displaystyle|\\left|\\right")
_DEGREES = re.compile(r"\s*(?:\^\s*\{?\s*\\circ\s*\}?|\u00b0)\s*$")
# Trailing unit words: "18 dollars", "5 apples per day". Single letters are left alone because
# they are variables ("5 x"), and "pi" because "2 pi" is not 2.
_UNIT_WORDS = re.compile(r"(?<=[0-9%}])(?:\s*[A-Za-z]{2,}\b\.?)+\s*$")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class _Extraction:
    """An answer found in a text: the answer, the text it came from, and which rule found it."""

    answer: str
    source: str
    method: str


# --- numbers -------------------------------------------------------------------------------


def _token_answer(match: re.Match[str]) -> str:
    """The answer text of a number token: sign, number and percent, without the currency."""
    sign = match["sign"] or match["sign2"] or ""
    pct = "%" if match["pct"] else ""
    return f"{sign}{match['body']}{pct}"


def _unsigned_fraction(text: str) -> Fraction:
    return Fraction(text.replace("{,}", "").replace("\\,", "").replace(",", ""))


def _signed_fraction(text: str) -> Fraction:
    if text and text[0] in _MINUS_SIGNS:
        return -_unsigned_fraction(text[1:])
    return _unsigned_fraction(text.lstrip("+"))


def parse_number(text: str) -> Fraction | None:
    """Read ``text`` as one plain number, exactly; ``None`` if it is anything else.

    This is what makes ``$1,200.``, ``1200``, ``**1,200**`` and ``\\boxed{1{,}200}`` the same
    answer. Accepted around the number: markdown emphasis, ``$...$``/``\\(...\\)`` math,
    ``\\boxed{}``/``\\text{}`` wrappers, a currency sign, trailing punctuation, trailing unit
    words ("18 dollars"), degrees, and a trailing percent sign, which is dropped rather than
    divided by 100 (the GSM8K convention: a question asking "what percent" expects ``50``).
    ``1/2``, ``\\frac{1}{2}`` and ``\\dfrac12`` are fractions; a unicode minus is a minus.

    A :class:`~fractions.Fraction` rather than a float keeps ``0.1 + 0.2`` style rounding out of
    equality and keeps 13-digit answers exact. Anything else (``x=5``, ``2\\pi``, ``1, 2, 3``,
    ``1,20``) returns ``None`` so that the caller can compare it symbolically.
    """
    if not isinstance(text, str) or len(text) > _MAX_NUMBER_CHARS:
        return None
    cleaned = _clean_answer(text)
    cleaned = _THIN_SPACE_IN_NUMBER.sub("", cleaned)
    cleaned = _LATEX_SPACING.sub(" ", cleaned)
    cleaned = _DEGREES.sub("", cleaned)
    unit = _UNIT_WORDS.search(cleaned)
    if unit is not None and unit.start() > 0 and "pi" not in unit.group().lower().split():
        cleaned = cleaned[: unit.start()]
    match = _PLAIN_NUMBER.fullmatch(cleaned.strip())
    if match is None or (match["sign"] and match["sign2"]):
        return None
    body = match["body"]
    try:
        if body.startswith("\\"):
            parts = _FRAC_PARTS.search(body)
            if parts is not None:
                numerator, denominator = parts.group(1), parts.group(2)
            else:  # the \frac12 shorthand
                numerator, denominator = body[-2], body[-1]
            value = _signed_fraction(numerator) / _signed_fraction(denominator)
        elif "/" in body:
            numerator, denominator = body.split("/", 1)
            value = _unsigned_fraction(numerator) / _unsigned_fraction(denominator)
        else:
            value = _unsigned_fraction(body)
    except (ValueError, ZeroDivisionError):
        return None
    sign = match["sign"] or match["sign2"]
    return -value if sign in _MINUS_SIGNS else value


def _numbers_match(expected: Fraction, got: Fraction, tolerance: Fraction) -> bool:
    """Compare exactly for integers, with relative ``tolerance`` otherwise.

    Integers are exact because the tolerance exists to absorb rounding in decimals such as
    ``0.333333`` vs ``1/3``; applied to ``1234567890123`` it would accept a wrong last digit.
    """
    if expected == got:
        return True
    if expected.denominator == 1 and got.denominator == 1:
        return False
    return abs(expected - got) <= tolerance * max(abs(expected), abs(got))


def _format_number(value: Fraction) -> str:
    """Show a value the way a person would write it: ``18``, ``0.5``, ``1/3``."""
    if value.denominator == 1:
        text = str(value.numerator)
    else:
        denominator = value.denominator
        for factor in (2, 5):
            while denominator % factor == 0:
                denominator //= factor
        if denominator == 1 and value.denominator <= 10**12:  # a terminating decimal
            digits = len(str(value.denominator))
            text = f"{float(value):.{digits}f}".rstrip("0").rstrip(".")
            if Fraction(text) != value:
                text = str(value)
        else:
            text = str(value)
    return text if len(text) <= 40 else f"{float(value):.6g}"


# --- extraction ----------------------------------------------------------------------------


def _clean_answer(text: str) -> str:
    """Strip what surrounds an answer without changing it: markdown, math delimiters, wrappers.

    Loops because wrappers nest (``**$\\boxed{18}$**.``). A lone leading ``$`` is kept: it is
    a currency sign (``$18``), not a math delimiter.
    """
    previous = None
    text = _TEXT_COMMAND.sub(r" \1 ", text) if "\\" in text else text
    while text != previous:
        previous = text
        text = text.strip().rstrip(".,;:!?").strip().strip("*_`").strip()
        if len(text) >= 2 and text[0] == "$" and text[-1] == "$":
            text = text.strip("$")
        elif text[:2] in ("\\(", "\\[") and text[-2:] in ("\\)", "\\]"):
            text = text[2:-2]
        elif text.startswith(("\\boxed", "\\fbox")):
            boxed = _last_boxed(text)
            if boxed is not None and boxed.source == text:
                text = boxed.answer
    return text


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the brace closing the one opened just before ``start``; ``None`` if unclosed."""
    depth = 1
    for match in _BRACE_OR_ESCAPE.finditer(text, start, min(len(text), start + _MAX_BOXED_CHARS)):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth == 0:
                return match.start()
    return None


def _last_boxed(text: str) -> _Extraction | None:
    """The last non-empty, closed ``\\boxed{...}`` (or ``\\fbox``), nested braces included.

    An unclosed box (a response cut off by max_tokens) is skipped in favour of an earlier one.
    """
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    for start in reversed(list(_BOXED_START.finditer(text))[-_MAX_CANDIDATES:]):
        end = _closing_brace(text, start.end())
        if end is None:
            continue
        answer = _clean_answer(text[start.end() : end])
        if answer:
            return _Extraction(answer, text[start.start() : end + 1], "\\boxed{}")
    return None


def _answer_at_start(tail: str, *, allow_words: bool) -> str | None:
    """The answer at the start of ``tail``, the text after ``####`` or "the answer is".

    A number at the start is the answer unless it begins a computation ("3 + 4 = 7", whose
    answer is what follows the last ``=``) or a list. Otherwise the rest of the sentence is the
    answer if it looks like one: maths (``\\frac{\\sqrt{2}}{2}``, ``x = 5``) or, when
    ``allow_words``, a short word answer ("B", "yes"). Prose such as "the answer is not 5" or a
    markdown heading "#### Step 2" returns ``None`` so that the caller keeps looking.
    """
    line = tail.split("\n", 1)[0].lstrip(" \t*_:`")
    token = _PLAIN_NUMBER.match(line)
    if token is not None and not _CONTINUES_EXPRESSION.match(line, token.end()):
        return _token_answer(token)
    end = _SENTENCE_END.search(line)
    sentence = _clean_answer(line[: end.start()] if end else line)
    if not sentence:
        return None
    if token is not None:  # a computation or a list
        if "=" in sentence:
            return _clean_answer(sentence.rsplit("=", 1)[1]) or None
        return sentence
    word = _FIRST_WORD.match(sentence)
    if word is None:  # maths or a one-letter answer
        return sentence
    if not allow_words or word.group().lower() in _NON_ANSWER_WORDS:
        return None
    if any(char.isdigit() for char in sentence) or len(sentence.split()) > 3:
        return None  # "therefore 18", "approximately 18 miles": leave it to the last number
    return sentence


def _last_marked(text: str, marker: re.Pattern[str], method: str) -> _Extraction | None:
    """The last ``marker`` in ``text`` that is followed by an answer."""
    allow_words = marker is _ANSWER_PHRASE
    for match in reversed(list(marker.finditer(text))[-_MAX_CANDIDATES:]):
        tail = text[match.end() : match.end() + _MAX_SPAN_CHARS]
        answer = _answer_at_start(tail, allow_words=allow_words)
        if answer:
            line = tail.split("\n", 1)[0]
            end = _SENTENCE_END.search(line)
            source = match.group() + (line[: end.start()] if end else line)
            return _Extraction(answer, source.strip(), method)
    return None


def _last_number(text: str) -> _Extraction | None:
    last = None
    for last in _NUMBER_TOKEN.finditer(text):  # noqa: B007 - only the last one is wanted
        pass
    if last is None:
        return None
    return _Extraction(_token_answer(last), last.group().strip(), "last number")


def _extract(text: str) -> _Extraction | None:
    if "\\" in text:
        boxed = _last_boxed(text)
        if boxed is not None:
            return boxed
    if "####" in text:
        marked = _last_marked(text, _GSM8K_MARKER, "#### marker")
        if marked is not None:
            return marked
    if "nswer" in text or "NSWER" in text:  # cheap pre-check before a case-insensitive scan
        phrased = _last_marked(text, _ANSWER_PHRASE, "'answer is' phrase")
        if phrased is not None:
            return phrased
    return _last_number(text)


def extract_final_answer(text: str) -> str | None:
    """The final answer a response gives, as written, or ``None`` if it gives none.

    The rules, in priority order, follow how models are prompted to mark answers: the last
    ``\\boxed{...}`` (nested braces handled), the last ``#### X`` (GSM8K), the last "the answer
    is X" / "Answer: X", and finally the last number in the text. Within each rule the LAST
    occurrence wins, because models revise themselves ("I think 3... actually 4").

    The answer keeps its sign, thousands separators and percent sign (``-1,200``, ``50%``) but
    loses surrounding markup, currency, units and trailing punctuation (``**$18** dollars.``
    gives ``18``); pass it to :func:`parse_number` for its value.
    """
    if not isinstance(text, str) or not text:
        return None
    found = _extract(text)
    return found.answer if found is not None else None


@functools.lru_cache(maxsize=4096)
def _expected_answer(ground_truth: str) -> tuple[str, Fraction | None]:
    """The answer in a ground truth, and its value if it is a plain number.

    A full GSM8K solution ("... #### 70000") or a MATH solution with a ``\\boxed{}`` is reduced
    to its marked answer; anything else is the answer as a whole (so ``x^2+1`` is not read as
    its last number). Cached because every sample of a prompt has the same ground truth.
    """
    found = None
    if "\\boxed" in ground_truth or "\\fbox" in ground_truth:
        found = _last_boxed(ground_truth)
    if found is None and "####" in ground_truth:
        found = _last_marked(ground_truth, _GSM8K_MARKER, "#### marker")
    answer = found.answer if found is not None else _clean_answer(ground_truth)
    return answer, parse_number(answer)


# --- symbolic fallback ---------------------------------------------------------------------


def _normalised_text(answer: str) -> str:
    text = _LATEX_SPACING.sub("", answer).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return _WHITESPACE.sub("", text)


def _math_verify_equal(expected: str, got: str) -> tuple[bool, str]:
    """Compare two non-numeric answers with math-verify; ``(equal, how it went)``, never raises.

    Each answer is wrapped in ``\\boxed{}`` before parsing: that anchors math-verify's LaTeX
    extraction, which otherwise finds nothing in a bare ``\\dfrac{1}{2}`` and reads a bare
    ``2\\pi`` as ``2``. Plain numbers never get here: math-verify also accepts ``50%`` as
    both ``50`` and ``0.5``, which is looser than the GSM8K convention we want.

    In the main thread math-verify's timeouts install a SIGALRM handler and end with
    ``signal.alarm(0)``, which cancels any alarm the caller had set; elsewhere they cannot
    work at all, so they are turned off and the input length cap bounds the work instead.
    """
    if len(expected) > _MAX_SYMBOLIC_CHARS or len(got) > _MAX_SYMBOLIC_CHARS:
        return False, "answer too long for symbolic comparison"
    try:
        from math_verify import parse, verify
        from math_verify.errors import TimeoutException
    except ImportError:  # pragma: no cover - math-verify is a declared dependency
        return False, "not a plain number and math-verify is not installed"
    # signal.signal raises ValueError outside the main thread, even with raise_on_error=False.
    in_main_thread = threading.current_thread() is threading.main_thread()
    timeout = _MATH_VERIFY_TIMEOUT_S if in_main_thread else None
    try:
        parsed_expected = parse(f"\\boxed{{{expected}}}", parsing_timeout=timeout)
        if not parsed_expected:
            return False, "math-verify could not parse the expected answer"
        parsed_got = parse(f"\\boxed{{{got}}}", parsing_timeout=timeout)
        if not parsed_got:
            return False, "math-verify could not parse the extracted answer"
        equal = verify(parsed_expected, parsed_got, timeout_seconds=timeout)
    except (Exception, TimeoutException) as exc:  # TimeoutException is a BaseException
        return False, f"math-verify failed ({type(exc).__name__})"
    return bool(equal), "math-verify"


# --- the reward ----------------------------------------------------------------------------


def _tolerance(value: Any) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction):
        raise ValueError(f"tolerance must be a number, got {type(value).__name__}")
    if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {value!r}")
    # Via the decimal text: Fraction(1e-6) is the binary float, a hair below 1/10**6.
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def _result(score: float, reason: str, found: bool, found_reason: str) -> RewardResult:
    return RewardResult(
        score=score,
        reason=reason,
        metrics={"answer_found": MetricResult(score=1.0 if found else 0.0, reason=found_reason)},
    )


def math_reward(messages: list[dict], ground_truth: str | None, **kwargs: Any) -> RewardResult:
    """Score 1.0 if the last assistant message's final answer equals ``ground_truth``, else 0.

    ``ground_truth`` is the expected final answer ("18", "1,200", "\\frac{1}{2}", "x=5"), or a
    full GSM8K/MATH solution whose ``####``/``\\boxed{}`` answer is used. The response's answer
    is found by :func:`extract_final_answer`. Plain numbers are compared exactly as fractions,
    with relative ``tolerance`` (kwarg, default 1e-6) for non-integers; anything else is
    compared as text and then with math-verify. Other kwargs are ignored, so the same reward
    can be configured next to rewards that take more parameters.

    The ``reason`` names what was extracted, from where, and what it was compared with; the
    ``answer_found`` metric separates "answered wrongly" from "gave no answer", which is
    usually a formatting or truncation problem rather than a maths one.

    Raises:
        ValueError: ``ground_truth`` is missing or empty, or ``tolerance`` is not a number >= 0.
            A row without an expected answer cannot be scored, and the pipeline records the
            error rather than a misleading 0.
    """
    if isinstance(ground_truth, int | float | Fraction) and not isinstance(ground_truth, bool):
        ground_truth = str(ground_truth)
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise ValueError("math_reward needs a ground_truth (the expected final answer)")
    tolerance = _tolerance(kwargs.get("tolerance", DEFAULT_TOLERANCE))

    response = last_assistant_text(messages)
    if response is None:
        return _result(0.0, "no assistant message", False, "no assistant message")
    found = _extract(response)
    if found is None:
        why = "empty response" if not response.strip() else "no answer or number in the response"
        return _result(0.0, why, False, why)
    found_reason = f"found by {found.method}"

    expected, expected_value = _expected_answer(ground_truth.strip())
    got_value = parse_number(found.answer)
    source = quote(found.source)
    if expected_value is not None and got_value is not None:
        equal = _numbers_match(expected_value, got_value, tolerance)
        reason = (
            f"extracted {_format_number(got_value)} (from {source}), "
            f"expected {_format_number(expected_value)}: {'match' if equal else 'no match'}"
        )
        return _result(1.0 if equal else 0.0, reason, True, found_reason)

    if _normalised_text(expected) == _normalised_text(found.answer):
        equal, how = True, "same text"
    else:
        equal, how = _math_verify_equal(expected, found.answer)
    reason = (
        f"extracted {quote(found.answer)} (from {source}), expected {quote(expected)}: "
        f"{'match' if equal else 'no match'} ({how})"
    )
    return _result(1.0 if equal else 0.0, reason, True, found_reason)
