"""Multiple-choice options shuffled per sample (``prompt.shuffle_options``).

A model that prefers a position ("C" is right more often than chance on many benchmarks) looks
better or worse than it is when every sample sees the options in the dataset's order. Shuffling
them per sample measures the model rather than the position, and with several samples per
prompt it averages over positions too.

The shuffle is a pure function of (seed, prompt id, sample index), drawn with SHA-256, so a
rerun and every machine see the same orders, and sample *i* of a prompt keeps its order when
``generation.samples`` is raised. It lives here rather than in the prepare stage alone because
samples are expanded by the generation stage: prepare writes each prompt as sample 0 sees it
(its file is what users read), and generation asks :func:`for_sample` for the others.

The record keeps the mapping (``choices``, see docs/records.md), so the letter a response gives
is scored against the position the right option had in *that* sample's prompt.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from rewardflow.config.prompts import PrepareSettings, PromptSettings
from rewardflow.errors import DatasetError
from rewardflow.prompts.dataset import Row
from rewardflow.records import PromptRecord

LETTERS = string.ascii_uppercase


def shuffled_order(count: int, seed: int, prompt_id: str, sample_index: int) -> list[int]:
    """A permutation of ``range(count)``: position k shows original option ``order[k]``.

    Each option gets a SHA-256 sort key over its inputs: a uniformly random permutation that
    depends on nothing else (never on Python's salted ``hash()`` or ``random``'s algorithm).
    """

    def key(option: int) -> bytes:
        material = json.dumps([seed, prompt_id, sample_index, option], separators=(",", ":"))
        return hashlib.sha256(material.encode("utf-8")).digest()

    return sorted(range(count), key=key)


def answer_index(answer: Any, options: Sequence[str], where: str) -> int:
    """The original position of the right option: given as its index, its text or its letter.

    The text is tried before the letter, so an option that is itself "A" is found by text.
    """
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < len(options):
            return answer
    elif isinstance(answer, str):
        stripped = answer.strip()
        for position, option in enumerate(options):
            if option.strip() == stripped:
                return position
        letter = stripped.strip("()").upper()
        if len(letter) == 1 and letter in LETTERS[: len(options)]:
            return LETTERS.index(letter)
    raise DatasetError(
        f"{where}: the answer {answer!r} is neither an option's text, its letter "
        f"(A-{LETTERS[len(options) - 1]}) nor its index (0-{len(options) - 1})"
    )


def format_options(options: Sequence[str]) -> str:
    """The options as the prompt shows them: one ``A. text`` line each."""
    return "\n".join(f"{LETTERS[k]}. {text}" for k, text in enumerate(options))


def _options(metadata: Mapping[str, Any], field: str, where: str) -> list[str]:
    options = metadata.get(field)
    if (
        not isinstance(options, list)
        or not 2 <= len(options) <= len(LETTERS)
        or not all(isinstance(option, str) for option in options)
    ):
        raise DatasetError(
            f"{where}: prompt.shuffle_options.options_field {field!r} must hold a list of 2 to "
            f"{len(LETTERS)} option texts, got {options!r}"[:300]
        )
    return options


def for_sample(prompt: PromptRecord, sample_index: int, settings: PromptSettings) -> PromptRecord:
    """The prompt as sample ``sample_index`` sees it: its options in that sample's order.

    Without ``prompt.shuffle_options`` the prompt is returned unchanged. Otherwise the user
    message is rendered again from the row (``metadata``) with the template's options field
    replaced by the shuffled, lettered list; the ground truth becomes the right option's letter
    and ``choices`` records the order. The system message and few-shot turns stay as they are.
    """
    shuffle = settings.shuffle_options
    if shuffle is None:
        return prompt
    where = Row(prompt.metadata, prompt.source).location if prompt.source else prompt.id
    field, answer_field = shuffle.options_field, shuffle.answer_field
    options = _options(prompt.metadata, field, where)
    if answer_field not in prompt.metadata:
        raise DatasetError(f"{where}: missing answer field {answer_field!r}")
    right = answer_index(prompt.metadata[answer_field], options, where)
    order = shuffled_order(len(options), shuffle.seed, prompt.id, sample_index)
    shown = [options[original] for original in order]
    letter = LETTERS[order.index(right)]
    row = {**prompt.metadata, field: format_options(shown)}
    try:
        user = settings.template.format_map(row)
    except (KeyError, AttributeError, IndexError, TypeError, ValueError) as error:
        raise DatasetError(f"{where}: prompt.template cannot be filled: {error!r}") from None
    messages = [dict(message) for message in prompt.messages]
    messages[-1] = {**messages[-1], "content": user}
    return replace(
        prompt,
        messages=messages,
        ground_truth=letter,
        choices={"order": order, "answer": letter},
    )


def check_settings(settings: PrepareSettings) -> None:
    """Settings that cannot go with shuffled options, refused before any prompt is written."""
    shuffle = settings.prompt.shuffle_options
    if shuffle is None:
        return
    field = shuffle.options_field
    if f"{{{field}}}" not in settings.prompt.template:
        raise DatasetError(
            f"prompt.shuffle_options: prompt.template must show the options as {{{field}}}"
        )
    for key, value, why in (
        (
            "messages_field",
            settings.dataset.messages_field,
            "the dataset brings its own messages, which are used as-is",
        ),
        (
            "ground_truth_field",
            settings.dataset.ground_truth_field,
            "the ground truth is the shuffled letter of answer_field",
        ),
    ):
        if value:
            raise DatasetError(f"prompt.shuffle_options cannot go with dataset.{key}: {why}")
    if not settings.generation_enabled:
        raise DatasetError(
            "prompt.shuffle_options cannot go with generation.enabled: false: the existing "
            "responses answered options in an order rewardflow does not know"
        )
