"""LLM-as-judge through the real client against the simulator: verdicts, caching, retries."""

from __future__ import annotations

import json

import pytest
from conftest import start_simulator, stop_simulator

from rewardflow.errors import MissingApiKeyError
from rewardflow.rewards.judge import close_judges, judge_messages, llm_judge, parse_verdict

CORRECT = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]
WRONG = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "6"}]


@pytest.fixture(autouse=True)
def fresh_judges():
    close_judges()
    yield
    close_judges()


@pytest.fixture
def judge_server(tmp_path):
    """A simulator that answers the judge prompts of CORRECT and WRONG like a judge would."""
    answers = {
        judge_messages(CORRECT, "4")[-1]["content"]: "The response says 4, as expected.\nSCORE: 1",
        judge_messages(WRONG, "5")[-1]["content"]: "It says 6, expected 5.\nSCORE: 0",
    }
    responses = tmp_path / "judge.jsonl"
    responses.write_text(
        "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in answers.items())
    )
    server = start_simulator("--responses", str(responses), "--error-500-rate", "0.3",
                             "--fault-seed", "2")  # fmt: skip
    yield server
    stop_simulator(server)


def params(server, tmp_path, **extra):
    return {"model": "judge", "base_url": server.base_url, "cache_dir": str(tmp_path / "cache"),
            "max_attempts": 8, **extra}  # fmt: skip


def test_verdicts_are_parsed_from_the_judges_last_score_line():
    assert parse_verdict("SCORE: 0 ... on reflection SCORE: 1") == 1.0
    assert parse_verdict("score = 0.75") == 0.75
    with pytest.raises(ValueError, match="no verdict"):
        parse_verdict("I think it is right.")


def test_judge_messages_carry_question_response_and_reference():
    messages = judge_messages(CORRECT, "4", template="{question}|{response}|{ground_truth}")
    assert messages[0]["role"] == "system"
    assert messages[-1] == {"role": "user", "content": "What is 2 + 2?|4|4"}


def test_the_judge_grades_through_the_client_with_retries_and_caches_verdicts(
    judge_server, tmp_path
):
    assert llm_judge(CORRECT, "4", **params(judge_server, tmp_path)).score == 1.0
    assert llm_judge(WRONG, "5", **params(judge_server, tmp_path)).score == 0.0
    stats = judge_server.stats()
    assert stats["completions"] == 2
    assert stats["requests"] == 2 + sum(stats["faults"].values())  # 500s were retried

    close_judges()  # as in a new process: the verdicts must come from the cache on disk
    judge_server.reset()
    assert llm_judge(CORRECT, "4", **params(judge_server, tmp_path)).score == 1.0
    assert judge_server.requests() == 0


def test_an_answer_without_a_verdict_is_an_error_not_a_zero(judge_server, tmp_path):
    other = [{"role": "user", "content": "Unscripted?"}, {"role": "assistant", "content": "x"}]
    with pytest.raises(ValueError, match="no verdict"):
        llm_judge(other, "y", **params(judge_server, tmp_path))


def test_a_missing_key_is_reported_by_name(judge_server, tmp_path, monkeypatch):
    monkeypatch.delenv("JUDGE_KEY_FOR_TEST", raising=False)
    with pytest.raises(MissingApiKeyError, match="JUDGE_KEY_FOR_TEST"):
        llm_judge(CORRECT, "4", **params(judge_server, tmp_path, api_key_env="JUDGE_KEY_FOR_TEST"))


def test_missing_model_or_url_is_a_configuration_error():
    with pytest.raises(ValueError, match="'model' and 'base_url'"):
        llm_judge(CORRECT, "4", model="judge")
