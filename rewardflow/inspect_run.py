"""``rewardflow-inspect``: look at one sample, or list samples, straight from a run's files.

rewardflow-inspect results/demo list --status failed
rewardflow-inspect results/demo list --lowest 10 --where level=5
rewardflow-inspect results/demo show arith-007 [--sample 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence

from rewardflow.errors import RewardflowError
from rewardflow.run_files import RunFiles, load_run

STATUSES = ("scored", "score_error", "generation_failed", "not_attempted")


def select(
    run: RunFiles,
    status: str | None = None,
    where: Sequence[tuple[str, str]] = (),
    lowest: int | None = None,
) -> list[tuple[str, int]]:
    """Sample keys matching a status and metadata filters, lowest primary score first if asked."""
    keys = sorted(run.responses)
    if status:
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


def _where(text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    return field, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rewardflow-inspect", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="run directory, results/<run_name>")
    commands = parser.add_subparsers(dest="command", required=True)
    lister = commands.add_parser("list", help="list samples")
    lister.add_argument("--status", choices=STATUSES)
    lister.add_argument("--where", type=_where, action="append", default=[], metavar="FIELD=VALUE")
    lister.add_argument("--lowest", type=int, metavar="N", help="the N lowest-scoring samples")
    lister.add_argument("--json", action="store_true", help="print the records as JSON lines")
    shower = commands.add_parser("show", help="one prompt's responses, scores and reasons")
    shower.add_argument("id")
    shower.add_argument("--sample", type=int)
    args = parser.parse_args(argv)
    try:
        run = load_run(args.run)
        if args.command == "show":
            print("\n".join(show_lines(run, args.id, args.sample)))
            return 0
        keys = select(run, args.status, args.where, args.lowest)
        if args.json:
            for key in keys:
                score = run.scores.get(key)
                print(json.dumps({"response": run.responses[key].to_dict(),
                                  "score": score.to_dict() if score else None}))  # fmt: skip
        else:
            print("\n".join(list_lines(run, keys)) or "no matching samples")
    except RewardflowError as error:
        print(f"rewardflow-inspect: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
