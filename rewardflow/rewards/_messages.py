"""Plumbing shared by the built-in rewards: the response text, the ground truth, parameters.

Every built-in reward starts the same way: find the model's response in ``messages`` (the last
assistant message, whose content may be a string, ``None`` or OpenAI-style content parts),
decide what to do when there is none, and check its configured parameters. Doing that in one
place keeps the rewards consistent: a missing response is always a score of 0 with the same
reason, and a bad parameter is always a ``ValueError`` naming the reward and the parameter, so
a config typo is reported as misconfiguration instead of silently scoring every sample 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from rewardflow.rewards.result import MetricResult, RewardResult

__all__ = [
    "bool_param",
    "choice_param",
    "content_text",
    "int_param",
    "last_assistant_text",
    "missing_response_reason",
    "number_param",
    "quote",
    "require_ground_truth",
    "shorten",
    "zero_result",
]

_MAX_QUOTE_CHARS = 80


# --- the response --------------------------------------------------------------------------


def _get(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def content_text(content: Any) -> str:
    """Message content as text: a string, ``None`` (no text), or OpenAI-style content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (part if isinstance(part, str) else _get(part, "text") for part in content)
        return "\n".join(part for part in parts if isinstance(part, str))
    return str(content)


def last_assistant_text(messages: Any) -> str | None:
    """The text of the last assistant message; ``None`` if there is no assistant message.

    Messages may be dicts or objects with ``role``/``content`` attributes (reward-kit's
    ``Message``), so rewards written for reward-kit see the same response here.
    """
    if not isinstance(messages, list | tuple):
        return None
    for message in reversed(messages):
        if _get(message, "role") == "assistant":
            return content_text(_get(message, "content"))
    return None


def missing_response_reason(response: str | None) -> str | None:
    """Why ``response`` cannot be scored ("no assistant message", "empty response"), or None."""
    if response is None:
        return "no assistant message"
    if not response.strip():
        return "empty response"
    return None


def zero_result(reason: str, metric_names: Iterable[str] = ()) -> RewardResult:
    """Score 0 with ``reason``, and every named sub-metric 0 for the same reason.

    Used when there is nothing to grade, so that a reward's metrics have the same keys on every
    sample and a per-metric mean is not computed over a varying subset.
    """
    return RewardResult(
        score=0.0,
        reason=reason,
        metrics={name: MetricResult(score=0.0, reason=reason) for name in metric_names},
    )


def shorten(text: str, limit: int = _MAX_QUOTE_CHARS) -> str:
    """``text`` cut to ``limit`` characters: a 1 MB response must not bloat every record."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote(text: str, limit: int = _MAX_QUOTE_CHARS) -> str:
    """``text`` shortened and quoted (``repr``), for naming part of a response in a reason."""
    return repr(shorten(text, limit))


# --- the ground truth ----------------------------------------------------------------------


def require_ground_truth(ground_truth: Any, reward: str) -> str:
    """``ground_truth`` as text; ValueError when it is missing or blank.

    A reward that compares against an expected answer cannot score a row without one, and a
    0 would hide that the dataset's ``ground_truth_field`` is unset or wrong. Numbers (a YAML or
    JSON ground truth of ``42``) are accepted as their text.
    """
    if isinstance(ground_truth, int | float) and not isinstance(ground_truth, bool):
        ground_truth = str(ground_truth)
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise ValueError(
            f"{reward} needs a ground_truth (the expected answer), got {ground_truth!r}"
        )
    return ground_truth


# --- parameters ----------------------------------------------------------------------------


def bool_param(params: Mapping[str, Any], name: str, default: bool, reward: str) -> bool:
    """A true/false parameter; a string such as ``"false"`` is refused, since it is truthy."""
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"{reward}: {name} must be true or false, got {value!r}")
    return value


def number_param(
    params: Mapping[str, Any],
    name: str,
    default: float | None,
    reward: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    """A finite number parameter within [minimum, maximum]; ``None`` when absent and no default."""
    value = params.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{reward}: {name} must be a finite number, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (
            f"[{'-inf' if minimum is None else minimum}, {'inf' if maximum is None else maximum}]"
        )
        raise ValueError(f"{reward}: {name} must be in {bounds}, got {value!r}")
    return float(value)


def int_param(
    params: Mapping[str, Any], name: str, default: int, reward: str, *, minimum: int
) -> int:
    """A whole-number parameter >= ``minimum`` (``3.0`` from a YAML file is accepted as 3)."""
    value = params.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{reward}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def choice_param(
    params: Mapping[str, Any], name: str, default: str, choices: Iterable[str], reward: str
) -> str:
    """A parameter that must be one of ``choices``."""
    value = params.get(name, default)
    allowed = tuple(choices)
    if value not in allowed:
        raise ValueError(f"{reward}: {name} must be one of {', '.join(allowed)}; got {value!r}")
    return value
