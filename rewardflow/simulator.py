"""A simulated chat model that speaks the OpenAI chat-completions wire format over real HTTP.

Why a real server instead of a mocked client: the parts of an evaluation run that break in
production are the HTTP ones (connection pooling, concurrency limits, auth headers, error
bodies, latency). A mock skips exactly those, so the offline demo, the tests and the
benchmarks all talk to this server through the same client code that talks to a provider.

Endpoints (see :func:`build_app`):

* ``POST /v1/chat/completions`` -- OpenAI request and response shapes, OpenAI-style error
  bodies for invalid requests (400) and a wrong or missing API key (401).
* ``POST /v1/completions`` -- the legacy text-completions shape (``prompt`` in, ``choices[].text``
  out), answered as a chat whose one user message is the prompt, with the same auth, limits and
  faults. It exists so that a custom client for a non-chat API can be tested for real
  (``examples/completions_client``).
* ``GET /v1/models`` -- lists the one simulated model.
* ``GET /health`` -- 200 once the server is up: the readiness probe of a launched server, as
  vLLM, SGLang and llama.cpp offer it.
* ``GET /_simulator/stats`` and ``POST /_simulator/reset`` -- request counters, so a test can
  assert how many requests a pipeline run sent (for example, zero on a fully cached rerun), and
  how many were rate limited or hit by each injected fault. Reset also forgets the fault
  attempt counters and refills the rate limiter.

How it answers (see :func:`answer_for`): a row of the ``--responses`` file whose prompt equals
the last user message wins; otherwise the ``arithmetic`` rule solves the last arithmetic
expression in that message (with a configurable fraction of slightly wrong answers), or the
``echo`` rule repeats it.

Sampling (see :func:`generate_choices`): every answer is a pure function of (messages, seed,
sample index), hashed with SHA-256 -- never Python's ``hash()``, which is salted per process.
Like a model, the simulator disagrees with itself at ``temperature > 0`` and never at 0:

* ``temperature == 0`` is greedy decoding: every choice of every request is sample 0 with no
  seed, whatever the request's ``seed`` -- one answer per conversation.
* With a ``seed``, choice ``i`` is sample ``i`` of that seed: a seeded request always gets the
  same answers, and requests with different seeds get independent ones. The generation job
  sends each sample its own seed (see ``rewardflow.generation.endpoint.request_seed``), so its
  records are the same whatever order its concurrent requests arrive in.
* Without a ``seed``, the server keeps a stream of samples per (messages, temperature,
  ``top_p``): the first such request gets sample 0, the next sample 1 (or, with ``n`` choices,
  the next ``n`` samples), as repeated calls to a model give different answers. A fresh (or
  reset) server replays the same sequence; only sending identical requests concurrently leaves
  which of them gets which sample to the scheduler. ``max_tokens`` and ``stop`` only cut the
  text, so they share the stream. A request refused with an error status or a dropped
  connection consumes no sample; a malformed answer does, as a garbled real answer would.

``wrong_rate`` is the probability that a sample is wrong, drawn independently per sample, so
pass@k rises with k and majority voting recovers many wrong samples. ``top_p`` is validated
and otherwise ignored. The server's own ``--seed`` only seeds the latency draws, so it never
changes an answer. :data:`ANSWER_VERSION` changes whenever the same request would be answered
differently, so the pipeline's cache does not reuse answers of an older simulator.

Latency: ``--latency-distribution uniform`` (the default) waits ``--latency-ms`` plus or minus
``--latency-jitter-ms``, uniformly; ``lognormal`` draws from a log-normal with mean
``--latency-ms`` and shape ``--latency-sigma``, a long tail of stragglers like a real provider's
(at sigma 1, one request in a hundred takes over six times the mean).

Token counting: a token is a match of ``\\w+|[^\\w\\s]`` (a run of word characters, or a
single other non-space character). ``prompt_tokens`` counts the text of every message (not the
role or any formatting overhead); ``completion_tokens`` sums over all choices, as OpenAI does.

Fault injection (every knob is off by default) exists so that the pipeline's client -- its
retries, backoff, rate limiting and error classes -- can be tested and benchmarked against the
ways real providers misbehave:

* ``--rate-limit-rps R``: a server-side token bucket holding one second of burst (``R`` tokens,
  at least 1) refilled at ``R`` tokens per second. A request that finds it empty gets a 429
  ``rate_limit_error`` at once, with ``Retry-After`` (whole seconds, rounded up, at least 1, as
  providers send it), ``retry-after-ms`` (exact, rounded up to a millisecond) and OpenAI's
  ``x-ratelimit-{limit,remaining,reset}-requests`` headers, which successes carry too.
* ``--error-500-rate``, ``--error-503-rate``: OpenAI-style ``server_error`` bodies.
  ``--drop-rate``: the TCP connection is closed with no response at all. ``--malformed-rate``:
  a 200 whose body is alternately truncated JSON and JSON without ``choices``.
  ``--hang-rate``: no answer for ``--hang-s`` seconds (an async wait, so other requests go on),
  long enough by default for any client timeout to fire.
* Bad 200s, after the others in the draw order: ``--non-utf8-rate`` (a JSON body with a byte
  that is not UTF-8), and three well-formed answers a client cannot use: ``--null-content-rate``
  (``content: null``), ``--tool-calls-only-rate`` (a tool call and no text) and
  ``--empty-choices-rate`` (``choices: []``).
* ``--echo-key-on-401``: a wrong key's 401 body quotes the key, as some providers do, so that
  a client can be tested for never passing it on.

A chat request is handled in this order: authentication (401), validation (400), the rate limit
(429), the fault decision, then the wait (the usual latency, or ``hang_s`` for a hang) so that a
fault is never faster than an answer, and finally the answer or the fault.

Fault determinism: whether a request suffers a fault, and which, is a SHA-256 draw over
(``fault_seed``, the messages' digest, the attempt number), where the attempt number counts how
often this server has already decided on these same messages (since it started or was reset;
rate-limited requests are not counted). The uniform draw in [0, 1) is compared against the
cumulative rates in the fixed order of :data:`FAULTS` (500, 503, drop, malformed, hang, then the
bad 200s; see :func:`fault_for`). So
a run against a fresh server meets the same faults on the same prompts whatever the request
order or concurrency, while a retry gets a fresh draw and eventually succeeds. The counters are
kept only when some fault rate is non-zero (one small entry per distinct conversation).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import operator
import random
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

from aiohttp import web

from rewardflow.errors import RewardflowError

__all__ = [
    "ANSWER_STYLES",
    "ANSWER_VERSION",
    "DEFAULT_HANG_S",
    "DEFAULT_LATENCY_SIGMA",
    "DEFAULT_MODEL_NAME",
    "FAULTS",
    "LATENCY_DISTRIBUTIONS",
    "NO_ANSWER",
    "ApiError",
    "ChatRequest",
    "Choice",
    "Fault",
    "SimulatorConfig",
    "SimulatorError",
    "SimulatorStats",
    "Solution",
    "Step",
    "answer_for",
    "apply_stop_and_max_tokens",
    "arithmetic_response",
    "base_url",
    "build_app",
    "completion_body",
    "count_tokens",
    "draw_latency_ms",
    "evaluate_expression",
    "fault_for",
    "find_expression",
    "format_number",
    "generate_choices",
    "last_user_content",
    "load_responses",
    "messages_key",
    "parse_chat_request",
    "parse_text_completion_request",
    "running_simulator",
    "sample_stream_key",
    "serve_until_signalled",
    "solve",
]

Rule = Literal["arithmetic", "echo"]
Fault = Literal[
    "error_500",
    "error_503",
    "drop",
    "malformed",
    "hang",
    "non_utf8",
    "null_content",
    "tool_calls_only",
    "empty_choices",
]
FinishReason = Literal["stop", "length"]
LatencyDistribution = Literal["uniform", "lognormal"]
Message = Mapping[str, str]

RULES: tuple[Rule, ...] = get_args(Rule)
#: The injectable faults, in the order their rates are stacked in [0, 1) (see :func:`fault_for`):
#: the order of the ``Fault`` literal, so a new fault is added in one place.
FAULTS: tuple[Fault, ...] = get_args(Fault)
DEFAULT_HANG_S = 3600.0
DEFAULT_MODEL_NAME = "rewardflow-simulator"
#: Bumped whenever the same request would be answered differently; part of the pipeline's
#: cache identity of the simulator (``rewardflow.generation.endpoint``). 2: samples differ at
#: temperature
#: > 0 without a seed, and temperature 0 ignores the seed.
ANSWER_VERSION = 2
LATENCY_DISTRIBUTIONS: tuple[LatencyDistribution, ...] = ("uniform", "lognormal")
DEFAULT_LATENCY_SIGMA = 1.0
ANNOUNCEMENT = "rewardflow simulator listening on {url}"

#: Roles the OpenAI API accepts; anything else is a 400 there too.
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_N = 128
MAX_STOP_SEQUENCES = 4
#: Long prompts are legitimate; aiohttp's 1 MiB default body limit would reject them.
MAX_BODY_BYTES = 32 * 1024 * 1024
#: In-flight requests get this long to finish when the server stops (aiohttp's default is 60 s).
SHUTDOWN_TIMEOUT_S = 5.0
NO_ANSWER = "I don't know."
#: Slack for float arithmetic: rates that add up to 1.0000000000000002 are still fine, and a
#: token bucket refilled to 0.9999999999 tokens holds one token.
_EPSILON = 1e-9

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


class SimulatorError(RewardflowError):
    """The simulator cannot start: a bad option, a missing API key, a malformed responses file."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class SimulatorConfig:
    """Everything that decides how the simulator behaves; one instance per server.

    ``responses`` maps the stripped text of a last user message to its canned answers (see
    :func:`load_responses`); a plain string value is taken as a single answer. ``api_key`` is
    excluded from ``repr`` so that logging a config can never leak it.

    The fault-injection fields (see the module docstring) all default to off:
    ``rate_limit_rps`` is ``None`` and every ``*_rate`` is 0. The rates are probabilities of
    mutually exclusive outcomes of one draw, so they must add up to at most 1.
    """

    model_name: str = DEFAULT_MODEL_NAME
    rule: Rule = "arithmetic"
    responses: Mapping[str, Sequence[str]] = field(default_factory=dict)
    wrong_rate: float = 0.2
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    latency_distribution: LatencyDistribution = "uniform"
    latency_sigma: float = DEFAULT_LATENCY_SIGMA
    seed: int = 0
    api_key: str | None = field(default=None, repr=False)
    rate_limit_rps: float | None = None
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    hang_rate: float = 0.0
    hang_s: float = DEFAULT_HANG_S
    fault_seed: int = 0
    non_utf8_rate: float = 0.0
    null_content_rate: float = 0.0
    tool_calls_only_rate: float = 0.0
    empty_choices_rate: float = 0.0
    echo_key_on_401: bool = False

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise SimulatorError(f"rule must be one of {', '.join(RULES)}, not {self.rule!r}")
        if not 0.0 <= self.wrong_rate <= 1.0:
            raise SimulatorError(f"wrong_rate must be between 0 and 1, not {self.wrong_rate}")
        if not (self.latency_ms >= 0 and self.latency_jitter_ms >= 0):
            raise SimulatorError("latency_ms and latency_jitter_ms must be >= 0")
        self._validate_latency_distribution()
        if self.api_key is not None and not self.api_key.strip():
            # An empty key would make "Authorization: Bearer " valid: refuse rather than guess.
            raise SimulatorError("api_key must not be empty (use None to disable the check)")
        self.responses = _normalize_responses(self.responses)
        self._validate_faults()

    def _validate_latency_distribution(self) -> None:
        if self.latency_distribution not in LATENCY_DISTRIBUTIONS:
            raise SimulatorError(
                f"latency_distribution must be one of {', '.join(LATENCY_DISTRIBUTIONS)}, "
                f"not {self.latency_distribution!r}"
            )
        if not (math.isfinite(self.latency_sigma) and self.latency_sigma > 0):
            raise SimulatorError(f"latency_sigma must be a number > 0, not {self.latency_sigma}")
        if self.latency_distribution != "uniform" and self.latency_jitter_ms > 0:
            # The log-normal's spread is latency_sigma; a jitter would be silently ignored.
            raise SimulatorError(
                "latency_jitter_ms applies to the uniform distribution only; with "
                f"{self.latency_distribution} set latency_sigma instead"
            )

    def _validate_faults(self) -> None:
        rps = self.rate_limit_rps
        if rps is not None and not (math.isfinite(rps) and rps > 0):
            raise SimulatorError(f"rate_limit_rps must be a positive number, not {rps}")
        rates = self.fault_rates()
        for fault, rate in rates.items():
            if not 0.0 <= rate <= 1.0:  # also refuses NaN
                raise SimulatorError(f"{fault}_rate must be between 0 and 1, not {rate}")
        total = math.fsum(rates.values())
        if total > 1.0 + _EPSILON:
            raise SimulatorError(f"the fault rates add up to {total:g}; they must add up to <= 1")
        if not (math.isfinite(self.hang_s) and self.hang_s >= 0):
            raise SimulatorError(f"hang_s must be a finite number >= 0, not {self.hang_s}")

    def fault_rates(self) -> dict[Fault, float]:
        """Each fault's rate, in the order of :data:`FAULTS` (the order of the cumulative draw)."""
        return {
            "error_500": self.error_500_rate,
            "error_503": self.error_503_rate,
            "drop": self.drop_rate,
            "malformed": self.malformed_rate,
            "hang": self.hang_rate,
            "non_utf8": self.non_utf8_rate,
            "null_content": self.null_content_rate,
            "tool_calls_only": self.tool_calls_only_rate,
            "empty_choices": self.empty_choices_rate,
        }

    @property
    def injects_faults(self) -> bool:
        """Whether any fault rate is non-zero (only then are attempts counted)."""
        return any(rate > 0 for rate in self.fault_rates().values())


