"""How often the math reward and math-verify's defaults agree with a careful grader.

Reads the graded table in ``tests/data/math_cases.py`` (the unit tests use the same table) and
scores every (expected, response) pair three ways:

* ``reward``: ``math_reward`` as the pipeline calls it;
* ``math-verify``: ``verify(parse(expected), parse(response))`` with every setting at its
  default, the expected answer passed as written;
* ``math-verify $``: the same, but an expected answer in which math-verify finds nothing is
  retried wrapped in ``$...$``, the first thing a user does when ``parse`` returns ``[]``.

A score error from the reward (an expected answer it cannot read) counts as a disagreement.
Prints one row per family and the cases where the reward differs from the verdict.

Usage::

    python bench/math_agreement.py [--show-math-verify-misses]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections import defaultdict
from pathlib import Path
from types import ModuleType

from math_verify import parse, verify

from rewardflow.rewards.math import math_reward

CASES_FILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "math_cases.py"


def load_cases() -> ModuleType:
    spec = importlib.util.spec_from_file_location("math_cases", CASES_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reward_verdict(expected: str, response: str) -> bool | None:
    """The reward's verdict, or None when it raised (a score error in the pipeline)."""
    try:
        result = math_reward([{"role": "assistant", "content": response}], expected)
    except ValueError:
        return None
    return result.score == 1.0


def math_verify_verdict(expected: str, response: str, *, wrap_empty: bool) -> bool:
    gold = parse(expected)
    if not gold and wrap_empty:
        gold = parse(f"${expected}$")
    return bool(verify(gold, parse(response)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-math-verify-misses", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # math-verify logs every expression it cannot parse
    table = load_cases()
    columns = ("reward", "math-verify", "math-verify $")
    agree: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    misses: list[str] = []
    for case in table.CASES:
        verdicts = (
            reward_verdict(case.expected, case.response),
            math_verify_verdict(case.expected, case.response, wrap_empty=False),
            math_verify_verdict(case.expected, case.response, wrap_empty=True),
        )
        for family in (case.family, "all"):
            row = agree[family]
            row[0] += 1
            for index, verdict in enumerate(verdicts, start=1):
                row[index] += verdict == case.verdict
        if verdicts[0] != case.verdict:
            misses.append(f"  reward {verdicts[0]!s:5}  {case.expected!r} vs {case.response!r}")
        elif args.show_math_verify_misses and verdicts[2] != case.verdict:
            misses.append(f"  mv$ {verdicts[2]!s:5}  {case.expected!r} vs {case.response!r}")

    print(f"{'family':<11} {'cases':>5}  " + "  ".join(f"{name:>14}" for name in columns))
    for family in sorted(agree, key=lambda name: (name == "all", name)):
        total, *counts = agree[family]
        cells = "  ".join(f"{count:>4}/{total:<3} {count / total:5.0%}" for count in counts)
        print(f"{family:<11} {total:>5}  {cells}")
    print(f"\nthe reward differs from the verdict on {len(misses)} case(s):" if misses else "")
    print("\n".join(misses))


if __name__ == "__main__":
    main()
