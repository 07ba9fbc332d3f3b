"""The client contract: the built-in client keeps it, a broken client is caught by it, and
limits, retries and redaction around a custom client work as for the built-in one."""

from __future__ import annotations

import asyncio

import pytest

from rewardflow.errors import (
    ModelAuthError,
    ModelClientError,
    ModelGenerationError,
    ModelInvalidRequestError,
    RateLimitError,
)
from rewardflow.generation.client import (
    ChatRequest,
    ChatResponse,
    ClientSettings,
    ModelClient,
    OpenAICompatibleClient,
    ResilientClient,
)
from rewardflow.redaction import register_secret
from rewardflow.testing.client_contract import (
    CONTRACT_CHECKS,
    check_auth_error,
    run_check,
)

REQUEST = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda check: check.__name__)
def test_the_builtin_client_keeps_the_contract(check):
    run_check(check, OpenAICompatibleClient)


class AuthAsTransient(OpenAICompatibleClient):
    """A client that gets one mapping wrong: it would retry a refused key five times."""

    async def complete(self, request: ChatRequest) -> ChatResponse:
        try:
            return await super().complete(request)
        except ModelAuthError as error:
            raise ModelGenerationError(str(error)) from None


def test_a_client_that_maps_401_wrongly_fails_the_auth_check():
    with pytest.raises(AssertionError, match="check_auth_error: expected ModelAuthError"):
        run_check(check_auth_error, AuthAsTransient)


class Scripted(ModelClient):
    """Raises the scripted outcomes in turn, then answers."""

    def __init__(self, settings: ClientSettings, outcomes: list[Exception]) -> None:
        super().__init__(settings)
        self.outcomes = outcomes
        self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        if self.outcomes:
            raise self.outcomes.pop(0)
        return ChatResponse("ok", "stop", {"prompt_tokens": 1, "completion_tokens": 1}, "m")


def _complete(client: ModelClient, **kwargs) -> tuple[ResilientClient, object]:
    resilient = ResilientClient(client, **kwargs)

    async def main():
        try:
            return await resilient.complete(REQUEST)
        except Exception as error:
            return error

    return resilient, asyncio.run(main())


def test_retries_and_rate_limits_live_around_a_custom_client(monkeypatch):
    monkeypatch.setattr("rewardflow.generation.client._BACKOFF", lambda state: 0)
    client = Scripted(
        ClientSettings(None),
        [ModelGenerationError("503"), RateLimitError("429", 0.0), TimeoutError()],
    )
    resilient, answer = _complete(client, max_attempts=3)
    assert isinstance(answer, ChatResponse) and answer.content == "ok"
    assert answer.attempts == 4  # the 429 used up no attempt
    assert answer.latency_s is not None  # measured around a client that reports none
    assert (resilient.stats.attempts, resilient.stats.rate_limited) == (4, 1)


def test_a_custom_clients_error_is_redacted_and_an_unknown_one_is_not_retried():
    key = "sk-custom-client-secret-42"
    register_secret(key)
    client = Scripted(ClientSettings(None), [ModelInvalidRequestError(f"bad key {key} sent")])
    _, error = _complete(client)
    assert isinstance(error, ModelInvalidRequestError) and key not in str(error)

    buggy = Scripted(ClientSettings(None), [KeyError(f"choices {key}")])
    _, error = _complete(buggy, max_attempts=5)
    assert type(error) is ModelClientError
    assert "the model client raised KeyError" in str(error) and key not in str(error)
    assert buggy.calls == 1
