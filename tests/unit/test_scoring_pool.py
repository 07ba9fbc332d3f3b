"""Scoring runs rewards in worker processes: errors, hangs and crashes stay with one sample."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

import pytest
from pebble import ProcessPool
from pebble.common.types import CONSTS as PEBBLE_CONSTS

from rewardflow.config.scoring import ScoringSettings
from rewardflow.errors import RewardLoadError
from rewardflow.jsonl import read_jsonl, write_jsonl_atomic
from rewardflow.records import GenerationError, ResponseRecord, ScoreRecord
from rewardflow.rewards.loader import load_rewards
from rewardflow.scoring import job as scoring_job
from rewardflow.scoring.job import (
    CHUNK_TARGET_S,
    MAX_CHUNK,
    ChunkSizer,
    score_record,
    score_shard,
    withheld_env_names,
)

REWARDS = textwrap.dedent(
    """
    import asyncio, os, subprocess, sys, time

    def exact(messages, ground_truth, **kwargs):
        text = messages[-1]["content"]
        if text == "raise":
            raise ValueError("cannot parse")
        if text == "exit":
            sys.exit(3)
        if text == "interrupt":
            raise KeyboardInterrupt
        if text == "cancel":
            raise asyncio.CancelledError("the reward cancelled itself")
        if text == "hog":  # 10 GiB, as one runaway sample might
            return len(bytes(10 * 2**30)) > 0
        if text.startswith("sleep "):
            open(ground_truth, "w").close()  # tells the test the reward has started
            time.sleep(float(text.split()[1]))
        if text == "hang":
            time.sleep(60)
            # Reached only if the worker was left to sleep it out.
            open(os.path.join(os.path.dirname(__file__), "hang-ended"), "w").close()
        if text == "crash":
            os._exit(7)
        return text.strip() == ground_truth

    def length(messages, ground_truth, **kwargs):
        return {"score": min(1.0, len(messages[-1]["content"]) / 10), "reason": "chars/10"}

    def tamper(messages, ground_truth, **kwargs):
        # Changes the conversation it was given: no other reward may see the change.
        seen = len(messages[0]["content"])
        messages[0]["content"] += "!" * 10
        messages.append({"role": "user", "content": "more"})
        return {"score": min(1.0, seen / 100), "reason": f"saw {seen} chars"}

    def dumpable(messages, ground_truth, **kwargs):
        import ctypes
        flag = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
        return {"score": 0.0, "reason": f"dumpable={flag}"}

    SECRETS = ("OPENAI_API_KEY", "HF_TOKEN", "RF_TEST_MODEL_CRED", "RF_TEST_JUDGE_KEY")

    def env_probe(messages, ground_truth, api_key_env=None, **kwargs):
        # What this process and a process it starts can see of the secrets.
        child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.environ))"],
                               capture_output=True, text=True, check=True).stdout
        here = [name for name in SECRETS if name in os.environ]
        there = [name for name in SECRETS if repr(name) in child]
        key = api_key_env and os.environ.get(api_key_env)
        return {"score": 1.0, "reason": f"{here} {there} {key}"}
    """
)


def response(prompt_id: str, text: str, status: str = "ok") -> ResponseRecord:
    return ResponseRecord(
        id=prompt_id,
        sample_index=0,
        status=status,
        messages=[{"role": "user", "content": "q"}],
        ground_truth="4",
        response=text if status == "ok" else None,
        error=None if status == "ok" else GenerationError("ModelGenerationError", "HTTP 500"),
    )


@pytest.fixture
def reward_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARDS)
    return path


def score(
    tmp_path, reward_file, texts, timeout_s=30.0, workers=2, second=False, max_chunk=None,
    configs=None, **options,
):  # fmt: skip
    responses = tmp_path / "responses.jsonl"
    records = [
        response(f"p{i}", text, status="failed" if text is None else "ok")
        for i, text in enumerate(texts)
    ]
    write_jsonl_atomic(responses, [record.to_dict() for record in records])
    if configs is None:
        configs = [{"name": "accuracy", "function": f"{reward_file}:exact", "primary": True}]
        if second:
            configs.append({"name": "length", "function": f"{reward_file}:length"})
    output = tmp_path / "scores.jsonl"
    settings = replace(ScoringSettings.defaults(), timeout_s=timeout_s, **options)
    chunking = {} if max_chunk is None else {"max_chunk": max_chunk}
    counts = score_shard(responses, output, configs, settings, workers=workers, **chunking)
    return counts, [ScoreRecord.from_dict(data) for _, data in read_jsonl(output)]


def test_scores_every_sample_in_order_and_keeps_failures_apart(tmp_path, reward_file):
    counts, written = score(tmp_path, reward_file, ["4", "raise", None, "3"])

    assert counts == {"scored": 2, "score_error": 1, "generation_failed": 1, "not_attempted": 0}
    assert [(r.id, r.status, r.score) for r in written] == [
        ("p0", "scored", 1.0),
        ("p1", "score_error", None),
        ("p2", "generation_failed", None),
        ("p3", "scored", 0.0),
    ]
    assert "ValueError: cannot parse" in written[1].error


def test_a_hanging_reward_is_stopped_and_only_its_sample_fails(tmp_path, reward_file):
    counts, written = score(tmp_path, reward_file, ["4", "hang", "4"], timeout_s=1.0)

    # The shard was finished without waiting for the 60 s sleep to end.
    assert not (tmp_path / "hang-ended").exists()
    assert counts["scored"] == 2
    assert written[1].status == "score_error"
    assert "timed out after 1s" in written[1].error


def test_a_reward_that_kills_its_worker_costs_only_that_sample(tmp_path, reward_file):
    counts, written = score(tmp_path, reward_file, ["crash", "4", "crash", "4", "4"])

    assert [r.status for r in written] == [
        "score_error", "scored", "score_error", "scored", "scored",
    ]  # fmt: skip
    assert "worker process died (exit code 7)" in written[0].error


def test_a_second_reward_is_scored_even_when_the_primary_fails(tmp_path, reward_file):
    _, written = score(tmp_path, reward_file, ["raise", "4"], second=True)

    assert written[0].status == "score_error"
    assert written[0].rewards["length"]["score"] == pytest.approx(0.5)
    assert written[1].rewards["length"] == {
        "score": pytest.approx(0.1), "reason": "chars/10", "is_score_valid": True, "metrics": {},
    }  # fmt: skip


def test_an_unloadable_reward_fails_before_any_work(tmp_path):
    responses = tmp_path / "responses.jsonl"
    write_jsonl_atomic(responses, [response("p0", "4").to_dict()])
    with pytest.raises(RewardLoadError, match="no_such_module"):
        score_shard(
            responses,
            tmp_path / "out.jsonl",
            [{"name": "x", "function": "no_such_module:f"}],
            ScoringSettings.defaults(),
        )
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    "text, error",
    [
        ("exit", "SystemExit: the reward called sys.exit(3)"),
        ("interrupt", "KeyboardInterrupt"),
        ("cancel", "CancelledError: the reward cancelled itself"),
    ],
)
def test_a_reward_that_exits_or_interrupts_costs_only_its_sample(
    tmp_path, reward_file, text, error
):
    counts, written = score(tmp_path, reward_file, ["4", text, "4"])

    assert [r.status for r in written] == ["scored", "score_error", "scored"]
    assert counts["scored"] == 2
    assert written[1].error == error


def test_in_this_process_a_rewards_exit_is_its_error_but_ctrl_c_is_not_swallowed(reward_file):
    spec = load_rewards([{"name": "accuracy", "function": f"{reward_file}:exact"}])
    record = score_record(response("p0", "exit"), spec)
    assert record.status == "score_error" and "SystemExit" in record.error
    # Here a KeyboardInterrupt may be the user's Ctrl-C, which must stop the caller.
    with pytest.raises(KeyboardInterrupt):
        score_record(response("p0", "interrupt"), spec)


def test_a_sample_over_the_memory_limit_fails_alone(tmp_path, reward_file):
    counts, written = score(tmp_path, reward_file, ["4", "hog", "4", "3"], memory_limit_mb=1024)

    assert [r.status for r in written] == ["scored", "score_error", "scored", "scored"]
    assert written[1].error == (
        "MemoryError: the reward went over the scoring workers' memory limit "
        "(scoring.memory_limit_mb: 1024)"
    )


def test_reward_workers_do_not_carry_api_keys_except_a_rewards_own(
    tmp_path, reward_file, monkeypatch
):
    for name in ("OPENAI_API_KEY", "HF_TOKEN", "RF_TEST_MODEL_CRED", "RF_TEST_JUDGE_KEY"):
        monkeypatch.setenv(name, f"secret-{name}")
    responses = tmp_path / "responses.jsonl"
    write_jsonl_atomic(responses, [response("p0", "4").to_dict()])
    configs = [
        {"name": "probe", "function": f"{reward_file}:env_probe"},
        # A reward that needs a key names it, as llm_judge does; only that one is kept.
        {"name": "judged", "function": f"{reward_file}:env_probe",
         "params": {"api_key_env": "RF_TEST_JUDGE_KEY"}},
    ]  # fmt: skip
    output = tmp_path / "scores.jsonl"
    # RF_TEST_MODEL_CRED stands for model.api_key_env, whose name says nothing of a secret.
    settings = replace(ScoringSettings.defaults(), withheld_env=("RF_TEST_MODEL_CRED",))
    score_shard(responses, output, configs, settings)

    [(_, written)] = list(read_jsonl(output))
    kept = "['RF_TEST_JUDGE_KEY'] ['RF_TEST_JUDGE_KEY']"
    assert written["rewards"]["probe"]["reason"] == f"{kept} None"
    assert written["rewards"]["judged"]["reason"] == f"{kept} secret-RF_TEST_JUDGE_KEY"
    assert os.environ["OPENAI_API_KEY"] == "secret-OPENAI_API_KEY"  # the job's own: untouched


def test_reward_workers_are_not_dumpable(tmp_path, reward_file):
    # A non-dumpable process's /proc/<pid>/environ and mem cannot be read by another process
    # of the same user, should code a reward starts ever run outside its sandbox.
    responses = tmp_path / "responses.jsonl"
    write_jsonl_atomic(responses, [response("p0", "4").to_dict()])
    output = tmp_path / "scores.jsonl"
    probe = [{"name": "probe", "function": f"{reward_file}:dumpable"}]
    score_shard(responses, output, probe, ScoringSettings.defaults())

    [(_, written)] = list(read_jsonl(output))
    assert written["rewards"]["probe"]["reason"] == "dumpable=0"


def test_secret_names_are_recognised_by_their_shape():
    names = ["OPENAI_API_KEY", "FIREWORKS_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD",
             "APIKEY", "TOKENIZERS_PARALLELISM", "PATH", "HOME", "KEYBOARD_LAYOUT"]  # fmt: skip
    assert withheld_env_names(names, [], extra=[]) == [
        "APIKEY", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "FIREWORKS_KEY", "HF_TOKEN",
        "OPENAI_API_KEY",
    ]  # fmt: skip


def test_ctrl_c_stops_scoring_at_once_with_a_clear_error(tmp_path, reward_file):
    started = tmp_path / "started"
    responses = tmp_path / "responses.jsonl"
    record = response("p0", "sleep 600")
    write_jsonl_atomic(responses, [{**record.to_dict(), "ground_truth": str(started)}])
    script = textwrap.dedent(
        f"""
        from dataclasses import replace
        from rewardflow.config.scoring import ScoringSettings
        from rewardflow.rule_script import run_rule
        from rewardflow.scoring.job import score_shard
        settings = replace(ScoringSettings.defaults(), timeout_s=900.0)
        run_rule(None, score_shard, {str(responses)!r}, {str(tmp_path / "out.jsonl")!r},
                 [{{"name": "a", "function": {f"{reward_file}:exact"!r}}}], settings, 1)
        """
    )
    # Its own session, so the signal reaches the job and its workers as a terminal's Ctrl-C does.
    job = subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        while not started.exists():
            assert job.poll() is None, job.stderr.read()
            time.sleep(0.05)
        os.killpg(job.pid, signal.SIGINT)
        _, stderr = job.communicate(timeout=120)  # the reward would sleep for 600 s
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 130  # as a shell reports a Ctrl-C; it stops a group's job
    assert "ERROR interrupted" in stderr
    assert not (tmp_path / "out.jsonl").exists()


# --- several samples per task ------------------------------------------------------------------


@pytest.fixture
def scheduled(monkeypatch):
    """Every task the scoring pools get, as (worker function, ids of the samples it scores).

    It counts and passes each call on to pebble: the tasks still run in real workers.
    """
    tasks = []
    real = ProcessPool.schedule

    def counting(self, function, args=(), kwargs={}, timeout=None):  # noqa: B006 - pebble's
        if function.__name__ == "_run_chunk_in_worker":
            ids = [pickle.loads(blob)["id"] for blob in args[1]]
        else:
            ids = [args[1]["id"]]
        tasks.append((function.__name__, ids))
        return real(self, function, args=args, kwargs=kwargs, timeout=timeout)

    monkeypatch.setattr(ProcessPool, "schedule", counting)
    return tasks


def test_many_samples_share_a_task(tmp_path, reward_file, scheduled):
    texts = ["4", "3"] * 100
    counts, written = score(tmp_path, reward_file, texts, second=True)

    assert counts["scored"] == 200
    assert [r.score for r in written] == [1.0, 0.0] * 100
    assert len(scheduled) < len(texts)  # one task per (sample, reward) would be 400
    assert any(len(ids) > 1 for _, ids in scheduled)


def test_chunks_write_exactly_what_one_task_per_reward_writes(
    tmp_path, reward_file, scheduled, caplog
):
    # Failures of every kind, after the first few samples (scored alone while the job has no
    # timing yet), so they land in chunks.
    texts = ["4", "3"] * 8 + [
        "raise", None, "4", "3", "hang", "4", "exit", "hog", "4", "crash", "4", "interrupt",
        None, "3", "cancel",
    ] + ["4", "3"] * 8  # fmt: skip
    configs = [
        {"name": "accuracy", "function": f"{reward_file}:exact", "primary": True, "weight": 2},
        {"name": "length", "function": f"{reward_file}:length", "weight": 1},
        {"name": "tamper", "function": f"{reward_file}:tamper"},
        {"name": "tamper_again", "function": f"{reward_file}:tamper"},
    ]
    options = {"timeout_s": 1.0, "memory_limit_mb": 1024, "configs": configs}
    caplog.set_level(logging.INFO)
    chunked = score(tmp_path, reward_file, texts, **options)
    chunk_tasks = list(scheduled)
    scheduled.clear()
    alone = score(tmp_path, reward_file, texts, max_chunk=1, **options)

    assert chunked == alone  # counts, and every record with every field, in order
    counts, written = chunked
    assert counts == {"scored": 38, "score_error": 7, "generation_failed": 2, "not_attempted": 0}
    by_text = dict(zip(texts, written, strict=True))
    assert by_text["hang"].error == "timed out after 1s"
    assert by_text["crash"].error == "the reward's worker process died (exit code 7)"
    assert by_text["hang"].rewards["length"]["score"] == pytest.approx(0.4)
    assert by_text["4"].rewards["tamper_again"]["reason"] == "saw 1 chars"  # "q", untouched
    # The hanging and the crashing sample were scored in a chunk, then again alone.
    for text in ("hang", "crash"):
        sample_id = f"p{texts.index(text)}"
        assert any(f == "_run_chunk_in_worker" and sample_id in ids for f, ids in chunk_tasks)
        assert ("_run_in_worker", [sample_id]) in chunk_tasks
    pairs = 4 * (len(texts) - 2)  # (sample, reward) pairs to score
    assert len(chunk_tasks) < pairs
    assert all(f == "_run_in_worker" for f, _ in scheduled)
    # With max_chunk=1: one task per pair, as before chunks, and one more for the crashing
    # pair, blamed for its worker's death only once it has died twice.
    assert len(scheduled) == pairs + 1
    assert not (tmp_path / "hang-ended").exists()
    assert f"scoring responses: {len(texts)}/{len(texts)} (100%)" in caplog.text


def test_chunks_are_sized_from_the_time_measured_so_far():
    def sizer(seconds_per_pair=None, rewards=1, timeout_s=60.0, **options):
        return ChunkSizer(rewards, 2, timeout_s, seconds_per_pair=seconds_per_pair, **options)

    assert sizer().next_size(10_000) == 1  # no timing yet: one task per reward
    assert sizer(0.001).next_size(10_000) == int(CHUNK_TARGET_S / 0.001)
    assert sizer(0.001, rewards=4).next_size(10_000) == int(CHUNK_TARGET_S / 0.004)
    assert sizer(1e-7).next_size(10_000) == MAX_CHUNK
    assert sizer(1e-7, max_chunk=1).next_size(10_000) == 1
    assert sizer(1e-7).next_size(40) == 10  # a fair share of what is left, for 2 workers
    assert sizer(0.001, timeout_s=0.5).next_size(10_000) == 50  # a tenth of a short timeout
    assert sizer(CHUNK_TARGET_S / 2).next_size(10_000) == 2
    assert sizer(CHUNK_TARGET_S / 1.5).next_size(10_000) == 1  # too slow to share a task

    slower = sizer(0.001)
    for _ in range(10):
        slower.observe(pairs=1, seconds=1.0)
    assert slower.next_size(10_000) == 1
    slower.observe(pairs=1000, seconds=0.1)  # a chunk: its time is over its (sample, reward)s
    assert slower.seconds_per_pair < 1.0


def test_the_shards_of_a_group_share_one_worker_pool_and_its_timing(
    tmp_path, reward_file, scheduled, monkeypatch
):
    # A job over a group of shards scores them one after another in one process
    # (rewardflow.run_script): a pool (fork, reward import) and a sizer (a warm-up of one task
    # per reward) per shard would cost more than scoring a small shard.
    pools = []
    real_init = ProcessPool.__init__

    def counting_init(self, *args, **kwargs):
        pools.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(ProcessPool, "__init__", counting_init)
    texts = ["4", "3"] * 50
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    first = score(tmp_path / "a", reward_file, texts)
    first_tasks = list(scheduled)
    scheduled.clear()
    second = score(tmp_path / "b", reward_file, texts)

    assert first == second
    assert len(pools) == 1
    assert first_tasks[0][0] == "_run_in_worker"  # no timing yet: one task per reward
    assert scheduled[0][0] == "_run_chunk_in_worker"  # the first shard's timing carried over
    assert len(scheduled) < len(first_tasks)


def test_a_worker_s_death_never_lands_on_a_reward_that_finished(tmp_path, reward_file, monkeypatch):
    # pebble pins a dead worker on the task it last heard that worker start. When the pool's
    # watcher sees the death before the messages the worker sent just before dying are read
    # (the result of the pair it had finished, then the start of the crashing one), the death
    # lands on the finished pair, and the crashing one is left to time out. Rare at pebble's
    # 0.1-s watch period, frequent at 1 ms, which this test uses to make it show.
    monkeypatch.setattr(PEBBLE_CONSTS, "sleep_unit", 0.001)
    # ...which also makes pebble declare its pool broken now and then (the next test).
    monkeypatch.setattr(scoring_job, "MAX_POOL_RENEWALS", 1000)
    texts = ["4", "crash", "3"] * 10
    configs = [
        {"name": "accuracy", "function": f"{reward_file}:exact", "primary": True},
        {"name": "length", "function": f"{reward_file}:length"},
    ]

    counts, written = score(tmp_path, reward_file, texts, timeout_s=2.0, max_chunk=1,
                            configs=configs)  # fmt: skip

    assert counts == {"scored": 20, "score_error": 10, "generation_failed": 0, "not_attempted": 0}
    for text, record in zip(texts, written, strict=True):
        if text == "crash":
            assert "error" in record.rewards["accuracy"], record
            assert record.rewards["length"] == {
                "score": 0.5, "reason": "chars/10", "is_score_valid": True, "metrics": {}
            }  # fmt: skip
        else:
            assert record.status == "scored" and record.score == float(text == "4"), record
            assert "error" not in record.rewards["length"], record


class _FakePool:
    """A pool whose tasks all fail as in a pool pebble declared broken, or all succeed."""

    def __init__(self, broken: bool) -> None:
        self.broken, self.scheduled = broken, 0

    @property
    def active(self) -> bool:
        return not self.broken

    def schedule(self, function, args=(), timeout=None):
        self.scheduled += 1
        future = Future()
        if self.broken:
            future.set_exception(BrokenProcessPool("All workers expired"))
        else:
            future.set_result(({"score": 1.0, "reason": "fake"}, 0.001))
        return future


def _tasks_over(pools: list[_FakePool], samples: int) -> scoring_job._ShardTasks:
    records = [response(f"p{i}", "4") for i in range(samples)]
    sizer = ChunkSizer(rewards=1, workers=1, timeout_s=10.0, max_chunk=1)
    spare = iter(pools[1:])
    return scoring_job._ShardTasks(pools[0], records, ["accuracy"], 10.0, sizer,
                                   lambda: next(spare))  # fmt: skip


def test_the_tasks_of_a_pool_pebble_broke_go_to_a_new_pool():
    broken, fresh = _FakePool(broken=True), _FakePool(broken=False)
    tasks = _tasks_over([broken, fresh], samples=5)
    for index in range(5):
        tasks.schedule([index])
    while tasks.pending:
        tasks.collect()

    assert tasks.results == [{"accuracy": {"score": 1.0, "reason": "fake"}}] * 5
    assert (broken.scheduled, fresh.scheduled, tasks.renewed_pools) == (5, 5, 1)


def test_a_pool_that_keeps_breaking_stops_the_job_instead_of_looping():
    pools = [_FakePool(broken=True) for _ in range(scoring_job.MAX_POOL_RENEWALS + 2)]
    tasks = _tasks_over(pools, samples=2)
    tasks.schedule([0])
    with pytest.raises(RuntimeError, match="broke 4 times in this shard"):
        while tasks.pending:
            tasks.collect()
