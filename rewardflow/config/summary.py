"""Typed settings of the summary stage: what the aggregate step computes ``summary.json`` from.

Built once from the validated config (the schema has filled every default, so nothing here
defaults a key again), or from the aggregate rule's params, which
:func:`rewardflow.config.rules.aggregate_params` cuts to the same shape: the summary's code
then reads attributes, never a config dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from rewardflow.config.generation import Price
from rewardflow.config.rules import primary_reward_name


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The ``metrics`` section: how pass@k, maj@k, breakdowns and every interval are computed."""

    pass_k: tuple[int, ...]
    maj_k: tuple[int, ...]
    #: A sample passes when its primary score is at least this.
    pass_threshold: float
    #: ``module:function`` finding a response's final answer (maj@k, unparsable); None: off.
    answer_extractor: str | None
    #: Metadata fields the primary score is broken down by.
    group_by: tuple[str, ...]
    #: Every bootstrap interval of the summary uses these two, so all of them reproduce.
    bootstrap_resamples: int
    seed: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        metrics = config["metrics"]
        return cls(
            pass_k=tuple(int(k) for k in metrics["pass_k"]),
            maj_k=tuple(int(k) for k in metrics["maj_k"]),
            pass_threshold=float(metrics["pass_threshold"]),
            answer_extractor=metrics["answer_extractor"],
            group_by=tuple(metrics["group_by"]),
            bootstrap_resamples=int(metrics["bootstrap_resamples"]),
            seed=int(metrics["seed"]),
        )

    def pass_ks(self, samples: int) -> list[int]:
        """The k of pass@k: as configured, else 1 and ``samples`` when a prompt has several
        (with one sample pass@1 is just the mean score, reported already)."""
        return sorted(set(self.pass_k or ([1, samples] if samples > 1 else [])))

    def maj_ks(self, samples: int) -> list[int]:
        """The k of maj@k: as configured, else ``samples`` when a prompt has several."""
        return sorted(set(self.maj_k or ([samples] if samples > 1 else [])))


@dataclass(frozen=True, slots=True)
class SummarySettings:
    """Everything the summary is computed from: ``run_name``, ``model.name``, the model's
    ``prices`` entry, ``generation.samples``, the ``rewards`` (names, which is primary) and
    ``metrics``."""

    run_name: str
    model: str
    price: Price | None
    samples: int
    #: Reward names in config order; the summary lists them in this order.
    rewards: tuple[str, ...]
    primary_reward: str
    metrics: MetricsSettings

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """From the validated config or the aggregate rule's params (the same keys)."""
        return cls(
            run_name=config["run_name"],
            model=config["model"]["name"],
            price=Price.of_model(config),
            samples=int(config["generation"]["samples"]),
            rewards=tuple(reward["name"] for reward in config["rewards"]),
            primary_reward=primary_reward_name(config),
            metrics=MetricsSettings.from_config(config),
        )
