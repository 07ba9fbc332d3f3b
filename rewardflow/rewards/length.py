"""Built-in rewards about a response's length and verbosity.

:func:`length_reward` checks a length budget. :func:`cosine_scaled_length` and
:func:`repetition_penalty` are the length and repetition rewards of "Demystifying Long
Chain-of-Thought Reasoning in LLMs" (Yeo et al. 2025) as implemented in open-r1
(``get_cosine_scaled_reward``, ``get_repetition_penalty_reward``), with one difference forced
on us: open-r1's values lie in [-1, 1] and ours must lie in [0, 1], so each docstring states
how its value is mapped. The raw open-r1 value is kept in a metric's reason, so results can
still be compared with training logs.

None of them reads the ground truth except through ``cosine_scaled_length``'s correctness
check. An empty response or a conversation without an assistant message scores 0.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from rewardflow.errors import RewardLoadError
from rewardflow.rewards._messages import (
    choice_param,
    int_param,
    last_assistant_text,
    missing_response_reason,
    number_param,
    zero_result,
)
from rewardflow.rewards.result import MetricResult, RewardResult, to_reward_result

__all__ = ["cosine_scaled_length", "length_reward", "repetition_penalty"]

DEFAULT_CORRECTNESS_CHECK = "rewardflow.rewards.math:math_reward"


def _response(messages: Any) -> tuple[str, str | None]:
    response = last_assistant_text(messages)
    return response or "", missing_response_reason(response)


# --- length_reward -------------------------------------------------------------------------


def _measure(text: str, unit: str) -> int:
    """Words (whitespace-separated) or characters (code points, after NFC) of ``text``.

    NFC so that an accented letter counts once whether it was typed as one code point or two.
    """
    if unit == "words":
        return len(text.split())
    return len(unicodedata.normalize("NFC", text.strip()))


def _bounds(kwargs: Mapping[str, Any]) -> tuple[float, float]:
    """(low, high) of the accepted range; a target is the range [target, target]."""
    target = number_param(kwargs, "target_chars", None, "length_reward", minimum=1)
    low = number_param(kwargs, "min_chars", None, "length_reward", minimum=0)
    high = number_param(kwargs, "max_chars", None, "length_reward", minimum=1)
    if target is not None:
        if low is not None or high is not None:
            raise ValueError("length_reward: give target_chars or min_chars/max_chars, not both")
        return target, target
    if low is None and high is None:
        raise ValueError("length_reward needs target_chars, or min_chars and/or max_chars")
    low, high = low or 0.0, math.inf if high is None else high
    if low > high:
        raise ValueError(f"length_reward: min_chars {low:g} is above max_chars {high:g}")
    return low, high


def _length_score(length: int, low: float, high: float) -> float:
    """1 inside [low, high]; outside, 1 minus the distance as a fraction of the broken bound."""
    if length < low:
        return length / low
    if length > high:
        return max(0.0, 1.0 - (length - high) / high)
    return 1.0


def length_reward(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Score how well the response's length keeps to a budget: 1 inside it, less outside.

    Params (counted in ``unit``, despite the ``_chars`` names): either ``target_chars`` T, or
    ``min_chars`` and/or ``max_chars``; ``unit`` is ``chars`` (default: code points of the
    response without surrounding whitespace) or ``words`` (whitespace-separated).

    The penalty is linear in the distance from the range, relative to the bound broken::

        L < min:   score = L / min                        (0 for an empty response)
        L > max:   score = max(0, 1 - (L - max) / max)    (0 from twice the maximum on)
        target T:  score = max(0, 1 - |L - T| / T)        (the range [T, T])
        otherwise: score = 1

    An empty response scores 0 even with only ``max_chars`` set: it is no answer, not a
    concise one. Metric ``in_range``: 1 if inside the range.

    Config::

        rewards:
          - name: concise
            function: rewardflow.rewards.length:length_reward
            params: {max_chars: 200, unit: words}

    Raises:
        ValueError: no bound, both a target and a range, min above max, a bound that is not a
            number (``target_chars``/``max_chars`` must be >= 1), or an unknown unit.
    """
    low, high = _bounds(kwargs)
    unit = choice_param(kwargs, "unit", "chars", ("chars", "words"), "length_reward")
    response, problem = _response(messages)
    if problem:
        return zero_result(problem, ["in_range"])
    length = _measure(response, unit)
    score = _length_score(length, low, high)
    wanted = f"{low:g}" if low == high else f"[{low:g}, {high:g}]"
    inside = MetricResult(1.0 if score == 1.0 else 0.0, f"{length} {unit}, range {wanted}")
    return RewardResult(score, f"{length} {unit}, wanted {wanted}", metrics={"in_range": inside})


