"""For the viewer's tests and benchmark: finished runs of any size, and a headless chromium.

A 100,000-sample run through the real pipeline takes far longer than a test may, and the
viewer only reads a run's files; so these runs are written with the real record classes and
writers (rewardflow.records, rewardflow.jsonl), in the shapes docs/records.md documents, with
every status a real run can have (one shape and one distribution; the pipeline's own runs
are tested in test_viewer_browser.py too). Shared by tests/integration/test_viewer_browser.py and
bench/viewer_render.py (loaded by file path, like math_cases.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rewardflow.jsonl import write_jsonl_atomic
from rewardflow.records import GenerationError, ResponseRecord, ScoreRecord

SUBJECTS = ("algebra", "geometry", "counting", "number theory")
FILLER = (
    "First I restate the problem. Then I work through it one step at a time, checking each "
    "intermediate result before moving on, so that an arithmetic slip is caught early. "
)


def _sample(
    index: int, prompt: int, sample: int, samples: int, shift: int, special: dict[str, str]
) -> tuple[ResponseRecord, ScoreRecord]:
    prompt_id = f"p{prompt:06d}"
    a, b = prompt % 97, (7 * prompt) % 89
    metadata = {"level": f"L{prompt % 5 + 1}", "subject": SUBJECTS[prompt % len(SUBJECTS)]}
    messages = [
        {"role": "system", "content": "You are a careful mathematician. End with 'Answer: N'."},
        {"role": "user", "content": f"Problem {prompt}: what is {a} + {b}?"},
    ]
    truth = str(a + b)
    common = {
        "id": prompt_id,
        "sample_index": sample,
        "messages": messages,
        "ground_truth": truth,
        "metadata": metadata,
    }
    if index % 37 == 5:
        error = GenerationError("ModelRateLimitError", "HTTP 429: too many requests", 5)
        response = ResponseRecord(**common, status="failed", response=None, error=error)
        score = ScoreRecord(
            prompt_id,
            sample,
            "generation_failed",
            None,
            {},
            "ModelRateLimitError: HTTP 429: too many requests",
            metadata,
        )
        return response, score
    wrong = (prompt + shift + sample) % 4 == 0
    answer = a + b + (1 if wrong else 0)
    text = special.get(prompt_id) or f"{FILLER}{a} + {b} = {answer}.\nAnswer: {answer}"
    truncated = index % 53 == 7
    response = ResponseRecord(
        **common,
        status="ok",
        response=text,
        finish_reason="length" if truncated else "stop",
        usage={"prompt_tokens": 40, "completion_tokens": 60, "total_tokens": 100},
        model="synthetic-model",
        cache_key=f"{index:064x}",
    )
    if index % 41 == 9:
        rewards: dict[str, dict[str, Any]] = {
            "accuracy": {"error": "TimeoutError: reward took longer than 10 s"},
            "format": {"score": 1.0, "reason": "ends with 'Answer: N'", "is_score_valid": True},
        }
        score = ScoreRecord(
            prompt_id,
            sample,
            "score_error",
            None,
            rewards,
            "TimeoutError: reward took longer than 10 s",
            metadata,
        )
        return response, score
    value = 0.0 if wrong else 1.0
    rewards = {
        "accuracy": {
            "score": value,
            "reason": f"extracted {answer}, expected {truth}: {'no match' if wrong else 'match'}",
            "is_score_valid": True,
            "metrics": {
                "answer_found": {
                    "score": 1.0,
                    "reason": "found by 'Answer:'",
                    "is_score_valid": True,
                }
            },
        },
        "format": {
            "score": 0.5 if truncated else 1.0,
            "reason": "format checked",
            "is_score_valid": True,
        },
    }
    return response, ScoreRecord(prompt_id, sample, "scored", value, rewards, None, metadata)


def write_run(
    root: Path,
    name: str,
    prompts: int,
    samples: int = 1,
    shift: int = 0,
    shards: int = 4,
    special: dict[str, str] | None = None,
) -> Path:
    """``root/name`` with ``prompts * samples`` samples; ``shift`` moves which ones are wrong.

    ``special`` maps prompt ids to a response text to use instead of the generated one (the
    escaping tests put ``</script>`` and HTML there).
    """
    run = root / name
    responses: list[list[dict[str, Any]]] = [[] for _ in range(shards)]
    scores: list[list[dict[str, Any]]] = [[] for _ in range(shards)]
    scored = []
    counts = {"failed": 0, "score_errors": 0}
    index = 0
    for prompt in range(prompts):
        for sample in range(samples):
            response, score = _sample(index, prompt, sample, samples, shift, special or {})
            responses[prompt % shards].append(response.to_dict())
            scores[prompt % shards].append(score.to_dict())
            counts["failed"] += score.status == "generation_failed"
            counts["score_errors"] += score.status == "score_error"
            if score.score is not None:
                scored.append(score.score)
            index += 1
    for shard in range(shards):
        write_jsonl_atomic(run / "responses" / f"shard-{shard:03d}.jsonl", responses[shard])
        write_jsonl_atomic(run / "scores" / f"shard-{shard:03d}.jsonl", scores[shard])
    mean = sum(scored) / len(scored) if scored else None
    total = prompts * samples
    estimate = {
        "mean": mean,
        "ci95": [mean - 0.01, mean + 0.01] if mean is not None else None,
        "ci_method": "bootstrap over prompts",
        "prompts": prompts,
    }
    summary = {
        "summary_version": 1,
        "run_name": name,
        "model": "synthetic-model",
        "created_at": "2026-12-01T12:00:00+00:00",
        "counts": {
            "prompts": prompts,
            "samples": total,
            "generated": total - counts["failed"],
            "failed": counts["failed"],
            "not_attempted": 0,
            "scored": len(scored),
            "score_errors": counts["score_errors"],
        },
        "primary_reward": "accuracy",
        "rewards": {
            "accuracy": {**estimate, "samples": total},
            "format": {**estimate, "mean": 0.99},
        },
        "weighted": None,
        "sampling": {"pass_threshold": 1.0, "unparsable": 3},
        "breakdowns": {"level": {}, "subject": {}},
        "usage": {
            "prompt_tokens": 40 * total,
            "completion_tokens": 60 * total,
            "total_tokens": 100 * total,
        },
        "cost_usd": 0.0123,
        "generation": None,
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    return run


# --- the browser -------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
# Debian's chromium, not a browser Playwright downloads: the machine that runs the tests has
# what apt installed and nothing fetched at test time. The flags keep it quiet and offline.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(playwright: Any, user_data_dir: Path, **context: Any) -> Any:
    """A persistent chromium context with a fresh profile in ``user_data_dir``."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=context.pop("viewport", {"width": 1400, "height": 850}),
        **context,
    )
