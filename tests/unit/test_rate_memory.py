"""The request pace a job starts from, learns and leaves for the next job (issue 15).

Real HTTP to the simulator (no mocks): a job against a server with no limit is never paced or
held below its concurrency; 429s slow it down; what it learned is kept next to the cache and
read back by the next job; a file that cannot be trusted is ignored, with a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rewardflow.generation.adaptive import AdaptiveRate, Pacer
from rewardflow.generation.cache_admin import describe
from rewardflow.generation.client import (
    ChatRequest,
    ChatResponse,
    ClientSettings,
    OpenAICompatibleClient,
    ResilientClient,
)
from rewardflow.generation.limits import (
    PaceSettings,
    learned_from,
    make_request_limiter,
)
from rewardflow.generation.rate_memory import STALE_AFTER_S, LearnedRate, RateMemory
from rewardflow.simulator import SimulatorConfig, running_simulator

CONCURRENCY = 16


def settings(**changes: Any) -> PaceSettings:
    base = PaceSettings(
        requests_per_minute=None,
        tokens_per_minute=None,
        adaptive=True,
        parallel_jobs=1,
        concurrency=CONCURRENCY,
        largest_request_tokens=1,
    )
    return replace(base, **changes)


class CountingClient(OpenAICompatibleClient):
    """Counts the attempts that are on the wire at once: what the server sees in flight."""

    def __init__(self, settings: ClientSettings) -> None:
        super().__init__(settings)
        self.in_flight = 0
        self.most_in_flight = 0
        self.first_wave = 0  # how many were sent before the first answer came back
        self._answered = False

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if not self._answered:
            self.first_wave += 1
        try:
            return await super().complete(request)
        finally:
            self._answered = True
            self.in_flight -= 1


def run_job(
    memory: RateMemory | None, requests: int, **server: Any
) -> tuple[ResilientClient, CountingClient]:
    """``requests`` distinct prompts, ``CONCURRENCY`` at a time, through the job's limiter."""

    async def scenario() -> tuple[ResilientClient, CountingClient]:
        config = SimulatorConfig(wrong_rate=0.0, **server)
        async with running_simulator(config) as url:
            wire = CountingClient(ClientSettings(base_url=url, connection_limit=CONCURRENCY))
            limiter = make_request_limiter(settings(), memory)
            client = ResilientClient(wire, max_attempts=20, limiter=limiter)
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(index: int) -> None:
                async with gate:
                    messages = [{"role": "user", "content": f"What is {index} + 1?"}]
                    await client.complete(ChatRequest(model="m", messages=messages))

            try:
                await asyncio.gather(*(one(index) for index in range(requests)))
            finally:
                await client.aclose()
            return client, wire

    return asyncio.run(scenario())


def test_a_job_against_an_unlimited_server_is_never_paced_and_fills_its_concurrency(tmp_path):
    memory = RateMemory(tmp_path, "http://local/v1", "m")
    client, wire = run_job(memory, 200, latency_ms=20)
    pacer = client.limiter.adaptive
    assert pacer is not None and pacer.rate_per_s is None and not pacer.found_limit
    assert wire.most_in_flight == CONCURRENCY
    learned = learned_from(pacer, client.stats.attempts, CONCURRENCY)
    assert learned is not None and learned.unlimited
    memory.save(learned)
    # The next job knows: its very first wave is already its whole concurrency.
    client, wire = run_job(RateMemory(tmp_path, "http://local/v1", "m"), 100, latency_ms=20)
    assert wire.first_wave == CONCURRENCY
    assert client.limiter.adaptive is not None and client.limiter.adaptive.rate_per_s is None


def test_429s_without_headers_slow_the_job_down_and_are_kept_for_the_next_job(tmp_path):
    memory = RateMemory(tmp_path, "http://limited/v1", "m")
    client, _ = run_job(memory, 120, latency_ms=20, rate_limit_rps=40, rate_limit_headers=False)
    pacer = client.limiter.adaptive
    assert client.stats.rate_limited > 0
    assert pacer is not None and pacer.found_limit and pacer.rate_per_s is not None
    assert pacer.rate_per_s < CONCURRENCY / 0.02  # below what the concurrency alone allows
    learned = learned_from(pacer, client.stats.attempts, CONCURRENCY)
    assert learned is not None and learned.source == "429s"
    memory.save(learned)
    # Read back by the next job, which starts paced at it, without a slow start.
    next_job = make_request_limiter(settings(), RateMemory(tmp_path, "http://limited/v1", "m"))
    assert next_job.adaptive is not None and not next_job.adaptive.slow_start
    assert next_job.adaptive.rate_per_s == pytest.approx(learned.limit_per_minute / 60)


