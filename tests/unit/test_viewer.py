"""The viewer file's contents: data that survives any model text, and assets that ship.

What the page shows is checked in a real browser (tests/integration/test_viewer_browser.py);
these tests read the written file itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import weakref
from array import array
from pathlib import Path

import pytest
from conftest import REPO

from rewardflow.cli import main
from rewardflow.errors import DatasetError, RewardflowError
from rewardflow.records import ResponseRecord, ScoreRecord
from rewardflow.reporting.run_files import load_run
from rewardflow.reporting.viewer import (
    LatencyTable,
    build_viewer,
    cached_latencies,
    script_json,
    write_viewer,
)

_spec = importlib.util.spec_from_file_location(
    "viewer_support", REPO / "tests" / "data" / "viewer_support.py"
)
assert _spec is not None and _spec.loader is not None
support = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(support)

HOSTILE = "</script><script>alert(1)</script><!-- <script> & \u2028 </SCRIPT >"
JSON_TAG = re.compile(r'<script type="application/json" id="([^"]+)">(.*?)</script>', re.DOTALL)


def data_tags(page: str) -> dict[str, object]:
    """Each embedded JSON document by its tag id, cut out as an HTML parser would cut it."""
    return {tag_id: json.loads(body) for tag_id, body in JSON_TAG.findall(page)}


def test_script_json_round_trips_and_cannot_close_its_tag():
    encoded = script_json({"text": HOSTILE})
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
    assert json.loads(encoded) == {"text": HOSTILE}


def test_script_json_writes_non_finite_numbers_as_null():
    """JSON.parse rejects NaN, which would leave the page empty."""
    assert json.loads(script_json({"p": float("nan"), "ci": [float("inf"), 0.5]})) == {
        "p": None,
        "ci": [None, 0.5],
    }


def test_a_response_with_script_tags_stays_inside_its_data(tmp_path):
    run = support.write_run(tmp_path, "hostile", prompts=6, special={"p000002": HOSTILE})
    stats = build_viewer(run, tmp_path / "viewer.html")
    page = stats.path.read_text(encoding="utf-8")

    tags = data_tags(page)
    assert set(tags) == {"rf-meta", "rf-prompts-0", "rf-samples-0"}
    responses = [sample.get("r") for sample in tags["rf-samples-0"]]
    assert HOSTILE in responses
    # Only the page's own script elements exist: 3 data tags, the app and its start call.
    assert len(re.findall(r"<script\b", page, re.IGNORECASE)) == 5


def test_every_sample_is_written_with_its_status_error_and_rewards(tmp_path):
    run_dir = support.write_run(tmp_path, "statuses", prompts=50, samples=2)
    run = load_run(run_dir)
    stats = write_viewer([run], tmp_path / "viewer.html", group_fields=["level"])
    tags = data_tags(stats.path.read_text(encoding="utf-8"))

    samples, prompts = tags["rf-samples-0"], tags["rf-prompts-0"]
    assert (stats.samples, stats.prompts) == (100, 50) == (len(samples), len(prompts))
    by_key = {(prompts[s["p"]]["id"], s["i"]): s for s in samples}
    assert set(by_key) == set(run.responses)
    for key, sample in by_key.items():
        assert sample["st"] == run.status(key)
        response, score = run.responses[key], run.scores[key]
        if response.error:
            assert sample["e"]["type"] == response.error.type
            assert "r" not in sample
        else:
            assert sample["r"] == response.response
            assert sample["sc"] == score.rewards
        if score.status == "score_error":
            assert sample["se"] == score.error
    assert {s["st"] for s in samples} == {"scored", "score_error", "generation_failed"}
    meta = tags["rf-meta"]
    assert meta["mode"] == "run" and meta["runs"][0]["groups"] == ["level"]
    assert meta["runs"][0]["rewards"] == ["accuracy", "format"]  # the primary first
    assert meta["runs"][0]["truncated"] == sum(
        r.finish_reason == "length" for r in run.responses.values()
    )


def test_the_viewer_loads_nothing_from_the_network(tmp_path):
    run = support.write_run(tmp_path, "offline", prompts=3)
    page = build_viewer(run, tmp_path / "viewer.html").path.read_text(encoding="utf-8")
    assert not re.search(r"\b(?:src|href)\s*=", page)
    assert "http://" not in page and "https://" not in page


def test_more_than_two_runs_are_refused(tmp_path):
    run = load_run(support.write_run(tmp_path, "one", prompts=2))
    with pytest.raises(RewardflowError, match="one run or a pair"):
        write_viewer([run, run, run], tmp_path / "viewer.html")
    assert not (tmp_path / "viewer.html").exists()


def test_a_non_editable_install_ships_the_page_assets(tmp_path):
    """setuptools copies only .py files unless package-data names the others."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "egg_info",
            "--egg-base",
            str(tmp_path),
            "build_py",
            "--build-lib",
            str(tmp_path / "lib"),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    shipped = {
        path.name
        for path in Path(tmp_path / "lib" / "rewardflow" / "reporting" / "viewer").iterdir()
    }
    assert {"viewer.html", "viewer.css", "viewer.js"} <= shipped


