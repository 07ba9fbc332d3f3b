"""The model client: one chat-completion request in, one response or a named error out.

:class:`ModelClient` is the small provider interface (one attempt, rewardflow's error
classes; docs/clients.md): :class:`OpenAICompatibleClient` implements it for the
OpenAI-compatible ``/chat/completions`` wire format (Fireworks, OpenAI, vLLM, SGLang,
llama.cpp, the built-in simulator), and ``model.provider: module:Class`` loads a user's.
:class:`ResilientClient` wraps any of them with the job's rate limiter and tenacity retries,
so limits and retries behave the same whichever client is plugged in.

Deciding what a response *means* (:func:`classify_http_error`, :func:`parse_chat_response`,
:func:`parse_retry_after`) is kept in pure functions so it is tested without a network.
The API key is only ever placed in the ``Authorization`` header, and it is registered with
:mod:`rewardflow.redaction`, so that a provider quoting it back in an error body cannot carry
it into an error message (bodies are redacted before they are excerpted).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from rewardflow.errors import (
    ModelAuthError,
    ModelClientError,
    ModelGenerationError,
    ModelInvalidRequestError,
    ModelUnusableResponseError,
    RateLimitError,
    RewardflowError,
)
from rewardflow.generation.limits import RateBudget, RequestLimiter, estimate_prompt_tokens
from rewardflow.records import Message
from rewardflow.redaction import redact, register_secret

# aiohttp (~0.3 s, most of it building an SSL context) is imported by the code that sends a
# request: a generation job whose every sample is cached, the scoring stage and the Snakefile's
# preflight import this module for its types and never open a connection.
if TYPE_CHECKING:
    import aiohttp

RETRYABLE_ERRORS = (ModelGenerationError, RateLimitError)
MAX_SERVER_REQUESTED_WAIT_S = 120.0
_BODY_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request; ``extra_body`` fields are sent verbatim."""

    model: str
    messages: Sequence[Message]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: Sequence[str] | None = None
    seed: int | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": list(self.messages)}
        optional = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop) if self.stop else None,
            "seed": self.seed,
        }
        payload.update({name: value for name, value in optional.items() if value is not None})
        payload.update(self.extra_body)
        return payload


@dataclass(frozen=True)
class ChatResponse:
    content: str
    finish_reason: str | None
    usage: dict[str, int] | None
    model: str | None
    latency_s: float | None = None
    attempts: int = 1


class ChatClient(Protocol):
    """What the generation stage needs: a :class:`ResilientClient` (or a test double)."""

    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    async def aclose(self) -> None: ...


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms`` or ``Retry-After`` (seconds)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = lowered.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            continue  # an HTTP date; rare from model APIs, and backoff is a safe fallback
        if seconds >= 0:
            return min(seconds, MAX_SERVER_REQUESTED_WAIT_S)
    return None


def _error_excerpt(body: str) -> str:
    try:
        error = json.loads(body).get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])[:_BODY_EXCERPT_CHARS]
        if isinstance(error, str):
            return error[:_BODY_EXCERPT_CHARS]
    except (ValueError, AttributeError):
        pass
    return body.strip()[:_BODY_EXCERPT_CHARS]


def classify_http_error(
    status: int, body: str, headers: Mapping[str, str], api_key_env: str | None = None
) -> Exception:
    """Map a non-200 answer to the error class that decides retry or stop."""
    # Redact before cutting: a key straddling the excerpt's end would leave its prefix behind.
    detail = _error_excerpt(redact(body))
    if status in (401, 403):
        hint = f"check the key in ${api_key_env}" if api_key_env else "the endpoint wants a key"
        return ModelAuthError(f"HTTP {status} from the model endpoint ({hint}): {detail}")
    if status == 429:
        return RateLimitError(f"HTTP 429 rate limited: {detail}", parse_retry_after(headers))
    if status in (408, 409) or status >= 500:
        return ModelGenerationError(f"HTTP {status}: {detail}")
    return ModelInvalidRequestError(f"HTTP {status}: {detail}")


def decode_body(raw: bytes, charset: str | None) -> str | None:
    """The body as text in its declared charset (UTF-8 when none); None if it is not that.

    Decoding here rather than with aiohttp's ``text()`` keeps a garbled body an error of the
    one request (a retry) instead of a ``UnicodeDecodeError`` that would end the whole job.
    """
    try:
        return raw.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return None


