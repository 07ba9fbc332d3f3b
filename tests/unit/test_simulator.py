"""Tests of the simulated model server: the pure answer logic first, then real HTTP.

The HTTP tests run the app on 127.0.0.1 through aiohttp's test server (an ephemeral port, a
real socket); one test starts the command-line server as a subprocess, as the pipeline does.
"""

from __future__ import annotations

import asyncio
import builtins
import importlib.util
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from rewardflow.cli import main
from rewardflow.simulator import (
    ANSWER_STYLES,
    FAULTS,
    NO_ANSWER,
    ApiError,
    SimulatorConfig,
    SimulatorError,
    answer_for,
    apply_stop_and_max_tokens,
    arithmetic_response,
    build_app,
    count_tokens,
    evaluate_expression,
    find_expression,
    format_number,
    generate_choices,
    load_responses,
    parse_chat_request,
    running_simulator,
    solve,
)

REPO = Path(__file__).resolve().parents[2]
DATASET = REPO / "examples" / "demo" / "arithmetic.jsonl"
FINAL_NUMBER = re.compile(r"(-?)\$?(-?[0-9][0-9,]*(?:\.[0-9]+)?)\D*$")


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def final_number(text: str) -> Fraction:
    """The number an answer ends with, in any of the simulator's answer styles."""
    match = FINAL_NUMBER.search(text)
    assert match, text
    return Fraction((match.group(1) + match.group(2)).replace(",", ""))


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


# --------------------------------------------------------------------------------------------
# Finding and evaluating expressions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What is 37 + 45?", "37 + 45"),
        ("Compute (12 * 9) - 4.", "(12 * 9) - 4"),
        ("A shop sells 14 boxes with 12 pens each. How many? Compute 14 * 12.", "14 * 12"),
        ("First 1 + 1, then what is 2 * 3?", "2 * 3"),
        ("What is 3.5*2?", "3.5*2"),
        ("What is 1,200 + 5?", "1,200 + 5"),
        ("Compute 10 − 3 × 2.", "10 − 3 × 2"),
        ("Compute -(2 + 3) * 4.", "-(2 + 3) * 4"),
        ("Unbalanced 5 - (3 + 2", "3 + 2"),
        ("计算12+3。", "12+3"),
        ("What is 42?", None),
        ("No numbers here.", None),
        ("mp3 + 4x", None),
        ("", None),
    ],
)
def test_find_expression_returns_the_last_expression_as_written(
    text: str, expected: str | None
) -> None:
    assert find_expression(text) == expected


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("10 - 4 - 3", 3),
        ("2 * (3 + (4 - 1)) / 3", 4),
        ("8 / 4 / 2", 1),
        ("-3 * -2", 6),
        ("7 / 2", Fraction(7, 2)),
        ("0.1 + 0.2", Fraction(3, 10)),
        ("1,200 * 3", 3600),
        ("007 + 0.50", Fraction(15, 2)),
        ("123456789012345678.5 * 2", 246913578024691357),
    ],
)
def test_evaluate_expression_respects_precedence_and_parentheses(
    expression: str, value: Fraction | int
) -> None:
    assert evaluate_expression(expression) == value


