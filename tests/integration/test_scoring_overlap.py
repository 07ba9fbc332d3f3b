"""Scoring a finished shard overlaps the generation of the others, even on one core.

A generation job mostly waits on the network, so it holds no core on this machine
(``threads: 0``, workflow/rules/common.smk ``generation_threads``): with ``--cores 1`` a
scoring job runs while generation jobs are still running. Before, each generation job held a
core and the jobs ran one after another. The evidence is Snakemake's own job log, in the order
it printed it (a job's ``rule`` header when it starts, ``Finished jobid`` when it ends), not a
wall-time threshold.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    arithmetic_rows,
    base_config,
    run_snakemake,
    start_simulator,
    stop_simulator,
    write_config,
    write_jsonl,
)

pytestmark = pytest.mark.integration

_HEADER = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


@dataclass
class JobSpan:
    """When a job started and finished, as positions in Snakemake's log."""

    rule: str
    start: int
    end: int | None = None

    def overlaps(self, other: JobSpan) -> bool:
        assert self.end is not None and other.end is not None
        return self.start < other.end and other.start < self.end


def job_spans(output: str) -> dict[str, JobSpan]:
    """Every job's span, by job id: a header then its ``jobid:`` line, and its ``Finished``."""
    spans: dict[str, JobSpan] = {}
    rule = None
    for position, raw in enumerate(output.splitlines()):
        line = raw.strip()
        if header := _HEADER.match(line):
            rule = header.group(1)
        elif (jobid := _JOBID.match(line)) and rule is not None:
            spans[jobid.group(1)] = JobSpan(rule, position)
            rule = None
        elif finished := _FINISHED.match(line):
            spans[finished.group(1)].end = position
    return spans


def most_at_once(spans: list[JobSpan]) -> int:
    """The most of ``spans`` running at the same time."""
    events = sorted([(span.start, 1) for span in spans] + [(span.end, -1) for span in spans])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_a_finished_shard_is_scored_while_other_shards_generate_on_one_core(tmp_path: Path):
    # 4 shards of 8 prompts, one request at a time at 300 ms: ~2.5 s of waiting per shard,
    # two generation jobs at once (generation.parallel_jobs).
    server = start_simulator("--latency-ms", "300", "--latency-jitter-ms", "50")
    try:
        dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(32))
        config = base_config(dataset, server.base_url, shards=4)
        config["generation"].update({"concurrency": 1, "parallel_jobs": 2})
        result = run_snakemake(
            tmp_path, "--configfile", str(write_config(tmp_path, config)), cores="1"
        )
    finally:
        stop_simulator(server)
    assert result.returncode == 0, result.output
    summary = json.loads((tmp_path / "results" / "test" / "summary.json").read_text())
    assert summary["counts"]["prompts"] == 32

    spans = job_spans(result.output)
    generation = [span for span in spans.values() if span.rule == "generate_responses"]
    scoring = [span for span in spans.values() if span.rule == "score_responses"]
    assert len(generation) == len(scoring) == 4
    assert all(span.end is not None for span in spans.values()), result.output
    # A scoring job started before the last generation job finished...
    assert min(span.start for span in scoring) < max(span.end for span in generation)
    # ...and ran at the same time as a generation job: with --cores 1 that is only possible
    # if generation holds no core (each job holding one made them run one after another).
    assert any(score.overlaps(generate) for score in scoring for generate in generation), (
        result.output
    )
    # Holding no core, generation jobs are still capped by generation.parallel_jobs.
    assert most_at_once(generation) == 2


def test_scoring_jobs_share_the_cores_when_there_are_more_shards_than_cores(tmp_path: Path):
    # Every generation job first, so that all 4 scoring jobs are ready together. Each used to
    # ask for every core (--cores 2), so they ran one after another; with the cores shared
    # among the shards (rewardflow.config.scoring_workers) two run side by side.
    server = start_simulator()
    try:
        dataset = write_jsonl(tmp_path / "data.jsonl", arithmetic_rows(16))
        config_file = str(write_config(tmp_path, base_config(dataset, server.base_url, shards=4)))
        generated = run_snakemake(
            tmp_path, "--configfile", config_file, "--until", "generate_responses", cores="2"
        )
        assert generated.returncode == 0, generated.output
        result = run_snakemake(tmp_path, "--configfile", config_file, cores="2")
    finally:
        stop_simulator(server)
    assert result.returncode == 0, result.output
    scoring = [span for span in job_spans(result.output).values() if span.rule == "score_responses"]
    assert len(scoring) == 4 and all(span.end is not None for span in scoring), result.output
    assert most_at_once(scoring) == 2, result.output
    # Each job got one worker, not both cores: Snakemake prints a job's threads when over one.
    assert "threads: 2" not in result.output
