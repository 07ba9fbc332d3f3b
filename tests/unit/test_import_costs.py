"""Each rule job imports what its step needs, and nothing heavy that it does not.

Every job is a fresh interpreter, so a module imported at the top of a shared module is paid
once per shard: pyarrow (Parquet only), jsonschema (config validation, done once at Snakefile
parse), aiohttp (only a job that sends requests), matplotlib (only the report). These tests
import each rule script's own imports, or run a job, in a fresh subprocess and look at
``sys.modules``: behaviour, not timing (bench/ and the issue's numbers hold the timings).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

#: Heavy modules (0.1-0.5 s each to import) that most rule jobs have no use for.
PYARROW, JSONSCHEMA, AIOHTTP, MATPLOTLIB, SYMPY = (
    "pyarrow", "jsonschema", "aiohttp", "matplotlib", "sympy",
)  # fmt: skip
ALL_HEAVY = (PYARROW, JSONSCHEMA, AIOHTTP, MATPLOTLIB, SYMPY)

#: Per rule script: the heavy modules its imports must leave out.
NOT_IMPORTED = {
    "prepare_prompts": ALL_HEAVY,  # the demo's JSONL needs no pyarrow
    "generate_responses": ALL_HEAVY,  # aiohttp only once a request is sent
    "import_responses": ALL_HEAVY,
    "score_responses": ALL_HEAVY,  # sympy is loaded by the reward workers, on demand
    "aggregate_scores": ALL_HEAVY,
    "check_run": ALL_HEAVY,
    "build_report": (PYARROW, JSONSCHEMA, AIOHTTP, SYMPY),
    "build_viewer": ALL_HEAVY,
    "build_viewer_data": ALL_HEAVY,
}


def python(code: str, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter that imports this checkout; return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def loaded(modules: tuple[str, ...]) -> str:
    """Code that prints which of ``modules`` the interpreter has imported, as JSON."""
    return (
        f"\nimport json, sys\nprint(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    )


def script_imports(script: Path) -> str:
    """The top-level import statements of a rule script, as code."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    nodes = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join(ast.unparse(node) for node in nodes)


def test_every_rule_script_is_covered():
    assert {path.stem for path in (REPO / "scripts").glob("*.py")} == set(NOT_IMPORTED)


@pytest.mark.parametrize("script", sorted(NOT_IMPORTED))
def test_a_rule_scripts_imports_leave_out_what_its_step_does_not_need(script: str):
    code = script_imports(REPO / "scripts" / f"{script}.py") + loaded(NOT_IMPORTED[script])
    assert json.loads(python(code)) == []


def test_the_report_still_gets_matplotlib():
    # The check above would pass vacuously if the report stopped drawing anything.
    code = script_imports(REPO / "scripts" / "build_report.py") + loaded((MATPLOTLIB,))
    assert json.loads(python(code)) == [MATPLOTLIB]


def test_a_scoring_job_imports_the_judge_and_its_http_client_only_for_a_judge_reward():
    # Not heavy each, but together ~40 ms of every scoring job (the client, tenacity, the
    # judge's settings), paid per shard by runs whose rewards never call a model.
    code = script_imports(REPO / "scripts" / "score_responses.py") + loaded(
        ("rewardflow.rewards.judge", "rewardflow.generation.client", "tenacity")
    )
    assert json.loads(python(code)) == []


def test_validating_the_config_loads_jsonschema_where_it_is_needed():
    code = (
        "from rewardflow.config import validate_config\n"
        "import sys\n"
        "before = 'jsonschema' in sys.modules\n"
        "validate_config({'run_name': 'x', 'dataset': {'path': 'd.jsonl'}, "
        "'model': {'provider': 'simulator', 'name': 'm'}, "
        "'rewards': [{'name': 'r', 'function': 'm:f'}]})\n"
        "print(before, 'jsonschema' in sys.modules)"
    )
    assert python(code).split() == ["False", "True"]


def test_the_schema_loads_the_same_with_the_fast_yaml_loader():
    from rewardflow.config import SCHEMA_PATH, load_schema

    assert load_schema() == yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


#: What only a job that sends requests needs: the heavy modules, and the request phase itself
#: (asyncio, the client and its retries, the launcher: ~50 ms of each cached job's start-up).
REQUEST_PHASE = (
    "aiohttp", "pyarrow", "jsonschema", "rewardflow.simulator.app", "asyncio", "tenacity",
    "rewardflow.generation.fetch", "rewardflow.generation.client", "rewardflow.generation.launch",
)  # fmt: skip

GENERATE = """
import json, sys
from rewardflow.run_script import main  # as every job does, before its script
from pathlib import Path
from rewardflow.config.generation import GenerationStageSettings
from rewardflow.generation.job import generate_shard

REQUEST_PHASE = %r
config, prompts, output, log = sys.argv[1:5]
report = generate_shard(
    prompts, output, GenerationStageSettings.from_config(json.loads(Path(config).read_text())),
    "unit.shard-000", server_log=log,
)
print(json.dumps({
    "cached": report.cached, "requested": report.requested,
    "loaded": [m for m in REQUEST_PHASE if m in sys.modules],
}))
"""


def generate(tmp_path: Path, config: Path, prompts: Path, name: str) -> dict[str, Any]:
    log = tmp_path / f"{name}.server.log"
    code = textwrap.dedent(GENERATE) % (REQUEST_PHASE,)
    result = subprocess.run(
        [sys.executable, "-c", code, str(config), str(prompts),
         str(tmp_path / f"{name}.jsonl"), str(log)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {**json.loads(result.stdout), "server_started": log.exists()}


def test_a_generation_job_with_everything_cached_starts_no_server_and_no_http_client(tmp_path):
    from rewardflow.config import validate_config
    from rewardflow.jsonl import write_jsonl_atomic
    from rewardflow.records import PromptRecord

    validated = validate_config(
        {
            "run_name": "unit",
            "dataset": {"path": "unused.jsonl"},
            "model": {"provider": "simulator", "name": "sim"},
            "cache": {"dir": str(tmp_path / "cache")},
            "rewards": [{"name": "r", "function": "m:f"}],
        }
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps(validated))
    prompts = tmp_path / "prompts.jsonl"
    questions = [f"What is {n} + {n}?" for n in range(3)]
    write_jsonl_atomic(
        prompts,
        (PromptRecord(f"q{n}", [{"role": "user", "content": q}], str(2 * n)).to_dict()
         for n, q in enumerate(questions)),
    )  # fmt: skip

    first = generate(tmp_path, config, prompts, "first")
    # The first job asked the simulator it launched: the check below is not vacuous.
    assert (first["requested"], first["server_started"]) == (3, True)
    assert {AIOHTTP, "asyncio", "rewardflow.generation.fetch"} <= set(first["loaded"])

    again = generate(tmp_path, config, prompts, "again")
    assert again == {"cached": 3, "requested": 0, "loaded": [], "server_started": False}
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "first.jsonl").read_text()
