"""The simulator's configuration: every knob of one server, validated once at startup.

Also the responses file (JSONL rows of canned answers) and the names the other modules share:
the rules, the faults in their draw order and :class:`SimulatorError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from rewardflow.errors import RewardflowError

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
LatencyDistribution = Literal["uniform", "lognormal"]

RULES: tuple[Rule, ...] = get_args(Rule)
#: The injectable faults, in the order their rates are stacked in [0, 1) (see :func:`fault_for`):
#: the order of the ``Fault`` literal, so a new fault is added in one place.
FAULTS: tuple[Fault, ...] = get_args(Fault)
DEFAULT_HANG_S = 3600.0
DEFAULT_MODEL_NAME = "rewardflow-simulator"
LATENCY_DISTRIBUTIONS: tuple[LatencyDistribution, ...] = ("uniform", "lognormal")
DEFAULT_LATENCY_SIGMA = 1.0
#: Slack for float arithmetic: rates that add up to 1.0000000000000002 are still fine, and a
#: token bucket refilled to 0.9999999999 tokens holds one token.
EPSILON = 1e-9


class SimulatorError(RewardflowError):
    """The simulator cannot start: a bad option, a missing API key, a malformed responses file."""


@dataclass
class SimulatorConfig:
    """Everything that decides how the simulator behaves; one instance per server.

    ``responses`` maps the stripped text of a last user message to its canned answers (see
    :func:`load_responses`); a plain string value is taken as a single answer. ``api_key`` is
    excluded from ``repr`` so that logging a config can never leak it.

    The fault-injection fields (see the docstring of :mod:`rewardflow.simulator`) all default
    to off: ``rate_limit_rps`` is ``None`` and every ``*_rate`` is 0. The rates are
    probabilities of mutually exclusive outcomes of one draw, so they must add up to at most 1.
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
    #: False: the rate limit's answers carry no ``x-ratelimit-*`` headers and its 429s only a
    #: whole-second ``Retry-After``, as some providers send them (a client must find the limit).
    rate_limit_headers: bool = True
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
        if total > 1.0 + EPSILON:
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
