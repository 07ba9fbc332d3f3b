"""What a reward function returns, and how loose return values are normalised.

Reward functions follow reward-kit's signature ``fn(messages, ground_truth, **kwargs)`` so
existing ones run unchanged. They may return a :class:`RewardResult`, any object with ``score``
(and optionally ``reason``, ``is_score_valid``, ``metrics``) such as reward-kit's
``EvaluateResult``, a mapping with the same keys, or a plain float/int/bool -- numpy (or any
array library's) zero-dimensional scalars included, since rewards computed with numpy return
``numpy.float32`` and friends without meaning anything else. :func:`to_reward_result` turns all
of those into one shape and rejects scores outside [0, 1], so a buggy reward is reported as a
score error instead of silently skewing a mean. A string is never read as a number: ``"0.5"``
is more often a bug (a label, an unparsed answer) than a score, so it is rejected by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rewardflow.errors import RewardResultError


@dataclass(frozen=True)
class MetricResult:
    """One named sub-metric of a reward (e.g. ``answer_found``, ``format``)."""

    score: float
    reason: str = ""
    is_score_valid: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "reason": self.reason, "is_score_valid": self.is_score_valid}


@dataclass(frozen=True)
class RewardResult:
    """A reward's verdict on one response: ``score`` in [0, 1], why, and sub-metrics."""

    score: float
    reason: str = ""
    is_score_valid: bool = True
    metrics: dict[str, MetricResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "reason": self.reason,
            "is_score_valid": self.is_score_valid,
            "metrics": {name: metric.to_dict() for name, metric in self.metrics.items()},
        }


def _plain(value: Any) -> Any:
    """A zero-dimensional array scalar (numpy, torch, jax...) as the Python number it holds."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        return value.item()
    return value


def _got(value: Any) -> str:
    """What a reward returned, for an error message: its type, and the value when short."""
    shown = repr(value)
    return type(value).__name__ + (f" {shown}" if len(shown) <= 40 else "")


def _is_number(value: Any) -> bool:
    return isinstance(value, bool | int | float)


def _checked_score(value: Any, what: str) -> float:
    value = _plain(value)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        hint = " (convert it with float() if it is a score)" if isinstance(value, str) else ""
        raise RewardResultError(f"{what} must be a number in [0, 1], got {_got(value)}{hint}")
    score = float(value)
    if math.isnan(score) or not 0.0 <= score <= 1.0:
        raise RewardResultError(f"{what} must be in [0, 1], got {value!r}")
    return score


def _field(value: Any, name: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, default)
    return getattr(value, name, default)


def _score_field(value: Any, what: str, score_what: str) -> float:
    """The ``score`` of a mapping or result-like object, naming what was returned if none."""
    has_score = "score" in value if isinstance(value, Mapping) else hasattr(value, "score")
    if not has_score:
        raise RewardResultError(
            f"{what} must be a number in [0, 1], a mapping with 'score' or an object with a "
            f"'score' attribute, got {_got(value)}"
        )
    return _checked_score(_field(value, "score", None), score_what)


def _to_metric(name: str, value: Any) -> MetricResult:
    value = _plain(value)
    if _is_number(value) or isinstance(value, str | bytes):
        return MetricResult(score=_checked_score(value, f"metric {name!r}"))
    return MetricResult(
        score=_score_field(value, f"metric {name!r}", f"metric {name!r} score"),
        reason=str(_field(value, "reason", "") or ""),
        is_score_valid=bool(_field(value, "is_score_valid", True)),
    )


def to_reward_result(value: Any) -> RewardResult:
    """Normalise whatever a reward function returned; raise RewardResultError if unusable."""
    if isinstance(value, RewardResult):
        score = _checked_score(value.score, "score")
        # A numpy score would not survive JSON; the checked float replaces it.
        return value if type(value.score) is float else replace(value, score=score)
    value = _plain(value)
    if _is_number(value) or isinstance(value, str | bytes):
        return RewardResult(score=_checked_score(value, "score"))
    if value is None:
        raise RewardResultError("the reward function returned None")
    raw_metrics = _field(value, "metrics", None) or {}
    if not isinstance(raw_metrics, Mapping):
        raise RewardResultError(f"metrics must be a mapping, got {type(raw_metrics).__name__}")
    return RewardResult(
        score=_score_field(value, "a reward's result", "score"),
        reason=str(_field(value, "reason", "") or ""),
        is_score_valid=bool(_field(value, "is_score_valid", True)),
        metrics={str(name): _to_metric(str(name), metric) for name, metric in raw_metrics.items()},
    )
