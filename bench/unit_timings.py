"""Benchmark: the timing claims the unit tests make in words, measured.

Unit tests assert behaviour only (a wall-clock limit fails on a loaded machine and says
nothing on a fast one); the speed behind them is measured here, in one run, each next to
the bound the claim is about:

* rewards on pathological input: every built-in on three 1 MB responses, and the math
  reward on a 1 MB response and on degenerate ones (unclosed boxes, a million-digit number);
* stopping what runs too long: the code reward's timeout, wall-clock limit and output limit,
  and the scoring pool's per-sample timeout around a reward that hangs;
* the simulated server: six requests inside one latency, an answer while another request
  hangs, and a shutdown that does not wait for the hang.

Each row prints the seconds measured, the reference (a timeout, a latency, or the limit the
unit test used to hold) and their ratio. Usage::

    .venv/bin/python bench/unit_timings.py
"""

from __future__ import annotations

import asyncio
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from rewardflow.jsonl import write_jsonl_atomic
from rewardflow.records import ResponseRecord
from rewardflow.rewards.choice import multiple_choice
from rewardflow.rewards.code import code_execution
from rewardflow.rewards.code_isolation import SandboxUnavailableError
from rewardflow.rewards.format import tag_count, think_answer_format
from rewardflow.rewards.json_rewards import json_fields, json_schema, json_valid
from rewardflow.rewards.length import cosine_scaled_length, length_reward, repetition_penalty
from rewardflow.rewards.math import math_reward
from rewardflow.rewards.text import exact_match, normalized_match, regex_match
from rewardflow.scoring.job import score_shard
from rewardflow.simulator import SimulatorConfig, fault_for, running_simulator

