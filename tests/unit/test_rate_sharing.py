"""Jobs that run at once share what they learn about the endpoint's rate (issue 15).

Real HTTP to the simulator (no mocks), two jobs in one event loop, each with its own
:class:`RateMemory` on one cache directory, as two generation processes would have: what the
first finds out (from 429s alone) is published while it runs and the second paces at its share
instead of probing on its own; a server that never limits throttles nobody; a published file
that cannot be trusted is ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from rewardflow.generation import limits
from rewardflow.generation.adaptive import AdaptiveRate
from rewardflow.generation.client import (
    ChatRequest,
    ChatResponse,
    ClientSettings,
    OpenAICompatibleClient,
    ResilientClient,
)
from rewardflow.generation.limits import PaceSettings, RequestLimiter, make_request_limiter
from rewardflow.generation.rate_memory import LearnedRate, RateMemory
from rewardflow.simulator import SimulatorConfig, running_simulator

CONCURRENCY = 16
ENDPOINT = "http://shared/v1"


def pace_settings() -> PaceSettings:
    return PaceSettings(
        requests_per_minute=None,
        tokens_per_minute=None,
        adaptive=True,
        parallel_jobs=2,
        concurrency=CONCURRENCY,
        largest_request_tokens=1,
    )


class FirstPaceClient(OpenAICompatibleClient):
    """Remembers the pace its job was at when its first request went out."""

    limiter: RequestLimiter

    def __init__(self, settings: ClientSettings) -> None:
        super().__init__(settings)
        self.first_pace: tuple[float | None, int | None] | None = None
        self.most_in_flight = self.in_flight = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        pacer = self.limiter.adaptive
        if self.first_pace is None and pacer is not None:
            self.first_pace = (pacer.rate_per_s, pacer.window)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await super().complete(request)
        finally:
            self.in_flight -= 1


class Job:
    """One generation job: its own rate memory (joined), limiter, client and prompts."""

    def __init__(self, url: str, cache: Any, name: str) -> None:
        self.memory = RateMemory(cache, ENDPOINT, "m")
        self.memory.join(name)
        self.limiter = make_request_limiter(pace_settings(), self.memory)
        self.wire = FirstPaceClient(ClientSettings(base_url=url, connection_limit=CONCURRENCY))
        self.wire.limiter = self.limiter
        self.client = ResilientClient(self.wire, max_attempts=30, limiter=self.limiter)
        self.name = name

    async def run(self, requests: int) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(index: int) -> None:
            async with gate:
                content = f"{self.name}: what is {index} + 1?"
                messages = [{"role": "user", "content": content}]
                await self.client.complete(ChatRequest(model="m", messages=messages))

        await asyncio.gather(*(one(index) for index in range(requests)))

    async def close(self) -> None:
        await self.client.aclose()
        self.memory.leave()


async def published(memory: RateMemory, running: asyncio.Future[None]) -> LearnedRate:
    """Wait (on events, not a clock) until a rate has been published in ``memory``'s file
    by the ``running`` job; failing if that job ends without publishing anything."""
    while (learned := memory.load()) is None:
        assert not running.done(), "the first job ended without publishing what it learned"
        await asyncio.sleep(0.01)
    return learned


def test_a_job_starting_alongside_paces_at_the_rate_the_first_one_published(tmp_path):
    """Both jobs start knowing nothing; the second sends its first request only once the
    first has met 429s (no rate-limit headers) and published what it backed off to."""

    async def scenario() -> tuple[Job, Job, LearnedRate, dict[str, int]]:
        config = SimulatorConfig(
            wrong_rate=0.0, latency_ms=20, rate_limit_rps=30, rate_limit_headers=False
        )
        async with running_simulator(config) as url:
            first, second = Job(url, tmp_path, "shard-a"), Job(url, tmp_path, "shard-b")
            try:
                # Nothing learned yet when both were made: each would find the limit alone.
                assert first.limiter.adaptive.window == second.limiter.adaptive.window == 1
                running = asyncio.ensure_future(first.run(150))
                finding = await published(RateMemory(tmp_path, ENDPOINT, "m"), running)
                await second.run(60)
                await running
                stats = {"first": first.client.stats.rate_limited}
                stats["second"] = second.client.stats.rate_limited
                return first, second, finding, stats
            finally:
                await first.close()
                await second.close()

    first, second, finding, refused = asyncio.run(scenario())
    assert finding.source == "429s" and finding.writer == first.memory.writer
    # The second job's very first request went out paced at its half of the published rate,
    # not unpaced in a growing window (how it would have probed for the limit on its own).
    rate, window = second.wire.first_pace
    assert window is None and rate == pytest.approx(finding.limit_per_minute / 60 / 2, rel=0.01)
    assert second.limiter.adaptive.learned
    # The first job paid for finding the limit; the second did not pay it again.
    assert refused["first"] > 0
    assert refused["second"] < refused["first"]


def test_a_429_met_by_one_job_slows_the_other_down(tmp_path, monkeypatch):
    """A job paced at a rate another job published follows that job's back-off."""
    monkeypatch.setattr(limits, "_RECOUNT_S", 0.0)  # re-count at every request

    async def scenario() -> tuple[float | None, float | None]:
        async with running_simulator(SimulatorConfig(wrong_rate=0.0)) as url:
            job = Job(url, tmp_path, "shard-b")
            other = RateMemory(tmp_path, ENDPOINT, "m")
            other.join("shard-a")
            try:
                other.publish(LearnedRate("429s", 1200.0, time.time()))
                await job.run(2)
                before = job.limiter.adaptive.rate_per_s
                other.publish(LearnedRate("429s", 600.0, time.time()))  # it met a 429
                await job.run(2)
                return before, job.limiter.adaptive.rate_per_s
            finally:
                other.leave()
                await job.close()

    before, after = asyncio.run(scenario())
    # Its share of each published rate (grown by 0.5 % per success since).
    assert before == pytest.approx(1200 / 60 / 2, rel=0.02)
    assert after == pytest.approx(600 / 60 / 2, rel=0.02)