@pytest.mark.parametrize(
    "hostile",
    [
        "__import__('os').system('echo pwned')",
        "().__class__.__bases__",
        "2 ** 10 ** 10",
        "9 // 2",
        "(1)(2)",
        "open('x').read()",
        "1 if 1 else 2",
        "1e400 * 2",
    ],
)
def test_hostile_input_is_never_evaluated(hostile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec must never be called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    with pytest.raises(ValueError):
        evaluate_expression(hostile)
    assert arithmetic_response(f"What is {hostile}?") == NO_ANSWER


def test_division_by_zero_gets_no_answer() -> None:
    assert solve("What is 3 / (2 - 2)?") is None
    assert arithmetic_response("What is 3 / 0?") == NO_ANSWER
    with pytest.raises(ZeroDivisionError):
        evaluate_expression("3 / 0")


@pytest.mark.parametrize(
    ("value", "grouping", "text"),
    [
        (Fraction(104), False, "104"),
        (Fraction(7, 2), False, "3.5"),
        (Fraction(7, 3), False, "2.3333"),
        (Fraction(2, 3), False, "0.6667"),
        (Fraction(-5, 2), False, "-2.5"),
        (Fraction(-1, 100_000), False, "0"),
        (Fraction(299_999, 100_000), False, "3"),
        (Fraction(1200), True, "1,200"),
        (Fraction(-123_456_789, 100), True, "-1,234,567.89"),
    ],
)
def test_format_number(value: Fraction, grouping: bool, text: str) -> None:
    assert format_number(value, grouping=grouping) == text


def test_worked_solution_shows_steps_and_ends_in_each_style() -> None:
    question = "Compute (12 * 9) - 4."
    for style in range(len(ANSWER_STYLES)):
        response = arithmetic_response(question, style=style)
        assert response.splitlines()[:3] == [
            "Let's compute (12 * 9) - 4.",
            "12 * 9 = 108",
            "108 - 4 = 104",
        ]
        assert final_number(response) == 104
    endings = {arithmetic_response(question, style=s).splitlines()[-1] for s in range(4)}
    assert endings == {"The answer is 104.", "#### 104", "\\boxed{104}", "So the result is $104."}


def test_offset_makes_a_consistent_wrong_answer_without_flipping_the_sign() -> None:
    wrong = arithmetic_response("What is 37 + 45?", style=0, offset=3)
    assert wrong.splitlines()[-2:] == ["37 + 45 = 85", "The answer is 85."]
    mirrored = arithmetic_response("What is 3 - 2?", style=0, offset=-4)
    assert final_number(mirrored) == 5


# --------------------------------------------------------------------------------------------
# Deterministic answers
# --------------------------------------------------------------------------------------------


def test_answers_are_deterministic_and_vary_with_seed_and_sample() -> None:
    config = SimulatorConfig(wrong_rate=0.5)
    prompts = [user(f"What is {a} * {a + 7}?") for a in range(1, 30)]
    first = [answer_for(p, 7, 0, config) for p in prompts]
    assert first == [answer_for(p, 7, 0, config) for p in prompts]
    assert first != [answer_for(p, 8, 0, config) for p in prompts]
    assert first != [answer_for(p, 7, 1, config) for p in prompts]
    assert first != [answer_for(p, None, 0, config) for p in prompts]


def test_answers_do_not_depend_on_the_process(tmp_path: Path) -> None:
    """SHA-256, not hash(): a fresh interpreter with another hash seed answers the same."""
    code = (
        "from rewardflow.simulator import SimulatorConfig, answer_for\n"
        "m = [{'role': 'user', 'content': 'What is 37 + 45?'}]\n"
        "print(repr([answer_for(m, s, i, SimulatorConfig(wrong_rate=0.5))"
        " for s in range(4) for i in range(3)]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    m = user("What is 37 + 45?")
    config = SimulatorConfig(wrong_rate=0.5)
    expected = [answer_for(m, s, i, config) for s in range(4) for i in range(3)]
    assert out.strip() == repr(expected)


def test_wrong_rate_is_roughly_respected() -> None:
    prompts = [user(f"What is {a} + {2 * a + 1}?") for a in range(2000)]
    right = SimulatorConfig(wrong_rate=0.0)
    for rate, low, high in [(0.0, 0, 0), (0.2, 0.17, 0.23), (1.0, 1, 1)]:
        config = SimulatorConfig(wrong_rate=rate)
        wrong = sum(
            final_number(answer_for(p, 0, 0, config)) != final_number(answer_for(p, 0, 0, right))
            for p in prompts
        )
        assert low <= wrong / len(prompts) <= high, (rate, wrong)


def test_simulator_answers_the_demo_dataset_when_never_wrong() -> None:
    config = SimulatorConfig(wrong_rate=0.0)
    rows = [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 40
    assert len({row["id"] for row in rows}) == 40
    assert any(Fraction(row["answer"]) >= 1000 for row in rows)
    assert any(Fraction(row["answer"]).denominator != 1 for row in rows)
    for row in rows:
        response = answer_for(user(row["question"]), None, 0, config)
        assert final_number(response) == Fraction(row["answer"]), row


def test_demo_dataset_file_is_what_the_script_generates() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_dataset", DATASET.with_name("make_dataset.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = DATASET.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == module.make_rows()


def test_echo_rule_repeats_the_last_user_message() -> None:
    config = SimulatorConfig(rule="echo")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    assert answer_for(messages, None, 0, config) == "What is 2 + 2?"
    assert answer_for([{"role": "system", "content": "x"}], None, 0, config) == ""


# --------------------------------------------------------------------------------------------
# Responses file
# --------------------------------------------------------------------------------------------


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_responses_file_matches_the_stripped_last_user_message(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "r.jsonl",
        json.dumps({"prompt": "  Hello there ", "response": "General Kenobi."}),
        "",
        json.dumps({"prompt": "Pick", "responses": ["a", "b", "c"], "id": "x"}),
    )
    config = SimulatorConfig(responses=load_responses(path), wrong_rate=0.0)
    assert answer_for(user("Hello there\n"), None, 0, config) == "General Kenobi."
    picks = [answer_for(user("Pick"), seed, i, config) for seed in range(10) for i in range(3)]
    assert set(picks) == {"a", "b", "c"}
    assert picks == [answer_for(user("Pick"), s, i, config) for s in range(10) for i in range(3)]
    assert final_number(answer_for(user("What is 2 + 2?"), None, 0, config)) == 4


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"response": "x"}', '"prompt" must be a string'),
        ('{"prompt": "p"}', "exactly one of"),
        ('{"prompt": "p", "response": "x", "responses": ["y"]}', "exactly one of"),
        ('{"prompt": "p", "responses": []}', "non-empty list"),
        ('{"prompt": "p", "response": 3}', "must be a string"),
        ('{"prompt": " first ", "response": "again"}', "duplicate prompt (first given on line 1)"),
    ],
)
def test_malformed_responses_file_names_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = write_lines(tmp_path / "bad.jsonl", '{"prompt": "first", "response": "x"}', "", line)
    with pytest.raises(SimulatorError) as caught:
        load_responses(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert problem in str(caught.value)


def test_cli_reports_a_bad_responses_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_lines(tmp_path / "bad.jsonl", "{oops")
    assert main(["simulate", "--responses", str(path)]) == 2
    assert f"{path}:1: invalid JSON" in capsys.readouterr().err


def test_cli_refuses_an_unset_api_key_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RF_SIM_TEST_UNSET_KEY", raising=False)
    assert main(["simulate", "--api-key-env", "RF_SIM_TEST_UNSET_KEY"]) == 2
    assert "RF_SIM_TEST_UNSET_KEY is not set" in capsys.readouterr().err


def test_config_validates_and_hides_the_key() -> None:
    assert "s3cret" not in repr(SimulatorConfig(api_key="s3cret"))
    for bad in [{"wrong_rate": 1.5}, {"latency_ms": -1}, {"rule": "magic"}, {"api_key": ""}]:
        with pytest.raises(SimulatorError):
            SimulatorConfig(**bad)


# --------------------------------------------------------------------------------------------
# Tokens, stop, max_tokens and request parsing
# --------------------------------------------------------------------------------------------


def test_count_tokens_counts_words_and_punctuation() -> None:
    assert count_tokens("Let's compute 2 + 2.\n#### 4") == 13
    assert count_tokens("The answer is 104.") == 5
    assert count_tokens("\\boxed{3.5}") == 7
    assert count_tokens("   ") == 0


@pytest.mark.parametrize(
    ("stop", "max_tokens", "expected"),
    [
        ((), None, ("Let's compute 2 + 2.\n#### 4", "stop")),
        ((), 3, ("Let's", "length")),
        ((), 9, ("Let's compute 2 + 2.\n#", "length")),
        ((), 13, ("Let's compute 2 + 2.\n#### 4", "stop")),
        (("####",), None, ("Let's compute 2 + 2.\n", "stop")),
        (("\n", "+"), None, ("Let's compute 2 ", "stop")),
        (("",), None, ("Let's compute 2 + 2.\n#### 4", "stop")),
        (("####",), 4, ("Let's compute", "length")),
        (("+",), 4, ("Let's compute", "length")),
        (("+",), 5, ("Let's compute 2 ", "stop")),
    ],
)
def test_stop_and_max_tokens(
    stop: tuple[str, ...], max_tokens: int | None, expected: tuple[str, str]
) -> None:
    assert apply_stop_and_max_tokens("Let's compute 2 + 2.\n#### 4", stop, max_tokens) == expected


def test_temperature_zero_gives_identical_choices() -> None:
    body = {"model": "m", "messages": user("What is 5 * 7?"), "n": 4}
    config = SimulatorConfig(wrong_rate=0.5)
    greedy = generate_choices(parse_chat_request({**body, "temperature": 0}), config)
    assert len(set(greedy)) == 1
    sampled = generate_choices(parse_chat_request({**body, "seed": 3}), config)
    assert len(set(sampled)) > 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": user("hi")}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": user("hi"), "n": 0}, "n"),
        ({"model": "m", "messages": user("hi"), "max_tokens": True}, "max_tokens"),
        ({"model": "m", "messages": user("hi"), "temperature": 3}, "temperature"),
        ({"model": "m", "messages": user("hi"), "stop": ["a"] * 5}, "stop"),
        ({"model": "m", "messages": user("hi"), "stop": 5}, "stop"),
        ({"model": "m", "messages": user("hi"), "seed": 1.5}, "seed"),
        ({"model": "m", "messages": user("hi"), "stream": True}, "stream"),
    ],
)
def test_invalid_requests_name_the_parameter(body: object, param: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        parse_chat_request(body)
    assert (caught.value.status, caught.value.param) == (400, param)


def test_text_content_parts_are_accepted() -> None:
    parts = [{"type": "text", "text": "What is"}, {"type": "text", "text": "2 + 2?"}]
    request = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": parts}]})
    assert request.messages[0]["content"] == "What is\n2 + 2?"


# --------------------------------------------------------------------------------------------
# Real HTTP
# --------------------------------------------------------------------------------------------


@asynccontextmanager
async def serving(config: SimulatorConfig) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(config), host="127.0.0.1")) as client:
        yield client