# --- cosine_scaled_length ------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _load_check(reference: str) -> Callable[..., Any]:
    from rewardflow.rewards.loader import load_reward_function

    try:
        return load_reward_function(reference)
    except RewardLoadError as error:
        raise ValueError(f"cosine_scaled_length: correct: {error}") from error


def _correctness_check(value: Any) -> Callable[..., Any]:
    """``correct``: a reward reference as in the config's ``function``, or a callable."""
    if callable(value):
        return value
    if not isinstance(value, str):
        raise ValueError(f"cosine_scaled_length: correct must be 'module:function', got {value!r}")
    return _load_check(value)


def _open_r1_value(kwargs: Mapping[str, Any], name: str, default: float) -> float:
    """An open-r1 value parameter, in [-1, 1] so that (v + 1) / 2 is in [0, 1]."""
    value = number_param(kwargs, name, default, "cosine_scaled_length", minimum=-1.0, maximum=1.0)
    return default if value is None else value


def _value_range(
    kwargs: Mapping[str, Any], low_name: str, high_name: str, low: float, high: float
) -> tuple[float, float]:
    """A (min, max) pair of open-r1 value parameters."""
    low_value = _open_r1_value(kwargs, low_name, low)
    high_value = _open_r1_value(kwargs, high_name, high)
    if low_value > high_value:
        raise ValueError(f"cosine_scaled_length: {low_name} is above {high_name}")
    return low_value, high_value


def _length_scale(length: int, max_len: int) -> float:
    """``(1 + cos(pi * L / max_len)) / 2``: 1 at length 0, falling to 0 at ``max_len``.

    Unlike open-r1, the progress ``L / max_len`` is capped at 1: the cosine is periodic, so
    uncapped, a response of twice ``max_len`` would score like an empty one.
    """
    return (1.0 + math.cos(math.pi * min(length / max_len, 1.0))) / 2


def _cosine_value(scale: float, low: float, high: float, correct: bool) -> float:
    """open-r1's value: ``high`` at scale 1 (empty) to ``low`` at 0; swapped if wrong."""
    if correct:
        return low + (high - low) * scale
    return high + (low - high) * scale


