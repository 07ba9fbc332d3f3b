"""``rewardflow simulate``: serve the simulated OpenAI-compatible model (rewardflow.simulator).

The options map one to one onto :class:`rewardflow.simulator.SimulatorConfig`; the server, its
answers and its faults are all in :mod:`rewardflow.simulator`. Exit status: 2 for bad options
(with a one-line message), 1 for a port that cannot be bound, 0 after SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from rewardflow.cli.errors import UsageError
from rewardflow.simulator import (
    DEFAULT_HANG_S,
    DEFAULT_LATENCY_SIGMA,
    DEFAULT_MODEL_NAME,
    LATENCY_DISTRIBUTIONS,
    RULES,
    SimulatorConfig,
    SimulatorError,
    load_responses,
    serve_until_signalled,
)


def add_parser(commands: argparse._SubParsersAction, **named: Any) -> argparse.ArgumentParser:
    """Register the command; ``named`` is its name, aliases and one-line help (cli/main.py)."""
    parser = commands.add_parser(
        **named,
        description="Serve a simulated OpenAI-compatible chat model for demos and tests. "
        "It prints 'rewardflow simulator listening on URL' once it is ready.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port to bind; 0 picks a free one (%(default)s)"
    )
    parser.add_argument(
        "--model",
        "--model-name",
        dest="model",
        metavar="NAME",
        default=DEFAULT_MODEL_NAME,
        help="the model name /v1/models lists (%(default)s)",
    )
    parser.add_argument("--rule", choices=RULES, default="arithmetic", help="(%(default)s)")
    parser.add_argument(
        "--responses", type=Path, metavar="FILE", help="JSONL of canned answers per prompt"
    )
    parser.add_argument(
        "--wrong-rate",
        type=float,
        default=0.2,
        help="probability that a sample is wrong, independently per sample (%(default)s)",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="mean delay (%(default)s)")
    parser.add_argument(
        "--latency-jitter-ms",
        type=float,
        default=0.0,
        help="uniform +/- around the mean (%(default)s)",
    )
    parser.add_argument(
        "--latency-distribution",
        choices=LATENCY_DISTRIBUTIONS,
        default="uniform",
        help="uniform: mean +/- jitter; lognormal: mean --latency-ms with a long tail of "
        "stragglers (%(default)s)",
    )
    parser.add_argument(
        "--latency-sigma",
        type=float,
        default=DEFAULT_LATENCY_SIGMA,
        help="shape of the lognormal latency; larger means a longer tail (%(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seeds the latency draws, never answers (%(default)s)",
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when standard input closes, i.e. when the process that started us dies",
    )
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require 'Authorization: Bearer <key>' with the key read from this variable",
    )
    keys.add_argument(
        "--api-key",
        metavar="KEY",
        help="like --api-key-env, but the key is visible to anyone who can run ps; "
        "prefer --api-key-env",
    )
    _add_fault_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def _add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group(
        "fault injection",
        "All off by default. Whether a request suffers a fault, and which, is a SHA-256 draw "
        "over (--fault-seed, the request's messages, how many times this server has already "
        "seen those messages), compared against the cumulative rates in the order 500, 503, "
        "drop, malformed, hang, non-UTF-8, null content, tool calls only, empty choices. "
        "So a fresh server injects the same faults into the same "
        "prompts whatever the request order, and a retry gets a fresh draw. The rates must "
        "add up to at most 1. Order per request: auth (401), validation (400), rate limit "
        "(429), fault decision, latency wait, answer.",
    )
    faults.add_argument(
        "--rate-limit-rps",
        type=float,
        metavar="R",
        help="token bucket of R requests/s with one second of burst; when empty, answer 429 "
        "with Retry-After (whole seconds, rounded up), retry-after-ms and x-ratelimit-* headers",
    )
    faults.add_argument(
        "--rate-limit-retry-after-only",
        action="store_true",
        help="with --rate-limit-rps: send no x-ratelimit-* headers and 429s with only "
        "Retry-After (whole seconds), so a client has to find the limit from the 429s",
    )
    rates = [
        ("--error-500-rate", "answered 500 server_error"),
        ("--error-503-rate", "answered 503 service unavailable"),
        ("--drop-rate", "whose connection is closed unanswered"),
        ("--malformed-rate", "answered 200 with truncated JSON or, alternately, no 'choices'"),
        ("--hang-rate", "left unanswered for --hang-s seconds"),
        ("--non-utf8-rate", "answered 200 with a JSON body that is not valid UTF-8"),
        ("--null-content-rate", "answered 200 with message content null"),
        ("--tool-calls-only-rate", "answered 200 with a tool call and no text content"),
        ("--empty-choices-rate", "answered 200 with an empty 'choices' list"),
    ]
    for flag, what in rates:
        faults.add_argument(
            flag, type=float, default=0.0, metavar="P", help=f"fraction {what} (%(default)s)"
        )
    faults.add_argument(
        "--hang-s",
        type=float,
        default=DEFAULT_HANG_S,
        help="how long a hanging request waits before it is answered (%(default)s)",
    )
    faults.add_argument(
        "--fault-seed",
        type=int,
        default=0,
        help="seeds the fault draws; it never changes an answer (%(default)s)",
    )
    faults.add_argument(
        "--echo-key-on-401",
        action="store_true",
        help="quote the offered (wrong) key in the 401 body, as some providers do",
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Turn parsed options into a config, loading the responses file and reading the key."""
    api_key = args.api_key
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "")
        if not api_key.strip():
            raise SimulatorError(f"--api-key-env: the variable {args.api_key_env} is not set")
    return SimulatorConfig(
        model_name=args.model,
        rule=args.rule,
        responses=load_responses(args.responses) if args.responses else {},
        wrong_rate=args.wrong_rate,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        latency_distribution=args.latency_distribution,
        latency_sigma=args.latency_sigma,
        seed=args.seed,
        api_key=api_key,
        rate_limit_rps=args.rate_limit_rps,
        rate_limit_headers=not args.rate_limit_retry_after_only,
        error_500_rate=args.error_500_rate,
        error_503_rate=args.error_503_rate,
        drop_rate=args.drop_rate,
        malformed_rate=args.malformed_rate,
        hang_rate=args.hang_rate,
        hang_s=args.hang_s,
        fault_seed=args.fault_seed,
        non_utf8_rate=args.non_utf8_rate,
        null_content_rate=args.null_content_rate,
        tool_calls_only_rate=args.tool_calls_only_rate,
        empty_choices_rate=args.empty_choices_rate,
        echo_key_on_401=args.echo_key_on_401,
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except SimulatorError as error:
        raise UsageError(str(error)) from error
    # A SIGINT before the handlers were installed is a clean stop too.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_until_signalled(config, args.host, args.port, args.exit_on_stdin_eof))
    return 0
