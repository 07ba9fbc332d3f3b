"""Interval estimates for the summary's headline numbers, as pure functions.

Two cases, named in the output next to each interval:

* ``wilson``: one sample per prompt and pass/fail scores. The normal approximation breaks down
  near 0 and 1 (it gives [1, 1] for 20/20); Wilson's interval does not.
* ``bootstrap over prompts``: anything else (graded scores, several samples per prompt).
  Samples of one prompt are correlated, so the bootstrap resamples prompts, not samples, and
  a fixed seed makes the interval reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rewardflow.metrics import bootstrap_mean_ci

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    method: str
    prompts: int
    samples: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Estimate:
        """An estimate as :meth:`to_dict` wrote it (in summary.json)."""
        low, high = data["ci95"]
        return cls(
            float(data["mean"]),
            float(low),
            float(high),
            str(data["ci_method"]),
            int(data["prompts"]),
            int(data["samples"]),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean,
            "ci95": [self.low, self.high],
            "ci_method": self.method,
            "prompts": self.prompts,
            "samples": self.samples,
        }


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def estimate_mean(
    scores_by_prompt: Mapping[str, Sequence[float]], resamples: int = 2000, seed: int = 0
) -> Estimate | None:
    """Mean score over prompts (each prompt weighted once) with a 95% interval."""
    per_prompt = {key: values for key, values in scores_by_prompt.items() if values}
    if not per_prompt:
        return None
    samples = sum(len(values) for values in per_prompt.values())
    prompt_means = [sum(values) / len(values) for values in per_prompt.values()]
    count = len(prompt_means)
    mean = sum(prompt_means) / count
    single_binary = samples == count and all(
        value in (0.0, 1.0) for values in per_prompt.values() for value in values
    )
    if single_binary:
        low, high = wilson_interval(round(mean * count), count)
        return Estimate(mean, low, high, "wilson", count, samples)
    if count == 1:
        # Variation between prompts cannot be estimated from one prompt: say so, honestly wide.
        return Estimate(mean, 0.0, 1.0, "bootstrap over prompts (one prompt)", 1, samples)
    mean, low, high = bootstrap_mean_ci(per_prompt, resamples=resamples, seed=seed)
    return Estimate(mean, low, high, "bootstrap over prompts", count, samples)