def test_the_viewer_file_is_readable_by_whoever_may_read_new_files(tmp_path):
    """It is meant to be shared or served: the umask decides, not the temp file's 0600."""
    run = support.write_run(tmp_path, "shared", prompts=2)
    previous = os.umask(0o022)
    try:
        path = build_viewer(run, tmp_path / "viewer.html").path
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_latency_comes_from_the_models_cache_journals_for_the_runs_keys(tmp_path, monkeypatch):
    def entry(key: str, latency: float | None) -> str:
        fields = {"response": "4", "finish_reason": "stop", "usage": None, "model": "m"}
        return json.dumps({"key": key, "sample_index": 0, **fields, "latency_s": latency})

    mine = tmp_path / "gpt-x-0123456789abcdef"
    mine.mkdir()
    (mine / "run.shard-000.jsonl").write_text(
        entry("a", 0.25) + "\n" + '{"key": "b", "torn' + "\n" + entry("c", 1.5) + "\n"
    )
    (mine / "run.shard-001.jsonl").write_text(
        entry("d", None) + "\n" + entry("e", 9.0) + "\n" + entry("a", 7.0) + "\n"
    )
    other = tmp_path / "other-model-0123456789abcdef"
    other.mkdir()
    (other / "x.jsonl").write_text(entry("f", 3.0) + "\n")

    latencies = cached_latencies(tmp_path, "gpt-x", {"a", "b", "c", "d", "f"})
    assert latencies == {"a": 0.25, "c": 1.5}  # the first entry of a key counts
    assert cached_latencies(tmp_path / "missing", "gpt-x", {"a"}) == {}

    # The streamed viewer's compact table says the same, whatever its chunks.
    monkeypatch.setattr(LatencyTable, "_CHUNK", 2)
    table = LatencyTable(tmp_path, "gpt-x", array("q", map(hash, "abcdf")))
    assert {key: table.get(key) for key in "abcdef"} == {
        "a": 0.25, "b": None, "c": 1.5, "d": None, "e": None, "f": None
    }  # fmt: skip
    assert len(table) == 2
    assert len(LatencyTable(tmp_path, "gpt-x", array("q"))) == 0
    assert len(LatencyTable(tmp_path / "missing", "gpt-x", array("q", [hash("a")]))) == 0


def test_compare_viewer_needs_exactly_two_runs(tmp_path, capsys):
    runs = [str(support.write_run(tmp_path, name, prompts=2)) for name in ("a", "b", "c")]
    assert main(["compare", *runs, "--viewer", str(tmp_path / "pair.html")]) == 2
    assert "--viewer pairs exactly two runs" in capsys.readouterr().err
    assert not (tmp_path / "pair.html").exists()


def run_with_every_kind_of_sample(tmp_path: Path) -> Path:
    """3 shards of 14 prompts x 3 samples (prompt i in shard i mod 3, so the files are not in
    key order), with a failed generation, a score error, a truncated response, and one
    response whose score record is missing."""
    run = support.write_run(tmp_path, "mixed", prompts=14, samples=3, shards=3)
    shard = run / "scores" / "shard-001.jsonl"
    lines = shard.read_text(encoding="utf-8").splitlines(keepends=True)
    assert json.loads(lines[4])["status"] == "scored"
    shard.write_text("".join(lines[:4] + lines[5:]), encoding="utf-8")
    return run


def comparable(tags: dict[str, object]) -> tuple[list[str], list[str], dict[str, object]]:
    """A page's prompts and samples (each sample naming its prompt by id), order left out,
    and its meta without the time it was written."""
    prompts = tags["rf-prompts-0"]
    samples = tags["rf-samples-0"]
    assert isinstance(prompts, list) and isinstance(samples, list)
    as_ids = [{**sample, "p": prompts[sample["p"]]["id"]} for sample in samples]
    meta = dict(tags["rf-meta"])
    del meta["generated_at"]
    return (
        sorted(json.dumps(prompt, sort_keys=True) for prompt in prompts),
        sorted(json.dumps(sample, sort_keys=True) for sample in as_ids),
        meta,
    )


