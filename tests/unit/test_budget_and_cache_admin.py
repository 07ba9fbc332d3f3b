"""The spend guard's arithmetic and the cache's list/prune tool."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time

import pytest

from rewardflow.cli import main
from rewardflow.generation.budget import (
    BudgetExhausted,
    Price,
    Spend,
    SpendGuard,
    check_run_complete,
    spent_by_writer,
)
from rewardflow.generation.cache import GenerationSettings, ResponseCache
from rewardflow.generation.cache_admin import describe, prune


def settings(model: str = "m") -> GenerationSettings:
    return GenerationSettings(model=model, endpoint="http://x/v1", temperature=0.0, top_p=1.0,
                              max_tokens=64)  # fmt: skip


def fill(root, writer_name: str, count: int, model: str = "m", created_at: float | None = None):
    cache = ResponseCache(root, settings(model))
    with cache.writer(writer_name) as writer:
        for index in range(count):
            writer.append(f"{model}-{writer_name}-{index}", 0, "answer", "stop",
                          {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                          model, 0.1)  # fmt: skip
    if created_at is not None:
        for journal in cache.partition.glob(f"{writer_name}.jsonl"):
            lines = [json.loads(line) for line in journal.read_text().splitlines()]
            for line in lines:
                line["created_at"] = created_at
            journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return cache


def test_guard_admits_while_the_worst_case_fits_and_counts_reservations():
    guard = SpendGuard(max_tokens=100, max_cost_usd=None, price=None, already_spent=Spend())
    assert guard.try_reserve(10, 40)  # 50 reserved
    assert guard.try_reserve(10, 40)  # 100 reserved
    assert not guard.try_reserve(1, 0)  # would exceed while both are in flight
    guard.settle(10, 40, {"prompt_tokens": 10, "completion_tokens": 5})  # actually used 15
    assert guard.try_reserve(10, 20)  # 15 + 50 + 30 = 95


def test_guard_counts_what_the_run_spent_before_and_failed_requests_cost_nothing():
    guard = SpendGuard(100, None, None, already_spent=Spend(60, 30))
    assert not guard.try_reserve(5, 10)
    fresh = SpendGuard(100, None, None, Spend())
    assert fresh.try_reserve(50, 50)
    fresh.settle(50, 50, None)  # the request failed: no usage
    assert fresh.spent.tokens == 0 and fresh.try_reserve(50, 50)


def test_guard_by_cost_uses_the_price_table():
    price = Price(prompt=1.0, completion=3.0)  # USD per million tokens
    guard = SpendGuard(None, max_cost_usd=0.001, price=price, already_spent=Spend())
    assert guard.try_reserve(100, 300)  # 0.0001 + 0.0009 = 0.001
    assert not guard.try_reserve(1, 0)
    assert guard.spent_cost_usd() == 0.0


def test_spend_is_read_back_from_the_runs_own_journals_only(tmp_path):
    fill(tmp_path, "run.shard-000", 3)
    fill(tmp_path, "run.shard-000", 2)  # same writer again after a "crash": still this run
    fill(tmp_path, "run.shard-0001", 4)  # another shard's writer
    fill(tmp_path, "other.shard-000", 5)
    spend = spent_by_writer(tmp_path, "run.shard-000")
    assert spend == Spend(prompt_tokens=50, completion_tokens=25)


def test_check_run_complete_fails_only_when_samples_went_unsent():
    done = {"run_name": "r", "counts": {"samples": 4, "not_attempted": 0}}
    assert "complete" in check_run_complete(done)
    stopped = {
        "run_name": "r",
        "counts": {"samples": 4, "not_attempted": 3},
        "generation": {"budget_notes": ["shard-000: budget reached after 100 tokens"]},
    }
    with pytest.raises(BudgetExhausted, match="(?s)3 samples were not sent.*reached after 100"):
        check_run_complete(stopped)


def test_describe_lists_partitions_with_model_and_counts(tmp_path):
    fill(tmp_path, "a.shard-000", 3, model="model-a")
    fill(tmp_path, "b.shard-000", 2, model="model-b")
    infos = {info.model: info for info in describe(tmp_path)}
    assert infos["model-a"].responses == 3 and infos["model-b"].responses == 2
    assert infos["model-a"].settings["max_tokens"] == 64


def test_prune_by_model_removes_its_partitions_only(tmp_path):
    keep = fill(tmp_path, "a.shard-000", 3, model="model-a")
    gone = fill(tmp_path, "b.shard-000", 2, model="model-b")
    report = prune(tmp_path, model="model-b")
    assert report.partitions_removed == [gone.partition] and report.entries_removed == 2
    assert keep.partition.exists() and not gone.partition.exists()


def test_prune_by_age_keeps_recent_entries_and_skips_journals_in_use(tmp_path):
    now = time.time()
    old = fill(tmp_path, "old.shard-000", 3, created_at=now - 40 * 86400)
    fill(tmp_path, "new.shard-000", 2, created_at=now)
    busy = old.partition / "busy.jsonl"
    busy.write_text(json.dumps({"key": "k", "created_at": now - 90 * 86400}) + "\n")
    with open(busy) as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        report = prune(tmp_path, older_than_s=30 * 86400, now=now)
    assert report.entries_removed == 3
    assert report.journals_busy == [busy]
    remaining = {info.responses for info in describe(tmp_path)}
    assert remaining == {3}  # the new writer's 2 entries + the busy journal's 1


def test_pruning_keeps_a_shared_journal_shared(tmp_path):
    now = time.time()
    cache = fill(tmp_path, "w.shard-000", 1, created_at=now - 40 * 86400)
    fill(tmp_path, "w.shard-000", 1, created_at=None)  # a recent entry, so the journal stays
    journal = cache.partition / "w.shard-000.jsonl"
    os.chmod(journal, 0o660)  # as in a group-shared cache (see rewardflow.generation.cache)
    assert prune(tmp_path, older_than_s=30 * 86400, now=now).entries_removed == 1
    assert stat.S_IMODE(journal.stat().st_mode) == 0o660


def test_dry_run_changes_nothing_and_the_cli_reports(tmp_path, capsys):
    fill(tmp_path, "a.shard-000", 3, model="model-a")
    assert (
        main(["cache", "--cache-dir", str(tmp_path), "prune", "--model", "model-a", "--dry-run"])
        == 0
    )
    assert "would remove 3 responses" in capsys.readouterr().out
    assert describe(tmp_path)[0].responses == 3
    assert main(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    assert "model model-a at http://x/v1" in capsys.readouterr().out
    assert main(["cache", "--dir", str(tmp_path), "prune"]) == 2  # --dir: the old name
