"""Typed settings of the prompts stage: where the rows come from and how a prompt is built.

Built from the validated config (or the prepare rule's params, which hold the same sections:
:func:`rewardflow.config.rules.prepare_params`) and handed to :mod:`rewardflow.prompts`. The
generation stage uses :class:`PromptSettings` too, to show each sample its own option order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class HubDataset:
    """``dataset.huggingface``: a dataset on the Hugging Face hub, read by ``datasets``."""

    repo: str
    config: str | None
    split: str
    revision: str | None

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> Self:
        return cls(
            repo=section["repo"],
            config=section["config"],
            split=section["split"],
            revision=section["revision"],
        )


@dataclass(frozen=True, slots=True)
class DatasetSettings:
    """The ``dataset`` section: the row source and which row fields mean what.

    ``format`` is ``auto`` until :func:`rewardflow.prompts.dataset.resolve_dataset` detects it
    and fills in the field mapping that format implies (``messages_field`` for chat JSONL...).
    """

    path: str | None
    format: str
    messages_field: str | None
    huggingface: HubDataset | None
    id_field: str | None
    ground_truth_field: str | None
    ground_truth_pattern: str | None
    response_field: str | None
    limit: int | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        dataset = config["dataset"]
        hub = dataset["huggingface"]
        return cls(
            path=dataset["path"],
            format=dataset["format"],
            messages_field=dataset["messages_field"],
            huggingface=HubDataset.from_config(hub) if hub is not None else None,
            id_field=dataset["id_field"],
            ground_truth_field=dataset["ground_truth_field"],
            ground_truth_pattern=dataset["ground_truth_pattern"],
            response_field=dataset["response_field"],
            limit=dataset["limit"],
        )


@dataclass(frozen=True, slots=True)
class FewShotExample:
    """One ``prompt.few_shot`` entry: a user turn and the assistant's answer to it."""

    user: str
    assistant: str


@dataclass(frozen=True, slots=True)
class ShuffleOptions:
    """``prompt.shuffle_options``: multiple-choice options shown in a new order per sample."""

    options_field: str
    answer_field: str
    seed: int


@dataclass(frozen=True, slots=True)
class PromptSettings:
    """The ``prompt`` section: the system message, the template, few-shot turns, shuffling."""

    system: str | None
    template: str
    few_shot: tuple[FewShotExample, ...]
    shuffle_options: ShuffleOptions | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        prompt = config["prompt"]
        shuffle = prompt["shuffle_options"]
        return cls(
            system=prompt["system"],
            template=prompt["template"],
            few_shot=tuple(
                FewShotExample(example["user"], example["assistant"])
                for example in prompt["few_shot"]
            ),
            shuffle_options=ShuffleOptions(
                options_field=shuffle["options_field"],
                answer_field=shuffle["answer_field"],
                seed=int(shuffle["seed"]),
            )
            if shuffle
            else None,
        )


@dataclass(frozen=True, slots=True)
class PrepareSettings:
    """What the prepare step reads: ``dataset``, ``prompt`` and ``generation.enabled``.

    ``generation_enabled: false`` means the rows bring their responses (``response_field``).
    """

    dataset: DatasetSettings
    prompt: PromptSettings
    generation_enabled: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        return cls(
            dataset=DatasetSettings.from_config(config),
            prompt=PromptSettings.from_config(config),
            generation_enabled=bool(config["generation"]["enabled"]),
        )
