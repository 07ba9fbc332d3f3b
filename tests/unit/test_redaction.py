"""The API key's value never reaches a log line, an error message or a failure record."""

from __future__ import annotations

import io
import logging

import pytest

from rewardflow import redaction
from rewardflow.generation.endpoint import read_api_key
from rewardflow.records import GenerationError, ResponseRecord
from rewardflow.redaction import MASK, RedactingFilter, redact, register_secret
from rewardflow.rule_script import configure_logging

KEY = "sk-live-0a1b2c3d4e5f6789"


@pytest.fixture(autouse=True)
def no_secrets(monkeypatch):
    """Each test starts with no registered secret and leaves none behind."""
    monkeypatch.setattr(redaction, "_SECRETS", set())


def test_redact_replaces_every_occurrence_of_a_registered_secret():
    register_secret(KEY)
    assert redact(f"Bearer {KEY} was wrong; {KEY}!") == f"Bearer {MASK} was wrong; {MASK}!"
    assert redact("nothing secret here") == "nothing secret here"


def test_without_a_registered_secret_text_is_unchanged():
    assert redact(f"Bearer {KEY}") == f"Bearer {KEY}"


def test_a_value_too_short_to_be_a_key_is_not_registered():
    # Masking every "ab" in every log line would garble the logs and protect nothing.
    register_secret("ab")
    register_secret(None)
    assert redact("ab cd") == "ab cd"


def test_reading_the_key_from_the_environment_registers_it(monkeypatch):
    monkeypatch.setenv("MY_PROVIDER_KEY", KEY)
    assert read_api_key("MY_PROVIDER_KEY") == KEY
    assert KEY not in redact(f"echoed: {KEY}")


def capture(logger_name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(logger_name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_the_filter_redacts_messages_arguments_and_tracebacks():
    register_secret(KEY)
    logger, stream = capture("rewardflow.test_redaction")
    logger.warning("sample failed: %s", f"HTTP 401: Incorrect API key provided: {KEY}")
    logger.info(f"literal {KEY} in the format string")
    try:
        raise RuntimeError(f"the endpoint said {KEY}")
    except RuntimeError:
        logger.exception("unexpected error")
    output = stream.getvalue()
    assert KEY not in output
    assert output.count(MASK) == 3
    assert "RuntimeError: the endpoint said" in output


def test_rule_logging_redacts_both_the_log_file_and_the_terminal(tmp_path, capsys):
    register_secret(KEY)
    log_path = tmp_path / "logs" / "job.log"
    configure_logging(log_path)
    try:
        logging.getLogger("rewardflow.generation.job").warning("q1 sample 0 failed: %s", KEY)
    finally:
        logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    assert MASK in log_path.read_text()
    assert KEY not in log_path.read_text()
    assert KEY not in capsys.readouterr().err


def test_a_failure_record_never_carries_the_key():
    register_secret(KEY)
    error = GenerationError("ModelAuthError", f"HTTP 401 ({KEY})", attempts=1)
    assert KEY not in error.message
    record = ResponseRecord("q1", 0, "failed", [], None, None, error=error)
    assert KEY not in str(record.to_dict())
