"""Comparing two real runs with a known difference, and inspecting a run's samples."""

from __future__ import annotations

import json

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

from rewardflow.cli import main


def compare_main(argv: list[str]) -> int:
    return main(["compare", *argv])


def inspect_main(argv: list[str]) -> int:
    return main(["inspect", *argv])


pytestmark = pytest.mark.integration


def run_model(tmp_path, rows, name: str, wrong: set[int]):
    """A run whose model answers prompt i wrongly exactly when i is in ``wrong``."""
    answers = [
        {"prompt": row["question"],
         "response": f"#### {int(row['answer']) + (1 if index in wrong else 0)}"}
        for index, row in enumerate(rows)
    ]  # fmt: skip
    server = start_simulator("--responses", str(write_jsonl(tmp_path / f"{name}.jsonl", answers)))
    try:
        config = base_config(tmp_path / "data.jsonl", server.base_url, run_name=name)
        config["model"]["name"] = name
        result = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, config)))
    finally:
        stop_simulator(server)
    assert result.returncode == 0, result.output
    return tmp_path / "results" / name


def test_compare_reports_a_known_difference_with_paired_tests(tmp_path, capsys):
    rows = arithmetic_rows(20)
    write_jsonl(tmp_path / "data.jsonl", rows)
    base = run_model(tmp_path, rows, "base", wrong=set())
    worse = run_model(tmp_path, rows, "worse", wrong=set(range(10, 20)))

    code = compare_main([str(base), str(worse), "--out", str(tmp_path / "cmp.md"),
                         "--html", str(tmp_path / "cmp.html")])  # fmt: skip

    assert code == 0
    table = (tmp_path / "cmp.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| worse"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "20"  # shared prompts
    assert cells[2:5] == ["100.0%", "50.0%", "-50.0 pts"]
    # McNemar: 10 prompts right only in base, none right only in worse: p = 2 / 2**10
    assert "10 vs 0 discordant, p = 0.001953 (exact binomial)" in cells[7]
    html = (tmp_path / "cmp.html").read_text()
    assert "<td>worse</td>" in html and "http" not in html


def test_inspect_lists_and_shows_samples(tmp_path, capsys):
    rows = arithmetic_rows(6)
    write_jsonl(tmp_path / "data.jsonl", rows)
    run = run_model(tmp_path, rows, "inspected", wrong={2, 4})
    capsys.readouterr()

    assert inspect_main(["list", str(run), "--lowest", "2"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["q0002", "q0004"]

    assert inspect_main(["show", str(run), "q0002"]) == 0
    shown = capsys.readouterr().out
    assert "What is 2 + 5?" in shown and "#### 8" in shown and "accuracy: 0" in shown

    assert inspect_main(["list", str(run), "--status", "scored", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 6 and records[0]["score"]["status"] == "scored"

    assert inspect_main(["show", str(run), "nope"]) == 1