async def post_chat(
    client: TestClient, body: object, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post("/v1/chat/completions", data=data, headers=headers)
    return response.status, await response.json()


def test_chat_completion_has_the_openai_shape() -> None:
    async def scenario() -> Any:
        async with serving(SimulatorConfig(wrong_rate=0.0)) as client:
            body = {"model": "gpt-test", "messages": user("Compute (12 * 9) - 4."), "seed": 1}
            return await post_chat(client, body)

    status, body = run(scenario())
    assert status == 200
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-test"
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert final_number(choice["message"]["content"]) == 104
    usage = body["usage"]
    assert usage["prompt_tokens"] == count_tokens("Compute (12 * 9) - 4.") == 9
    assert usage["completion_tokens"] == count_tokens(choice["message"]["content"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_n_choices_max_tokens_and_models_over_http() -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        async with serving(SimulatorConfig(model_name="sim-1", wrong_rate=0.5)) as client:
            body = {"model": "m", "messages": user("What is 19 * 23?"), "n": 5, "seed": 2}
            _, many = await post_chat(client, body)
            _, short = await post_chat(client, {**body, "n": 1, "max_tokens": 3})
            models = await (await client.get("/v1/models")).json()
            return many, short, models

    many, short, models = run(scenario())
    assert [c["index"] for c in many["choices"]] == [0, 1, 2, 3, 4]
    assert len({c["message"]["content"] for c in many["choices"]}) > 1
    assert many["usage"]["completion_tokens"] == sum(
        count_tokens(c["message"]["content"]) for c in many["choices"]
    )
    assert short["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "Let's"},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert models["object"] == "list"
    assert [(m["id"], m["object"]) for m in models["data"]] == [("sim-1", "model")]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"messages": user("hi")}, "model"),
        ({"model": "m", "messages": [{"content": "hi"}]}, "messages[0].role"),
    ],
)
def test_invalid_requests_get_400_with_openai_error_body(body: object, param: str | None) -> None:
    async def scenario() -> tuple[int, Any]:
        async with serving(SimulatorConfig()) as client:
            return await post_chat(client, body)

    status, error_body = run(scenario())
    assert status == 400
    error = error_body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, None)
    assert error["message"]


