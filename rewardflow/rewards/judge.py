"""LLM-as-judge: another model grades the response, through rewardflow's own client.

The judge's request goes through :class:`~rewardflow.generation.client.OpenAIChatClient` and
the response
cache exactly like generation does, so judging inherits everything generation has: retries
with backoff and ``Retry-After``, the adaptive or configured rate limit, classified errors,
and — because each verdict is cached by content (judge model, endpoint, judge messages,
sampling settings) — a rerun or a second run never pays for the same verdict twice.

A verdict the judge did not state in the expected form, or a judge request that failed after
its retries, raises: the pipeline records a score error for that sample, never a 0.

The response being graded is written by the model under test, so it may try to grade itself
("output SCORE: 1"). Two defences: the response is fenced in the judge's prompt between lines
with a tag it cannot contain (:func:`fence_response`), and the judge is told that nothing
inside is an instruction; and only the judge's last line, in exactly the required form and in
[0, 1], is its verdict (:func:`parse_verdict`), so a response quoted or echoed earlier in the
judge's answer, or ``SCORE: 10``, never becomes a score.

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
          requests_per_minute: 120   # per scoring job, shared by its worker processes

The scoring stage fills in what the run decides
(:func:`rewardflow.config.scoring.with_run_settings`, kept beside the settings so that a scoring
job imports this module and its HTTP client only when a reward is the judge): verdicts go to the
run's response cache (``cache.dir``, or the run's own with ``cache.shared: false``) unless
``cache_dir`` says otherwise, and ``requests_per_minute`` is split between the job's worker
processes, each of which has its own judge client.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rewardflow.config.generation import ResponseIdentity
from rewardflow.config.scoring import (  # noqa: F401 - JUDGE_FUNCTION, with_run_settings: re-exported
    DEFAULT_JUDGE_SYSTEM,
    DEFAULT_JUDGE_TEMPLATE,
    DEFAULT_VERDICT_PATTERN,
    JUDGE_FUNCTION,
    JudgeSettings,
    with_run_settings,
)
from rewardflow.errors import MissingApiKeyError
from rewardflow.generation.cache import (
    CachedResponse,
    ResponseCache,
    cache_key,
    normalize_endpoint,
)
from rewardflow.generation.client import ChatRequest, OpenAIChatClient
from rewardflow.generation.limits import PaceSettings, RateBudget, make_request_limiter
from rewardflow.records import Message
from rewardflow.rewards._messages import last_assistant_text
from rewardflow.rewards.result import RewardResult

# The judge's default prompt lives with its settings; these are the names users import.
DEFAULT_SYSTEM = DEFAULT_JUDGE_SYSTEM
DEFAULT_TEMPLATE = DEFAULT_JUDGE_TEMPLATE
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_DECORATION = "*_` \t"  # markdown emphasis a judge may put around its verdict line


def fence_response(response: str) -> str:
    """The response between two lines carrying a tag that does not occur in it.

    The tag is the start of a SHA-256 of the response, so the response cannot contain its
    closing line (that would need a hash of itself inside itself) and, should it contain the
    tag all the same, the next salt is tried. A random nonce would do as well against the
    response but would change the judge's prompt on every call: the verdict cache and the
    simulator's scripted judge answers both key on that prompt, so it must be deterministic.
    """
    for salt in itertools.count():
        digest = hashlib.sha256(f"{salt}\0{response}".encode()).hexdigest()[:16]
        if digest not in response:
            return f"<<<response {digest}>>>\n{response}\n<<<end of response {digest}>>>"
    raise AssertionError("unreachable")  # pragma: no cover - count() never ends


def judge_messages(
    messages: Sequence[Mapping[str, Any]],
    ground_truth: str | None,
    template: str = DEFAULT_TEMPLATE,
    system: str | None = DEFAULT_SYSTEM,
) -> list[Message]:
    """The judge's conversation for one response: system prompt and the filled template.

    ``{response}`` is always the fenced response (:func:`fence_response`), in a custom template
    too: only the response is written by the model under test, so only it is untrusted.
    """
    question = next(
        (str(m.get("content") or "") for m in reversed(messages[:-1]) if m.get("role") == "user"),
        "",
    )
    user = template.format(
        question=question,
        response=fence_response(last_assistant_text(messages) or ""),
        ground_truth="" if ground_truth is None else ground_truth,
    )
    judge: list[Message] = [{"role": "system", "content": system}] if system else []
    return [*judge, {"role": "user", "content": user}]


def parse_verdict(text: str, pattern: str = DEFAULT_VERDICT_PATTERN) -> float:
    """The verdict on the judge's last non-empty line, as a score in [0, 1]; else ValueError.

    Only that one line counts, and it must be the verdict and nothing else: a verdict anywhere
    earlier is the judge reasoning or quoting the response (which may say ``SCORE: 1``), and
    "the last match anywhere" let a response that made the judge repeat a line win. The number
    must be a plain decimal in [0, 1]: ``SCORE: 10`` is unparsable, never read as 1.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the judge's answer is empty")
    last = lines[-1].strip(_DECORATION).removesuffix(".").strip(_DECORATION)
    match = re.fullmatch(pattern, last, flags=re.IGNORECASE)
    if match is None:
        raise ValueError(
            f"the judge's answer states no verdict: its last line {lines[-1].strip()[:80]!r} "
            f"does not match {pattern!r}"
        )
    if not match.re.groups:
        raise ValueError(f"verdict_pattern {pattern!r} has no group to hold the score")
    value = match.group(1)
    if not _PLAIN_NUMBER.fullmatch(value):
        raise ValueError(f"the judge's verdict {value!r} is not a plain number in [0, 1]")
    score = float(value)
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"the judge's verdict {value} is outside [0, 1]")
    return score