def _unusable_reason(message: Mapping[str, Any]) -> str | None:
    """Why a well-formed message carries no text answer, or None if it has one."""
    calls = message.get("tool_calls") or []
    legacy_call = message.get("function_call")
    if isinstance(calls, list) and isinstance(legacy_call, Mapping):
        calls = [*calls, {"function": legacy_call}]
    if isinstance(calls, list) and calls:
        names = [
            str(call["function"].get("name", "?"))
            if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping)
            else "?"
            for call in calls
        ]
        return f"only tool calls ({', '.join(names)}), no text"
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal.strip():
        return f"refused: {refusal.strip()[:_BODY_EXCERPT_CHARS]}"
    if "content" in message and message["content"] is None:
        return "content is null"
    return None


def parse_chat_response(body: str) -> tuple[str, str | None, dict[str, int] | None, str | None]:
    """``(content, finish_reason, usage, model)`` of a 200 body.

    A garbled body (not JSON, no ``choices`` list, a choice without a message) is what a proxy
    or a cut stream produces, so it is transient: :class:`ModelGenerationError`, retried. A
    well-formed answer without text (empty ``choices``; ``content: null`` from a refusal, a
    content filter or a tool call) is the model's answer to this request, so asking again would
    pay for the same answer: :class:`ModelUnusableResponseError`, not retried.
    """
    try:
        data = json.loads(body)
    except ValueError:
        raise ModelGenerationError("HTTP 200 with a body that is not JSON") from None
    choices = data.get("choices") if isinstance(data, Mapping) else None
    if not isinstance(choices, list):
        raise ModelGenerationError("HTTP 200 without choices")
    if not choices:
        raise ModelUnusableResponseError("HTTP 200 without a usable answer: empty choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, Mapping) else None
    if not isinstance(message, Mapping):
        raise ModelGenerationError("HTTP 200 whose first choice has no message")
    finish_reason = choice.get("finish_reason")
    content = message.get("content")
    # Some providers send "" rather than null beside a tool call; a plain "" is a real answer.
    if not isinstance(content, str) or not content.strip():
        reason = _unusable_reason(message)
        if reason is not None:
            raise ModelUnusableResponseError(
                f"HTTP 200 without a usable answer: {reason} (finish_reason: {finish_reason})"
            )
        if not isinstance(content, str):
            raise ModelGenerationError("HTTP 200 whose first choice has no message content")
    usage = data.get("usage")
    usage = (
        {name: int(value) for name, value in usage.items() if isinstance(value, int)}
        if isinstance(usage, Mapping)
        else None
    )
    return content, finish_reason, usage, data.get("model")


def _wait_for_server_or_backoff(retry_state: RetryCallState) -> float:
    """Honour the server's requested wait; otherwise exponential backoff with jitter."""
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    if isinstance(error, RateLimitError) and error.retry_after_s is not None:
        return error.retry_after_s
    return _BACKOFF(retry_state)


_BACKOFF = wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.5)
# How long a 429 without Retry-After holds the whole job before the next attempt.
_RATE_LIMIT_PAUSE_S = 1.0


def _stop_after_failures_or_time(
    max_failures: int, max_seconds: float, started: float | None = None
) -> Callable[[RetryCallState], bool]:
    """Give up after ``max_failures`` real failures or ``max_seconds``, whichever is first.

    A 429 is flow control, not a failure: the server is asking us to come back later, so it
    does not use up an attempt (only time). Otherwise a burst of rate limiting would turn
    perfectly good requests into failed samples. ``started`` (``time.monotonic()``) is when
    the request's first attempt began, if before the retry loop's own start.
    """
    failures = 0

    def stop(retry_state: RetryCallState) -> bool:
        nonlocal failures
        outcome = retry_state.outcome
        if outcome is None or not isinstance(outcome.exception(), RateLimitError):
            failures += 1
        elapsed = retry_state.seconds_since_start if started is None else time.monotonic() - started
        return failures >= max_failures or elapsed >= max_seconds

    return stop


@dataclass
class ClientStats:
    """What a job's requests have met so far, for progress lines and the job's report."""

    attempts: int = 0
    rate_limited: int = 0
    retries: int = 0


