"""Keep secret values (API keys) out of every log line, error message and failure record.

A provider may quote the key back in an error body (``Incorrect API key provided: sk-...``),
and that body becomes an exception message, a failure record and a log line. Rather than
guard each of those places, the key's *value* is registered once where it is read from the
environment, and removed at the two points every such text passes: where a response body
becomes an error (:func:`redact` in the client, and :class:`~rewardflow.records.GenerationError`
for any other source), and in the log handlers (:class:`RedactingFilter`), which also covers
tracebacks.
"""

from __future__ import annotations

import logging

MASK = "[REDACTED]"
#: Shorter values are not registered: masking every "ab" would garble logs and hide nothing.
MIN_SECRET_CHARS = 6

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` from now on in this process (a no-op for None or a too short value)."""
    if value and len(value.strip()) >= MIN_SECRET_CHARS:
        _SECRETS.add(value.strip())


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by :data:`MASK`."""
    # Longest first, so a key that contains another registered key is masked whole.
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in the formatted message and any traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SECRETS:
            return True
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