def test_a_limit_stated_in_headers_is_kept_and_split_between_live_jobs(tmp_path):
    memory = RateMemory(tmp_path, "http://limited/v1", "m")
    client, _ = run_job(memory, 60, latency_ms=20, rate_limit_rps=30)
    pacer = client.limiter.adaptive
    assert pacer is not None and pacer.limit_per_minute == 1800
    memory.save(learned_from(pacer, client.stats.attempts, CONCURRENCY))
    first, second = (RateMemory(tmp_path, "http://limited/v1", "m") for _ in range(2))
    first.join("shard-a")
    second.join("shard-b")
    try:
        limiter = make_request_limiter(settings(parallel_jobs=4), first)
        assert limiter.adaptive is not None
        assert limiter.adaptive.rate_per_s == pytest.approx(1800 / 60 / 2)  # two jobs live
        second.leave()
        limiter.pacer.set_share(first.live_jobs())
        assert limiter.adaptive.rate_per_s == pytest.approx(1800 / 60)  # the last one: all
    finally:
        first.leave()
        second.leave()


def test_a_dead_jobs_lock_file_is_not_counted_and_is_removed(tmp_path):
    memory = RateMemory(tmp_path, "e", "m")
    memory.join("alive")
    dead = memory.jobs_dir / "dead.123.lock"
    dead.write_text("")  # nobody holds its lock: its job died
    try:
        assert memory.live_jobs() == 1
        assert not dead.exists()
    finally:
        memory.leave()
    assert list(memory.jobs_dir.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"format": 1, "source": "headers", "limit_per_minute": -5, "updated_at": 1}),
        json.dumps([1, 2]),
    ],
)
def test_a_corrupt_learned_rate_is_ignored_with_a_log_line(tmp_path, caplog, content):
    memory = RateMemory(tmp_path, "e", "m")
    memory.path.parent.mkdir(parents=True)
    memory.path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="rewardflow.generation.rate_memory"):
        assert memory.load() is None
        limiter = make_request_limiter(settings(), memory)
    assert "ignoring the learned rate" in caplog.text
    # Treated as absent: nothing known, so no pace and a growing window.
    assert limiter.adaptive is not None and limiter.adaptive.rate_per_s is None


def test_a_stale_learned_rate_is_ignored(tmp_path):
    memory = RateMemory(tmp_path, "e", "m")
    memory.save(LearnedRate("headers", 600.0, time.time() - STALE_AFTER_S - 60))
    assert memory.load() is None
    memory.save(LearnedRate("headers", 600.0, time.time()))
    assert memory.load() == LearnedRate("headers", 600.0, memory.load().updated_at)


def test_the_file_is_per_endpoint_and_model_and_names_neither(tmp_path):
    one = RateMemory(tmp_path, "https://api.example.com/v1?key=secret", "model-a")
    other = RateMemory(tmp_path, "https://api.example.com/v1?key=secret", "model-b")
    assert one.path != other.path
    assert "secret" not in str(one.path) and "example" not in str(one.path)


def test_the_pace_is_decided_in_one_place():
    configured = make_request_limiter(settings(requests_per_minute=1200, parallel_jobs=2), None)
    assert type(configured.pacer) is Pacer and configured.adaptive is None
    assert configured.pacer.rate_per_s == pytest.approx(10.0)
    assert isinstance(make_request_limiter(settings(), None).pacer, AdaptiveRate)
    assert make_request_limiter(settings(adaptive=False), None).pacer is None
    launched = make_request_limiter(settings(requests_per_minute=60, unlimited=True), None)
    assert launched.pacer is None


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    memory = RateMemory(tmp_path, "e", "m")
    for limit in (600.0, 1200.0):
        memory.save(LearnedRate("429s", limit, time.time()))
    assert [path.name for path in Path(memory.directory).iterdir()] == [memory.path.name]
    assert os.path.getsize(memory.path) > 0


def test_the_learned_rate_is_never_taken_for_a_cache_partition(tmp_path):
    memory = RateMemory(tmp_path, "e", "m")
    memory.save(LearnedRate("headers", 600.0, time.time()))
    memory.join("shard-000")
    try:
        assert describe(tmp_path) == []
    finally:
        memory.leave()