def test_api_key_is_required_and_never_echoed() -> None:
    key = "sk-sim-very-secret"

    async def scenario() -> list[tuple[int, Any]]:
        async with serving(SimulatorConfig(api_key=key)) as client:
            body = {"model": "m", "messages": user("What is 1 + 1?")}
            results = [
                await post_chat(client, body),
                await post_chat(client, body, {"Authorization": "Bearer sk-sim-wrong"}),
                await post_chat(client, body, {"Authorization": f"Basic {key}"}),
                await post_chat(client, body, {"Authorization": f"Bearer {key}"}),
            ]
            models = await client.get("/v1/models")
            results.append((models.status, await models.json()))
            return results

    *refused, (ok_status, _), (models_status, _) = run(scenario())
    assert ok_status == 200
    assert models_status == 401
    for status, body in refused:
        assert status == 401
        assert body["error"]["type"] == "authentication_error"
        assert key not in json.dumps(body) and "wrong" not in body["error"]["message"]


def test_stats_count_requests_completions_and_errors() -> None:
    async def scenario() -> list[Any]:
        async with serving(SimulatorConfig(api_key="k")) as client:
            good = {"model": "m", "messages": user("What is 1 + 1?")}
            auth = {"Authorization": "Bearer k"}
            await post_chat(client, good, auth)
            await post_chat(client, good, auth)
            await post_chat(client, {"model": "m"}, auth)
            await post_chat(client, good)  # 401
            await client.get("/v1/models", headers=auth)  # not counted
            snapshots = [await (await client.get("/_simulator/stats")).json()]
            snapshots.append(await (await client.post("/_simulator/reset")).json())
            await post_chat(client, good, auth)
            snapshots.append(await (await client.get("/_simulator/stats")).json())
            return snapshots

    before, reset, after = run(scenario())
    no_faults = {"rate_limited": 0, "faults": dict.fromkeys(FAULTS, 0)}
    assert before == {"requests": 4, "completions": 2, "errors": 2, **no_faults}
    assert reset == {"requests": 0, "completions": 0, "errors": 0, **no_faults}
    assert after == {"requests": 1, "completions": 1, "errors": 0, **no_faults}


