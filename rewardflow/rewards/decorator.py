"""``@reward_function``: the optional decorator for reward functions, as in reward-kit.

A reward works without it. Decorated, it gains two things: its signature is checked when the
module is imported (so a wrong signature fails at load time, naming the function), and every
return value is normalised to a :class:`~rewardflow.rewards.result.RewardResult`, so callers
outside the pipeline (a notebook, a test) get the same shape the pipeline records.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from rewardflow.rewards.result import RewardResult, to_reward_result


def reward_function(function: Callable[..., Any]) -> Callable[..., RewardResult]:
    """Mark ``function(messages, ground_truth, **kwargs)`` as a reward; see the module doc."""
    try:
        inspect.signature(function).bind([], None)
    except TypeError:
        raise TypeError(
            f"@reward_function {function.__qualname__} must accept "
            f"(messages, ground_truth, **kwargs), has {inspect.signature(function)}"
        ) from None

    @functools.wraps(function)
    def wrapper(messages: Any, ground_truth: Any, **kwargs: Any) -> RewardResult:
        return to_reward_result(function(messages, ground_truth, **kwargs))

    wrapper.is_reward_function = True  # type: ignore[attr-defined]
    return wrapper
