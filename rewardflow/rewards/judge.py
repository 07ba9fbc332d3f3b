"""LLM-as-judge: another model grades the response, through rewardflow's own client.

The judge's request goes through :class:`~rewardflow.client.OpenAIChatClient` and the response
cache exactly like generation does, so judging inherits everything generation has: retries
with backoff and ``Retry-After``, the adaptive or configured rate limit, classified errors,
and — because each verdict is cached by content (judge model, endpoint, judge messages,
sampling settings) — a rerun or a second run never pays for the same verdict twice.

A verdict the judge did not state in the expected form, or a judge request that failed after
its retries, raises: the pipeline records a score error for that sample, never a 0.

Config example::

    rewards:
      - name: accuracy
        function: rewardflow.rewards.math:math_reward
      - name: judged
        function: rewardflow.rewards.judge:llm_judge
        params:
          model: accounts/fireworks/models/llama-v3p1-70b-instruct
          base_url: https://api.fireworks.ai/inference/v1
          api_key_env: FIREWORKS_API_KEY
          requests_per_minute: 120   # per scoring worker process
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rewardflow.adaptive import AdaptiveRate
from rewardflow.cache import (
    CachedResponse,
    GenerationSettings,
    ResponseCache,
    cache_key,
    normalize_endpoint,
)
from rewardflow.client import ChatRequest, OpenAIChatClient
from rewardflow.errors import MissingApiKeyError
from rewardflow.limits import RateBudget, RequestLimiter
from rewardflow.records import Message
from rewardflow.rewards._messages import last_assistant_text
from rewardflow.rewards.result import RewardResult

DEFAULT_SYSTEM = (
    "You are a strict grader. Compare the response with the reference answer and decide "
    "whether the response's final answer is correct."
)
DEFAULT_TEMPLATE = (
    "Question:\n{question}\n\nReference answer:\n{ground_truth}\n\nResponse:\n{response}\n\n"
    "Explain briefly, then end with one line: SCORE: 1 if the response is correct, "
    "SCORE: 0 if not (a number between 0 and 1 for partial credit)."
)
DEFAULT_VERDICT_PATTERN = r"SCORE\s*[:=]\s*([01](?:\.\d+)?|\.\d+)"


def judge_messages(
    messages: Sequence[Mapping[str, Any]],
    ground_truth: str | None,
    template: str = DEFAULT_TEMPLATE,
    system: str | None = DEFAULT_SYSTEM,
) -> list[Message]:
    """The judge's conversation for one response: system prompt and the filled template."""
    question = next(
        (str(m.get("content") or "") for m in reversed(messages[:-1]) if m.get("role") == "user"),
        "",
    )
    user = template.format(
        question=question,
        response=last_assistant_text(messages) or "",
        ground_truth="" if ground_truth is None else ground_truth,
    )
    judge: list[Message] = [{"role": "system", "content": system}] if system else []
    return [*judge, {"role": "user", "content": user}]


def parse_verdict(text: str, pattern: str = DEFAULT_VERDICT_PATTERN) -> float:
    """The last verdict in the judge's answer, as a score in [0, 1]; ValueError if none."""
    matches = re.findall(pattern, text, flags=re.IGNORECASE)
    if not matches:
        raise ValueError(f"the judge's answer states no verdict matching {pattern!r}")
    score = float(matches[-1])
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"the judge's verdict {score} is outside [0, 1]")
    return score


class _Judge:
    """One judge endpoint in one process: client, event loop and cache, reused per call."""

    def __init__(self, settings: GenerationSettings, base_url: str, params: Mapping[str, Any]):
        api_key_env = params.get("api_key_env")
        api_key = os.environ.get(api_key_env, "").strip() if api_key_env else None
        if api_key_env and not api_key:
            raise MissingApiKeyError(api_key_env)
        rpm = params.get("requests_per_minute")
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.client = OpenAIChatClient(
            base_url,
            api_key,
            api_key_env=api_key_env,
            timeout_s=float(params.get("timeout_s", 120)),
            max_attempts=int(params.get("max_attempts", 5)),
            limiter=RequestLimiter(RateBudget(rpm), adaptive=AdaptiveRate()),
        )
        self.cache = ResponseCache(params.get("cache_dir", "results/cache"), settings)
        self.known: dict[str, CachedResponse] = self.cache.load()
        self._writer_context = self.cache.writer(f"judge-{os.getpid()}")
        self.writer = self._writer_context.__enter__()

    def answer(self, messages: list[Message]) -> str:
        key = cache_key(self.settings, messages, 0)
        if key not in self.known:
            request = ChatRequest(
                model=self.settings.model,
                messages=messages,
                temperature=self.settings.temperature,
                max_tokens=self.settings.max_tokens,
                seed=self.settings.seed,
            )
            response = self.loop.run_until_complete(self.client.complete(request))
            self.known[key] = self.writer.append(
                key, 0, response.content, response.finish_reason, response.usage,
                response.model, response.latency_s,
            )  # fmt: skip
        return self.known[key].response

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()
        self._writer_context.__exit__(None, None, None)


_JUDGES: dict[str, _Judge] = {}


def close_judges() -> None:
    """Close every judge's connections and journal (worker processes just exit instead)."""
    while _JUDGES:
        _JUDGES.popitem()[1].close()


def _judge_for(params: Mapping[str, Any]) -> _Judge:
    base_url = params.get("base_url")
    model = params.get("model")
    if not base_url or not model:
        raise ValueError("llm_judge needs params 'model' and 'base_url'")
    settings = GenerationSettings(
        model=str(model),
        endpoint=normalize_endpoint(str(base_url)),
        temperature=float(params.get("temperature", 0.0)),
        top_p=1.0,
        max_tokens=int(params.get("max_tokens", 512)),
        seed=params.get("seed"),
    )
    identity = f"{settings.fingerprint}:{params.get('cache_dir', 'results/cache')}"
    if identity not in _JUDGES:
        _JUDGES[identity] = _Judge(settings, str(base_url), params)
    return _JUDGES[identity]


def llm_judge(messages: Sequence[Mapping[str, Any]], ground_truth: str | None, **params: Any):
    """Score a response by asking a judge model; see the module docstring for the params.

    Params: ``model`` and ``base_url`` (required), ``api_key_env``, ``template`` (with
    ``{question}``, ``{response}``, ``{ground_truth}``), ``system``, ``verdict_pattern`` (a
    regex whose first group is the score), ``temperature`` (0), ``max_tokens`` (512), ``seed``,
    ``requests_per_minute``, ``timeout_s``, ``max_attempts``, ``cache_dir`` (results/cache).
    """
    judge = _judge_for(params)
    conversation = judge_messages(
        messages,
        ground_truth,
        params.get("template", DEFAULT_TEMPLATE),
        params.get("system", DEFAULT_SYSTEM),
    )
    answer = judge.answer(conversation)
    score = parse_verdict(answer, params.get("verdict_pattern", DEFAULT_VERDICT_PATTERN))
    return RewardResult(score=score, reason=answer.strip()[-300:])
