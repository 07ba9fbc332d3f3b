"""The built-in math reward: does the response's final answer equal the expected one?

Grading free-form maths answers goes wrong in two directions. Too strict, and ``$1,200.`` is
marked wrong against ``1200``. Too loose, and ``#### 70000`` is read as ``700`` (reward-kit's
bug), or a response that says "I think 3... actually 4" is graded on its first number. This
module does the common case (a plain number, possibly with currency, thousands separators, a
percent sign or a LaTeX fraction) with regular expressions and exact :class:`~fractions.Fraction`
arithmetic, because the pipeline scores hundreds of responses per second per core and a float
cannot even tell ``1234567890123`` from ``1234567890124`` reliably once tolerance is involved.

What the response is compared with depends on the expected answer. A plain number takes the
fast path above; only a response whose answer is an expression (``\\boxed{10+2}``) or a
formula (``\\frac4{4}``) reaches SymPy. A word answer ("B", "\\text{Yes}") is compared as
text. Anything else (``\\frac{\\sqrt{2}}{2}``, ``[2,5)``, ``y \\geq 3``, a tuple, a set, a
matrix) is parsed and compared by math-verify, on the response's marked answer or, without
one, on what math-verify's own extraction finds: a number-first extractor would otherwise
pull a ``5`` out of ``$[2,5)$``. math-verify is imported lazily and fenced in: its timeouts
rely on ``signal.alarm``, which only works in the main thread, so elsewhere we disable them
and bound the input length instead; a failure on the response becomes a score of 0 with a
reason, and an expected answer nobody can read raises, so the row is a score error.
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
# How much of a response's end math-verify's own extraction reads (see _response_tail).
_MAX_RESPONSE_TAIL_CHARS = 3000
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
# Thousands separators: ",", LaTeX's "{,}" and "\\,", and the spaces of French, Swiss or SI
# style ("2 000", no-break and thin spaces too), only before groups of exactly three digits;
# "1, 2, 3" (comma then space) is a list. Dots separate thousands only where they cannot be a
# decimal point: "1.234.567", or "1.500,5" before a decimal comma.
_GROUP_SEPARATOR = r"(?:,|\{,\}|\\,|[ \u00a0\u202f\u2009])"
_GROUP_MARKS = re.compile(r"\{,\}|\\,|[ \u00a0\u202f\u2009]")
_INTEGER = (
    rf"(?:[0-9]{{1,3}}(?:{_GROUP_SEPARATOR}[0-9]{{3}})+(?![0-9])"
    r"|[0-9]{1,3}(?:\.[0-9]{3}){2,}(?![0-9.])"
    r"|[0-9]{1,3}(?:\.[0-9]{3})+(?=,[0-9])"
    r"|[0-9]+)"
)
# A decimal point, or a decimal comma ("3,15 €", "2,5"): a comma before anything but exactly
# three digits, and not the first comma of a list such as "1,2,3".
_DECIMAL = r"(?:\.[0-9]+|,(?![0-9]{3}(?![0-9]))[0-9]+(?![0-9]|,[0-9]))"
_UNSIGNED = rf"(?:{_INTEGER}{_DECIMAL}?|\.[0-9]+)(?:[eE][-+]?[0-9]{{1,3}}(?![0-9]))?"
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
# "The answer is 18", "Answer: 18", "**Final Answer:** 18", "the answer would be 18", and
# "Answer \\( (10+2) \\)": the word followed directly by a formula.
_ANSWER_PHRASE = re.compile(
    r"\banswer[*_]*(?:\s*(?:(?:is|would\s+be|should\s+be|will\s+be)\b\s*:?|[:=])[\s*_]*"
    r"|\s+(?=\\\(|\\\[|\$))",
    re.IGNORECASE,
)
# What may stand between two boxes that together are one answer: "\\boxed{3}, \\boxed{4}",
# "$x = \\boxed{-1}$ or $x = \\boxed{2}$". Anything longer (a sentence) means a revision.
_BOX_JOINER = re.compile(
    r"(?:[\s$,;]|\\quad|\\text\{\s*(?:and|or)\s*\}|\b(?:and|or)\b|[A-Za-z](?:_\{?[0-9]\}?)?\s*=)*"
)
_MAX_BOX_JOINER_CHARS = 40
# A number followed by one of these starts an expression, a computation, a relation or a list
# ("2\\pi", "3x", "3 + 4 = 7", "-2 \\le x", "1, 2, 3"), so the number alone is not the answer.
_CONTINUES_EXPRESSION = re.compile(
    r"[A-Za-z\\^_({!]|\s*(?:[=+*/^<>\u00d7\u00f7\u2264\u2265]|-\s|,\s*[0-9]"
    r"|\\(?:le|ge|leq|geq|lt|gt|neq|ne|times|cdot|div|pm)\b)"
)
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
# A currency sign after the number, as in much of Europe: "3,15 €", "45,00 $".
_TRAILING_CURRENCY = re.compile(r"(?<=[0-9])\s?(?:\\?\$|[\u20ac\u00a3\u00a5])\s*$")
# Trailing unit words: "18 dollars", "5 apples per day", "25 cm^2", "5 m/s". Single letters are
# left alone because they are variables ("5 x"), and "pi" because "2 pi" is not 2.
_UNIT_WORDS = re.compile(
    r"(?<=[0-9%}])(?:\s*(?:[A-Za-z]{2,}|[A-Za-z]+/[A-Za-z]+)\b\.?(?:\s*\^\s*\{?[23]\}?)?)+\s*$"
)
_WHITESPACE = re.compile(r"\s+")
# Spellings math-verify does not know, and the ones it does that mean the same.
_LATEX_SYNONYMS = (("\\varnothing", "\\emptyset"),)
# A word answer: "B", "(C)", "yes", "Monday", "New York" (after \\text{} is removed).
_WORD_ANSWER = re.compile(r"\(?[A-Za-z][A-Za-z' -]*\)?")
# A number next to one of these is part of a formula, not an answer on its own.
_FORMULA_NEIGHBOURS = frozenset("{}^_")
_MATH_DELIMITER = re.compile(r"\$|\\[(\[]|\\begin\{(?:equation|align)")
_LATEX_COMMAND = re.compile(r"\\(?:begin|end)\{[A-Za-z*]+\}|\\[A-Za-z]+")


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
    """The value of a number written with any of the separators the grammar accepts."""
    text = _GROUP_MARKS.sub("", text)
    comma, dot = text.rfind(","), text.rfind(".")
    # The last comma is a decimal comma unless it starts a group of exactly three digits with
    # no dot before it ("1,200"); "3,15" and "1.500,5" have one.
    if comma > dot and (dot >= 0 or len(text) - comma - 1 != 3):
        text = text[:comma].replace(".", "").replace(",", "") + "." + text[comma + 1 :]
    elif text.count(".") > 1:  # "1.234.567"
        text = text.replace(".", "")
    return Fraction(text.replace(",", ""))


def _signed_fraction(text: str) -> Fraction:
    if text and text[0] in _MINUS_SIGNS:
        return -_unsigned_fraction(text[1:])
    return _unsigned_fraction(text.lstrip("+"))


def parse_number(text: str) -> Fraction | None:
    """Read ``text`` as one plain number, exactly; ``None`` if it is anything else.

    This is what makes ``$1,200.``, ``1200``, ``**1,200**`` and ``\\boxed{1{,}200}`` the same
    answer. Accepted around the number: markdown emphasis, ``$...$``/``\\(...\\)`` math,
    ``\\boxed{}``/``\\text{}`` wrappers, a currency sign, trailing punctuation, trailing unit
    words ("18 dollars", "25 cm^2"), degrees, and a trailing percent sign, which is dropped
    here (the GSM8K convention: a question asking "what percent" expects ``50``); the reward
    also accepts ``50%`` for ``0.5``. ``1/2``, ``\\frac{1}{2}`` and ``\\dfrac12`` are fractions;
    a unicode minus is a minus. Thousands may be separated by commas, spaces (``2 000``,
    no-break and thin spaces too) or, unambiguously, dots (``1.234.567``); a decimal comma
    (``3,15``, ``1.500,5``) is a decimal point.

    A :class:`~fractions.Fraction` rather than a float keeps ``0.1 + 0.2`` style rounding out of
    equality and keeps 13-digit answers exact. Anything else (``x=5``, ``2\\pi``, ``1, 2, 3``)
    returns ``None`` so that the caller can compare it symbolically.
    """
    parsed = _parse_value(text)
    return parsed[0] if parsed is not None else None


def _parse_value(text: str) -> tuple[Fraction, bool] | None:
    """:func:`parse_number`'s value and whether it had a percent sign; ``None`` if no number."""
    if not isinstance(text, str) or len(text) > _MAX_NUMBER_CHARS:
        return None
    cleaned = _clean_answer(text)
    cleaned = _THIN_SPACE_IN_NUMBER.sub("", cleaned)
    cleaned = _LATEX_SPACING.sub(" ", cleaned)
    cleaned = _DEGREES.sub("", cleaned)
    cleaned = _TRAILING_CURRENCY.sub("", cleaned)
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
    return (-value if sign in _MINUS_SIGNS else value), bool(match["pct"])


