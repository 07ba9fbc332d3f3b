"""The OpenAI wire format: validating request bodies and building response bodies.

Errors are OpenAI's JSON error bodies (:class:`ApiError`), naming the offending parameter, so
that a client meets the simulator's 400s in the shape a provider sends them.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp import web

from rewardflow.simulator.answers import answer_for, messages_key
from rewardflow.simulator.config import SimulatorConfig
from rewardflow.simulator.tokens import FinishReason, apply_stop_and_max_tokens, count_tokens

#: Roles the OpenAI API accepts; anything else is a 400 there too.
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_N = 128
MAX_STOP_SEQUENCES = 4


class ApiError(Exception):
    """An error answered with OpenAI's body: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def to_response(self) -> web.Response:
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return web.json_response(body, status=self.status, headers=self.headers)


def invalid_request(message: str, param: str | None = None) -> ApiError:
    """The 400 ``invalid_request_error`` of a malformed request, naming ``param`` if given."""
    return ApiError(400, message, param=param)


@dataclass(frozen=True)
class ParsedChatRequest:
    """A validated chat-completions request; ``messages`` hold plain-text contents.

    What the server received, as opposed to :class:`rewardflow.generation.client.ChatRequest`,
    the request a client sends; two classes of one name made every reader check which was meant.
    """

    model: str
    messages: tuple[dict[str, str], ...]
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


