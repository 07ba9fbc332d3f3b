"""What a reward function returns, and how loose return values are normalised.

Reward functions follow reward-kit's signature ``fn(messages, ground_truth, **kwargs)`` so
existing ones run unchanged. They may return a :class:`RewardResult`, any object with ``score``
(and optionally ``reason``, ``is_score_valid``, ``metrics``) such as reward-kit's
``EvaluateResult``, a mapping with the same keys, or a plain float/int/bool.
:func:`to_reward_result` turns all of those into one shape and rejects scores outside [0, 1],
so a buggy reward is reported as a score error instead of silently skewing a mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
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


def _checked_score(value: Any, what: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        raise RewardResultError(f"{what} must be a number in [0, 1], got {type(value).__name__}")
    score = float(value)
    if math.isnan(score) or not 0.0 <= score <= 1.0:
        raise RewardResultError(f"{what} must be in [0, 1], got {value!r}")
    return score


def _field(value: Any, name: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, default)
    return getattr(value, name, default)


def _to_metric(name: str, value: Any) -> MetricResult:
    if isinstance(value, bool | int | float):
        return MetricResult(score=_checked_score(value, f"metric {name!r}"))
    return MetricResult(
        score=_checked_score(_field(value, "score", None), f"metric {name!r} score"),
        reason=str(_field(value, "reason", "") or ""),
        is_score_valid=bool(_field(value, "is_score_valid", True)),
    )


def to_reward_result(value: Any) -> RewardResult:
    """Normalise whatever a reward function returned; raise RewardResultError if unusable."""
    if isinstance(value, RewardResult):
        _checked_score(value.score, "score")
        return value
    if isinstance(value, bool | int | float):
        return RewardResult(score=_checked_score(value, "score"))
    if value is None:
        raise RewardResultError("the reward function returned None")
    raw_metrics = _field(value, "metrics", None) or {}
    if not isinstance(raw_metrics, Mapping):
        raise RewardResultError(f"metrics must be a mapping, got {type(raw_metrics).__name__}")
    return RewardResult(
        score=_checked_score(_field(value, "score", None), "score"),
        reason=str(_field(value, "reason", "") or ""),
        is_score_valid=bool(_field(value, "is_score_valid", True)),
        metrics={str(name): _to_metric(str(name), metric) for name, metric in raw_metrics.items()},
    )
