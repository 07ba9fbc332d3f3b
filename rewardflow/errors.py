"""The exceptions rewardflow raises, each carrying what a user needs to act on it.

Every error a user can cause (a bad config key, a malformed input row, a missing API key, a
reward that cannot be loaded) is a :class:`RewardflowError`, so the rule scripts can report it
as one clear line instead of a traceback.
"""

from __future__ import annotations


class RewardflowError(Exception):
    """Base class of every error rewardflow reports to the user."""


class ConfigError(RewardflowError):
    """A config value is missing or wrong; the message names the key."""


class DatasetError(RewardflowError):
    """An input row cannot be turned into a prompt; the message names the file and line."""


class MissingApiKeyError(RewardflowError):
    """The environment variable that should hold the API key is unset or empty."""

    def __init__(self, env_var: str) -> None:
        super().__init__(
            f"the API key environment variable {env_var} is not set; "
            f"export {env_var}=... (or set model.api_key_env to the variable that holds your key)"
        )
        self.env_var = env_var


class RewardLoadError(RewardflowError):
    """A reward function named in the config cannot be imported or is not callable."""


class RewardResultError(RewardflowError):
    """A reward function returned something that is not a score in [0, 1]."""


class ModelServerError(RewardflowError):
    """A model server the job launched did not start, or died; carries its log's tail.

    Not a :class:`ModelClientError`: no request can succeed without the server, so the job
    stops (its finished responses are cached) instead of failing every remaining sample.
    """


class ModelClientError(RewardflowError):
    """A request to the model endpoint failed; base of the client's error classes."""


class ModelAuthError(ModelClientError):
    """The endpoint refused the API key (401/403). Retrying cannot help: the run stops."""


class ModelInvalidRequestError(ModelClientError):
    """The endpoint rejected the request itself (400, 404, 422, context too long). Not retried."""


class RateLimitError(ModelClientError):
    """The endpoint answered 429; carries the server's requested wait when it gave one."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelGenerationError(ModelClientError):
    """A transient failure (5xx, timeout, dropped connection, malformed body); retried."""


class ModelUnusableResponseError(ModelClientError):
    """A well-formed 200 without a text answer: null content, only tool calls, no choices.

    Not retried: unlike a garbled body, this is the model's answer to this request, so asking
    again would most likely pay for the same answer. The sample becomes a failure record
    naming the reason; a rerun asks once more.
    """
