"""The built-in multiple-choice reward: did the response pick the right option letter?

Reading the chosen letter out of free text fails in two directions. Too eager, and the article
in "A farmer has 3 cows" or the pronoun in "I think it is (C)" is read as a choice, or a
response that lists the options ("(A) 12 (B) 15 (C) 18") is graded on its last one. Too strict,
and "**Answer:** (c)" or ``\\boxed{\\text{C}}`` is "no answer". So letters are only read where
the response marks them as an answer, in two tiers:

1. Answer statements: "the answer is (C)", "Answer: C", "the correct option is C",
   "I choose C", "(C) is correct", ``\\boxed{C}``. The LAST one wins, because models revise
   themselves ("The answer is B... wait, the answer is C").
2. Only when there is no statement: the whole response is one letter ("C", "(C).",
   "**C**") or one option's text; else letters set off by formatting (``**C**``, "(C)", or
   "C)"/"C." opening the response or a line). These must all name the same letter: a response
   whose formatted letters disagree (one that lists the options "A) 12", "B) 15", ...) is
   ambiguous and counts as giving no answer.

Capital letters only in running text; a lower-case letter counts when it stands alone, or is
wrapped ("(c)", ``\\boxed{c}``). "A" and "I" right after a statement count only when not
followed by an ordinary word ("Answer: A farmer..." is not A; "the answer is A because" is).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rewardflow.rewards._messages import (
    last_assistant_text,
    missing_response_reason,
    quote,
    require_ground_truth,
    zero_result,
)
from rewardflow.rewards.result import MetricResult, RewardResult

__all__ = ["multiple_choice"]

DEFAULT_LETTERS = "ABCDEFGHIJ"
# Statements tried, last first, before giving up; bounds the work on a degenerate response.
_MAX_CANDIDATES = 16
# How much text after a statement is read for the letter or option text.
_MAX_TAIL_CHARS = 300
# Formatted letters looked at in tier 2 before giving up on a degenerate response.
_MAX_FORMATTED = 1000

_STATEMENT = re.compile(
    r"(?:\banswer(?:\s+(?:choice|option))?(?:\s+to\s+(?:this|the)\s+question)?"
    r"|\b(?:correct|right|best|final)\s+(?:option|choice))"
    r"[*_]*\s*(?:(?:is|would\s+be|should\s+be|will\s+be|must\s+be)\b[*_]*\s*:?|[:=])"
    r"|\bI\s+(?:choose|pick|select|go\s+with)\b:?",
    re.IGNORECASE,
)
# "(C) is correct", "Option C is the right answer", "C is the best choice".
_LETTER_IS_CORRECT = re.compile(
    r"(?<![\w(])\(?(?P<letter>[A-Z])\)?[*_]*\s+is\s+(?:the\s+)?(?:correct|right|best)\b"
)
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
# What may follow a statement: an "option"/"letter" word, markup, a wrapper, the letter.
_TAIL_LETTER = re.compile(
    r"[\s*_]*(?:(?i:option|choice|letter)\s+)?[\s*_$]*"
    r"(?:(?P<open>\(|\[|\\text\{|\\textbf\{|\\mathrm\{)\s*)?"
    r"(?P<letter>[A-Za-z])(?![A-Za-z0-9'\u2019])"
    r"(?:\s*(?P<close>[)\]}]))?"
)
_NEXT_WORD = re.compile(r"\s+([A-Za-z]+)")
# Words that may follow a bare "A"/"I" answer: "the answer is A because ...".
_CONNECTORS = frozenset({"because", "since", "as", "which", "with", "here", "for", "given"})
_ENGLISH_WORD_LETTERS = frozenset("AI")
# After an option's text: more of the same word or number ("Paris" in "Parisian", "1" in "1.5").
_CONTINUES_WORD = re.compile(r"\w|[.,]\d")
_TAIL_LEADING_NOISE = re.compile(r"^[\s*_:$\"'\u201c\u2018]+")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_LABEL = re.compile(r"\(?([A-Za-z])[).:]\s")
# Tier 2: letters set off by formatting.
_BARE_LETTER = re.compile(r"[\s*_$(\[]*([A-Za-z])[\s*_$)\].:]*")
_FORMATTED = re.compile(
    r"(?:\*\*|__)\(?(?P<bold>[A-Z])\)?[.:)]?(?:\*\*|__)"
    r"|(?:\*\*|__)\(?(?P<bold_label>[A-Z])[.)]\s[^*_\n]{1,200}(?:\*\*|__)"
    r"|(?<![\w(\\])\((?P<paren>[A-Z])\)(?!\w)"
    r"|(?m:^)[ \t*_#>]*\(?(?P<label>[A-Z])[.):](?=\s|\Z|\*)"
)
_GROUND_TRUTH_LETTER = re.compile(r"[\s(\[*]*([A-Za-z])[\s)\].:*]*")
_EDGE_NOISE = "*_`\"'\u201c\u201d\u2018\u2019 \t\n."


@dataclass(frozen=True)
class _Choice:
    """A letter found in a response, where it was found, and by which rule."""

    letter: str
    source: str
    method: str


def _fold(text: str) -> str:
    """Text compared case- and whitespace-insensitively (NFKC, case-folded, spaces collapsed)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _option_key(text: str) -> str:
    """An option text as compared: folded, without surrounding markdown, quotes or full stop."""
    return _fold(text.strip(_EDGE_NOISE))


