"""Token counting and the two ways generation ends early: a stop sequence or ``max_tokens``.

Not a real tokenizer, only a documented, deterministic rule, so that ``usage`` and truncation
are predictable in tests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

FinishReason = Literal["stop", "length"]

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Count tokens with the documented rule: matches of ``\\w+|[^\\w\\s]``.

    It is not a real tokenizer, only deterministic and monotone in length, which is all that
    ``usage`` accounting and ``max_tokens`` tests need.
    """
    return len(TOKEN_PATTERN.findall(text))  # the pattern has no groups: one item per match


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