def _values_match(
    expected: tuple[Fraction, bool], got: tuple[Fraction, bool], tolerance: Fraction
) -> bool:
    """Whether two parsed numbers are equal, a percent sign read either as written or as /100.

    ``50%`` matches both ``50`` (GSM8K's convention for "what percent") and ``0.5`` (the
    quantity it denotes), as a careful grader and math-verify both accept.
    """
    expected_values = (expected[0], expected[0] / 100) if expected[1] else (expected[0],)
    got_values = (got[0], got[0] / 100) if got[1] else (got[0],)
    return any(_numbers_match(e, g, tolerance) for e in expected_values for g in got_values)


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
    Boxes joined only by commas, "and"/"or" or ``x =`` (``\\boxed{3}, \\boxed{4}``) are one
    answer with several parts, returned as ``3, 4``; boxes with prose between them are a
    revision, and the last one counts.
    """
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    parts: list[str] = []
    first = last = -1
    for start in reversed(list(_BOXED_START.finditer(text))[-_MAX_CANDIDATES:]):
        end = _closing_brace(text, start.end())
        if end is None:
            if parts:
                break
            continue
        if parts:
            between = text[end + 1 : first]
            if len(between) > _MAX_BOX_JOINER_CHARS or not _BOX_JOINER.fullmatch(between):
                break
        answer = _clean_answer(text[start.end() : end])
        if not answer:
            if parts:
                break
            continue
        parts.insert(0, answer)
        first, last = start.start(), end if last < 0 else last
    if not parts:
        return None
    return _Extraction(", ".join(parts), text[first : last + 1], "\\boxed{}")


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
    answer, start = _token_answer(last), last.start()
    # "1,2,3" scans as "1", then "2,3" with a decimal comma; after a digit and a comma the
    # number is the end of a list, so its last item is the answer.
    if start >= 2 and text[start - 1] == "," and text[start - 2].isdigit() and "," in answer:
        answer = answer.rsplit(",", 1)[1]
    method = "last number"
    # A number inside a formula ("\\frac4{4}", "\\sqrt{12}", "2^{10}") is not an answer.
    before, after = text[start - 1 : start], text[last.end() : last.end() + 1]
    if before in _FORMULA_NEIGHBOURS or after in _FORMULA_NEIGHBOURS:
        method = "last number in a formula"
    return _Extraction(answer, last.group().strip(), method)


def _marked(text: str) -> _Extraction | None:
    """The answer a marker points at: the last box, ``####`` or "the answer is"; else ``None``."""
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
    return None