def _normalize_responses(responses: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Strip the prompts and turn every value into a non-empty tuple of strings."""
    table: dict[str, tuple[str, ...]] = {}
    for prompt, answers in responses.items():
        choices = (answers,) if isinstance(answers, str) else tuple(answers)
        if not choices or not all(isinstance(answer, str) for answer in choices):
            raise SimulatorError(f"responses for {prompt!r} must be a non-empty list of strings")
        table[prompt.strip()] = choices
    return table


def load_responses(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Read a responses file: JSONL rows ``{"prompt": ..., "response": ...}`` or ``"responses"``.

    Blank lines are skipped and extra keys (an ``id``, say) are ignored. Anything else that is
    off -- invalid JSON, a missing or mistyped field, a prompt given twice -- raises
    :class:`SimulatorError` naming the file and line, because a typo found at startup costs
    seconds while a silently unmatched prompt costs a confusing evaluation.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SimulatorError(f"cannot read responses file {path}: {error.strerror}") from error
    table: dict[str, tuple[str, ...]] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        prompt, answers = _parse_responses_row(line, f"{path}:{lineno}")
        if prompt in first_line:
            raise SimulatorError(
                f"{path}:{lineno}: duplicate prompt (first given on line {first_line[prompt]})"
            )
        first_line[prompt] = lineno
        table[prompt] = answers
    return table


def _parse_responses_row(line: bytes, where: str) -> tuple[str, tuple[str, ...]]:
    """Validate one responses-file row; ``where`` is the ``file:line`` prefix for errors."""
    try:
        row = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise SimulatorError(f"{where}: not UTF-8 text") from error
    except json.JSONDecodeError as error:
        raise SimulatorError(f"{where}: invalid JSON ({error.msg})") from error
    if not isinstance(row, dict):
        raise SimulatorError(f"{where}: expected a JSON object")
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        raise SimulatorError(f'{where}: "prompt" must be a string')
    if ("response" in row) == ("responses" in row):
        raise SimulatorError(f'{where}: give exactly one of "response" or "responses"')
    if "response" in row:
        answers = [row["response"]]
    else:
        answers = row["responses"]
        if not isinstance(answers, list) or not answers:
            raise SimulatorError(f'{where}: "responses" must be a non-empty list of strings')
    if not all(isinstance(answer, str) for answer in answers):
        raise SimulatorError(f"{where}: every response must be a string")
    return prompt.strip(), tuple(answers)


# --------------------------------------------------------------------------------------------
# Tokens, stop sequences and max_tokens
# --------------------------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """Count tokens with the documented rule: matches of ``\\w+|[^\\w\\s]``.

    It is not a real tokenizer, only deterministic and monotone in length, which is all that
    ``usage`` accounting and ``max_tokens`` tests need.
    """
    return sum(1 for _ in TOKEN_PATTERN.finditer(text))


def apply_stop_and_max_tokens(
    text: str, stop: Sequence[str] = (), max_tokens: int | None = None
) -> tuple[str, FinishReason]:
    """Cut ``text`` the way generation would have ended, returning it and ``finish_reason``.

    The earliest occurrence of any stop sequence ends the text (the sequence itself is not
    included, as with OpenAI). If what remains still has more than ``max_tokens`` tokens, the
    model would have run out first: the text ends after the last allowed token, with
    ``"length"``.
    """
    cuts = [index for sequence in stop if sequence and (index := text.find(sequence)) >= 0]
    if cuts:
        text = text[: min(cuts)]
    if max_tokens is not None:
        tokens = list(TOKEN_PATTERN.finditer(text))
        if len(tokens) > max_tokens:
            return text[: tokens[max_tokens - 1].end()], "length"
    return text, "stop"


# --------------------------------------------------------------------------------------------
# Arithmetic: finding, evaluating and explaining an expression
# --------------------------------------------------------------------------------------------

#: Scans text for the pieces of an expression. A number glued to a word character ("x2",
#: "mp3") is not a number; "1,200" is (thousands separators are dropped). ASCII mode, so that
#: CJK text counts as non-word characters: "计算12+3" holds "12+3".
_SCAN = re.compile(
    r"(?P<number>(?<![\w.,])(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?![\w]|,[0-9]))"
    r"|(?P<symbol>[-+*/()×÷−])"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.DOTALL | re.ASCII,
)
_SYMBOLS = {"×": "*", "÷": "/", "−": "-"}
_OPERATORS: dict[type[ast.operator], tuple[str, Callable[[Fraction, Fraction], Fraction]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
}
#: Bounds the parsing work per run of symbols (candidates grow quadratically) and the size of
#: the numbers a product can reach; real questions are far shorter.
_MAX_RUN_TOKENS = 60
#: Caps the parser calls per question (about 10 ms), so that no prompt, however adversarial,
#: can stall the event loop that serves every other request.
_MAX_PARSE_ATTEMPTS = 2000
_CANNOT_START = frozenset("*/)")
_CANNOT_END = frozenset("+-*/(")
MAX_EXPRESSION_CHARS = 300


class _Token(NamedTuple):
    text: str  # normalized to ASCII Python syntax: "1,200" -> "1200", "007" -> "7", "×" -> "*"
    start: int
    end: int


class _Parsed(NamedTuple):
    source: str  # the normalized, ASCII-only text that was parsed
    tree: ast.expr


class Step(NamedTuple):
    """One binary operation of a worked solution, e.g. ``12 * 9 = 108``."""

    left: Fraction
    op: str
    right: Fraction
    result: Fraction


@dataclass(frozen=True)
class Solution:
    """The expression found in a question (as written), its evaluation steps and value."""

    expression: str
    steps: tuple[Step, ...]
    value: Fraction


def _expression_runs(text: str) -> list[list[_Token]]:
    """Split ``text`` into maximal runs of numbers and operators separated only by spaces."""
    runs: list[list[_Token]] = [[]]
    for match in _SCAN.finditer(text):
        kind = match.lastgroup
        if kind == "other":
            runs.append([])
        elif kind != "space":
            piece = match.group()
            if kind == "number":  # Python rejects "007"; the thousands separators go too
                normalized = piece.replace(",", "").lstrip("0") or "0"
                normalized = "0" + normalized if normalized.startswith(".") else normalized
            else:
                normalized = _SYMBOLS.get(piece, piece)
            runs[-1].append(_Token(normalized, match.start(), match.end()))
    return [run for run in runs if run]


def _parse_arithmetic(tokens: Sequence[_Token]) -> _Parsed | None:
    """Parse tokens as a Python expression made only of numbers, + - * / and parentheses.

    Tokens are joined with spaces so that "* *" and "/ /" cannot become ``**`` or ``//``. The
    result must contain a binary operation: a lone number is not an expression to compute.
    """
    if not tokens or tokens[0].text in _CANNOT_START or tokens[-1].text in _CANNOT_END:
        return None  # cheap rejections before the parser
    source = " ".join(token.text for token in tokens)
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError:
        return None
    if not _is_arithmetic(tree) or not any(isinstance(n, ast.BinOp) for n in ast.walk(tree)):
        return None
    return _Parsed(source, tree)


def _is_arithmetic(node: ast.AST) -> bool:
    """Whether ``node`` uses only the operations :func:`_evaluate` knows (an allowlist)."""
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.UAdd | ast.USub) and _is_arithmetic(node.operand)
    if isinstance(node, ast.BinOp):
        return (
            type(node.op) in _OPERATORS and _is_arithmetic(node.left) and _is_arithmetic(node.right)
        )
    return False


def _find(text: str) -> tuple[str, _Parsed] | None:
    """Return the last expression in ``text`` (as written there) and its parse.

    "Last" means the one that ends latest; among those the longest, so in "Compute 2 * 3 + 4"
    the whole "2 * 3 + 4" wins over its tail "3 + 4", and an unbalanced "5 - (3 + 2" still
    yields "3 + 2". Searching from the end keeps the common case (the expression closes the
    question) cheap. Past :data:`_MAX_PARSE_ATTEMPTS` the search gives up (``None``).
    """
    attempts = 0
    for run in reversed(_expression_runs(text)):
        run = run[-_MAX_RUN_TOKENS:]
        for end in range(len(run), 0, -1):
            for start in range(end):
                if run[end - 1].end - run[start].start > MAX_EXPRESSION_CHARS:
                    continue
                attempts += 1
                if attempts > _MAX_PARSE_ATTEMPTS:
                    return None
                parsed = _parse_arithmetic(run[start:end])
                if parsed is not None:
                    return text[run[start].start : run[end - 1].end], parsed
    return None


def find_expression(text: str) -> str | None:
    """The last arithmetic expression in ``text``, exactly as written there, or ``None``.

    Integers, decimals and ``1,200``-style numbers combined with ``+ - * /`` (also ``× ÷ −``),
    unary signs and parentheses. Nothing is ever evaluated here; see :func:`evaluate_expression`.
    """
    found = _find(text)
    return found[0] if found else None


def _evaluate(parsed: _Parsed, steps: list[Step]) -> Fraction:
    """Evaluate an allowlisted tree exactly, appending each binary operation to ``steps``.

    This walker is the only evaluator: it raises on any node it does not know, so no name,
    call, attribute or power (``2 ** 10 ** 10``) can ever run. Literals are read from their
    source text, so "0.1" is exactly one tenth rather than the nearest binary float.
    """
    return _walk(parsed.tree, parsed.source, steps)


def _walk(node: ast.expr, source: str, steps: list[Step]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        # The source is ASCII, so the parser's byte offsets are character offsets.
        return Fraction(source[node.col_offset : node.end_col_offset])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        value = _walk(node.operand, source, steps)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left = _walk(node.left, source, steps)
        right = _walk(node.right, source, steps)
        symbol, function = _OPERATORS[type(node.op)]
        result = function(left, right)  # Fraction division by zero raises ZeroDivisionError
        steps.append(Step(left, symbol, right, result))
        return result
    raise ValueError(f"not allowed in an arithmetic expression: {type(node).__name__}")


def evaluate_expression(expression: str) -> Fraction:
    """Evaluate an arithmetic expression exactly and safely (an AST walk, never ``eval``).

    Raises ``ValueError`` for anything that is not numbers, ``+ - * /``, unary signs and
    parentheses -- ``__import__('os')`` is rejected before Python's parser even sees it -- and
    ``ZeroDivisionError`` for division by zero.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    runs = _expression_runs(expression)
    if len(runs) != 1 or any(m.lastgroup == "other" for m in _SCAN.finditer(expression)):
        raise ValueError(f"not an arithmetic expression: {expression!r}")
    source = " ".join(token.text for token in runs[0])
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as error:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from error
    return _evaluate(_Parsed(source, tree), [])


def solve(question: str) -> Solution | None:
    """Find and evaluate the last expression of ``question``; ``None`` if there is none.

    Division by zero also gives ``None``: the simulated model declines rather than inventing
    a number.
    """
    found = _find(question)
    if found is None:
        return None
    expression, parsed = found
    steps: list[Step] = []
    try:
        value = _evaluate(parsed, steps)
    except ZeroDivisionError:
        return None
    return Solution(expression.strip(), tuple(steps), value)


def format_number(value: Fraction | int, *, grouping: bool = False) -> str:
    """Format like an int when integral, else rounded half-up to at most 4 decimals.

    ``grouping`` adds thousands separators ("1,200"), which real models often write.
    """
    units = math.floor(abs(Fraction(value)) * 10_000 + Fraction(1, 2))
    whole, fraction = divmod(units, 10_000)
    sign = "-" if value < 0 and units else ""
    digits = f"{whole:,}" if grouping else str(whole)
    if fraction == 0:
        return f"{sign}{digits}"
    return f"{sign}{digits}.{fraction:04d}".rstrip("0")


def _dollars(value: Fraction) -> str:
    """``$1,200``, with a minus sign before the dollar sign when negative."""
    text = format_number(value, grouping=True)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


#: The final-answer formats, so that downstream answer extraction meets the variety real
#: models produce. The dollar style also groups thousands ("$1,200").
ANSWER_STYLES: tuple[Callable[[Fraction], str], ...] = (
    lambda value: f"The answer is {format_number(value)}.",
    lambda value: f"#### {format_number(value)}",
    lambda value: f"\\boxed{{{format_number(value)}}}",
    lambda value: f"So the result is {_dollars(value)}.",
)


def arithmetic_response(question: str, *, style: int = 0, offset: int = 0) -> str:
    """A short worked solution of ``question``'s last expression, ending in the answer.

    ``style`` indexes :data:`ANSWER_STYLES` (modulo its length); a non-zero ``offset`` makes
    the answer wrong by that much, shown in the last step as an arithmetic slip. An offset
    that would turn a non-negative answer negative is mirrored, since models slip by a little
    rather than flip signs. Without an expression the answer is :data:`NO_ANSWER`.
    """
    solution = solve(question)
    if solution is None:
        return NO_ANSWER
    if offset and solution.value >= 0 > solution.value + offset:
        offset = -offset
    answer = solution.value + offset
    lines = [f"Let's compute {solution.expression}."]
    for index, step in enumerate(solution.steps):
        is_last = index == len(solution.steps) - 1 and step.result == solution.value
        result = answer if is_last else step.result
        lines.append(
            f"{format_number(step.left)} {step.op} {format_number(step.right)}"
            f" = {format_number(result)}"
        )
    lines.append(ANSWER_STYLES[style % len(ANSWER_STYLES)](answer))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Deterministic answers
# --------------------------------------------------------------------------------------------


def messages_key(messages: Sequence[Message]) -> str:
    """A stable digest of the conversation (roles and texts), the basis of every draw."""
    canonical = json.dumps(
        [[message["role"], message["content"]] for message in messages],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _draw(purpose: str, key: str, seed: int | None, sample: int) -> float:
    """A uniform number in [0, 1) fixed by its inputs; ``purpose`` keeps draws independent."""
    material = json.dumps([purpose, key, seed, sample], separators=(",", ":"))
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def last_user_content(messages: Sequence[Message]) -> str:
    """The content of the last ``user`` message ("" if there is none): what gets answered."""
    for message in reversed(messages):
        if message["role"] == "user":
            return message["content"]
    return ""


def answer_for(
    messages: Sequence[Message], seed: int | None, choice_index: int, config: SimulatorConfig
) -> str:
    """The full (untruncated) answer of sample ``choice_index`` for ``messages`` and ``seed``.

    A pure function of its arguments. Order: a responses-file match on the stripped last user
    message (one of several responses picked by a draw); else the configured rule. For the
    arithmetic rule, the answer style and whether this sample is wrong (probability
    ``config.wrong_rate``) and by how much (1 to 5) are independent draws.
    """
    prompt = last_user_content(messages)
    key = messages_key(messages)
    canned = config.responses.get(prompt.strip())
    if canned:
        return canned[int(_draw("response", key, seed, choice_index) * len(canned))]
    if config.rule == "echo":
        return prompt
    style = int(_draw("style", key, seed, choice_index) * len(ANSWER_STYLES))
    offset = 0
    if _draw("wrong", key, seed, choice_index) < config.wrong_rate:
        size = 1 + int(_draw("wrong-size", key, seed, choice_index) * 5)
        offset = size if _draw("wrong-sign", key, seed, choice_index) < 0.5 else -size
    return arithmetic_response(prompt, style=style, offset=offset)


def fault_for(messages: Sequence[Message], attempt: int, config: SimulatorConfig) -> Fault | None:
    """The fault injected into attempt ``attempt`` (0 for the first) at ``messages``, if any.

    A pure function, so a test can predict what a fresh server will do: one SHA-256 draw over
    (``config.fault_seed``, the messages' digest, ``attempt``) lands in [0, 1), and the rates
    are stacked in :data:`FAULTS` order -- with a 500 rate of 0.1 and a 503 rate of 0.2, draws
    below 0.1 are 500s and draws in [0.1, 0.3) are 503s. Keying on the attempt rather than on
    arrival order keeps the faults independent of scheduling, yet gives a retry a new chance.
    """
    if not config.injects_faults:
        return None
    draw = _draw("fault", messages_key(messages), config.fault_seed, attempt)
    cumulative = 0.0
    for fault, rate in config.fault_rates().items():
        cumulative += rate
        if draw < cumulative:
            return fault
    return None


# --------------------------------------------------------------------------------------------
# The OpenAI wire format
# --------------------------------------------------------------------------------------------


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


def _invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat-completions request; ``messages`` hold plain-text contents."""

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
                raise _invalid("Only text content parts are supported.", f"{param}[{index}]")
            if not isinstance(part.get("text"), str):
                raise _invalid("A text content part needs a string 'text'.", f"{param}[{index}]")
            texts.append(part["text"])
        return "\n".join(texts)
    raise _invalid(f"Invalid type for '{param}': expected a string or an array.", param)


def _parse_messages(messages: object) -> tuple[dict[str, str], ...]:
    if messages is None:
        raise _invalid("Missing required parameter: 'messages'.", "messages")
    if not isinstance(messages, list):
        raise _invalid("Invalid type for 'messages': expected an array.", "messages")
    if not messages:
        raise _invalid("Invalid 'messages': empty array. Expected at least 1 message.", "messages")
    parsed = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _invalid(f"Invalid type for '{param}': expected an object.", param)
        role = message.get("role")
        if role not in ROLES:
            supported = ", ".join(f"'{name}'" for name in ROLES)
            raise _invalid(
                f"Invalid value for '{param}.role': {role!r}. Supported values are: {supported}.",
                f"{param}.role",
            )
        if "content" not in message:
            raise _invalid(f"Missing required parameter: '{param}.content'.", f"{param}.content")
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
            raise _invalid(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences.", "stop")
        return tuple(stop)
    raise _invalid("Invalid type for 'stop': expected a string or an array of strings.", "stop")


def _optional(body: dict[str, Any], name: str, check: Callable[[Any], bool], rule: str) -> Any:
    """``body[name]`` (None if absent or null), or a 400 naming the parameter and its rule."""
    value = body.get(name)
    if value is not None and not check(value):
        raise _invalid(f"Invalid value for '{name}': expected {rule}.", name)
    return value


def parse_chat_request(body: object) -> ChatRequest:
    """Validate a decoded request body, raising :class:`ApiError` (400) naming the parameter.

    Unknown parameters are ignored, so clients that send extras (``user``, ``logprobs``...)
    keep working. ``stream: true`` is refused because the simulator only answers whole
    responses, and a streaming client would misread one.
    """
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("You must provide a model parameter.", "model")
    messages = _parse_messages(body.get("messages"))
    if body.get("stream"):
        raise _invalid("Streaming is not supported by the rewardflow simulator.", "stream")
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
    return ChatRequest(
        model=model,
        messages=messages,
        n=1 if n is None else n,
        temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        max_tokens=max_tokens,
        stop=_parse_stop(body.get("stop")),
        seed=seed,
    )


def parse_text_completion_request(body: object) -> ChatRequest:
    """A ``/v1/completions`` body as the chat request it is answered as: prompt = user message.

    ``prompt`` must be one string (the legacy API's lists of prompts or token ids are refused,
    as the one-answer-per-request client never sends them); other parameters as for chat.
    """
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise _invalid("Invalid type for 'prompt': expected a string.", "prompt")
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
    request: ChatRequest, config: SimulatorConfig, first_sample: int = 0
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


def sample_stream_key(request: ChatRequest) -> str | None:
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
    request: ChatRequest,
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


# --------------------------------------------------------------------------------------------
# The aiohttp application
# --------------------------------------------------------------------------------------------


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
    return math.ceil(value - _EPSILON)


def _format_seconds(seconds: float) -> str:
    """A duration as OpenAI's reset headers write short ones: "0.05s", "1s" (ms precision)."""
    text = f"{_ceil(seconds * 1000) / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


class _TokenBucket:
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
        if self.tokens + _EPSILON < 1:
            return False
        self.tokens = max(self.tokens - 1, 0.0)
        return True

    def seconds_until_token(self) -> float:
        """How long until a whole token is available (0 if one is now)."""
        return max(1.0 - self.tokens, 0.0) / self.rate

    def seconds_until_next_token(self) -> float:
        """How long until the bucket holds one more whole token (0 when full)."""
        if self.tokens + _EPSILON >= self.capacity:
            return 0.0
        target = min(math.floor(self.tokens + _EPSILON) + 1, self.capacity)
        return max(target - self.tokens, 0.0) / self.rate

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*-requests`` headers; the limit is given per minute."""
        return {
            "x-ratelimit-limit-requests": str(round(self.rate * 60)),
            "x-ratelimit-remaining-requests": str(math.floor(self.tokens + _EPSILON)),
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
    bucket: _TokenBucket | None = None
    #: Set when the server shuts down, so that hanging requests end instead of delaying it.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.config.rate_limit_rps is not None:
            self.bucket = _TokenBucket(self.config.rate_limit_rps, time.monotonic())

    def reset(self) -> None:
        """Back to a fresh server's state: zero stats, no attempts or samples, a full bucket."""
        self.stats.reset()
        self.attempts.clear()
        self.samples_drawn.clear()
        if self.bucket is not None:
            self.bucket = _TokenBucket(self.bucket.rate, time.monotonic())

    def next_attempt(self, key: str) -> int:
        """This request's attempt number at ``key`` (0, 1, ...), counting it."""
        attempt = self.attempts.get(key, 0)
        self.attempts[key] = attempt + 1
        return attempt

    def first_sample(self, request: ChatRequest) -> int:
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
        raise _invalid(f"We could not parse the JSON body of your request: {error}.") from error


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


def _admit(state: _State, chat: ChatRequest) -> dict[str, str]:
    """Spend a rate-limit token, returning the ``x-ratelimit-*`` headers, or raise the 429.

    ``Retry-After`` is rounded up to whole seconds (at least 1), as providers send it, so a
    client that honours only it waits a little long; ``retry-after-ms`` is the exact wait.
    """
    bucket = state.bucket
    if bucket is None:
        return {}
    if bucket.take(time.monotonic()):
        return bucket.headers()
    state.stats.rate_limited += 1
    wait_s = bucket.seconds_until_token()
    wait_ms = max(_ceil(wait_s * 1000), 1)
    headers = bucket.headers()
    message = (
        f"Rate limit reached for {chat.model} on requests per min (RPM): "
        f"Limit {headers['x-ratelimit-limit-requests']}, Remaining 0. "
        f"Please try again in {wait_ms}ms."
    )
    headers |= {"Retry-After": str(max(_ceil(wait_s), 1)), "retry-after-ms": str(wait_ms)}
    raise ApiError(
        429, message, type="rate_limit_error", code="rate_limit_exceeded", headers=headers
    )


def _decide_fault(state: _State, chat: ChatRequest) -> Fault | None:
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


# --------------------------------------------------------------------------------------------
# Serving and the command line
# --------------------------------------------------------------------------------------------


def base_url(host: str, port: int) -> str:
    """The OpenAI-style base URL (ending in ``/v1``) of a server on ``host:port``."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{port}/v1"


@contextlib.asynccontextmanager
async def running_simulator(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve the simulator in the running event loop, yielding its base URL.

    ``port=0`` lets the OS pick a free port; the URL carries the real one. A port that cannot
    be bound raises :class:`SimulatorError`. Leaving the block stops the server, giving
    in-flight requests :data:`SHUTDOWN_TIMEOUT_S` to finish.
    """
    runner = web.AppRunner(build_app(config), shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            reason = error.strerror or str(error)
            raise SimulatorError(f"cannot listen on {host}:{port}: {reason}") from error
        yield base_url(host, runner.addresses[0][1])
    finally:
        await runner.cleanup()


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` once stdin reaches end of file.

    A generation job that starts the simulator holds the write end of its stdin; if that job
    is killed (even with ``kill -9``) the pipe closes and the simulator exits instead of
    lingering as an orphan.
    """

    def wait_for_eof() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_eof, daemon=True).start()


async def serve_until_signalled(
    config: SimulatorConfig, host: str, port: int, exit_on_stdin_eof: bool = False
) -> None:
    """Serve, announce the URL on stdout (one flushed line), and stop on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(signum, stop.set)
    if exit_on_stdin_eof:
        _stop_on_stdin_eof(loop, stop)
    async with running_simulator(config, host, port) as url:
        print(ANNOUNCEMENT.format(url=url), flush=True)
        await stop.wait()


if __name__ == "__main__":
    # ``python -m rewardflow.simulator`` predates ``rewardflow simulate``; launch commands in
    # users' configs still use it, so it stays, with the same options.
    from rewardflow.cli import main

    sys.exit(main(["simulate", *sys.argv[1:]]))
