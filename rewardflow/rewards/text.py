"""Built-in rewards that compare the response's text with the ground truth.

Three strengths of comparison, from strict to lenient: :func:`exact_match` (the whole response,
only surrounding whitespace ignored), :func:`normalized_match` (SQuAD-style normalisation, so
``"The Eiffel Tower."`` equals ``eiffel tower``), and :func:`regex_match` (a user pattern, for
responses whose answer sits inside free text).

All three score 1.0 or 0.0. An empty response, ``None`` content or a conversation without an
assistant message scores 0 with a reason; a missing ground truth or a bad parameter raises
``ValueError``, because those are configuration problems that a 0 would hide.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from typing import Any

from rewardflow.rewards._messages import (
    bool_param,
    choice_param,
    last_assistant_text,
    missing_response_reason,
    quote,
    require_ground_truth,
    zero_result,
)
from rewardflow.rewards.result import MetricResult, RewardResult

__all__ = ["exact_match", "normalize_answer", "normalized_match", "regex_match"]


class _PunctuationTable(dict[int, int | None]):
    """``str.translate`` table deleting punctuation, filled in as characters are met.

    SQuAD's normaliser deletes ASCII punctuation (``string.punctuation``, which also holds
    symbols such as ``$`` and ``+``); we also delete every Unicode punctuation character
    (``¿``, ``«``, ``。``, curly quotes), which SQuAD's English-only data never needed. Built
    lazily because tabulating all 1.1 million code points would cost a noticeable import time.
    """

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        deleted = char in string.punctuation or unicodedata.category(char).startswith("P")
        value = None if deleted else code
        self[code] = value
        return value


_PUNCTUATION_TABLE = _PunctuationTable()
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_REGEX_FLAGS = {
    "IGNORECASE": re.IGNORECASE,
    "I": re.IGNORECASE,
    "MULTILINE": re.MULTILINE,
    "M": re.MULTILINE,
    "DOTALL": re.DOTALL,
    "S": re.DOTALL,
    "VERBOSE": re.VERBOSE,
    "X": re.VERBOSE,
    "ASCII": re.ASCII,
    "A": re.ASCII,
}
# How many matches regex_match looks at when picking the last one for compare_group; a
# degenerate response matching 100,000 times must not build a 100,000-element list.
_MAX_REGEX_MATCHES = 10_000


def _response_or_problem(messages: Any) -> tuple[str, str | None]:
    response = last_assistant_text(messages)
    return response or "", missing_response_reason(response)


def _verdict(equal: bool, got: str, expected: str, how: str = "") -> RewardResult:
    outcome = "match" if equal else "no match"
    suffix = f" ({how})" if how else ""
    return RewardResult(
        score=1.0 if equal else 0.0,
        reason=f"response {quote(got)} vs expected {quote(expected)}: {outcome}{suffix}",
    )


# --- exact_match ---------------------------------------------------------------------------


def exact_match(messages: list[dict], ground_truth: str | None, **kwargs: Any) -> RewardResult:
    """Score 1.0 if the response, stripped of surrounding whitespace, equals the ground truth.

    For answers with one canonical spelling (a label, a code, a word). Both sides are put in
    Unicode NFC form first, so that an ``é`` typed as one code point equals ``e`` plus a
    combining accent: they are the same text, only stored differently. With
    ``case_sensitive: false`` both sides are case-folded (``"STRASSE"`` equals ``"straße"``).

    Config::

        rewards:
          - name: exact
            function: rewardflow.rewards.text:exact_match
            params: {case_sensitive: false}

    Raises:
        ValueError: no ground truth, or ``case_sensitive`` is not true/false.
    """
    case_sensitive = bool_param(kwargs, "case_sensitive", True, "exact_match")
    expected = require_ground_truth(ground_truth, "exact_match")
    response, problem = _response_or_problem(messages)
    if problem:
        return zero_result(problem)
    got, want = (unicodedata.normalize("NFC", text.strip()) for text in (response, expected))
    if not case_sensitive:
        got, want = got.casefold(), want.casefold()
    return _verdict(got == want, response.strip(), expected.strip())


# --- normalized_match ----------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation, made Unicode-aware.

    NFKC first (full-width ``Ｐａｒｉｓ`` and ligatures become plain letters), then, as in the
    SQuAD v1.1 evaluation script: lower case (case-folded here), punctuation removed (deleted,
    not replaced by a space, so ``"well-known"`` becomes ``wellknown``), the articles
    a/an/the removed, and runs of whitespace collapsed.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.translate(_PUNCTUATION_TABLE)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def normalized_match(messages: list[dict], ground_truth: str | None, **kwargs: Any) -> RewardResult:
    """Score 1.0 if the response equals the ground truth after SQuAD-style normalisation.

    For short free-text answers, where ``"The Eiffel Tower."``, ``eiffel tower`` and
    ``Eiffel  Tower!`` are all the same answer (see :func:`normalize_answer`). It compares the
    whole response, so ``"Paris or London"`` does not match ``Paris``; use :func:`regex_match`
    with ``compare_group`` to grade an answer inside a longer response. A response or ground
    truth that is empty after normalisation (``"The."``) never matches.

    Config::

        rewards:
          - name: answer
            function: rewardflow.rewards.text:normalized_match

    Raises:
        ValueError: no ground truth.
    """
    expected = require_ground_truth(ground_truth, "normalized_match")
    response, problem = _response_or_problem(messages)
    if problem:
        return zero_result(problem)
    got, want = normalize_answer(response), normalize_answer(expected)
    if not want:
        return zero_result(f"ground truth {quote(expected)} is empty after normalisation")
    return _verdict(got == want, got, want, "normalised")


# --- regex_match ---------------------------------------------------------------------------


def _regex_flags(value: Any) -> int:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"regex_match: flags must be a list of flag names, got {value!r}")
    flags = 0
    for name in names:
        flag = _REGEX_FLAGS.get(name.upper())
        if flag is None:
            known = ", ".join(name for name in _REGEX_FLAGS if len(name) > 1)
            raise ValueError(f"regex_match: unknown flag {name!r}; known flags: {known}")
        flags |= flag
    return flags


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as error:
        raise ValueError(f"regex_match: invalid pattern {pattern!r}: {error}") from error


def _pattern(kwargs: dict[str, Any]) -> re.Pattern[str]:
    pattern = kwargs.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"regex_match needs a pattern (a non-empty string), got {pattern!r}")
    return _compile(pattern, _regex_flags(kwargs.get("flags") or []))


def _group(value: Any, compiled: re.Pattern[str]) -> int | str | None:
    """Check ``compare_group`` against the pattern now, not when a response happens to match."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"regex_match: compare_group must be a group number or name: {value!r}")
    if isinstance(value, int) and not 0 <= value <= compiled.groups:
        raise ValueError(
            f"regex_match: compare_group {value} but the pattern has {compiled.groups} groups"
        )
    if isinstance(value, str) and value not in compiled.groupindex:
        raise ValueError(f"regex_match: compare_group {value!r} is not a named group")
    return value


