"""Built-in rewards for the reasoning format ``<think>...</think><answer>...</answer>``.

R1-style training prompts ask the model to reason inside ``<think>`` and give the result
inside ``<answer>``; evaluating such a model means checking that it still does.
:func:`think_answer_format` is the strict all-or-nothing check, with a sub-metric per part so a
failure says which part broke; :func:`tag_count` gives partial credit per tag, like the
"count_xml" reward of the GRPO demos, which is the more informative signal while a model is
still learning the format.

Neither uses the ground truth. Tags are matched literally and case-sensitively (``<Think>`` is
not ``<think>``), and a tag with attributes (``<think id=1>``) is not the tag.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rewardflow.rewards._messages import (
    last_assistant_text,
    missing_response_reason,
    zero_result,
)
from rewardflow.rewards.result import MetricResult, RewardResult

__all__ = ["tag_count", "think_answer_format"]

_TAG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _tag_name(value: Any, param: str, reward: str) -> str:
    """A tag name that can be written as ``<name>``: letters, digits, ``_ . -``."""
    if not isinstance(value, str) or not _TAG_NAME.fullmatch(value):
        raise ValueError(f"{reward}: {param} must be a tag name such as 'think', got {value!r}")
    return value


def _tag_names(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"tag_count: tags must be a non-empty list of tag names, got {value!r}")
    names = [_tag_name(name, "tags", "tag_count") for name in value]
    if len(set(names)) != len(names):
        raise ValueError(f"tag_count: tags must not repeat, got {value!r}")
    return names


# --- think_answer_format -------------------------------------------------------------------


def _block(text: str, tag: str) -> tuple[MetricResult, tuple[int, int] | None]:
    """Check that ``<tag>`` and ``</tag>`` each occur once, in order, around non-blank text.

    Returns the metric and the block's (start, end) span in ``text``, or ``None`` if broken.
    """
    open_tag, close_tag = f"<{tag}>", f"</{tag}>"
    opens, closes = text.count(open_tag), text.count(close_tag)
    if opens != 1 or closes != 1:
        reason = f"{open_tag} x{opens} and {close_tag} x{closes} (need exactly 1 each)"
        return MetricResult(0.0, reason), None
    start, close = text.index(open_tag), text.index(close_tag)
    if close < start:
        return MetricResult(0.0, f"{close_tag} comes before {open_tag}"), None
    if not text[start + len(open_tag) : close].strip():
        return MetricResult(0.0, f"{open_tag}...{close_tag} is empty"), None
    return MetricResult(1.0, f"one non-empty {open_tag}...{close_tag}"), (
        start,
        close + len(close_tag),
    )


def _layout(text: str, think: tuple[int, int], answer: tuple[int, int], tags: str) -> MetricResult:
    """Check that the two blocks are in order and nothing but whitespace surrounds them."""
    if think[0] > answer[0]:
        return MetricResult(0.0, f"the answer block comes before the think block ({tags})")
    if think[1] > answer[0]:
        return MetricResult(0.0, f"the blocks overlap or nest ({tags})")
    outside = {
        "before the think block": text[: think[0]],
        "between the blocks": text[think[1] : answer[0]],
        "after the answer block": text[answer[1] :],
    }
    for where, extra in outside.items():
        if extra.strip():
            return MetricResult(0.0, f"text {where}")
    return MetricResult(1.0, "think block, then answer block, nothing else")


def think_answer_format(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Score 1.0 if the response is exactly a think block followed by an answer block.

    The response must be ``<think>...</think>`` then ``<answer>...</answer>``, with only
    whitespace before, between and after; each of the four tags exactly once, and each block
    non-blank. Anything else scores 0: prose after the answer (the model kept talking), a
    nested or repeated block (it restarted), an unclosed block (it was cut off). Unlike
    open-r1's ``format_reward``, the newlines next to the tags are optional.

    Params ``think_tag`` (default ``think``) and ``answer_tag`` (default ``answer``) rename the
    tags, e.g. ``reasoning``/``solution``.

    Metrics: ``think`` and ``answer`` (each block present once, closed and non-blank) and
    ``layout`` (in that order, nothing outside). The score is 1 only if all three are 1.

    Config::

        rewards:
          - name: format
            function: rewardflow.rewards.format:think_answer_format
            params: {think_tag: reasoning, answer_tag: solution}

    Raises:
        ValueError: a tag name that is not a valid tag, or both tags the same.
    """
    think_tag = _tag_name(kwargs.get("think_tag", "think"), "think_tag", "think_answer_format")
    answer_tag = _tag_name(kwargs.get("answer_tag", "answer"), "answer_tag", "think_answer_format")
    if think_tag == answer_tag:
        raise ValueError(f"think_answer_format: think_tag and answer_tag are both {think_tag!r}")
    names = ("think", "answer", "layout")
    response = last_assistant_text(messages)
    problem = missing_response_reason(response)
    if problem or response is None:
        return zero_result(problem or "no assistant message", names)

    think, think_span = _block(response, think_tag)
    answer, answer_span = _block(response, answer_tag)
    if think_span is None or answer_span is None:
        layout = MetricResult(0.0, "not checked: a block is missing or malformed")
    else:
        layout = _layout(response, think_span, answer_span, f"<{think_tag}>, <{answer_tag}>")
    metrics = {"think": think, "answer": answer, "layout": layout}
    failed = [metric.reason for metric in metrics.values() if metric.score < 1.0]
    if failed:
        return RewardResult(0.0, "; ".join(failed), metrics=metrics)
    return RewardResult(1.0, f"<{think_tag}> block then <{answer_tag}> block", metrics=metrics)


# --- tag_count -----------------------------------------------------------------------------


def tag_count(messages: list[dict], ground_truth: Any, **kwargs: Any) -> RewardResult:
    """Partial credit: the fraction of the required tags that appear exactly once.

    For ``tags: [think, answer]`` the four tags ``<think>``, ``</think>``, ``<answer>`` and
    ``</answer>`` are each worth 1/4 if they occur exactly once (missing or repeated: 0). Like
    the "count_xml" reward of the GRPO demos (and open-r1's ``tag_count_reward``), but the
    tags need no surrounding newlines, and neither order nor text outside the tags is checked:
    that is :func:`think_answer_format`'s job.

    Metrics: one per tag name, 1 / 0.5 / 0 for both / one / none of its two tags once.

    Config::

        rewards:
          - name: tags
            function: rewardflow.rewards.format:tag_count
            params: {tags: [think, answer]}

    Raises:
        ValueError: ``tags`` is not a non-empty list of distinct tag names.
    """
    names = _tag_names(kwargs.get("tags", ["think", "answer"]))
    response = last_assistant_text(messages)
    problem = missing_response_reason(response)
    if problem or response is None:
        return zero_result(problem or "no assistant message", names)

    metrics = {}
    wrong = []
    for name in names:
        counts = {tag: response.count(tag) for tag in (f"<{name}>", f"</{name}>")}
        wrong.extend(f"{tag} x{count}" for tag, count in counts.items() if count != 1)
        once = sum(count == 1 for count in counts.values())
        summary = ", ".join(f"{tag} x{count}" for tag, count in counts.items())
        metrics[name] = MetricResult(once / 2, summary)
    score = sum(metric.score for metric in metrics.values()) / len(metrics)
    reason = "every tag exactly once" if not wrong else "not exactly once: " + ", ".join(wrong)
    return RewardResult(score, reason, metrics=metrics)