# --- parameters and ground truth -----------------------------------------------------------


def _letters(value: Any) -> str:
    """``letters`` as an upper-case string: "ABCD" or ["A", "B", "C", "D"]."""
    if isinstance(value, list | tuple):
        letters = "".join(value) if all(isinstance(x, str) and len(x) == 1 for x in value) else ""
    else:
        letters = value
    if (
        not isinstance(letters, str)
        or not letters
        or not all(len(char) == 1 and char.isascii() and char.isalpha() for char in letters)
        or len(set(letters.upper())) != len(letters)
    ):
        raise ValueError(f"multiple_choice: letters must be distinct A-Z letters, got {value!r}")
    return letters.upper()


def _option_text(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, bool):  # YAML reads an unquoted yes/no/on/off as a boolean
        raise ValueError(f"multiple_choice: option {value!r} is a boolean; quote it in YAML")
    if not isinstance(value, str) or not _option_key(value):
        raise ValueError(f"multiple_choice: an option text must be non-empty text, got {value!r}")
    return _option_key(value)


def _options(value: Any, letters: str) -> dict[str, str]:
    """``options`` as {folded option text: letter}; a list is lettered in order."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        pairs = [(_letter_of_label(str(key), letters), text) for key, text in value.items()]
        if any(letter is None for letter, _ in pairs):
            raise ValueError(f"multiple_choice: options keys must be among {letters}: {value!r}")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) > len(letters):
            raise ValueError(
                f"multiple_choice: {len(value)} options but only {len(letters)} letters"
            )
        pairs = list(zip(letters, value, strict=False))
    else:
        raise ValueError(f"multiple_choice: options must be a list or a mapping, got {value!r}")
    by_text: dict[str, str] = {}
    for letter, text in pairs:
        folded = _option_text(text)
        if folded in by_text:
            raise ValueError(f"multiple_choice: two options have the text {text!r}")
        by_text[folded] = str(letter)
    return by_text


def _letter_of_label(text: str, letters: str) -> str | None:
    """The letter of "C", "(C)", "c." or "[C]" if it is one of ``letters``."""
    match = _GROUND_TRUTH_LETTER.fullmatch(text)
    if match is None or match.group(1).upper() not in letters:
        return None
    return match.group(1).upper()


def _expected_letter(ground_truth: str, letters: str, options: dict[str, str]) -> str:
    letter = _letter_of_label(ground_truth, letters)
    if letter is None:
        letter = options.get(_option_key(ground_truth))
    if letter is None:
        raise ValueError(
            f"multiple_choice: ground truth {ground_truth!r} is not one of the letters "
            f"{letters}" + (" nor an option's text" if options else " (and no options are set)")
        )
    return letter


# --- reading a letter ----------------------------------------------------------------------


def _option_at_start(text: str, options: dict[str, str]) -> tuple[str, str] | None:
    """The longest option text that ``text`` starts with, as a whole word: (text, letter)."""
    folded = _fold(_TAIL_LEADING_NOISE.sub("", text))
    matches = [
        (option, letter)
        for option, letter in options.items()
        if folded.startswith(option)
        and not _CONTINUES_WORD.match(folded[len(option) : len(option) + 2])
    ]
    return max(matches, key=lambda pair: len(pair[0]), default=None)


def _letter_at_start(tail: str, letters: str) -> str | None:
    """The letter that ``tail`` (the text after a statement) opens with, if it is one."""
    match = _TAIL_LETTER.match(tail)
    if match is None:
        return None
    letter, wrapped = match["letter"], match["open"] is not None
    if letter.upper() not in letters or (letter.islower() and not wrapped):
        return None
    if letter in _ENGLISH_WORD_LETTERS and not wrapped and match["close"] is None:
        word = _NEXT_WORD.match(tail, match.end())
        if word is not None and word.group(1).lower() not in _CONNECTORS:
            return None  # "Answer: A farmer ...", "the answer is I think B"
    return letter.upper()


def _read_tail(tail: str, letters: str, options: dict[str, str]) -> str | None:
    """The letter a statement's tail names, by letter or by an option's text.

    An option's text wins over a letter when it is longer, so with options "C" and "C++",
    "the answer is C++" picks "C++", and with "I only", "the answer is I only" is not "I".
    """
    letter = _letter_at_start(tail, letters)
    option = _option_at_start(tail, options) if options else None
    if option is not None and (letter is None or len(option[0]) > 1):
        return option[1]
    return letter


def _read_boxed(content: str, letters: str, options: dict[str, str]) -> str | None:
    content = _TEXT_WRAPPER.sub(r"\1", content).strip()
    bare = _BARE_LETTER.fullmatch(content)
    if bare is not None:
        return bare.group(1).upper() if bare.group(1).upper() in letters else None
    label = _LABEL.match(content)
    if label is not None and label.group(1).upper() in letters:
        return label.group(1).upper()
    return options.get(_option_key(content)) if options else None


def _source(text: str, start: int, end: int) -> str:
    """The statement and the rest of its line (up to 40 characters), for the reason."""
    line_end = text.find("\n", end)
    return text[start : min(len(text) if line_end == -1 else line_end, end + 40)].strip()


def _statements(text: str, letters: str, options: dict[str, str]) -> _Choice | None:
    """The last answer statement (tier 1) that names a letter."""
    found: list[tuple[int, int, str, str]] = []  # (start, end, letter or "", method)
    for match in list(_STATEMENT.finditer(text))[-_MAX_CANDIDATES:]:
        tail = text[match.end() : match.end() + _MAX_TAIL_CHARS]
        letter = _read_tail(tail, letters, options)
        found.append((match.start(), match.end(), letter or "", "answer statement"))
    if "\\boxed" in text:
        for match in list(_BOXED.finditer(text))[-_MAX_CANDIDATES:]:
            letter = _read_boxed(match.group(1), letters, options)
            found.append((match.start(), match.end(), letter or "", "\\boxed{}"))
    for match in list(_LETTER_IS_CORRECT.finditer(text))[-_MAX_CANDIDATES:]:
        letter = match["letter"] if match["letter"] in letters else ""
        found.append((match.start(), match.end(), letter, "'X is correct' statement"))
    for start, end, letter, method in sorted(found, reverse=True):
        if letter:
            return _Choice(letter, _source(text, start, end), method)
    return None


def _whole_response(text: str, letters: str, options: dict[str, str]) -> _Choice | None:
    """The response is nothing but a letter ("C", "(c).", "**C**") or an option's text."""
    stripped = text.strip()
    bare = _BARE_LETTER.fullmatch(stripped)
    if bare is not None and bare.group(1).upper() in letters:
        return _Choice(bare.group(1).upper(), stripped, "bare letter")
    letter = options.get(_option_key(stripped)) if options else None
    return _Choice(letter, stripped, "option text") if letter else None