class Choice(NamedTuple):
    content: str
    finish_reason: FinishReason


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """A JSON number; ``float("nan")`` is not (Python's json accepts ``NaN`` literals)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return _is_int(value)


def _content_text(content: object, param: str) -> str:
    """Message content as text: a string, or OpenAI's list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise invalid_request("Only text content parts are supported.", f"{param}[{index}]")
            if not isinstance(part.get("text"), str):
                raise invalid_request(
                    "A text content part needs a string 'text'.", f"{param}[{index}]"
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise invalid_request(f"Invalid type for '{param}': expected a string or an array.", param)


def _parse_messages(messages: object) -> tuple[dict[str, str], ...]:
    if messages is None:
        raise invalid_request("Missing required parameter: 'messages'.", "messages")
    if not isinstance(messages, list):
        raise invalid_request("Invalid type for 'messages': expected an array.", "messages")
    if not messages:
        raise invalid_request(
            "Invalid 'messages': empty array. Expected at least 1 message.", "messages"
        )
    parsed = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid_request(f"Invalid type for '{param}': expected an object.", param)
        role = message.get("role")
        if role not in ROLES:
            supported = ", ".join(f"'{name}'" for name in ROLES)
            raise invalid_request(
                f"Invalid value for '{param}.role': {role!r}. Supported values are: {supported}.",
                f"{param}.role",
            )
        if "content" not in message:
            raise invalid_request(
                f"Missing required parameter: '{param}.content'.", f"{param}.content"
            )
        content = _content_text(message["content"], f"{param}.content")
        parsed.append({"role": role, "content": content})
    return tuple(parsed)


def _parse_stop(stop: object) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        if len(stop) > MAX_STOP_SEQUENCES:
            raise invalid_request(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences.", "stop")
        return tuple(stop)
    raise invalid_request(
        "Invalid type for 'stop': expected a string or an array of strings.", "stop"
    )


def _optional(body: dict[str, Any], name: str, check: Callable[[Any], bool], rule: str) -> Any:
    """``body[name]`` (None if absent or null), or a 400 naming the parameter and its rule."""
    value = body.get(name)
    if value is not None and not check(value):
        raise invalid_request(f"Invalid value for '{name}': expected {rule}.", name)
    return value


def parse_chat_request(body: object) -> ParsedChatRequest:
    """Validate a decoded request body, raising :class:`ApiError` (400) naming the parameter.

    Unknown parameters are ignored, so clients that send extras (``user``, ``logprobs``...)
    keep working. ``stream: true`` is refused because the simulator only answers whole
    responses, and a streaming client would misread one.
    """
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("You must provide a model parameter.", "model")
    messages = _parse_messages(body.get("messages"))
    if body.get("stream"):
        raise invalid_request("Streaming is not supported by the rewardflow simulator.", "stream")
    n = _optional(body, "n", lambda v: _is_int(v) and 1 <= v <= MAX_N, f"an integer 1-{MAX_N}")
    temperature = _optional(
        body, "temperature", lambda v: _is_number(v) and 0 <= v <= 2, "a number 0-2"
    )
    top_p = _optional(body, "top_p", lambda v: _is_number(v) and 0 <= v <= 1, "a number 0-1")
    positive = (lambda v: _is_int(v) and v >= 1), "a positive integer"
    max_tokens = _optional(body, "max_tokens", *positive)
    if max_tokens is None:  # the newer name of the same limit
        max_tokens = _optional(body, "max_completion_tokens", *positive)
    seed = _optional(body, "seed", _is_int, "an integer")
    return ParsedChatRequest(
        model=model,
        messages=messages,
        n=1 if n is None else n,
        temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        max_tokens=max_tokens,
        stop=_parse_stop(body.get("stop")),
        seed=seed,
    )


def parse_text_completion_request(body: object) -> ParsedChatRequest:
    """A ``/v1/completions`` body as the chat request it is answered as: prompt = user message.

    ``prompt`` must be one string (the legacy API's lists of prompts or token ids are refused,
    as the one-answer-per-request client never sends them); other parameters as for chat.
    """
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise invalid_request("Invalid type for 'prompt': expected a string.", "prompt")
    chat = {key: value for key, value in body.items() if key != "prompt"}
    return parse_chat_request({**chat, "messages": [{"role": "user", "content": prompt}]})


def text_completion_body(chat_body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` object reshaped as a ``text_completion`` (``text`` per choice)."""
    choices = [
        {
            "index": choice["index"],
            "text": (choice.get("message") or {}).get("content"),
            "logprobs": None,
            "finish_reason": choice["finish_reason"],
        }
        for choice in chat_body.get("choices", [])
    ]
    return {
        **chat_body,
        "id": str(chat_body["id"]).replace("chatcmpl-", "cmpl-"),
        "object": "text_completion",
        "choices": choices,
    }


def generate_choices(
    request: ParsedChatRequest, config: SimulatorConfig, first_sample: int = 0
) -> list[Choice]:
    """Every choice of ``request``: choice ``i`` is sample ``first_sample + i`` of its seed.

    At temperature 0 every choice is sample 0 without a seed: greedy decoding has no
    randomness, so neither the seed nor the position in a stream can change it. The server
    passes ``first_sample`` for unseeded requests (see :func:`sample_stream_key`).
    """
    greedy = request.temperature == 0
    seed = None if greedy else request.seed
    choices = []
    for index in range(request.n):
        sample = 0 if greedy else first_sample + index
        text = answer_for(request.messages, seed, sample, config)
        choices.append(Choice(*apply_stop_and_max_tokens(text, request.stop, request.max_tokens)))
    return choices


def sample_stream_key(request: ParsedChatRequest) -> str | None:
    """The stream an unseeded, sampled request draws its next samples from; else ``None``.

    Keyed on what decides the distribution of answers -- the messages, ``temperature`` and
    ``top_p`` -- and not on ``max_tokens`` or ``stop``, which only cut an answer short. Seeded
    and greedy requests name their samples themselves and draw from no stream.
    """
    if request.temperature == 0 or request.seed is not None:
        return None
    material = [messages_key(request.messages), request.temperature, request.top_p]
    return hashlib.sha256(json.dumps(material).encode("utf-8")).hexdigest()


def completion_body(
    request: ParsedChatRequest,
    choices: Sequence[Choice],
    *,
    completion_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """The ``chat.completion`` response object, with ``usage`` from :func:`count_tokens`."""
    prompt_tokens = sum(count_tokens(message["content"]) for message in request.messages)
    completion_tokens = sum(count_tokens(choice.content) for choice in choices)
    return {
        "id": completion_id or f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": request.model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": choice.content},
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
            for index, choice in enumerate(choices)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
