"""pass@k, maj@k, spread, unparsable answers and breakdowns, as the summary reports them."""

from __future__ import annotations

import pytest

from rewardflow.config import section_defaults
from rewardflow.config.summary import SummarySettings
from rewardflow.records import ResponseRecord, ScoreRecord
from rewardflow.summary.aggregate import tally_run
from rewardflow.summary.run_metrics import breakdowns, sampling_summary


def sample(prompt: str, index: int, response: str, score: float, level: str = "1"):
    record = ResponseRecord(
        id=prompt, sample_index=index, status="ok", messages=[], ground_truth="4",
        response=response, metadata={"level": level},
    )  # fmt: skip
    scored = ScoreRecord(
        id=prompt, sample_index=index, status="scored", score=score, rewards={},
        metadata={"level": level},
    )  # fmt: skip
    return record, scored


def run(samples):
    responses, scores = zip(*samples, strict=True)
    return list(responses), list(scores)


def settings(samples: int, **metrics) -> SummarySettings:
    return SummarySettings.from_config({
        "run_name": "r", "model": {"name": "m"}, "prices": {}, "generation": {"samples": samples},
        "metrics": {**section_defaults("metrics"), **metrics}, "rewards": [{"name": "accuracy"}],
    })  # fmt: skip


def sampling(config: SummarySettings, responses, scores):
    """The summary's sampling section, from the records streamed as the aggregate step does."""
    scored = tally_run(config, responses, scores).scored_samples()
    return sampling_summary(config.metrics, config.samples, scored)


def test_pass_and_maj_at_k_from_four_samples_per_prompt():
    # p1: answers 4,4,5,4 (3 right); p2: 5,5,4,6 (1 right); p3: no answer found in any.
    responses, scores = run(
        [sample("p1", i, f"#### {a}", float(a == 4)) for i, a in enumerate([4, 4, 5, 4])]
        + [sample("p2", i, f"#### {a}", float(a == 4)) for i, a in enumerate([5, 5, 4, 6])]
        + [sample("p3", i, "no idea", 0.0) for i in range(4)]
    )
    section = sampling(settings(4), responses, scores)

    # pass@1 = mean(c/n) = (3/4 + 1/4 + 0) / 3; pass@4 = (1 + 1 + 0) / 3
    assert section["pass_at_k"]["1"]["mean"] == pytest.approx((0.75 + 0.25) / 3)
    assert section["pass_at_k"]["4"]["mean"] == pytest.approx(2 / 3)
    # maj@4: p1 majority 4 (right), p2 majority 5 (wrong), p3 no answer (wrong)
    assert section["maj_at_k"]["4"]["mean"] == pytest.approx(1 / 3)
    assert section["maj_at_k"]["4"]["ci_method"] == "bootstrap over prompts"
    assert section["unparsable"] == 4
    assert section["spread"]["disagreement_rate"] == pytest.approx(2 / 3)


def test_configured_ks_and_threshold_are_used():
    responses, scores = run([sample("p", i, "x", s) for i, s in enumerate([0.4, 0.6, 0.9])])
    config = settings(3, pass_k=[2], pass_threshold=0.5, answer_extractor=None)
    section = sampling(config, responses, scores)
    # two of three samples pass at 0.5: pass@2 = 1 - C(1,2)/C(3,2) = 1
    assert list(section["pass_at_k"]) == ["2"]
    assert section["pass_at_k"]["2"]["mean"] == 1.0
    assert "maj_at_k" not in section and "unparsable" not in section


def test_breakdowns_group_prompts_by_a_metadata_field():
    _, scores = run(
        [sample("a", 0, "", 1.0, "1"), sample("b", 0, "", 0.0, "1"), sample("c", 0, "", 1.0, "2")]
    )
    config = settings(1, group_by=["level", "subject"])
    scored = tally_run(config, [], scores).scored_samples()
    groups = breakdowns(scored, ["level", "subject"], resamples=200, seed=0)
    assert groups["level"]["1"]["mean"] == 0.5 and groups["level"]["1"]["prompts"] == 2
    assert groups["level"]["2"]["mean"] == 1.0
    assert list(groups["subject"]) == ["(missing)"]
    assert groups["subject"]["(missing)"]["prompts"] == 3