@dataclass(frozen=True)
class ClientSettings:
    """What a :class:`ModelClient` is built from: the endpoint, the key and the user's options.

    ``base_url`` is ``model.base_url`` (or the URL of the server the job launched; None when
    the config gives none), ``options`` is ``model.options`` verbatim, for whatever a custom
    client needs beyond them (an API version, a prompt template). The key has already been
    read from ``model.api_key_env`` and registered for redaction.
    """

    base_url: str | None
    api_key: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 120.0
    connection_limit: int = 100
    options: Mapping[str, Any] = field(default_factory=dict)


class ModelClient(ABC):
    """The provider interface: one chat request in, text + usage + finish reason out.

    A subclass implements :meth:`complete` as ONE attempt: no retries, no rate limiting, no
    caching. Those live around every client (:class:`ResilientClient`, the generation job),
    so they behave the same for every provider. Failures are raised as rewardflow's classes,
    which decide what happens next:

    * :class:`ModelAuthError` -- the key was refused: the job stops at once.
    * :class:`RateLimitError` -- slow down (``retry_after_s`` if the server said): retried
      without using up an attempt; the whole job pauses.
    * :class:`ModelInvalidRequestError` -- this request can never succeed: a failure record.
    * :class:`ModelGenerationError` -- transient (5xx, timeout, garbled body): retried.
    * :class:`ModelUnusableResponseError` -- a well-formed answer without text: not retried.

    Any other exception is mapped too (timeouts and connection errors to
    :class:`ModelGenerationError`, anything else to a non-retried :class:`ModelClientError`),
    and every message is redacted, so a client quoting the key cannot leak it.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        #: Set by :class:`ResilientClient`: feeds answers' rate-limit headers to the limiter.
        self.rate_observer: Callable[[int, Mapping[str, str]], None] | None = None

    @abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send ``request`` once; the answer, or one of the error classes above."""

    async def aclose(self) -> None:  # noqa: B027 -- optional hook, nothing to close by default
        """Release connections; called once when the job is done with the client."""

    def observe_rate_headers(self, status: int, headers: Mapping[str, str]) -> None:
        """Optional: pass each HTTP answer's status and headers to the adaptive rate limit."""
        if self.rate_observer is not None:
            self.rate_observer(status, headers)


class OpenAICompatibleClient(ModelClient):
    """``POST {base_url}/chat/completions``: OpenAI, Fireworks, vLLM, SGLang, llama.cpp, the
    built-in simulator. The key is only ever placed in the ``Authorization`` header."""

    def __init__(self, settings: ClientSettings) -> None:
        super().__init__(settings)
        if not settings.base_url:
            raise ValueError("OpenAICompatibleClient needs a base_url")
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if settings.api_key:
            self._headers["Authorization"] = f"Bearer {settings.api_key}"
            register_secret(settings.api_key)
        import aiohttp  # lazily: see the imports above

        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp  # lazily: see the imports above

            connector = aiohttp.TCPConnector(limit=self.settings.connection_limit)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.monotonic()
        async with self._get_session().post(
            self.url, json=request.to_payload(), headers=self._headers
        ) as http_response:
            raw = await http_response.read()
            self.observe_rate_headers(http_response.status, http_response.headers)
            body = decode_body(raw, http_response.charset)
            if http_response.status != 200:
                # An error's body is only read for its message: garbled bytes may be lossy.
                text = raw.decode("utf-8", errors="replace") if body is None else body
                raise classify_http_error(
                    http_response.status, text, http_response.headers, self.settings.api_key_env
                )
        if body is None:
            raise ModelGenerationError("HTTP 200 with a body that is not valid UTF-8")
        content, finish_reason, usage, model = parse_chat_response(body)
        return ChatResponse(content, finish_reason, usage, model, time.monotonic() - started)


def as_client_error(error: Exception) -> ModelClientError:
    """Any exception from a client as a rewardflow error class, its message redacted."""
    if isinstance(error, ModelClientError):
        # Redacted in place, so the class and its fields (retry_after_s) stay what they were.
        error.args = tuple(redact(str(arg)) if isinstance(arg, str) else arg for arg in error.args)
        return error
    import aiohttp  # lazily: see the imports above

    if isinstance(error, TimeoutError | aiohttp.ClientError | ConnectionError):
        kind = "timed out" if isinstance(error, TimeoutError) else "connection failed"
        return ModelGenerationError(f"request {kind}: {type(error).__name__}")
    return ModelClientError(
        redact(f"the model client raised {type(error).__name__}: {error}")[:_BODY_EXCERPT_CHARS]
    )