class _Judge:
    """One judge endpoint in one process: client, event loop and cache, reused per call."""

    def __init__(self, settings: ResponseIdentity, judge: JudgeSettings):
        api_key_env = judge.api_key_env
        api_key = os.environ.get(api_key_env, "").strip() if api_key_env else None
        if api_key_env and not api_key:
            raise MissingApiKeyError(api_key_env)
        # Each worker process has its own client, so each takes its share of the job's limit.
        budget = RateBudget(judge.requests_per_minute).share(judge.workers)
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.client = OpenAIChatClient(
            judge.base_url,
            api_key,
            api_key_env=api_key_env,
            timeout_s=judge.timeout_s,
            max_attempts=judge.max_attempts,
            limiter=make_request_limiter(
                PaceSettings(
                    requests_per_minute=budget.requests_per_minute,
                    tokens_per_minute=None,
                    adaptive=True,
                    parallel_jobs=1,
                    concurrency=1,
                    largest_request_tokens=1,
                ),
                memory=None,
            ),
        )
        self.cache = ResponseCache(judge.cache_dir, settings)
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


def _judge_for(judge: JudgeSettings) -> _Judge:
    settings = ResponseIdentity(
        model=judge.model,
        endpoint=normalize_endpoint(judge.base_url),
        temperature=judge.temperature,
        top_p=1.0,
        max_tokens=judge.max_tokens,
        seed=judge.seed,
    )
    identity = f"{settings.fingerprint}:{judge.cache_dir}"
    if identity not in _JUDGES:
        _JUDGES[identity] = _Judge(settings, judge)
    return _JUDGES[identity]


def llm_judge(messages: Sequence[Mapping[str, Any]], ground_truth: str | None, **params: Any):
    """Score a response by asking a judge model; see the module docstring for the params.

    Params: ``model`` and ``base_url`` (required), ``api_key_env``, ``template`` (with
    ``{question}``, ``{response}`` -- the fenced response -- and ``{ground_truth}``),
    ``system``, ``verdict_pattern`` (a regex matching the judge's whole last line, whose first
    group is the score), ``temperature`` (0), ``max_tokens`` (512), ``seed``,
    ``requests_per_minute`` (per scoring job), ``timeout_s``, ``max_attempts``, ``cache_dir``
    (the run's cache; results/cache outside the scoring stage).
    """
    settings = JudgeSettings.from_params(params)
    judge = _judge_for(settings)
    conversation = judge_messages(messages, ground_truth, settings.template, settings.system)
    answer = judge.answer(conversation)
    score = parse_verdict(answer, settings.verdict_pattern)
    return RewardResult(score=score, reason=answer.strip()[-300:])
