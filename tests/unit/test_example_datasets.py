"""Each example's shipped data is exactly what its make_dataset.py writes.

The canned answers of the multiple-choice and LLM-judge examples are keyed by prompts that
rewardflow builds (shuffled options, the judge's fenced prompt): a change to that code
without regenerating them would leave the offline runs answering prompts nobody sends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The examples whose folder holds all their script needs (verl's reads the demo's data).
EXAMPLES = ["competition_math", "multiple_choice", "code_generation", "structured_output",
            "llm_judge", "reasoning_format", "demo"]  # fmt: skip


@pytest.mark.parametrize("name", EXAMPLES)
def test_make_dataset_reproduces_the_shipped_files(tmp_path, name):
    shipped = REPO / "examples" / name
    copy = tmp_path / name
    shutil.copytree(shipped, copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, str(copy / "make_dataset.py")], check=True, env=env,
                   cwd=tmp_path, timeout=120)  # fmt: skip
    for written in sorted(copy.iterdir()):
        if written.is_file():
            assert written.read_bytes() == (shipped / written.name).read_bytes(), written.name