def test_the_streamed_run_writes_the_same_data_as_the_loaded_one(tmp_path):
    run_dir = run_with_every_kind_of_sample(tmp_path)
    run = load_run(run_dir)
    cache = tmp_path / "cache" / "synthetic-model-0123456789abcdef"
    cache.mkdir(parents=True)
    keyed = [r for r in run.responses.values() if r.cache_key][:5]
    (cache / "run.jsonl").write_text(
        "".join(
            json.dumps({"key": r.cache_key, "sample_index": 0, "response": "x", "latency_s": 0.5})
            + "\n"
            for r in keyed
        )
    )
    latencies = cached_latencies(
        tmp_path / "cache", "synthetic-model", {r.cache_key for r in keyed}
    )
    assert len(latencies) == 5

    loaded = write_viewer([run], tmp_path / "loaded.html", ["level"], latencies=latencies)
    streamed = build_viewer(
        run_dir, tmp_path / "streamed.html", ["level"], tmp_path / "cache", "synthetic-model"
    )

    assert (streamed.samples, streamed.prompts) == (loaded.samples, loaded.prompts) == (42, 14)
    loaded_tags = data_tags(loaded.path.read_text(encoding="utf-8"))
    streamed_tags = data_tags(streamed.path.read_text(encoding="utf-8"))
    assert comparable(streamed_tags) == comparable(loaded_tags)
    prompts, samples = streamed_tags["rf-prompts-0"], streamed_tags["rf-samples-0"]
    statuses = {(prompts[s["p"]]["id"], s["i"]): s["st"] for s in samples}
    assert set(statuses.values()) == {"scored", "score_error", "generation_failed", "ok"}
    unscored = [key for key, status in statuses.items() if status == "ok"]
    assert len(unscored) == 1 and unscored[0] not in run.scores
    assert sum("l" in s for s in samples) == 5
    assert streamed_tags["rf-meta"]["runs"][0]["truncated"] > 0
    assert sorted(os.listdir(tmp_path)) == ["cache", "loaded.html", "mixed", "streamed.html"]


class Alive:
    """Wraps a record class's ``from_dict`` to count its records alive at each parse."""

    def __init__(self, parse) -> None:
        self.parse, self.alive, self.most = parse, 0, 0

    def _gone(self) -> None:
        self.alive -= 1

    def __call__(self, data):
        record = self.parse(data)
        self.alive += 1
        self.most = max(self.most, self.alive)
        weakref.finalize(record, self._gone)
        return record


def test_the_workflows_viewer_keeps_no_run_in_memory(tmp_path, monkeypatch):
    """At most a record or two of the responses at a time, and one shard's scores."""
    run = support.write_run(tmp_path, "big", prompts=200, samples=2, shards=4)
    responses, scores = Alive(ResponseRecord.from_dict), Alive(ScoreRecord.from_dict)
    monkeypatch.setattr(ResponseRecord, "from_dict", responses)
    monkeypatch.setattr(ScoreRecord, "from_dict", scores)

    stats = build_viewer(run, tmp_path / "viewer.html")

    assert stats.samples == 400
    assert responses.most <= 2
    assert scores.most <= 100 + 1  # one shard of 400 / 4


@pytest.mark.parametrize("kind", ["responses", "scores"])
def test_a_repeated_key_names_its_file_and_line(tmp_path, kind):
    run = support.write_run(tmp_path, "twice", prompts=8, samples=2, shards=2)
    shard = run / kind / "shard-001.jsonl"
    lines = shard.read_text(encoding="utf-8").splitlines(keepends=True)
    shard.write_text("".join(lines + lines[2:3]), encoding="utf-8")
    key = json.loads(lines[2])
    record = "response" if kind == "responses" else "score"
    expected = f"{shard}:{len(lines) + 1}: {record} ('{key['id']}', {key['sample_index']})"

    with pytest.raises(DatasetError) as loaded:
        load_run(run)
    with pytest.raises(DatasetError) as streamed:
        build_viewer(run, tmp_path / "viewer.html")
    assert str(streamed.value) == str(loaded.value) == f"{expected} appears twice"
    assert sorted(os.listdir(tmp_path)) == ["twice"]