def test_jobs_together_against_an_unlimited_server_are_never_throttled(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "_RECOUNT_S", 0.0)

    async def scenario() -> tuple[Job, Job]:
        async with running_simulator(SimulatorConfig(wrong_rate=0.0, latency_ms=20)) as url:
            first, second = Job(url, tmp_path, "shard-a"), Job(url, tmp_path, "shard-b")
            try:
                await asyncio.gather(first.run(200), second.run(200))
                # A job that ended at full speed says so; a running job is not slowed by it.
                first.memory.save(LearnedRate("unlimited", None, time.time()))
                await second.run(100)
                return first, second
            finally:
                await first.close()
                await second.close()

    for job in asyncio.run(scenario()):
        pacer = job.limiter.adaptive
        assert pacer.rate_per_s is None and pacer.window is None and not pacer.found_limit
        assert job.wire.most_in_flight == CONCURRENCY
    assert RateMemory(tmp_path, ENDPOINT, "m").load().unlimited  # nothing else was published


NOW = -1.0  # replaced by the time of the test


@pytest.mark.parametrize(
    "record",
    [
        "{not json",
        {"format": 1, "source": "429s", "limit_per_minute": 60, "updated_at": "x"},
        {"format": 1, "source": "429s", "limit_per_minute": 60, "updated_at": 1.0},  # stale
        {"format": 1, "source": "429s", "limit_per_minute": 60, "updated_at": NOW, "writer": 5},
        {"format": 1, "source": "429s", "limit_per_minute": 60, "updated_at": NOW, "probing": 1},
    ],
)
def test_a_corrupt_or_stale_published_rate_is_ignored_by_a_running_job(
    tmp_path, monkeypatch, caplog, record
):
    monkeypatch.setattr(limits, "_RECOUNT_S", 0.0)
    if isinstance(record, dict):
        record = json.dumps({k: time.time() if v == NOW else v for k, v in record.items()})

    async def scenario() -> Job:
        async with running_simulator(SimulatorConfig(wrong_rate=0.0, latency_ms=5)) as url:
            job = Job(url, tmp_path, "shard-a")
            try:
                await job.run(20)
                job.memory.path.write_text(record)
                await job.run(60)
                return job
            finally:
                await job.close()

    with caplog.at_level(logging.INFO, logger="rewardflow.generation.rate_memory"):
        job = asyncio.run(scenario())
    assert "ignoring the learned rate" in caplog.text
    pacer = job.limiter.adaptive
    assert pacer.rate_per_s is None and pacer.window is None
    assert job.wire.most_in_flight == CONCURRENCY


def test_a_back_off_adopted_from_another_job_is_not_repeated_for_the_same_burst():
    """The others' 429s from the burst one job already backed off for cut nobody twice."""
    pacer = AdaptiveRate(share=2)
    assert pacer.adopt(LearnedRate("429s", 1200.0, time.time()))
    adopted = pacer.rate_per_s
    assert pacer.observe(429, {}) is None and pacer.rate_per_s == adopted
    # A stated limit is not overridden by another job's estimate, but a stated one is taken.
    pacer.adopt(LearnedRate("headers", 600.0, time.time()))
    assert not pacer.adopt(LearnedRate("429s", 60.0, time.time()))
    assert not pacer.adopt(LearnedRate("unlimited", None, time.time()))
    assert pacer.rate_per_s == pytest.approx(600 / 60 / 2)


def test_poll_reads_only_what_others_wrote_since_the_last_poll(tmp_path):
    mine, theirs = RateMemory(tmp_path, "e", "m"), RateMemory(tmp_path, "e", "m")
    assert mine.poll() is None  # no file yet
    mine.publish(LearnedRate("headers", 600.0, time.time()))
    assert mine.poll() is None  # its own
    theirs.publish(LearnedRate("429s", 300.0, time.time(), probing=True))
    news = mine.poll()
    assert news is not None and (news.limit_per_minute, news.probing) == (300.0, True)
    assert mine.poll() is None  # nothing new since
    # A job that started from the file does not take the same record for news.
    starting = RateMemory(tmp_path, "e", "m")
    assert starting.load() is not None and starting.poll() is None


def test_files_without_the_sharing_fields_are_read_and_new_ones_keep_the_old_fields(tmp_path):
    memory = RateMemory(tmp_path, "e", "m")
    memory.directory.mkdir(parents=True)
    older = {"format": 1, "source": "429s", "limit_per_minute": 900, "updated_at": time.time()}
    memory.path.write_text(json.dumps(older))
    learned = memory.load()
    assert learned is not None and (learned.writer, learned.probing) == (None, False)
    memory.publish(LearnedRate("429s", 900.0, time.time(), probing=True))
    written = json.loads(memory.path.read_text())
    assert {key: written[key] for key in older if key != "updated_at"} == {
        "format": 1, "source": "429s", "limit_per_minute": 900.0
    }  # fmt: skip
    assert (written["writer"], written["probing"]) == (memory.writer, True)
