"""The aiohttp application: routes, authentication, rate limiting, faults and counters.

One request path (:func:`_answer_chat`) serves both completions endpoints, in the order the
package docstring gives: authenticate, validate, rate limit, decide the fault, wait, answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from rewardflow.simulator.answers import fault_for, messages_key
from rewardflow.simulator.config import EPSILON, FAULTS, Fault, SimulatorConfig
from rewardflow.simulator.wire import (
    ApiError,
    ParsedChatRequest,
    completion_body,
    generate_choices,
    invalid_request,
    parse_chat_request,
    parse_text_completion_request,
    sample_stream_key,
    text_completion_body,
)

#: Long prompts are legitimate; aiohttp's 1 MiB default body limit would reject them.
MAX_BODY_BYTES = 32 * 1024 * 1024


def _no_faults() -> dict[Fault, int]:
    return dict.fromkeys(FAULTS, 0)


@dataclass
class SimulatorStats:
    """Counters of ``POST /v1/chat/completions``: every request is a completion or an error.

    A completion is a well-formed answer delivered to the client; everything else -- a 4xx or
    5xx, a dropped connection, a malformed 200 -- is an error, so that ``completions`` is what
    an evaluation could actually use. ``rate_limited`` counts the 429s and ``faults`` the
    injected faults by name (a rate-limited request never reaches the fault decision).
    """

    requests: int = 0
    completions: int = 0
    errors: int = 0
    rate_limited: int = 0
    faults: dict[Fault, int] = field(default_factory=_no_faults)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "completions": self.completions,
            "errors": self.errors,
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
        }

    def reset(self) -> None:
        """Zero in place: in-flight requests hold this object and count into it when done."""
        self.requests = self.completions = self.errors = self.rate_limited = 0
        self.faults = _no_faults()


def _ceil(value: float) -> int:
    """``math.ceil`` that forgives float noise: 0.2 * 1000 is 200.00000000000003, not 201."""
    return math.ceil(value - EPSILON)


def _format_seconds(seconds: float) -> str:
    """A duration as OpenAI's reset headers write short ones: "0.05s", "1s" (ms precision)."""
    text = f"{_ceil(seconds * 1000) / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


class TokenBucket:
    """The server-side rate limiter: ``rate`` tokens per second, one second of burst.

    The capacity is ``max(rate, 1)`` so that a rate below one request per second still lets a
    request through now and then. Time is ``time.monotonic`` seconds, passed in by the caller.
    """

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float) -> bool:
        """Refill to ``now`` and spend one token; ``False`` (nothing spent) if there is none."""
        self.refill(now)
        if self.tokens + EPSILON < 1:
            return False
        self.tokens = max(self.tokens - 1, 0.0)
        return True

    def seconds_until_token(self) -> float:
        """How long until a whole token is available (0 if one is now)."""
        return max(1.0 - self.tokens, 0.0) / self.rate

    def seconds_until_next_token(self) -> float:
        """How long until the bucket holds one more whole token (0 when full)."""
        if self.tokens + EPSILON >= self.capacity:
            return 0.0
        target = min(math.floor(self.tokens + EPSILON) + 1, self.capacity)
        return max(target - self.tokens, 0.0) / self.rate

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*-requests`` headers; the limit is given per minute."""
        return {
            "x-ratelimit-limit-requests": str(round(self.rate * 60)),
            "x-ratelimit-remaining-requests": str(math.floor(self.tokens + EPSILON)),
            "x-ratelimit-reset-requests": _format_seconds(self.seconds_until_next_token()),
        }


@dataclass
class _State:
    config: SimulatorConfig
    stats: SimulatorStats
    latency_rng: random.Random
    #: Fault decisions made so far per messages digest: the ``attempt`` of :func:`fault_for`.
    attempts: dict[str, int] = field(default_factory=dict)
    #: Samples drawn so far per :func:`sample_stream_key`: where the next unseeded one starts.
    samples_drawn: dict[str, int] = field(default_factory=dict)
    bucket: TokenBucket | None = None
    #: Set when the server shuts down, so that hanging requests end instead of delaying it.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.config.rate_limit_rps is not None:
            self.bucket = TokenBucket(self.config.rate_limit_rps, time.monotonic())

    def reset(self) -> None:
        """Back to a fresh server's state: zero stats, no attempts or samples, a full bucket."""
        self.stats.reset()
        self.attempts.clear()
        self.samples_drawn.clear()
        if self.bucket is not None:
            self.bucket = TokenBucket(self.bucket.rate, time.monotonic())

    def next_attempt(self, key: str) -> int:
        """This request's attempt number at ``key`` (0, 1, ...), counting it."""
        attempt = self.attempts.get(key, 0)
        self.attempts[key] = attempt + 1
        return attempt

    def first_sample(self, request: ParsedChatRequest) -> int:
        """Where ``request``'s samples start in its stream (0 outside one), drawing them."""
        key = sample_stream_key(request)
        if key is None:
            return 0
        first = self.samples_drawn.get(key, 0)
        self.samples_drawn[key] = first + request.n
        return first