def _last_match_with_group(
    compiled: re.Pattern[str], text: str, group: int | str, fullmatch: bool
) -> re.Match[str] | None:
    """The match whose ``group`` took part; in search mode the LAST one.

    The last, because models revise themselves ("Answer: 3 ... no, Answer: 5"), and a grader
    that reads the first candidate rewards the answer the model abandoned.
    """
    if fullmatch:
        match = compiled.fullmatch(text)
        return match if match is not None and match.group(group) is not None else None
    found = None
    for count, match in enumerate(compiled.finditer(text)):
        if match.group(group) is not None:
            found = match
        if count >= _MAX_REGEX_MATCHES:
            break
    return found


def regex_match(messages: list[dict], ground_truth: str | None, **kwargs: Any) -> RewardResult:
    """Score 1.0 if the response matches ``pattern`` (and, optionally, a group equals the truth).

    Params:
        pattern: the regular expression (required; Python ``re`` syntax).
        flags: list of flag names: ``IGNORECASE``, ``MULTILINE``, ``DOTALL``, ``VERBOSE``,
            ``ASCII`` (or their one-letter forms ``I``, ``M``, ``S``, ``X``, ``A``).
        mode: ``search`` (default: the pattern may match anywhere) or ``fullmatch`` (the whole
            response, surrounding whitespace ignored, must match).
        compare_group: a group number or name. Then the response must also contain the right
            answer: the group's text must equal ``ground_truth`` after
            :func:`normalize_answer`. In search mode the LAST match in which the group took
            part is used, so a response that revises its answer is graded on the final one.

    Without ``compare_group`` the ground truth is not used (it may be missing): the reward
    checks a format. An empty response scores 0 even if the pattern matches the empty string.

    Config::

        rewards:
          - name: final_answer
            function: rewardflow.rewards.text:regex_match
            params:
              pattern: 'Final answer:\\s*(?P<answer>[^\\n]+)'
              flags: [IGNORECASE]
              compare_group: answer

    Raises:
        ValueError: no or invalid ``pattern``, unknown flag or mode, ``compare_group`` not in
            the pattern, or no ground truth while ``compare_group`` is set.
    """
    compiled = _pattern(kwargs)
    fullmatch = choice_param(kwargs, "mode", "search", ("search", "fullmatch"), "regex_match")
    fullmatch = fullmatch == "fullmatch"
    group = _group(kwargs.get("compare_group"), compiled)
    expected = require_ground_truth(ground_truth, "regex_match") if group is not None else None
    metric_names = ("pattern_matched",) if group is not None else ()
    response, problem = _response_or_problem(messages)
    if problem:
        return zero_result(problem, metric_names)
    if fullmatch:
        response = response.strip()

    if group is None or expected is None:
        match = compiled.fullmatch(response) if fullmatch else compiled.search(response)
        if match is None:
            return RewardResult(0.0, f"pattern {quote(compiled.pattern)} does not match")
        return RewardResult(1.0, f"pattern matched {quote(match.group())}")

    match = _last_match_with_group(compiled, response, group, fullmatch)
    if match is None:
        why = f"pattern {quote(compiled.pattern)} does not match (with group {group!r})"
        return zero_result(why, metric_names)
    got, want = normalize_answer(match.group(group)), normalize_answer(expected)
    equal = bool(want) and got == want
    reason = (
        f"group {group!r} = {quote(match.group(group))}, expected {quote(expected)}: "
        f"{'match' if equal else 'no match'} (normalised)"
    )
    matched = MetricResult(1.0, f"matched {quote(match.group())}")
    return RewardResult(1.0 if equal else 0.0, reason, metrics={"pattern_matched": matched})