def _extract(text: str) -> _Extraction | None:
    return _marked(text) or _last_number(text)


def _bare_answer(text: str) -> _Extraction | None:
    """The whole response when it is nothing but an answer (``(2,3.5)``, ``y \\leq 4``, ``B``).

    It is, when it is short, has no math delimiters (then math-verify finds the formulas) and
    no prose: no word of two letters or more outside LaTeX commands, or at most three words
    and no digit ("Yes", "True").
    """
    stripped = text.strip()
    if not stripped or len(stripped) > _MAX_SYMBOLIC_CHARS or _MATH_DELIMITER.search(stripped):
        return None
    words = _FIRST_WORD.findall(_LATEX_COMMAND.sub(" ", stripped))
    if words and (len(stripped.split()) > 3 or any(char.isdigit() for char in stripped)):
        return None
    answer = _clean_answer(stripped)
    return _Extraction(answer, stripped, "whole response") if answer else None


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
def _expected_answer(ground_truth: str) -> tuple[str, tuple[Fraction, bool] | None]:
    """The answer in a ground truth, and its value if it is a plain number.

    A full GSM8K solution ("... #### 70000") or a MATH solution with a ``\\boxed{}`` is reduced
    to its marked answer (several joined boxes to ``3, 4``); anything else is the answer as a
    whole (so ``x^2+1`` is not read as its last number). Cached because every sample of a
    prompt has the same ground truth.
    """
    found = None
    if "\\boxed" in ground_truth or "\\fbox" in ground_truth:
        found = _last_boxed(ground_truth)
    if found is None and "####" in ground_truth:
        found = _last_marked(ground_truth, _GSM8K_MARKER, "#### marker")
    answer = found.answer if found is not None else _clean_answer(ground_truth)
    return answer, _parse_value(answer)


