"""A rewardflow model client for the legacy text-completions API (``POST /v1/completions``).

Base models served without a chat template, and many older or self-hosted APIs, take one
``prompt`` string and answer ``choices[0].text``. This client renders the conversation into
that string with a template, sends ONE request, and maps every failure to rewardflow's error
classes. Retries, rate limits, the cache, budgets and failure records are rewardflow's job:
they wrap this class, so it stays this small. docs/clients.md walks through it.

Options (``model.options`` in the config):

* ``turn``: how each message is written, with ``{role}`` and ``{content}``
  (default ``"{role}: {content}\\n\\n"``; roles are capitalised).
* ``answer_prefix``: what ends the prompt, for the model to continue (default ``"Assistant:"``).
* ``endpoint``: the path below ``base_url`` (default ``/completions``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from rewardflow.errors import ConfigError, ModelGenerationError, ModelUnusableResponseError
from rewardflow.generation.client import (
    ChatRequest,
    ChatResponse,
    ClientSettings,
    ModelClient,
    classify_http_error,
    decode_body,
)

DEFAULT_TURN = "{role}: {content}\n\n"
DEFAULT_ANSWER_PREFIX = "Assistant:"


def render_prompt(
    messages: Sequence[Mapping[str, Any]],
    turn: str = DEFAULT_TURN,
    answer_prefix: str = DEFAULT_ANSWER_PREFIX,
) -> str:
    """The conversation as one prompt string, ending where the model's answer begins."""
    text = "".join(
        turn.format(role=str(message["role"]).capitalize(), content=message["content"])
        for message in messages
    )
    return text + answer_prefix


def parse_completion(body: str) -> tuple[str, str | None, dict[str, int] | None, str | None]:
    """``(text, finish_reason, usage, model)`` of a 200 body, or a rewardflow error.

    A body that is not the expected shape is what a proxy or a cut connection produces:
    transient (retried). ``text: null`` is the server's answer to this request: unusable.
    """
    try:
        data = json.loads(body)
        choice = data["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ModelGenerationError("HTTP 200 without a completion choice") from None
    text = choice.get("text") if isinstance(choice, Mapping) else None
    if text is None:
        raise ModelUnusableResponseError("HTTP 200 whose completion has no text")
    if not isinstance(text, str):
        raise ModelGenerationError("HTTP 200 whose completion text is not a string")
    usage = data.get("usage")
    usage = (
        {k: v for k, v in usage.items() if isinstance(v, int)}
        if isinstance(usage, Mapping)
        else None
    )
    return text, choice.get("finish_reason"), usage, data.get("model")


class CompletionsClient(ModelClient):
    """One ``/v1/completions`` request per rewardflow request."""

    def __init__(self, settings: ClientSettings) -> None:
        super().__init__(settings)
        if not settings.base_url:
            raise ConfigError(
                "model.base_url (or model.launch): CompletionsClient needs an endpoint"
            )
        options = settings.options
        self.turn = str(options.get("turn", DEFAULT_TURN))
        self.answer_prefix = str(options.get("answer_prefix", DEFAULT_ANSWER_PREFIX))
        self.url = settings.base_url.rstrip("/") + str(options.get("endpoint", "/completions"))
        self.headers = {"Content-Type": "application/json"}
        if settings.api_key:
            self.headers["Authorization"] = f"Bearer {settings.api_key}"
        self._session: aiohttp.ClientSession | None = None

    def _payload(self, request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": request.model,
            "prompt": render_prompt(request.messages, self.turn, self.answer_prefix),
        }
        optional = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "stop": list(request.stop) if request.stop else None,
            "seed": request.seed,
        }
        payload.update({name: value for name, value in optional.items() if value is not None})
        payload.update(request.extra_body)
        return payload

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.connection_limit),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            )
        started = time.monotonic()
        # Timeouts and connection errors need no handling here: rewardflow maps them to
        # ModelGenerationError (transient) around every client.
        async with self._session.post(
            self.url, json=self._payload(request), headers=self.headers
        ) as answer:
            raw = await answer.read()
            # Optional: lets generation.adaptive_rate learn the provider's limit from headers.
            self.observe_rate_headers(answer.status, answer.headers)
            body = decode_body(raw, answer.charset)
            if answer.status != 200:
                # The built-in mapping: 401/403 auth, 429 rate limit (with Retry-After),
                # 5xx/408/409 transient, other 4xx invalid request.
                text = raw.decode("utf-8", errors="replace") if body is None else body
                raise classify_http_error(
                    answer.status, text, answer.headers, self.settings.api_key_env
                )
        if body is None:
            raise ModelGenerationError("HTTP 200 with a body that is not valid UTF-8")
        text, finish_reason, usage, model = parse_completion(body)
        return ChatResponse(text, finish_reason, usage, model, time.monotonic() - started)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
