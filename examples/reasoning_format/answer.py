"""The reasoning-format example's accuracy reward: the math reward, read inside <answer>.

Only the ``<answer>`` block is the model's answer: numbers in its ``<think>`` block are
working, not answers, and a response without a closed ``<answer>`` block has given none (it
scores 0 here, whatever its last number). The comparison itself is the built-in math
reward's, so ``42``, ``42.0`` and ``\\boxed{42}`` inside the block are all right for 42.
"""

from __future__ import annotations

import re
from typing import Any

from rewardflow import MetricResult, RewardResult
from rewardflow.rewards.math import math_reward

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def answer_accuracy(messages: list[dict], ground_truth: str | None, **kwargs: Any) -> RewardResult:
    """1 if the last ``<answer>...</answer>`` block holds the right answer, else 0."""
    blocks = _ANSWER.findall(messages[-1].get("content") or "")
    if not blocks:
        reason = "no <answer>...</answer> block"
        return RewardResult(0.0, reason, metrics={"answer_found": MetricResult(0.0, reason)})
    answer_only = [*messages[:-1], {"role": "assistant", "content": blocks[-1]}]
    return math_reward(answer_only, ground_truth, **kwargs)