# --- word answers --------------------------------------------------------------------------


def _word_key(answer: str) -> str | None:
    """A word answer ("B", "(C)", "\\text{Yes}", "Monday") as compared; ``None`` for others.

    Word answers are compared as case-folded text and never handed to math-verify, which reads
    "Monday" as the product of six symbols, equal to "Dynamo".
    """
    cleaned = _WHITESPACE.sub(" ", _clean_answer(answer)).strip()
    if not _WORD_ANSWER.fullmatch(cleaned):
        return None
    if cleaned.startswith("(") and cleaned.endswith(")"):
        cleaned = cleaned[1:-1].strip()
    return cleaned.casefold()


def _normalised_text(answer: str) -> str:
    text = _LATEX_SPACING.sub("", answer)
    for spelling in ("\\dfrac", "\\tfrac", "\\cfrac"):
        text = text.replace(spelling, "\\frac")
    return _WHITESPACE.sub("", text)


# --- math-verify ---------------------------------------------------------------------------


class _MathVerifyError(Exception):
    """math-verify raised or timed out; the message says which."""


def _timeout() -> int | None:
    """math-verify's timeout: on in the main thread, off elsewhere.

    Its timeouts install a SIGALRM handler, and ``signal.signal`` raises ValueError in any
    thread but the main one. The scoring stage runs rewards in the main thread of worker
    processes, where they work; a caller's own thread gets none, and the length caps
    (``_MAX_SYMBOLIC_CHARS``, ``_MAX_RESPONSE_TAIL_CHARS``) are the only bound.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    return _MATH_VERIFY_TIMEOUT_S if in_main_thread else None


def _mv_parse(text: str) -> list[Any]:
    """math-verify's ``parse`` with its default extraction (LaTeX, then expressions)."""
    from math_verify import parse
    from math_verify.errors import TimeoutException

    for spelling, known in _LATEX_SYNONYMS:
        text = text.replace(spelling, known)
    try:
        return list(parse(text, parsing_timeout=_timeout()))
    except (Exception, TimeoutException) as exc:  # TimeoutException is a BaseException
        raise _MathVerifyError(f"math-verify failed ({type(exc).__name__})") from exc


def _mv_verify(gold: list[Any], pred: list[Any]) -> bool:
    from math_verify import verify
    from math_verify.errors import TimeoutException

    try:
        # A set may be given as the inequality that describes it and vice versa:
        # "(-\\infty, 3]" and "x \\le 3" are the same answer to a careful grader.
        return bool(verify(gold, pred, timeout_seconds=_timeout(), allow_set_relation_comp=True))
    except (Exception, TimeoutException) as exc:
        raise _MathVerifyError(f"math-verify failed ({type(exc).__name__})") from exc


def _has_expression(parsed: list[Any]) -> bool:
    """Whether math-verify read something, not just kept the text it failed on."""
    return any(not isinstance(item, str) for item in parsed)


