"""Look at one sample, or list samples, straight from a run's files (``rewardflow inspect``).

rewardflow inspect list results/demo --status failed
rewardflow inspect list results/demo --lowest 10 --where level=5
rewardflow inspect show results/demo arith-007 [--sample 0]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rewardflow.errors import RewardflowError
from rewardflow.reporting.run_files import RunFiles, SampleKey

STATUSES = ("scored", "score_error", "generation_failed", "not_attempted")
# "failed" is what a response record's status and the summary's ``counts.failed`` call a sample
# whose generation failed, and what the docs tell people to type; it selects exactly the samples
# that count counts.
STATUS_ALIASES = {"failed": "generation_failed"}
STATUS_CHOICES = (*STATUSES, *STATUS_ALIASES)


def select(
    run: RunFiles,
    status: str | None = None,
    where: Sequence[tuple[str, str]] = (),
    lowest: int | None = None,
) -> list[tuple[str, int]]:
    """Sample keys matching a status and metadata filters, lowest primary score first if asked."""
    keys = sorted(run.responses)
    if status:
        status = STATUS_ALIASES.get(status, status)
        keys = [key for key in keys if run.status(key) == status]
    for field, value in where:
        keys = [k for k in keys if str(run.responses[k].metadata.get(field)) == value]
    if lowest is not None:
        scored = [k for k in keys if run.scores.get(k) and run.scores[k].score is not None]
        keys = sorted(scored, key=lambda k: (run.scores[k].score, k))[:lowest]
    return keys


def _short(text: str | None, limit: int = 70) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def list_lines(run: RunFiles, keys: Iterable[tuple[str, int]]) -> list[str]:
    lines = []
    for key in keys:
        score = run.scores.get(key)
        value = "-" if score is None or score.score is None else f"{score.score:.3g}"
        response = run.responses[key]
        detail = (score.error if score and score.error else None) or response.response
        lines.append(f"{key[0]}  #{key[1]}  {run.status(key):<17} {value:>5}  {_short(detail)}")
    return lines


def sample_record(run: RunFiles, key: SampleKey) -> dict:
    """A sample's response record and score record (null if unscored), for ``--json``."""
    score = run.scores.get(key)
    return {"response": run.responses[key].to_dict(), "score": score.to_dict() if score else None}


def show_lines(run: RunFiles, prompt_id: str, sample: int | None) -> list[str]:
    keys = [key for key in sorted(run.responses) if key[0] == prompt_id]
    if sample is not None:
        keys = [key for key in keys if key[1] == sample]
    if not keys:
        raise RewardflowError(f"{run.path}: no sample with id {prompt_id!r}")
    first = run.responses[keys[0]]
    lines = [f"id: {prompt_id}", f"ground truth: {first.ground_truth}", "", "prompt:"]
    lines += [f"  [{m['role']}] {m['content']}" for m in first.messages]
    for key in keys:
        response, score = run.responses[key], run.scores.get(key)
        lines += ["", f"sample {key[1]}: {run.status(key)}"]
        if response.error:
            lines.append(f"  error: {response.error.type}: {response.error.message}")
        if response.response is not None:
            lines += ["  response:", *("    " + line for line in response.response.splitlines())]
        if score is not None:
            for name, result in score.rewards.items():
                verdict = result.get("error") or f"{result['score']:.3g} — {result['reason']}"
                lines.append(f"  {name}: {verdict}")
                for metric, value in (result.get("metrics") or {}).items():
                    lines.append(f"    {metric}: {value['score']:.3g} — {value['reason']}")
    return lines