def _formatted(text: str, letters: str) -> tuple[_Choice | None, str]:
    """Letters set off by formatting (tier 2): the one letter they agree on, or why not."""
    seen: dict[str, str] = {}
    for count, match in enumerate(_FORMATTED.finditer(text)):
        letter = next(group for group in match.groups() if group is not None)
        if letter in letters:
            seen.setdefault(letter, match.group().strip())
        if len(seen) > 1 or count >= _MAX_FORMATTED:
            break
    if len(seen) == 1:
        letter, source = next(iter(seen.items()))
        return _Choice(letter, source, "formatted letter"), ""
    if len(seen) > 1:
        return None, f"ambiguous: letters {', '.join(sorted(seen))} with no answer statement"
    return None, "no answer letter found"


def _choose(text: str, letters: str, options: dict[str, str]) -> tuple[_Choice | None, str]:
    choice = _statements(text, letters, options) or _whole_response(text, letters, options)
    if choice is not None:
        return choice, ""
    return _formatted(text, letters)


# --- the reward ----------------------------------------------------------------------------


def multiple_choice(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Score 1.0 if the option letter the response chooses is the ground truth's letter.

    The letter is read as described in this module's docstring: the last answer statement
    ("The answer is (C)", "Answer: C", ``\\boxed{C}``), else a response that is only a letter,
    else letters set off by formatting ("**C**", "(C)", "C)" opening a line) if they all
    agree. A response without a readable letter scores 0 with ``answer_found`` 0.

    Params:
        letters: the option letters, default ``ABCDEFGHIJ``; a letter outside them is not a
            choice (with ``letters: ABCD``, "the answer is E" gives no answer).
        options: the option texts, a list in letter order or a mapping letter -> text. Then a
            response may state the text instead of the letter ("The answer is Paris", or just
            "Paris"): the exact option text, compared ignoring case and whitespace.

    ``ground_truth`` is a letter ("C", "(C)", "c") or, with ``options``, an option's text.

    Config::

        rewards:
          - name: choice
            function: rewardflow.rewards.choice:multiple_choice
            params:
              letters: ABCD
              options: ["yes", "no", "maybe", "cannot be determined"]  # quoted: YAML yes = true

    Raises:
        ValueError: bad ``letters`` or ``options``, or a ground truth that names no option.
    """
    letters = _letters(kwargs.get("letters", DEFAULT_LETTERS))
    options = _options(kwargs.get("options"), letters)
    expected = _expected_letter(
        require_ground_truth(ground_truth, "multiple_choice"), letters, options
    )
    response = last_assistant_text(messages)
    problem = missing_response_reason(response)
    if problem or response is None:
        return zero_result(problem or "no assistant message", ["answer_found"])

    choice, why_none = _choose(response, letters, options)
    if choice is None:
        return zero_result(why_none, ["answer_found"])
    equal = choice.letter == expected
    reason = (
        f"chose {choice.letter} (from {quote(choice.source)}), expected {expected}: "
        f"{'match' if equal else 'no match'}"
    )
    found = MetricResult(1.0, f"found by {choice.method}")
    return RewardResult(1.0 if equal else 0.0, reason, metrics={"answer_found": found})