MEGABYTE = 1_000_000
HUGE_RESPONSES = {
    "prose": ("The farmer sells A cows; I think. " * (MEGABYTE // 34))[:MEGABYTE],
    "brackets": ('{["(' * (MEGABYTE // 4))[:MEGABYTE],
    "markers": ("The answer is (C) \\boxed{ <think> ```json\n" * (MEGABYTE // 42))[:MEGABYTE],
}
# Each built-in with a ground truth and params, as tests/unit/test_rewards_builtin.py runs them.
BUILTINS: dict[str, tuple[Callable[..., Any], Any, dict[str, Any]]] = {
    "exact_match": (exact_match, "Paris", {}),
    "normalized_match": (normalized_match, "Paris", {}),
    "regex_match": (regex_match, "5", {"pattern": r"(\d+)", "compare_group": 1}),
    "think_answer_format": (think_answer_format, None, {}),
    "tag_count": (tag_count, None, {}),
    "multiple_choice": (multiple_choice, "C", {}),
    "length_reward": (length_reward, None, {"max_chars": 100}),
    "cosine_scaled_length": (cosine_scaled_length, "5", {"max_len": 10**9}),
    "repetition_penalty": (repetition_penalty, None, {}),
    "json_valid": (json_valid, None, {}),
    "json_schema": (json_schema, None, {"schema": {"type": "object"}}),
    "json_fields": (json_fields, '{"a": 1}', {}),
}
MATH_RESPONSES = {
    "1 MB ending in '#### 42'": "lorem ipsum 7 dolor sit amet " * 36_000 + "#### 42",
    "100,000 unclosed \\boxed{": "\\boxed{" * 100_000,
    "'answer is ' x 100,000": "answer is " * 100_000,
    "'#### ' x 100,000": "#### " * 100_000,
    "a million-digit number": "1" * 1_000_000,
    "100,000 nested braces": "{" * 100_000 + "}" * 100_000,
}
HANGING_REWARD = textwrap.dedent(
    """
    import time

    def exact(messages, ground_truth, **kwargs):
        if messages[-1]["content"] == "hang":
            time.sleep(60)
        return messages[-1]["content"] == ground_truth
    """
)

Row = tuple[str, float, float, str]  # what, seconds, reference seconds, what the reference is


def conversation(response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": "q"}, {"role": "assistant", "content": response}]


def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Seconds that ``call(*args, **kwargs)`` takes."""
    started = time.perf_counter()
    call(*args, **kwargs)
    return time.perf_counter() - started


def reward_rows() -> list[Row]:
    rows = []
    for name, (reward, ground_truth, params) in BUILTINS.items():
        seconds = {
            shape: timed(reward, conversation(text), ground_truth, **params)
            for shape, text in HUGE_RESPONSES.items()
        }
        slowest = max(seconds, key=seconds.__getitem__)
        rows.append((f"{name}, 1 MB ({slowest}, the slowest)", seconds[slowest], 2.0, "old limit"))
    for label, text in MATH_RESPONSES.items():
        seconds = timed(math_reward, conversation(text), "42")
        rows.append((f"math_reward, {label}", seconds, 5.0, "old limit"))
    return rows


def code_rows() -> list[Row]:
    cases = [
        ("infinite loop", "while True:\n    pass\n", 1.0),
        ("time.sleep(60)", "import time\ntime.sleep(60)\n", 0.5),
        ("print bomb (the 10 MB output limit)", "while True:\n    print('x' * 10000)\n", 2.0),
    ]
    rows = []
    for label, code, timeout_s in cases:
        messages = conversation(f"```python\n{code}```\n")
        tests = [{"input": "", "output": "ok"}]
        try:
            seconds = timed(code_execution, messages, tests, timeout_s=timeout_s)
        except SandboxUnavailableError as error:
            print(f"code reward skipped: {error}")
            return []
        rows.append((f"code reward, {label}", seconds, timeout_s, "its timeout"))
    return rows


def scoring_rows() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        reward_file = Path(tmp) / "rewards.py"
        reward_file.write_text(HANGING_REWARD)
        records = [
            ResponseRecord(
                id=f"p{index}", sample_index=0, status="ok", ground_truth="4",
                messages=[{"role": "user", "content": "q"}], response=text,
            ).to_dict()
            for index, text in enumerate(["4", "hang", "4"])
        ]  # fmt: skip
        responses = Path(tmp) / "responses.jsonl"
        write_jsonl_atomic(responses, records)
        configs = [{"name": "accuracy", "function": f"{reward_file}:exact"}]
        output = Path(tmp) / "scores.jsonl"
        seconds = timed(score_shard, responses, output, configs, workers=2, timeout_s=1.0)
    return [("score_shard, 3 samples, one hangs 60 s", seconds, 1.0, "the sample timeout")]


def prompt_with(config: SimulatorConfig, fault: str | None) -> str:
    for number in range(10_000):
        prompt = f"What is {number} + 1?"
        if fault_for([{"role": "user", "content": prompt}], 0, config) == fault:
            return prompt
    raise RuntimeError(f"no prompt gets {fault}")


async def simulator_rows() -> list[Row]:
    body = {"model": "m", "messages": [{"role": "user", "content": "What is 1 + 1?"}]}
    config = SimulatorConfig(latency_ms=300, latency_jitter_ms=50, seed=1)
    async with running_simulator(config) as url, aiohttp.ClientSession() as session:

        async def one(payload: dict[str, Any], timeout: float = 30) -> None:
            limit = aiohttp.ClientTimeout(total=timeout)
            async with session.post(f"{url}/chat/completions", json=payload, timeout=limit) as r:
                await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(body) for _ in range(6)))
        concurrent = time.perf_counter() - started

    hang = SimulatorConfig(latency_ms=50, hang_rate=0.5, hang_s=5, wrong_rate=0.0)
    hanging, normal = prompt_with(hang, "hang"), prompt_with(hang, None)
    async with running_simulator(hang) as url, aiohttp.ClientSession() as session:
        stuck = asyncio.ensure_future(
            one({"model": "m", "messages": [{"role": "user", "content": hanging}]}, timeout=4)
        )
        await asyncio.sleep(0.05)  # the hang has begun
        started = time.perf_counter()
        await one({"model": "m", "messages": [{"role": "user", "content": normal}]})
        beside_hang = time.perf_counter() - started
        stuck.cancel()
        shutdown_started = time.perf_counter()
    shutdown = time.perf_counter() - shutdown_started
    return [
        ("simulator, 6 requests at once, 300 ± 50 ms each", concurrent, 1.8, "6 in turn"),
        ("simulator, an answer while a request hangs", beside_hang, 0.05, "one latency"),
        ("simulator, shutdown with a 5 s hang in flight", shutdown, 5.0, "the hang"),
    ]


def main() -> None:
    rows = reward_rows() + code_rows() + scoring_rows() + asyncio.run(simulator_rows())
    print("| what | measured | reference | measured / reference |")
    print("|---|---:|---:|---:|")
    for what, seconds, reference, meaning in rows:
        print(
            f"| {what} | {seconds:.3f} s | {reference:g} s ({meaning}) | "
            f"{seconds / reference:.2f} |"
        )


if __name__ == "__main__":
    main()
