"""rewardflow: evaluate LLMs on prompt datasets with reward functions.

The Snakemake workflow in the repository root drives the stages; this package holds all of
their logic so that each piece is importable and unit-tested on its own.
"""

from rewardflow.errors import (
    ConfigError,
    DatasetError,
    MissingApiKeyError,
    ModelAuthError,
    ModelClientError,
    ModelGenerationError,
    ModelInvalidRequestError,
    ModelServerError,
    ModelUnusableResponseError,
    RateLimitError,
    RewardflowError,
    RewardLoadError,
    RewardResultError,
)
from rewardflow.rewards.decorator import reward_function
from rewardflow.rewards.result import MetricResult, RewardResult

__all__ = [
    "ConfigError",
    "DatasetError",
    "MetricResult",
    "MissingApiKeyError",
    "ModelAuthError",
    "ModelClientError",
    "ModelGenerationError",
    "ModelInvalidRequestError",
    "ModelServerError",
    "ModelUnusableResponseError",
    "RateLimitError",
    "RewardResult",
    "RewardflowError",
    "RewardLoadError",
    "RewardResultError",
    "reward_function",
]
