"""The simulator answers fixed requests exactly as it did before its hot path was made cheaper.

``tests/data/simulator_golden.json`` holds what the simulator of c11cf76 answered over HTTP to
:data:`REQUESTS` (status, header names, and the body without its random ``id`` and its
``created`` time); it was written by running this module as a script with that checkout first
on ``PYTHONPATH``::

    cd tests/data && PYTHONPATH=/tmp/old-sim python ../unit/test_simulator_golden.py \
        simulator_golden.json

Answers are part of the pipeline's cache identity (``ANSWER_VERSION``), so a change here must
be deliberate: bump the version and rewrite the file.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from rewardflow.simulator import SimulatorConfig, running_simulator

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "simulator_golden.json"

QUESTIONS = [
    "What is 12 * 9 + 7?",
    "Compute 1,200 / 7 - 0.25.",
    "计算12+3",
    "A shop sells 3 pens at $1.5 each and 2 books at $12.75. Total: 3 * 1.5 + 2 * 12.75",
    "What is -(4 - 10) × 3 ÷ 2 − 1?",
    "x2 + mp3 and then 5 - (3 + 2",
    "No numbers here at all.",
    "Divide 5 / 0 please",
    "What is 999999 * 999999?",
]


def _requests() -> list[tuple[str, dict[str, Any]]]:
    requests: list[tuple[str, dict[str, Any]]] = []
    for index, question in enumerate(QUESTIONS):
        messages = [{"role": "user", "content": question}]
        base = {"model": "golden", "messages": messages}
        requests.append(("chat/completions", {**base, "temperature": 1.0, "seed": index, "n": 4}))
        requests.append(("chat/completions", {**base, "temperature": 0}))
        requests.append(("chat/completions", {**base, "seed": 7, "max_tokens": 5, "stop": ["."]}))
        requests.append(("completions", {"model": "golden", "prompt": question, "seed": index}))
    requests.append(("chat/completions", {"model": "golden", "messages": []}))  # a 400
    return requests


REQUESTS = _requests()


async def _answers() -> list[dict[str, Any]]:
    config = SimulatorConfig(wrong_rate=0.5)
    answers = []
    async with running_simulator(config) as url, aiohttp.ClientSession() as session:
        for path, body in REQUESTS:
            async with session.post(f"{url}/{path}", json=body) as response:
                payload = await response.json()
                payload.pop("id", None)
                payload.pop("created", None)
                answers.append(
                    {
                        "status": response.status,
                        "headers": sorted(response.headers),
                        "body": payload,
                    }
                )
    return answers


def test_answers_match_the_golden_file() -> None:
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert asyncio.run(_answers()) == expected


if __name__ == "__main__":
    text = json.dumps(asyncio.run(_answers()), ensure_ascii=False, indent=1)
    Path(sys.argv[1]).write_text(text + "\n", encoding="utf-8")