def cosine_scaled_length(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Reward correct answers more when short, and penalise wrong answers less when long.

    Yeo et al. (2025)'s cosine length scaling, as open-r1's ``get_cosine_scaled_reward``: with
    ``L`` the response length in characters and ``c = cos(pi * min(L / max_len, 1))``::

        correct: v = min_value_correct + (max_value_correct - min_value_correct) * (1 + c) / 2
        wrong:   v = max_value_wrong   + (min_value_wrong   - max_value_wrong)   * (1 + c) / 2
        score = (v + 1) / 2

    so a correct answer goes from ``max_value_correct`` (empty) down to ``min_value_correct``
    (at ``max_len``), and a wrong one from ``min_value_wrong`` up to ``max_value_wrong``: being
    wrong hurts less when the model at least thought for long. The last line maps open-r1's
    [-1, 1] onto our [0, 1]; with the defaults, correct answers score 0.75-1 and wrong ones
    0-0.25. Lengths beyond ``max_len`` are capped (open-r1's cosine would wrap around).

    Correctness is decided by the reward named by ``correct`` (default
    ``rewardflow.rewards.math:math_reward``; any ``module:function`` or ``file.py:function``),
    called with the same messages and ground truth and ``correct_params`` as keyword
    arguments; the answer counts as correct when its score is at least ``correct_threshold``
    (default 1.0). Unlike open-r1, an unparseable ground truth is not counted as correct.

    Params: ``min_value_wrong=-1.0``, ``max_value_wrong=-0.5``, ``min_value_correct=0.5``,
    ``max_value_correct=1.0`` (each in [-1, 1]), ``max_len=1000``, ``correct``,
    ``correct_params={}``, ``correct_threshold=1.0``.

    Metrics: ``correct`` (the check's verdict and reason) and ``length`` (``(1 + c) / 2``: 1
    when empty, 0 from ``max_len`` on; its reason holds the raw open-r1 value).

    Config::

        rewards:
          - name: cosine
            function: rewardflow.rewards.length:cosine_scaled_length
            params:
              max_len: 2000
              correct: rewardflow.rewards.choice:multiple_choice
              correct_params: {letters: ABCD}

    Raises:
        ValueError: a value outside [-1, 1] or a min above its max, ``max_len`` < 1, a
            ``correct`` that cannot be loaded, or whatever the check raises (math_reward: no
            ground truth).
    """
    wrong_low, wrong_high = _value_range(kwargs, "min_value_wrong", "max_value_wrong", -1.0, -0.5)
    right_low, right_high = _value_range(kwargs, "min_value_correct", "max_value_correct", 0.5, 1.0)
    max_len = int_param(kwargs, "max_len", 1000, "cosine_scaled_length", minimum=1)
    check = _correctness_check(kwargs.get("correct", DEFAULT_CORRECTNESS_CHECK))
    check_params = kwargs.get("correct_params") or {}
    if not isinstance(check_params, Mapping):
        raise ValueError(
            f"cosine_scaled_length: correct_params must be a mapping: {check_params!r}"
        )
    threshold = number_param(
        kwargs, "correct_threshold", 1.0, "cosine_scaled_length", minimum=0.0, maximum=1.0
    )
    response, problem = _response(messages)
    if problem:
        return zero_result(problem, ["correct", "length"])

    verdict = to_reward_result(check(messages, ground_truth, **check_params))
    correct = verdict.score >= threshold
    length = len(response)
    low, high = (right_low, right_high) if correct else (wrong_low, wrong_high)
    scale = _length_scale(length, max_len)
    value = _cosine_value(scale, low, high, correct)
    score = min(1.0, max(0.0, (value + 1.0) / 2))
    outcome = "correct" if correct else "wrong"
    metrics = {
        "correct": MetricResult(1.0 if correct else 0.0, verdict.reason),
        "length": MetricResult(
            scale, f"{length} of max_len {max_len} chars; open-r1 value {value:.4f}"
        ),
    }
    reason = f"{outcome}, {length} chars (max_len {max_len}): open-r1 value {value:.4f}"
    return RewardResult(score, reason, metrics=metrics)


# --- repetition_penalty --------------------------------------------------------------------


def _distinct_ngrams(words: list[str], size: int) -> tuple[int, int]:
    """(distinct, total) word n-grams of ``words``."""
    ngrams = list(zip(*(words[start:] for start in range(size)), strict=False))
    return len(set(ngrams)), len(ngrams)


def repetition_penalty(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Penalise a response that repeats itself: 1 = no repeated n-gram, 0 = nothing but repeats.

    open-r1's ``get_repetition_penalty_reward`` (from Yeo et al. 2025, Appendix C.2): the
    response is lower-cased and split on whitespace into words; of its ``total`` word n-grams
    (``ngram_size``, default 3) ``distinct`` are different, and::

        penalty = (1 - distinct / total) * max_penalty      (open-r1's value, in [max_penalty, 0])
        score   = 1 + penalty

    so with the default ``max_penalty: -1.0`` the score is simply ``distinct / total``. A
    response shorter than ``ngram_size`` words cannot repeat an n-gram and scores 1, as in
    open-r1; but an empty response scores 0 here (open-r1 gives it no penalty) because it is
    no response at all. Metric ``distinct_ngrams``: ``distinct / total``.

    Config::

        rewards:
          - name: no_loops
            function: rewardflow.rewards.length:repetition_penalty
            params: {ngram_size: 4, max_penalty: -0.5}

    Raises:
        ValueError: ``ngram_size`` < 1, or ``max_penalty`` outside [-1, 0] (positive is
            refused by open-r1 too; below -1 the score would leave [0, 1]).
    """
    size = int_param(kwargs, "ngram_size", 3, "repetition_penalty", minimum=1)
    max_penalty = number_param(
        kwargs, "max_penalty", -1.0, "repetition_penalty", minimum=-1.0, maximum=0.0
    )
    response, problem = _response(messages)
    if problem:
        return zero_result(problem, ["distinct_ngrams"])
    words = response.lower().split()
    if len(words) < size:
        counted = f"{len(words)} word{'' if len(words) == 1 else 's'}"
        why = f"{counted}, fewer than ngram_size {size}: nothing can repeat"
        return RewardResult(1.0, why, metrics={"distinct_ngrams": MetricResult(1.0, why)})
    distinct, total = _distinct_ngrams(words, size)
    penalty = (1.0 - distinct / total) * max_penalty + 0.0  # + 0.0: no "-0.0000" in reasons
    counted = f"{distinct} of {total} {size}-grams distinct"
    return RewardResult(
        max(0.0, 1.0 + penalty),
        f"{counted}; open-r1 penalty {penalty:.4f}",
        metrics={"distinct_ngrams": MetricResult(distinct / total, counted)},
    )