STATE_KEY = web.AppKey("rewardflow_simulator_state", _State)


def build_app(config: SimulatorConfig) -> web.Application:
    """The simulator as an aiohttp application, ready for a runner or aiohttp's test server."""
    app = web.Application(middlewares=[_openai_errors], client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = _State(config, SimulatorStats(), random.Random(config.seed))
    app.on_shutdown.append(_release_hanging_requests)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_post("/v1/completions", _text_completions)
    app.router.add_get("/v1/models", _list_models)
    app.router.add_get("/health", _health)
    app.router.add_get("/_simulator/stats", _get_stats)
    app.router.add_post("/_simulator/reset", _reset_stats)
    return app


@web.middleware
async def _openai_errors(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """Answer every error in OpenAI's JSON shape, so clients parse it like a provider's."""
    try:
        return await handler(request)
    except ApiError as error:
        return error.to_response()
    except web.HTTPException as error:
        if error.status < 400:
            raise
        if error.status == 404:
            message = f"Invalid URL ({request.method} {request.path})"
        else:
            message = f"{error.reason} ({request.method} {request.path})"
        kind = "server_error" if error.status >= 500 else "invalid_request_error"
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return ApiError(error.status, message, type=kind, headers=headers).to_response()


def _authenticate(request: web.Request, config: SimulatorConfig) -> None:
    """Require ``Authorization: Bearer <key>`` when a key is configured.

    The comparison is constant-time, and neither the expected nor the offered key appears in
    the error (OpenAI echoes a prefix of a wrong key), unless ``echo_key_on_401`` asks for the
    offered one, to test that a client never passes an echoed key on.
    """
    if config.api_key is None:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        message = (
            "You didn't provide an API key. Provide it in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    elif hmac.compare_digest(token.encode("utf-8"), config.api_key.encode("utf-8")):
        return
    elif config.echo_key_on_401:
        message = f"Incorrect API key provided: {token}."
    else:
        message = "Incorrect API key provided."
    raise ApiError(401, message, type="authentication_error", code="invalid_api_key")


async def _read_json(request: web.Request) -> object:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise invalid_request(
            f"We could not parse the JSON body of your request: {error}."
        ) from error


def draw_latency_ms(config: SimulatorConfig, rng: random.Random) -> float:
    """One request's delay in milliseconds, drawn from ``config.latency_distribution``.

    ``uniform``: in [mean - jitter, mean + jitter], floored at 0. ``lognormal``: mean
    ``latency_ms`` and shape ``latency_sigma`` (mu = ln(mean) - sigma^2 / 2), so that changing
    the shape moves the tail, not the throughput a benchmark expects from the mean.
    """
    if config.latency_distribution == "lognormal":
        if config.latency_ms <= 0:
            return 0.0
        sigma = config.latency_sigma
        return rng.lognormvariate(math.log(config.latency_ms) - sigma**2 / 2, sigma)
    if config.latency_ms <= 0 and config.latency_jitter_ms <= 0:
        return 0.0
    low = config.latency_ms - config.latency_jitter_ms
    high = config.latency_ms + config.latency_jitter_ms
    return max(rng.uniform(low, high), 0.0)


def _latency_s(state: _State) -> float:
    """This request's delay in seconds (see :func:`draw_latency_ms`)."""
    return draw_latency_ms(state.config, state.latency_rng) / 1000


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    """Count the request, then answer it; only a well-formed answer counts as a completion."""
    return await _counted(request, text=False)


async def _text_completions(request: web.Request) -> web.StreamResponse:
    """``/v1/completions``: the chat path, with the prompt as the user message."""
    return await _counted(request, text=True)


async def _counted(request: web.Request, text: bool) -> web.StreamResponse:
    stats = request.app[STATE_KEY].stats
    stats.requests += 1
    completed = False
    try:
        response, completed = await _answer_chat(request, request.app[STATE_KEY], text)
        return response
    finally:
        if completed:
            stats.completions += 1
        else:
            stats.errors += 1


async def _answer_chat(
    request: web.Request, state: _State, text: bool = False
) -> tuple[web.StreamResponse, bool]:
    """The single chat-completions path: authenticate, parse, limit, decide, wait, answer.

    Returns the response and whether it is a well-formed answer. Rate limiting and faults come
    after validation, as a provider's overload would (a malformed request is a 400 however
    busy the server is), and before the wait, which a fault sits out too so that it is never
    faster than an answer. Errors are raised as :class:`ApiError`.
    """
    _authenticate(request, state.config)
    parse = parse_text_completion_request if text else parse_chat_request
    chat = parse(await _read_json(request))
    headers = _admit(state, chat)
    fault = _decide_fault(state, chat)
    malformed_ordinal = state.stats.faults["malformed"]  # read now: others may count meanwhile
    if fault == "hang":
        if not await _hang(request, state):
            return _drop_connection(request), False
    else:
        delay = _latency_s(state)
        if delay > 0:
            await asyncio.sleep(delay)
    if fault == "error_500":
        message = "The server had an error while processing your request. Sorry about that!"
        raise ApiError(500, message, type="server_error", headers=headers)
    if fault == "error_503":
        message = "Service unavailable: the model is overloaded. Please try again later."
        raise ApiError(503, message, type="server_error", headers=headers)
    if fault == "drop":
        return _drop_connection(request), False
    body = completion_body(chat, generate_choices(chat, state.config, state.first_sample(chat)))
    shape = text_completion_body if text else dict
    if fault == "malformed":
        return _malformed_response(shape(body), malformed_ordinal, headers), False
    if fault in ("non_utf8", "null_content", "tool_calls_only", "empty_choices"):
        return _bad_200(body, fault, headers, shape), False
    return web.json_response(shape(body), headers=headers), True


def _admit(state: _State, chat: ParsedChatRequest) -> dict[str, str]:
    """Spend a rate-limit token, returning the ``x-ratelimit-*`` headers, or raise the 429.

    ``Retry-After`` is rounded up to whole seconds (at least 1), as providers send it, so a
    client that honours only it waits a little long; ``retry-after-ms`` is the exact wait.
    With ``rate_limit_headers`` off, answers carry no rate-limit headers and a 429 only
    ``Retry-After``.
    """
    bucket = state.bucket
    if bucket is None:
        return {}
    with_headers = state.config.rate_limit_headers
    if bucket.take(time.monotonic()):
        return bucket.headers() if with_headers else {}
    state.stats.rate_limited += 1
    wait_s = bucket.seconds_until_token()
    wait_ms = max(_ceil(wait_s * 1000), 1)
    retry_after = {"Retry-After": str(max(_ceil(wait_s), 1))}
    if not with_headers:
        message = f"Rate limit reached for {chat.model}. Please try again later."
        raise ApiError(
            429, message, type="rate_limit_error", code="rate_limit_exceeded", headers=retry_after
        )
    headers = bucket.headers()
    message = (
        f"Rate limit reached for {chat.model} on requests per min (RPM): "
        f"Limit {headers['x-ratelimit-limit-requests']}, Remaining 0. "
        f"Please try again in {wait_ms}ms."
    )
    headers |= retry_after | {"retry-after-ms": str(wait_ms)}
    raise ApiError(
        429, message, type="rate_limit_error", code="rate_limit_exceeded", headers=headers
    )


def _decide_fault(state: _State, chat: ParsedChatRequest) -> Fault | None:
    """This request's fault (see :func:`fault_for`), counting the attempt and the fault."""
    if not state.config.injects_faults:
        return None  # no attempt counters either: they would only cost memory
    attempt = state.next_attempt(messages_key(chat.messages))
    fault = fault_for(chat.messages, attempt, state.config)
    if fault is not None:
        state.stats.faults[fault] += 1
    return fault


async def _hang(request: web.Request, state: _State) -> bool:
    """Hold the request for ``hang_s`` without blocking the loop; whether to answer after.

    The hang ends early when the server shuts down (so a 3600 s hang cannot hold up a test's
    teardown); then, or when the client has given up meanwhile, there is no one to answer.
    """
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.stopping.wait(), timeout=state.config.hang_s)
    transport = request.transport
    return not state.stopping.is_set() and transport is not None and not transport.is_closing()


def _drop_connection(request: web.Request) -> web.Response:
    """Close the TCP connection without a byte of response, as a crashed proxy would.

    The returned response is never sent: aiohttp's first write to the aborted transport raises
    ``ConnectionResetError``, which it handles quietly as a client that went away. (Raising
    from the handler instead would make aiohttp log a traceback and try to answer 500.)
    """
    if request.transport is not None:
        request.transport.abort()
    return web.Response()


def _malformed_response(
    body: dict[str, Any], ordinal: int, headers: Mapping[str, str]
) -> web.Response:
    """A 200 that a client must reject: odd ``ordinal`` truncated JSON, even JSON sans choices.

    ``ordinal`` is the count of malformed responses so far (this one included), so the two
    kinds alternate deterministically and a test sees both in two requests.
    """
    if ordinal % 2:
        text = json.dumps(body)
        text = text[: len(text) // 2]
    else:
        text = json.dumps({key: value for key, value in body.items() if key != "choices"})
    return web.Response(text=text, content_type="application/json", headers=headers)


def _bad_200(
    body: dict[str, Any],
    fault: Fault,
    headers: Mapping[str, str],
    shape: Callable[[dict[str, Any]], dict[str, Any]] = dict,
) -> web.Response:
    """A 200 a client cannot use: a body that is not UTF-8, or valid JSON without an answer.

    ``shape`` turns the chat body into the endpoint's own (text completions) at the end.
    """
    if fault == "non_utf8":
        # A Latin-1 byte in a body declared UTF-8, as a misconfigured proxy sends it.
        raw = json.dumps(shape(body)).encode()[:-1] + b', "note": "caf\xe9"}'
        return web.Response(body=raw, content_type="application/json", headers=headers)
    if fault == "empty_choices":
        body = {**body, "choices": []}
    else:
        choices = []
        for choice in body["choices"]:
            message: dict[str, Any] = {"role": "assistant", "content": None}
            if fault == "tool_calls_only":
                arguments = json.dumps({"expression": choice["message"]["content"]})
                call = {"name": "calculator", "arguments": arguments}
                message["tool_calls"] = [{"id": "call_0", "type": "function", "function": call}]
            finish = "tool_calls" if fault == "tool_calls_only" else choice["finish_reason"]
            choices.append({**choice, "message": message, "finish_reason": finish})
        body = {**body, "choices": choices}
    return web.json_response(shape(body), headers=headers)


async def _release_hanging_requests(app: web.Application) -> None:
    """``on_shutdown`` hook: runs before aiohttp waits for in-flight handlers to finish."""
    app[STATE_KEY].stopping.set()


async def _list_models(request: web.Request) -> web.Response:
    config = request.app[STATE_KEY].config
    _authenticate(request, config)
    model = {"id": config.model_name, "object": "model", "created": 0, "owned_by": "rewardflow"}
    return web.json_response({"object": "list", "data": [model]})


async def _health(request: web.Request) -> web.Response:
    """Readiness: answering at all means ready (the simulator has nothing to load)."""
    return web.json_response({"status": "ok"})


async def _get_stats(request: web.Request) -> web.Response:
    """Counters for tests; unauthenticated, like any local control endpoint of a test double."""
    return web.json_response(request.app[STATE_KEY].stats.as_dict())


async def _reset_stats(request: web.Request) -> web.Response:
    """Zero the counters, forget the fault attempts and refill the rate limiter."""
    state = request.app[STATE_KEY]
    state.reset()
    return web.json_response(state.stats.as_dict())
