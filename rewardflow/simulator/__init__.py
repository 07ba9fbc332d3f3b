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
  ``--rate-limit-retry-after-only`` drops all but ``Retry-After``, as providers that publish no
  rate-limit headers answer, so a client has to find the limit from its 429s alone.
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

The package follows the order of a request, one concern per module: :mod:`.config` (the
options and the responses file), :mod:`.tokens`, :mod:`.arithmetic` (the simulated reasoning),
:mod:`.answers` (the deterministic draws), :mod:`.wire` (OpenAI's request and response
bodies), :mod:`.app` (the aiohttp application) and :mod:`.serve` (running it). Everything other
code uses is imported from here, ``rewardflow.simulator``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rewardflow.simulator.answers import (
    ANSWER_VERSION,
    answer_for,
    fault_for,
    last_user_content,
    messages_key,
)
from rewardflow.simulator.arithmetic import (
    ANSWER_STYLES,
    NO_ANSWER,
    Solution,
    Step,
    arithmetic_response,
    evaluate_expression,
    find_expression,
    format_number,
    solve,
)
from rewardflow.simulator.config import (
    DEFAULT_HANG_S,
    DEFAULT_LATENCY_SIGMA,
    DEFAULT_MODEL_NAME,
    FAULTS,
    LATENCY_DISTRIBUTIONS,
    RULES,
    Fault,
    SimulatorConfig,
    SimulatorError,
    load_responses,
)
from rewardflow.simulator.tokens import apply_stop_and_max_tokens, count_tokens

__all__ = [
    "ANSWER_STYLES",
    "ANSWER_VERSION",
    "DEFAULT_HANG_S",
    "DEFAULT_LATENCY_SIGMA",
    "DEFAULT_MODEL_NAME",
    "FAULTS",
    "LATENCY_DISTRIBUTIONS",
    "NO_ANSWER",
    "RULES",
    "ApiError",
    "Choice",
    "Fault",
    "ParsedChatRequest",
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

# The HTTP modules (app, serve, wire) import aiohttp's server, ~0.3 s: they load on first use
# of one of their names. A generation job needs only ANSWER_VERSION for its cache keys, and
# one whose every sample is cached starts no server and must not pay for it.
_HTTP_MODULES = ("app", "serve", "wire")
if TYPE_CHECKING:
    from rewardflow.simulator.app import SimulatorStats, build_app, draw_latency_ms
    from rewardflow.simulator.serve import base_url, running_simulator, serve_until_signalled
    from rewardflow.simulator.wire import (
        ApiError,
        Choice,
        ParsedChatRequest,
        completion_body,
        generate_choices,
        parse_chat_request,
        parse_text_completion_request,
        sample_stream_key,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        for module_name in _HTTP_MODULES:
            module = importlib.import_module(f"{__name__}.{module_name}")
            if hasattr(module, name):
                value = getattr(module, name)
                globals()[name] = value  # later lookups skip this function
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
