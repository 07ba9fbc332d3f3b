"""Deterministic answers and fault draws: pure functions of the request and the config.

Every draw is SHA-256 over its inputs (never Python's salted ``hash()``), so the same request
gets the same answer in every process, and a fresh server meets the same faults.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from rewardflow.simulator.arithmetic import ANSWER_STYLES, arithmetic_response
from rewardflow.simulator.config import Fault, SimulatorConfig

Message = Mapping[str, str]

#: Bumped whenever the same request would be answered differently; part of the pipeline's
#: cache identity of the simulator (``rewardflow.generation.endpoint``). 2: samples differ at
#: temperature > 0 without a seed, and temperature 0 ignores the seed.
ANSWER_VERSION = 2


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