@functools.lru_cache(maxsize=4096)
def _gold(answer: str) -> tuple[Any, ...]:
    """math-verify's reading of a non-numeric expected answer.

    Wrapped in ``\\boxed{}``, which anchors math-verify's extraction: a bare ``\\frac4{4}`` or
    ``[2,5)`` has no delimiters for it to find. Cached: SymPy objects are immutable.

    Raises:
        ValueError: the answer is too long, or math-verify finds no expression in it. The
            reward cannot judge any response against it, and a 0 would hide that.
    """
    if len(answer) > _MAX_SYMBOLIC_CHARS:
        raise ValueError(
            f"math_reward cannot judge the expected answer {quote(answer)}: longer than "
            f"{_MAX_SYMBOLIC_CHARS} characters and not a plain number"
        )
    try:
        parsed = _mv_parse(f"\\boxed{{{answer}}}")
    except _MathVerifyError as exc:
        message = f"math_reward cannot judge the expected answer {quote(answer)}: {exc}"
        raise ValueError(message) from exc
    if not _has_expression(parsed):
        raise ValueError(
            f"math_reward cannot judge the expected answer {quote(answer)}: it is not a number, "
            "a word answer or a formula math-verify can read"
        )
    return tuple(parsed)


def _number_gold(value: tuple[Fraction, bool]) -> list[Any]:
    """A plain expected number as math-verify's gold (a percent also as its value / 100)."""
    from sympy import Rational

    number, percent = value
    gold = [Rational(number.numerator, number.denominator)]
    if percent:
        gold.append(gold[0] / 100)
    return gold


def _response_tail(response: str) -> str:
    """The end of a long response, where its answer is, cut at a line start.

    math-verify scans the whole text it is given with several regexes and may try SymPy on
    each candidate; outside the main thread without a timeout.
    """
    if len(response) <= _MAX_RESPONSE_TAIL_CHARS:
        return response
    tail = response[-_MAX_RESPONSE_TAIL_CHARS:]
    newline = tail.find("\n")
    return tail[newline + 1 :] if 0 <= newline < len(tail) // 2 else tail


def _symbolic_match(
    gold: list[Any], expected: str, found: _Extraction | None, response: str
) -> tuple[bool, str, _Extraction | None]:
    """Compare with math-verify: ``(equal, how, what was compared)``, never raises.

    ``found`` is the answer our rules extracted; without one, math-verify's own extraction of
    the response is used (the last LaTeX formula or expression, "final answer" phrases).
    """
    if found is not None and _normalised_text(expected) == _normalised_text(found.answer):
        return True, "same text", found
    try:
        if found is not None:
            if len(found.answer) > _MAX_SYMBOLIC_CHARS:
                return False, "answer too long for symbolic comparison", found
            pred = _mv_parse(f"\\boxed{{{found.answer}}}")
        else:
            pred = _mv_parse(_response_tail(response))
            if not _has_expression(pred):
                return False, "math-verify found no answer", None
            shown = next((item for item in pred if isinstance(item, str)), str(pred[0]))
            found = _Extraction(shown, shown, "math-verify's extraction")
        if not _has_expression(pred):
            return False, "math-verify could not parse the extracted answer", found
        return _mv_verify(gold, pred), "math-verify", found
    except _MathVerifyError as exc:
        return False, str(exc), found


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


def _no_answer(response: str) -> RewardResult:
    why = "empty response" if not response.strip() else "no answer or number in the response"
    return _result(0.0, why, False, why)


def _compared(found: _Extraction, expected: str, equal: bool, how: str) -> RewardResult:
    reason = (
        f"extracted {quote(found.answer)} (from {quote(found.source)}), expected "
        f"{quote(expected)}: {'match' if equal else 'no match'} ({how})"
    )
    return _result(1.0 if equal else 0.0, reason, True, f"found by {found.method}")


