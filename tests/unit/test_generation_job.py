"""The generation job (rewardflow.generation.job) end to end, against a fake chat client.

No network and no Snakemake: ``generate_shard`` is called as the rule script calls it, with
settings built from a validated config whose ``model.provider`` is the fake client
(tests/unit/fake_chat_client.py). What is checked is behaviour a user relies on: misses are
requested once and hits never, failures become failure records and stay out of the cache,
the budget stops sending, identical requests are sent once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fake_chat_client import PROVIDER, FakeChatClient

from rewardflow.config import GenerationStageSettings, validate_config
from rewardflow.errors import MissingApiKeyError, ModelAuthError
from rewardflow.generation.cache import GenerationSettings, JournalTail, ResponseCache
from rewardflow.generation.fetch import _FreshLook
from rewardflow.generation.job import GenerationIncomplete, generate_shard
from rewardflow.jsonl import read_jsonl, write_jsonl_atomic
from rewardflow.records import PromptRecord

QUESTIONS = ["What is 1 + 1?", "What is 2 + 2?", "What is 3 + 3?"]


@pytest.fixture(autouse=True)
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeChatClient]:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    FakeChatClient.reset()
    return FakeChatClient


def settings(tmp_path: Path, **sections: dict[str, Any]) -> GenerationStageSettings:
    # No adaptive rate: its slow start would only make these tests wait.
    generation = {
        "temperature": 0.7,
        "samples": 2,
        "adaptive_rate": False,
        **sections.pop("generation", {}),
    }
    model = {"provider": PROVIDER, "name": "fake", "base_url": "http://fake.invalid/v1"}
    config = validate_config(
        {
            "run_name": "unit",
            "dataset": {"path": "unused.jsonl"},
            "shards": 1,
            "model": {**model, **sections.pop("model", {})},
            "generation": generation,
            "cache": {"dir": str(tmp_path / "cache")},
            "rewards": [{"name": "r", "function": "m:f"}],
            **sections,
        }
    )
    return GenerationStageSettings.from_config(config)


def write_prompts(tmp_path: Path, questions: list[str] = QUESTIONS) -> Path:
    path = tmp_path / "prompts.jsonl"
    records = [
        PromptRecord(f"q{index}", [{"role": "user", "content": text}], str(index)).to_dict()
        for index, text in enumerate(questions)
    ]
    write_jsonl_atomic(path, records)
    return path


def run(tmp_path: Path, stage: GenerationStageSettings, name: str = "out", **kwargs: Any):
    output = tmp_path / f"{name}.jsonl"
    report = generate_shard(
        write_prompts(tmp_path, **kwargs), output, stage, "unit.shard-000",
        tmp_path / f"{name}.stats.json",
    )  # fmt: skip
    records = [data for _, data in read_jsonl(output)] if output.exists() else []
    return report, records


def cached_keys(tmp_path: Path) -> set[str]:
    return {
        json.loads(line)["key"]
        for journal in (tmp_path / "cache").glob("*/*.jsonl")
        for line in journal.read_text().splitlines()
        if line.strip()
    }


def test_each_missing_sample_is_requested_once_and_published_in_prompt_order(tmp_path):
    report, records = run(tmp_path, settings(tmp_path))
    assert len(FakeChatClient.requests) == 6 == report.requested
    assert [(r["id"], r["sample_index"]) for r in records] == [
        (f"q{i}", s) for i in range(3) for s in range(2)
    ]
    assert all(record["status"] == "ok" for record in records)
    assert records[1]["response"] == "answer to What is 1 + 1? (seed None)"
    assert json.loads((tmp_path / "out.stats.json").read_text())["requested"] == 6


def test_a_rerun_requests_nothing_the_cache_holds(tmp_path):
    _, first = run(tmp_path, settings(tmp_path))
    FakeChatClient.reset()
    report, again = run(tmp_path, settings(tmp_path), name="again")
    assert FakeChatClient.requests == []
    assert FakeChatClient.built == []  # no client is even built when nothing is missing
    assert (report.cached, report.requested) == (6, 0)
    assert [r["response"] for r in again] == [r["response"] for r in first]


def test_operational_knobs_keep_the_cache_keys(tmp_path):
    run(tmp_path, settings(tmp_path))
    FakeChatClient.requests.clear()
    knobs = {"concurrency": 1, "timeout_s": 3, "max_attempts": 1, "requests_per_minute": 6000}
    report, _ = run(tmp_path, settings(tmp_path, generation=knobs), name="again")
    assert report.requested == 0 and report.cached == 6


def test_an_identity_setting_changes_the_keys(tmp_path):
    run(tmp_path, settings(tmp_path))
    FakeChatClient.requests.clear()
    report, _ = run(tmp_path, settings(tmp_path, generation={"max_tokens": 7}), name="again")
    assert report.requested == 6
    assert {request.max_tokens for request in FakeChatClient.requests} == {7}


def test_the_request_carries_the_identity_and_the_seed_per_sample(tmp_path):
    extra = {"stop": "END", "seed": 40, "top_p": 0.5, "extra_body": {"top_k": 3}}
    run(tmp_path, settings(tmp_path, generation=extra))
    request = FakeChatClient.requests[0]
    assert (request.model, request.temperature, request.top_p) == ("fake", 0.7, 0.5)
    assert (tuple(request.stop), dict(request.extra_body)) == (("END",), {"top_k": 3})
    assert sorted({r.seed for r in FakeChatClient.requests}) == [40, 41]


def test_the_client_is_built_from_the_model_and_job_settings(tmp_path):
    stage = settings(
        tmp_path,
        model={"options": {"flavour": "plain"}},
        generation={"timeout_s": 9, "concurrency": 3},
    )
    run(tmp_path, stage)
    (built,) = FakeChatClient.built
    assert built.base_url == "http://fake.invalid/v1"
    assert (built.timeout_s, built.connection_limit) == (9.0, 3)
    assert dict(built.options) == {"flavour": "plain"}


def test_identical_requests_are_sent_once(tmp_path):
    report, records = run(tmp_path, settings(tmp_path), questions=["Same?", "Same?", "Other?"])
    assert len(FakeChatClient.requests) == 4  # two prompts x two samples, not three
    assert report.coalesced == 2
    assert records[0]["response"] == records[2]["response"]
    assert records[0]["cache_key"] == records[2]["cache_key"]


def test_greedy_samples_share_sample_zeros_request(tmp_path):
    stage = settings(tmp_path, generation={"temperature": 0.0, "samples": 3})
    report, records = run(tmp_path, stage)
    assert len(FakeChatClient.requests) == 3
    assert report.greedy_shared == 6
    assert len({r["response"] for r in records if r["id"] == "q0"}) == 1
    independent = {"temperature": 0.0, "samples": 3, "independent_samples": True}
    FakeChatClient.requests.clear()
    run(tmp_path, settings(tmp_path, generation=independent), name="independent")
    assert len(FakeChatClient.requests) == 6  # samples 1 and 2 of each prompt: new keys


def test_a_failed_sample_is_a_failure_record_and_is_not_cached(tmp_path):
    FakeChatClient.refuse = {QUESTIONS[1]}
    stage = settings(tmp_path, generation={"max_failed_fraction": 0.5})
    report, records = run(tmp_path, stage)
    failed = [record for record in records if record["status"] == "failed"]
    assert report.failed == 2 == len(failed)
    assert {record["id"] for record in failed} == {"q1"}
    assert failed[0]["response"] is None
    assert failed[0]["error"]["type"] == "ModelInvalidRequestError"
    assert not {record["cache_key"] for record in failed} & cached_keys(tmp_path)
    # Once the endpoint accepts it, a rerun requests exactly the failed samples.
    FakeChatClient.reset()
    report, records = run(tmp_path, stage, name="again")
    assert [str(r.messages[-1]["content"]) for r in FakeChatClient.requests] == [QUESTIONS[1]] * 2
    assert report.cached == 4 and all(record["status"] == "ok" for record in records)


def test_too_many_failures_fail_the_job_without_publishing(tmp_path):
    FakeChatClient.refuse = {QUESTIONS[0]}
    with pytest.raises(GenerationIncomplete, match="generation.max_failed_fraction=0.0"):
        run(tmp_path, settings(tmp_path))
    assert not (tmp_path / "out.jsonl").exists()
    assert len(cached_keys(tmp_path)) == 4  # what succeeded is kept for the rerun


def test_a_refused_key_stops_the_job(tmp_path):
    FakeChatClient.reject_key = True
    stage = settings(tmp_path, generation={"concurrency": 1, "max_failed_fraction": 1.0})
    with pytest.raises(ModelAuthError):
        run(tmp_path, stage)
    assert len(FakeChatClient.requests) == 1
    assert not (tmp_path / "out.jsonl").exists()


def test_a_missing_api_key_stops_the_job_before_any_request(tmp_path, monkeypatch):
    monkeypatch.delenv("FAKE_KEY_FOR_TEST", raising=False)
    stage = settings(tmp_path, model={"api_key_env": "FAKE_KEY_FOR_TEST"})
    with pytest.raises(MissingApiKeyError, match="FAKE_KEY_FOR_TEST"):
        run(tmp_path, stage)
    assert FakeChatClient.requests == []


def test_the_budget_stops_sending_and_unsent_samples_are_not_attempted(tmp_path):
    # Each request reserves its worst case (prompt estimate + max_tokens = 20 + 8 or so) and
    # then costs the fake's 15 tokens: a budget of 60 admits a few of the six, not all.
    stage = settings(
        tmp_path, generation={"concurrency": 1, "max_tokens": 8}, budget={"max_tokens": 60}
    )
    report, records = run(tmp_path, stage)
    sent = len(FakeChatClient.requests)
    assert 0 < sent < 6
    assert report.not_attempted == 6 - sent
    assert report.spent_prompt_tokens + report.spent_completion_tokens == 15 * sent <= 60
    assert "budget.max_tokens" in report.budget_note
    unsent = [record for record in records if record["status"] == "not_attempted"]
    assert len(unsent) == 6 - sent
    assert unsent[0]["error"]["type"] == "BudgetExhausted"
    # Raising the budget sends only what was not sent.
    FakeChatClient.requests.clear()
    more = settings(
        tmp_path, generation={"concurrency": 1, "max_tokens": 8}, budget={"max_tokens": 1000}
    )
    report, _ = run(tmp_path, more, name="more")
    assert len(FakeChatClient.requests) == 6 - sent
    assert report.not_attempted == 0


def test_a_private_cache_lives_in_the_runs_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stage = settings(tmp_path, cache={"dir": "ignored", "shared": False})
    assert stage.cache.root == Path("results") / "unit" / "cache"
    run(tmp_path, stage)
    assert list((tmp_path / "results" / "unit" / "cache").glob("*/*.jsonl"))


class CountingTail(JournalTail):
    """A real tail that counts its looks."""

    reads = 0

    def read_new(self):
        self.reads += 1
        return super().read_new()


def test_claims_taken_in_one_turn_share_a_look_and_later_ones_get_a_fresh_one(tmp_path):
    settings = GenerationSettings("m", "http://e/v1", 0.0, 1.0, 16)
    cache = ResponseCache(tmp_path, settings)
    tail = CountingTail(cache.partition, {"k"})
    look = _FreshLook(tail)

    async def main():
        await asyncio.gather(*(look.after_claim() for _ in range(10)))
        assert tail.reads == 1
        # A response that lands after that look is seen by the next claim's look.
        with cache.writer("other") as writer:
            writer.append("k", 0, "4", "stop", None, "m", None)
        await look.after_claim()
        assert tail.reads == 2
        assert "k" in tail.found

    asyncio.run(main())