def test_unknown_paths_get_json_errors() -> None:
    async def scenario() -> tuple[int, Any, int]:
        async with serving(SimulatorConfig()) as client:
            missing = await client.post("/v1/embeddings", json={})
            wrong_method = await client.get("/v1/chat/completions")
            return missing.status, await missing.json(), wrong_method.status

    status, body, method_status = run(scenario())
    assert status == 404
    assert body["error"]["message"] == "Invalid URL (POST /v1/embeddings)"
    assert method_status == 405


def test_latency_is_real_and_concurrent() -> None:
    async def scenario() -> tuple[list[tuple[int, float]], int]:
        config = SimulatorConfig(latency_ms=300, latency_jitter_ms=50, seed=1)
        async with running_simulator(config) as url, aiohttp.ClientSession() as session:
            body = {"model": "m", "messages": user("What is 1 + 1?")}

            async def one() -> tuple[int, float]:
                started = time.monotonic()
                async with session.post(f"{url}/chat/completions", json=body) as response:
                    return response.status, time.monotonic() - started

            async def waiting() -> int:
                """Requests the server has taken and not yet answered."""
                async with session.get(url.removesuffix("/v1") + "/_simulator/stats") as reply:
                    stats = await reply.json()
                return stats["requests"] - stats["completions"] - stats["errors"]

            requests = [asyncio.ensure_future(one()) for _ in range(6)]
            most_waiting = 0
            while not all(request.done() for request in requests):
                most_waiting = max(most_waiting, await waiting())
                await asyncio.sleep(0.02)
            return [request.result() for request in requests], most_waiting

    replies, most_waiting = run(scenario())
    assert [status for status, _ in replies] == [200] * 6
    assert min(seconds for _, seconds in replies) >= 0.25  # each waited its 300 ± 50 ms
    assert most_waiting == 6  # all at once: a server that answered in turn would have 1