class ResilientClient:
    """Limits, retries and error mapping around any :class:`ModelClient`.

    Every attempt (first try or retry) passes the job's :class:`RequestLimiter`; a 429 pauses
    that limiter, i.e. the whole job, for the server's ``Retry-After``. A request gives up
    after ``max_attempts`` attempts or ``max_request_time_s`` seconds, whichever comes first.
    """

    def __init__(
        self,
        client: ModelClient,
        *,
        max_attempts: int = 5,
        max_request_time_s: float = 600.0,
        limiter: RequestLimiter | None = None,
    ) -> None:
        self.client = client
        self._max_attempts = max_attempts
        self._max_request_time_s = max_request_time_s
        self.limiter = limiter or RequestLimiter(RateBudget())
        self.client.rate_observer = self.limiter.observe
        self.stats = ClientStats()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _attempt(self, request: ChatRequest, estimated_tokens: int) -> ChatResponse:
        await self.limiter.acquire(estimated_tokens)
        self.stats.attempts += 1
        started = time.monotonic()
        succeeded = False
        try:
            response = await self.client.complete(request)
            succeeded = True
        except Exception as error:
            if isinstance(error, RewardflowError) and not isinstance(error, ModelClientError):
                raise  # a config or server problem (ModelServerError): the job stops
            mapped = as_client_error(error)
            if isinstance(mapped, RateLimitError):
                self.stats.rate_limited += 1
                wait = mapped.retry_after_s
                self.limiter.pause(wait if wait is not None else _RATE_LIMIT_PAUSE_S)
            if mapped is error:
                raise
            raise mapped from None
        finally:
            self.limiter.release(succeeded)
        if response.latency_s is None:
            response = replace(response, latency_s=time.monotonic() - started)
        return response

    def _count_retry(self, retry_state: RetryCallState) -> None:
        self.stats.retries += 1

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """The response, or the last error once retries are exhausted (with ``attempts`` set).

        The first attempt is made outside the retry loop: most requests succeed at once, and
        building tenacity's machinery cost a tenth of a fast job's CPU. Only a retryable
        failure enters the loop, which takes that failure as its first attempt, so stopping,
        waiting and counting are exactly those of a loop that made it.
        """
        prompt_estimate = estimate_prompt_tokens(request.messages)
        tokens = prompt_estimate + (request.max_tokens or 0)
        started = time.monotonic()
        try:
            response = await self._attempt(request, tokens)
            attempts = 1
        except RETRYABLE_ERRORS as error:
            response, attempts = await self._retry(request, tokens, error, started)
        except Exception as error:
            error.attempts = 1  # type: ignore[attr-defined]
            raise
        reported_prompt = (response.usage or {}).get("prompt_tokens", 0)
        await self.limiter.charge_extra_tokens(reported_prompt - prompt_estimate)
        return replace(response, attempts=attempts)

    async def _retry(
        self, request: ChatRequest, tokens: int, first_error: Exception, started: float
    ) -> tuple[ChatResponse, int]:
        """Retries after ``first_error``; the response and the attempts it took in all."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE_ERRORS),
            stop=_stop_after_failures_or_time(
                self._max_attempts, self._max_request_time_s, started
            ),
            wait=_wait_for_server_or_backoff,
            before_sleep=self._count_retry,
            reraise=True,
        )
        first: list[Exception] = [first_error]
        try:
            async for attempt in retrying:
                with attempt:
                    if first:
                        raise first.pop()  # the attempt already made, as the loop's first
                    response = await self._attempt(request, tokens)
        except Exception as error:
            error.attempts = retrying.statistics.get("attempt_number", 1)  # type: ignore[attr-defined]
            raise
        return response, retrying.statistics.get("attempt_number", 1)


class OpenAIChatClient(ResilientClient):
    """:class:`OpenAICompatibleClient` inside a :class:`ResilientClient`, built in one call."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        api_key_env: str | None = None,
        timeout_s: float = 120.0,
        max_attempts: int = 5,
        max_request_time_s: float = 600.0,
        connection_limit: int = 100,
        limiter: RequestLimiter | None = None,
    ) -> None:
        settings = ClientSettings(base_url, api_key, api_key_env, timeout_s, connection_limit)
        super().__init__(
            OpenAICompatibleClient(settings),
            max_attempts=max_attempts,
            max_request_time_s=max_request_time_s,
            limiter=limiter,
        )
