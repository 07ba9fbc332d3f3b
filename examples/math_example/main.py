"""The math example's reward. Everything else (data, prompts, generation, caching, scoring,
summary) is the pipeline's job, configured in config.yaml beside this file.

The signature is reward-kit's, so a reward written for reward-kit runs here unchanged.
"""

from rewardflow import MetricResult, RewardResult
from rewardflow.rewards.math import math_reward


def evaluate(messages, ground_truth, **kwargs):
    """GSM8K accuracy: 1 when the final answer equals the reference number, else 0.

    The answer extraction is the built-in math reward's; this adds one sub-metric, whether
    the model used the "#### <number>" format the system prompt asks for.
    """
    result = math_reward(messages, ground_truth, **kwargs)
    used_format = "####" in (messages[-1].get("content") or "")
    format_metric = MetricResult(
        score=float(used_format), reason="#### present" if used_format else "no #### line"
    )
    return RewardResult(
        score=result.score,
        reason=result.reason,
        metrics={**result.metrics, "format": format_metric},
    )
