"""A model client that answers without a network, for unit tests of the generation stage.

Configured as ``model.provider: fake_chat_client:FakeChatClient`` (this directory on
``sys.path``). It records every request it is sent and answers each from its last message, so
a test can count requests and check which response went where. What it does is set on the
class, not in ``model.options``: options are part of a custom client's cache identity, and a
test that flips failures on and off must keep the same cache keys.
"""

from __future__ import annotations

from typing import ClassVar

from rewardflow.errors import ModelAuthError, ModelInvalidRequestError
from rewardflow.generation.client import ChatRequest, ChatResponse, ModelClient

PROVIDER = "fake_chat_client:FakeChatClient"
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


class FakeChatClient(ModelClient):
    """Answers ``answer to <last message> (seed <seed>)``; see the module docstring."""

    #: Every request sent, across instances (a job builds one client).
    requests: ClassVar[list[ChatRequest]] = []
    #: Last-message texts refused with ModelInvalidRequestError (a failure record, no retry).
    refuse: ClassVar[set[str]] = set()
    #: Refuse every request's key (ModelAuthError: the job stops).
    reject_key: ClassVar[bool] = False
    #: The settings each instance was built with.
    built: ClassVar[list[object]] = []

    def __init__(self, settings) -> None:
        super().__init__(settings)
        FakeChatClient.built.append(settings)

    @classmethod
    def reset(cls) -> None:
        cls.requests = []
        cls.refuse = set()
        cls.reject_key = False
        cls.built = []

    async def complete(self, request: ChatRequest) -> ChatResponse:
        FakeChatClient.requests.append(request)
        text = str(request.messages[-1]["content"])
        if FakeChatClient.reject_key:
            raise ModelAuthError("the key was refused")
        if text in FakeChatClient.refuse:
            raise ModelInvalidRequestError(f"refused: {text}")
        return ChatResponse(
            content=f"answer to {text} (seed {request.seed})",
            finish_reason="stop",
            usage=dict(USAGE),
            model=request.model,
            latency_s=0.0,
        )
