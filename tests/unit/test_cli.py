"""The ``rewardflow`` command: its tree, its help, its shared options and its exit statuses."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import select
import shlex
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import REPO

from rewardflow.cli import aliases, build_parser, main
from rewardflow.generation.cache import GenerationSettings, ResponseCache
from rewardflow.reporting.run_files import load_run

_spec = importlib.util.spec_from_file_location(
    "viewer_support", REPO / "tests" / "data" / "viewer_support.py"
)
assert _spec is not None and _spec.loader is not None
support = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(support)

SUBCOMMANDS = ["simulate", "cache", "compare", "inspect"]


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's subcommands by name, aliases left out (they share the parser)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    found[name] = sub
    return found


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command words, parser) pair of the tree, the top level included."""
    yield path, parser
    for name, sub in subparsers(parser).items():
        yield from commands(sub, (*path, name))


def options_of(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if action.option_strings]


def test_the_tree_has_the_four_commands_and_their_actions():
    tree = {" ".join(path) for path, _ in commands(build_parser())}
    assert tree == {
        "",
        "simulate",
        "cache",
        "cache list",
        "cache prune",
        "compare",
        "inspect",
        "inspect list",
        "inspect show",
    }


@pytest.mark.parametrize("path", [path for path, _ in commands(build_parser())], ids=" ".join)
def test_every_command_answers_help_listing_its_options(path, capsys):
    parser = dict(commands(build_parser()))[path]
    with pytest.raises(SystemExit) as caught:
        main([*path, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: {' '.join(('rewardflow', *path))}")
    for action in options_of(parser):
        for flag in action.option_strings:
            assert flag in text, f"{flag} missing from `rewardflow {' '.join(path)} --help`"
    for name in subparsers(parser):
        assert name in text


def test_python_dash_m_rewardflow_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "rewardflow", "--help"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: rewardflow")
    for name in SUBCOMMANDS:
        assert name in result.stdout


def test_version(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("rewardflow ")


@pytest.mark.parametrize("argv", [["frobnicate"], ["inspect", "frobnicate", "results/x"]])
def test_an_unknown_command_is_named_and_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err


def test_no_command_at_all_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "required: COMMAND" in capsys.readouterr().err


def test_an_option_name_means_the_same_thing_in_every_command():
    by_flag: dict[str, list[tuple[str, argparse.Action]]] = {}
    for path, parser in commands(build_parser()):
        for action in options_of(parser):
            if isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                by_flag.setdefault(flag, []).append((" ".join(path), action))
    shared = {flag: uses for flag, uses in by_flag.items() if len(uses) > 1}
    # The options several commands take; if a new command reuses a name, it is checked too.
    assert {"--json", "--cache-dir", "--model", "--seed"} <= set(shared)
    for flag in ("--json", "--cache-dir"):  # defined once, in rewardflow/cli/options.py
        assert len({action.help for _, action in shared[flag]}) == 1, flag
    for flag, uses in shared.items():
        # The help and default may say what the value is for here; its kind must not differ.
        meanings = {
            path: (type(action), action.dest, action.type, action.nargs, action.metavar)
            for path, action in uses
        }
        assert len(set(meanings.values())) == 1, f"{flag} differs between commands: {meanings}"


def test_json_means_one_object_per_line_in_every_command(tmp_path, capsys):
    runs = [support.write_run(tmp_path, name, prompts=8) for name in ("a", "b")]
    settings = GenerationSettings(
        model="m", endpoint="http://x/v1", temperature=0.0, top_p=1.0, max_tokens=8
    )
    with ResponseCache(tmp_path / "cache", settings).writer("w.shard-000") as writer:
        writer.append("k", 0, "answer", "stop", None, "m", 0.1)
    capsys.readouterr()
    printed = {}
    for name, argv in {
        "inspect": ["inspect", "list", str(runs[0]), "--json"],
        "compare": ["compare", str(runs[0]), str(runs[1]), "--json"],
        "cache": ["cache", "list", "--cache-dir", str(tmp_path / "cache"), "--json"],
    }.items():
        assert main(argv) == 0, argv
        printed[name] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed["inspect"]) == 8
    assert printed["inspect"][0]["response"]["id"] == "p000000"
    [compared] = printed["compare"]
    assert (compared["baseline"], compared["candidate"]) == ("a", "b")
    assert compared["paired"]["shared"] > 0
    [partition] = printed["cache"]
    assert (partition["model"], partition["responses"]) == ("m", 1)


def test_cache_dir_is_taken_before_or_after_the_action_and_by_its_old_name(tmp_path, capsys):
    empty = tmp_path / "nothing-here"
    for argv in [
        ["cache", "--cache-dir", str(empty), "list"],
        ["cache", "list", "--cache-dir", str(empty)],
        ["cache", "--dir", str(empty), "list"],
    ]:
        assert main(argv) == 0
        assert capsys.readouterr().out == f"no cached responses in {empty}\n"


def test_status_failed_lists_the_failed_generations_the_summary_counts(tmp_path, capsys):
    run = support.write_run(tmp_path, "with-failures", prompts=60)
    loaded = load_run(run)
    failed = {key for key in loaded.responses if loaded.status(key) == "generation_failed"}
    assert failed  # the synthetic run has some, and some score errors besides
    capsys.readouterr()

    assert main(["inspect", "list", str(run), "--status", "failed", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    listed = {(r["response"]["id"], r["response"]["sample_index"]) for r in records}
    assert listed == failed
    summary = json.loads((run / "summary.json").read_text())
    assert len(listed) == summary["counts"]["failed"]
    assert all(r["response"]["status"] == "failed" for r in records)


def documented_commands() -> Iterator[tuple[str, list[str]]]:
    """(file:line, arguments) of every ``rewardflow ...`` line in the docs' shell code blocks."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    pages += sorted((REPO / "examples").glob("*/README.md"))
    for page in pages:
        fence = None  # the open code block's language, "" if none given
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if line.startswith("```"):
                fence = line[3:].strip() if fence is None else None
            elif fence in ("", "bash", "sh") and line.startswith("rewardflow "):
                words = shlex.split(line, comments=True)
                yield f"{page.relative_to(REPO)}:{number}", [w for w in words[1:] if w != "&"]


def test_every_command_the_docs_show_is_accepted(capsys):
    documented = list(documented_commands())
    assert len(documented) >= 10  # README, docs/cli.md, docs/workflow.md, an example
    for where, argv in documented:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: `rewardflow {shlex.join(argv)}`: {capsys.readouterr().err}")


def test_a_missing_run_exits_1_naming_it(tmp_path, capsys):
    assert main(["inspect", "list", str(tmp_path / "nope")]) == 1
    missing = tmp_path / "nope"
    assert capsys.readouterr().err == (
        f"rewardflow inspect list: error: {missing}: not a finished run (no summary.json)\n"
    )


def test_options_that_do_not_fit_together_exit_2(tmp_path, capsys):
    run = str(support.write_run(tmp_path, "a", prompts=2))
    assert main(["compare", run]) == 2
    assert "give at least two run directories" in capsys.readouterr().err
    assert main(["cache", "--cache-dir", str(tmp_path), "prune"]) == 2
    assert "rewardflow cache prune: error: give --model" in capsys.readouterr().err


def test_an_old_command_name_says_it_is_deprecated_and_still_works(tmp_path, monkeypatch, capsys):
    run = str(support.write_run(tmp_path, "a", prompts=3))
    monkeypatch.setattr(sys, "argv", ["rewardflow-inspect", run, "list"])
    assert aliases.inspect() == 0
    old = capsys.readouterr()
    assert old.err == "rewardflow-inspect is deprecated; use `rewardflow inspect` (same options)\n"
    assert main(["inspect", "list", run]) == 0
    assert capsys.readouterr().out == old.out


@pytest.mark.parametrize(
    "command", [["rewardflow", "simulate"], ["rewardflow.simulator"]], ids=" ".join
)
def test_the_simulator_starts_as_a_subcommand_and_by_its_old_module(command):
    # Launch commands in users' configs say `python -m rewardflow.simulator`; it must keep working.
    process = subprocess.Popen(
        [sys.executable, "-m", *command, "--port", "0", "--model", "m", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "no announcement within 30 s"
        assert process.stdout.readline().startswith("rewardflow simulator listening on http://")
        process.stdin.close()  # --exit-on-stdin-eof: the server stops cleanly
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_command_imports_only_its_own_feature():
    # `rewardflow inspect` must not pay for the simulator's aiohttp server at every start.
    code = (
        "import sys; from rewardflow.cli.main import build_parser; "
        "build_parser({'inspect'}).parse_args(['inspect', 'list', 'results/x']); "
        "print(sorted(m for m in ('rewardflow.simulator', 'aiohttp') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
