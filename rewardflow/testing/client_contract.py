"""The contract every :class:`~rewardflow.generation.client.ModelClient` keeps, as checks to import.

Each check starts the built-in simulator in-process (real HTTP on a loopback port; it serves
``/v1/chat/completions`` and ``/v1/completions``) configured to provoke one behaviour, builds
your client with :class:`~rewardflow.generation.client.ClientSettings` pointing at it, sends one
request
and asserts what rewardflow relies on. Use them from pytest::

    import pytest
    from rewardflow.testing.client_contract import CONTRACT_CHECKS, run_check
    from my_clients import MyClient

    @pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda check: check.__name__)
    def test_my_client_keeps_the_contract(check):
        run_check(check, MyClient)

A client for an API the simulator does not speak can still take the checks that matter, by
pointing them at a server of its own (``base_url``) and skipping the others.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from rewardflow.errors import (
    ModelAuthError,
    ModelClientError,
    ModelGenerationError,
    ModelInvalidRequestError,
    ModelUnusableResponseError,
    RateLimitError,
)
from rewardflow.generation.client import (
    ChatRequest,
    ChatResponse,
    ClientSettings,
    ModelClient,
    as_client_error,
)
from rewardflow.redaction import register_secret
from rewardflow.simulator import SimulatorConfig, running_simulator

ClientFactory = Callable[[ClientSettings], ModelClient]
Check = Callable[[ClientFactory], Awaitable[None]]

MODEL = "contract-model"
#: A key the checks' 401 server quotes back; it must never appear in an error message.
WRONG_KEY = "sk-contract-wrong-key-0123456789abcdef"


def _request(**overrides: Any) -> ChatRequest:
    fields: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is 2 + 3?"}],
        "temperature": 0.0,
        "max_tokens": 64,
    }
    return ChatRequest(**{**fields, **overrides})


async def _outcome(
    factory: ClientFactory,
    config: SimulatorConfig,
    request: ChatRequest,
    api_key: str | None = None,
    before: int = 0,
) -> ChatResponse | ModelClientError:
    """The response, or the error as rewardflow sees it (mapped and redacted)."""
    # As in a job: the key from model.api_key_env is registered for redaction before any
    # client sees it (rewardflow.generation.endpoint.read_api_key).
    register_secret(api_key)
    async with running_simulator(config) as base_url:
        client = factory(ClientSettings(base_url, api_key=api_key, timeout_s=10.0))
        try:
            for _ in range(before):  # requests that set the scene (spend the rate limit)
                await client.complete(request)
            return await client.complete(request)
        except Exception as error:  # the contract is about what comes out: check it below
            return as_client_error(error)
        finally:
            await client.aclose()
            await client.aclose()  # closing twice must be harmless


def _expect(outcome: object, expected: type[Exception], check: str) -> Any:
    assert isinstance(outcome, expected), (
        f"{check}: expected {expected.__name__}, got {type(outcome).__name__}: {outcome}"
    )
    return outcome


async def check_answers(factory: ClientFactory) -> None:
    """A good request gives the text, a finish reason and integer token usage."""
    response = await _outcome(factory, SimulatorConfig(wrong_rate=0.0), _request())
    response = _expect(response, ChatResponse, "check_answers")
    assert isinstance(response.content, str) and "5" in response.content, response.content
    assert response.finish_reason == "stop", response.finish_reason
    usage = response.usage or {}
    assert isinstance(usage.get("prompt_tokens"), int), f"usage without prompt_tokens: {usage}"
    assert isinstance(usage.get("completion_tokens"), int), f"usage: {usage}"


async def check_max_tokens_cut_is_length(factory: ClientFactory) -> None:
    """``max_tokens`` reaches the server, and a cut answer says ``finish_reason: length``."""
    response = await _outcome(factory, SimulatorConfig(wrong_rate=0.0), _request(max_tokens=2))
    response = _expect(response, ChatResponse, "check_max_tokens_cut_is_length")
    assert response.finish_reason == "length", response.finish_reason


async def check_auth_error(factory: ClientFactory) -> None:
    """A refused key is ModelAuthError, and the key the server quotes back is not in its
    message once rewardflow has redacted it (a client must not cut or re-encode the key)."""
    config = SimulatorConfig(api_key="the-right-key", echo_key_on_401=True)
    error = await _outcome(factory, config, _request(), api_key=WRONG_KEY)
    error = _expect(error, ModelAuthError, "check_auth_error")
    assert WRONG_KEY not in str(error), "the API key leaked into the error message"


async def check_rate_limit(factory: ClientFactory) -> None:
    """A 429 is RateLimitError, carrying the server's requested wait."""
    config = SimulatorConfig(rate_limit_rps=0.01)  # one request, then 429 for 100 s
    error = await _outcome(factory, config, _request(), before=1)
    error = _expect(error, RateLimitError, "check_rate_limit")
    assert error.retry_after_s is not None and error.retry_after_s > 0, (
        "check_rate_limit: retry_after_s not taken from Retry-After / retry-after-ms"
    )


async def check_server_error_is_transient(factory: ClientFactory) -> None:
    """A 500 is ModelGenerationError (retried)."""
    error = await _outcome(factory, SimulatorConfig(error_500_rate=1.0), _request())
    _expect(error, ModelGenerationError, "check_server_error_is_transient")


async def check_invalid_request(factory: ClientFactory) -> None:
    """A request the server rejects (400: temperature 5) is ModelInvalidRequestError."""
    error = await _outcome(factory, SimulatorConfig(), _request(temperature=5.0))
    _expect(error, ModelInvalidRequestError, "check_invalid_request")


async def check_no_text_is_unusable(factory: ClientFactory) -> None:
    """A well-formed answer with null text is ModelUnusableResponseError (not retried)."""
    error = await _outcome(factory, SimulatorConfig(null_content_rate=1.0), _request())
    _expect(error, ModelUnusableResponseError, "check_no_text_is_unusable")


async def check_unreachable_is_transient(factory: ClientFactory) -> None:
    """Nothing listening is transient: the job retries (a launched server may be restarting)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = factory(ClientSettings(f"http://127.0.0.1:{port}/v1", timeout_s=5.0))
    try:
        await client.complete(_request())
    except Exception as error:
        _expect(as_client_error(error), ModelGenerationError, "check_unreachable_is_transient")
    else:
        raise AssertionError("check_unreachable_is_transient: a closed port gave an answer")
    finally:
        await client.aclose()


CONTRACT_CHECKS: tuple[Check, ...] = (
    check_answers,
    check_max_tokens_cut_is_length,
    check_auth_error,
    check_rate_limit,
    check_server_error_is_transient,
    check_invalid_request,
    check_no_text_is_unusable,
    check_unreachable_is_transient,
)


def run_check(check: Check, factory: ClientFactory) -> None:
    """Run one check in a fresh event loop (from a plain, synchronous pytest test)."""
    asyncio.run(check(factory))


def run_contract(factory: ClientFactory) -> None:
    """Run every check; the first broken promise raises AssertionError naming it."""
    for check in CONTRACT_CHECKS:
        run_check(check, factory)