def _score_number(
    response: str, expected: str, value: tuple[Fraction, bool], tolerance: Fraction
) -> RewardResult:
    """The fast path: the expected answer is a plain number (GSM8K), compared exactly."""
    found = _extract(response)
    if found is None:
        return _no_answer(response)
    if found.method == "last number in a formula":
        # "\\frac4{4}", "\\left(\\frac{3}{2}\\right)^2": the formula is the answer, as
        # math-verify reads it; if it finds none, the number is the answer after all.
        equal, how, compared = _symbolic_match(
            _number_gold(value), expected, _bare_answer(response), response
        )
        if compared is not None:
            return _compared(compared, expected, equal, how)
    got = _parse_value(found.answer)
    if got is not None:
        equal = _values_match(value, got, tolerance)
        reason = (
            f"extracted {_format_number(got[0])} (from {quote(found.source)}), "
            f"expected {_format_number(value[0])}: {'match' if equal else 'no match'}"
        )
        return _result(1.0 if equal else 0.0, reason, True, f"found by {found.method}")
    # An expression ("\\boxed{10+2}", "Answer \\( (10+2) \\)"): math-verify compares it.
    equal, how, _ = _symbolic_match(_number_gold(value), expected, found, response)
    return _compared(found, expected, equal, how)


def _score_other(response: str, expected: str, word: str | None) -> RewardResult:
    """The expected answer is a word, a formula, a set, an interval, a tuple or a matrix."""
    found = _marked(response) or _bare_answer(response)
    if word is not None:
        if found is None:
            return _no_answer(response)
        equal = _word_key(found.answer) == word
        return _compared(found, expected, equal, "same word" if equal else "different words")
    gold = list(_gold(expected))
    equal, how, compared = _symbolic_match(gold, expected, found, response)
    if compared is None:  # math-verify found nothing either: the last number, if any
        number = _last_number(response)
        if number is None:
            return _no_answer(response)
        equal, how, compared = _symbolic_match(gold, expected, number, response)
    return _compared(compared, expected, equal, how)


def math_reward(messages: list[dict], ground_truth: str | None, **kwargs: Any) -> RewardResult:
    """Score 1.0 if the last assistant message's final answer equals ``ground_truth``, else 0.

    ``ground_truth`` is the expected final answer ("18", "1,200", "\\frac{1}{2}", "x=5",
    "[2,5)", a matrix, "B"), or a full GSM8K/MATH solution whose ``####``/``\\boxed{}``
    answer is used.

    * A plain number is the fast path: the response's answer is found by
      :func:`extract_final_answer` and compared exactly as a fraction, with relative
      ``tolerance`` (kwarg, default 1e-6) for non-integers; an answer that is an expression
      (``\\boxed{10+2}``) is compared with math-verify.
    * A word answer ("B", "\\text{Yes}") is compared with the marked answer as case-folded
      text.
    * Anything else is compared with math-verify, on the marked answer (last ``\\boxed{}``,
      joined boxes, ``####``, "the answer is"), else the whole response if it is only an
      answer, else math-verify's own extraction (last formula, "final answer is").

    Other kwargs are ignored, so the same reward can be configured next to rewards that take
    more parameters. The ``reason`` names what was extracted, from where, and what it was
    compared with; the ``answer_found`` metric separates "answered wrongly" from "gave no
    answer", which is usually a formatting or truncation problem rather than a maths one.

    Raises:
        ValueError: ``ground_truth`` is missing or empty, is an answer the reward cannot
            judge (neither a number, a word nor a formula math-verify can read), or
            ``tolerance`` is not a number >= 0. The pipeline records a score error for the
            row rather than a misleading 0.
    """
    if isinstance(ground_truth, int | float | Fraction) and not isinstance(ground_truth, bool):
        ground_truth = str(ground_truth)
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise ValueError("math_reward needs a ground_truth (the expected final answer)")
    tolerance = _tolerance(kwargs.get("tolerance", DEFAULT_TOLERANCE))

    expected, value = _expected_answer(ground_truth.strip())
    word = _word_key(expected) if value is None else None
    if value is None and word is None:
        _gold(expected)  # an expected answer nobody can judge is an error, whatever the response

    response = last_assistant_text(messages)
    if response is None:
        return _result(0.0, "no assistant message", False, "no assistant message")
    if not response.strip():
        return _no_answer(response)
    if value is not None:
        return _score_number(response, expected, value, tolerance)
    return _score_other(response, expected, word)
