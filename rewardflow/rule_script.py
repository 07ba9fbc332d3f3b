"""What every rule script shares: log to the rule's log file, and fail with one clear line.

A :class:`~rewardflow.errors.RewardflowError` is the user's to fix, so it is reported as a
single ``ERROR`` line (and a non-zero exit) rather than a traceback; anything else is a bug in
rewardflow and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from rewardflow.errors import RewardflowError
from rewardflow.redaction import RedactingFilter
from rewardflow.run_script import INTERRUPTED_EXIT

#: Log files this process has truncated: a job over a group of shards runs its script once per
#: shard (rewardflow.run_script), and the later shards append to the job's one log.
_TRUNCATED_LOGS: set[Path] = set()


def configure_logging(log_path: str | Path | None) -> None:
    """INFO and up to the rule's log file, and to the terminal so progress is visible."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        path = Path(log_path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "a" if path in _TRUNCATED_LOGS else "w"
        _TRUNCATED_LOGS.add(path)
        handlers.append(logging.FileHandler(path, mode=mode, encoding="utf-8"))
    for handler in handlers:
        handler.addFilter(RedactingFilter())  # an API key never reaches the terminal or a log
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
        force=True,
    )


def _fail(message: str, status: int = 1) -> NoReturn:
    logging.getLogger("rewardflow").error(message)
    sys.exit(status)


def run_rule(log_path: str | Path | None, function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function(*args)`` with logging set up; turn user errors into a clean exit 1
    (and a Ctrl-C into exit 130, which stops a group's job, see rewardflow.run_script)."""
    configure_logging(log_path)
    try:
        return function(*args)
    except RewardflowError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        _fail(
            "interrupted; finished responses are cached and will not be requested again",
            INTERRUPTED_EXIT,
        )
    except Exception:
        logging.getLogger("rewardflow").exception("unexpected error (a bug in rewardflow?)")
        sys.exit(1)