def test_a_busy_port_is_a_clear_error() -> None:
    async def scenario() -> None:
        async with running_simulator(SimulatorConfig()) as url:
            port = int(url.rsplit(":", 1)[1].removesuffix("/v1"))
            async with running_simulator(SimulatorConfig(), port=port):
                pass

    with pytest.raises(SimulatorError, match="cannot listen on 127.0.0.1:"):
        run(scenario())


@pytest.mark.integration
def test_cli_subprocess_announces_its_url_and_serves(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RF_SIM_TEST_KEY": "cli-secret",
    }
    command = [sys.executable, "-m", "rewardflow", "simulate", "--port", "0"]
    command += ["--api-key-env", "RF_SIM_TEST_KEY", "--wrong-rate", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the simulator did not announce its URL within 30 s"
        line = process.stdout.readline()
        match = re.fullmatch(
            r"rewardflow simulator listening on (http://127\.0\.0\.1:\d+/v1)\n", line
        )
        assert match, line
        request = urllib.request.Request(
            f"{match.group(1)}/chat/completions",
            data=json.dumps({"model": "m", "messages": user("What is 37 + 45?")}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer cli-secret"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert final_number(body["choices"][0]["message"]["content"]) == 82
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert stdout == ""  # exactly one line was printed, and it was read above
    assert "cli-secret" not in stderr


# --------------------------------------------------------------------------------------------
# /v1/completions and /health
# --------------------------------------------------------------------------------------------


def test_text_completions_answer_the_prompt_as_a_chat_would() -> None:
    async def scenario() -> tuple[Any, Any]:
        async with serving(SimulatorConfig(wrong_rate=0.0)) as client:
            text = await client.post(
                "/v1/completions",
                json={"model": "m", "prompt": "What is 6 * 7?", "temperature": 0},
            )
            chat = await post_chat(
                client,
                {
                    "model": "m",
                    "messages": [{"role": "user", "content": "What is 6 * 7?"}],
                    "temperature": 0,
                },
            )
            return await text.json(), chat[1]

    text, chat = run(scenario())
    assert text["object"] == "text_completion"
    assert text["id"].startswith("cmpl-")
    assert text["choices"][0]["text"] == chat["choices"][0]["message"]["content"]
    assert "42" in text["choices"][0]["text"]
    assert "message" not in text["choices"][0]
    assert text["usage"] == chat["usage"]


def test_text_completions_refuse_a_missing_prompt_and_share_auth_and_faults() -> None:
    async def scenario() -> tuple[int, Any, int, int, Any]:
        async with serving(SimulatorConfig(api_key="k", error_500_rate=1.0)) as client:
            unauthorized = await client.post("/v1/completions", json={"model": "m", "prompt": "x"})
            headers = {"Authorization": "Bearer k"}
            bad = await client.post("/v1/completions", json={"model": "m"}, headers=headers)
            failing = await client.post(
                "/v1/completions", json={"model": "m", "prompt": "1+1"}, headers=headers
            )
            return bad.status, await bad.json(), unauthorized.status, failing.status, None

    bad_status, bad_body, unauthorized, failing, _ = run(scenario())
    assert bad_status == 400
    assert bad_body["error"]["param"] == "prompt"
    assert unauthorized == 401
    assert failing == 500


def test_null_content_fault_on_text_completions_has_null_text() -> None:
    async def scenario() -> Any:
        async with serving(SimulatorConfig(null_content_rate=1.0)) as client:
            answer = await client.post("/v1/completions", json={"model": "m", "prompt": "1+1"})
            return await answer.json()

    body = run(scenario())
    assert body["choices"][0]["text"] is None


def test_health_answers_200() -> None:
    async def scenario() -> tuple[int, Any]:
        async with serving(SimulatorConfig(api_key="k")) as client:
            answer = await client.get("/health")
            return answer.status, await answer.json()

    assert run(scenario()) == (200, {"status": "ok"})
