"""Generate the demo dataset: 40 arithmetic word problems with exact answers.

Every question carries an explicit expression ("Compute 14 * 12.") so that the simulator's
``arithmetic`` rule can answer it; the answers are computed here independently, with exact
fractions, so the demo's accuracy measures the simulator's deliberate mistakes and the
pipeline's answer extraction rather than this script. The mix includes answers in the
thousands and a few non-integers (7 / 2 = 3.5), which stress answer parsing downstream.

The output is a pure function of ``--seed``: rerunning the script rewrites the same file.

    python examples/demo/make_dataset.py            # writes examples/demo/arithmetic.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).with_name("arithmetic.jsonl")
DEFAULT_COUNT = 40
DEFAULT_SEED = 20240501

#: A problem form draws its numbers from the generator and returns (question, exact answer).
Form = Callable[[random.Random], tuple[str, Fraction]]


def _sum(rng: random.Random) -> tuple[str, Fraction]:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return f"What is {a} + {b}?", Fraction(a + b)


def _difference(rng: random.Random) -> tuple[str, Fraction]:
    a, b = rng.randint(200, 999), rng.randint(10, 199)
    return f"What is {a} - {b}?", Fraction(a - b)


def _product_minus(rng: random.Random) -> tuple[str, Fraction]:
    a, b, c = rng.randint(3, 19), rng.randint(3, 19), rng.randint(1, 20)
    return f"Compute ({a} * {b}) - {c}.", Fraction(a * b - c)


def _boxes_of_pens(rng: random.Random) -> tuple[str, Fraction]:
    boxes, pens = rng.randint(12, 95), rng.randint(12, 60)
    question = (
        f"A shop sells {boxes} boxes with {pens} pens each. How many pens is that? "
        f"Compute {boxes} * {pens}."
    )
    return question, Fraction(boxes * pens)


def _orchard(rng: random.Random) -> tuple[str, Fraction]:
    rows, trees, extra = rng.randint(25, 80), rng.randint(25, 90), rng.randint(5, 60)
    question = (
        f"An orchard has {rows} rows of {trees} trees, and the farmer plants {extra} more. "
        f"How many trees are there now? Compute {rows} * {trees} + {extra}."
    )
    return question, Fraction(rows * trees + extra)


def _times_sum(rng: random.Random) -> tuple[str, Fraction]:
    a, b, c = rng.randint(2, 12), rng.randint(5, 40), rng.randint(5, 40)
    return f"What is {a} * ({b} + {c})?", Fraction(a * (b + c))


def _halves(rng: random.Random) -> tuple[str, Fraction]:
    """A division that never comes out even, so the answer is a decimal like 3.5."""
    divisor = rng.choice([2, 4, 5, 8])
    dividend = rng.choice([n for n in range(3, 100) if n % divisor])
    return f"What is {dividend} / {divisor}?", Fraction(dividend, divisor)


def _sharing(rng: random.Random) -> tuple[str, Fraction]:
    people = rng.randint(3, 9)
    total = people * rng.randint(100, 400)
    question = (
        f"{people} friends share a prize of {total} dollars equally. How much does each get? "
        f"Compute {total} / {people}."
    )
    return question, Fraction(total, people)


FORMS: tuple[Form, ...] = (
    _sum,
    _difference,
    _product_minus,
    _boxes_of_pens,
    _orchard,
    _times_sum,
    _halves,
    _sharing,
)


def format_answer(value: Fraction) -> str:
    """The exact answer as a plain number: "104" or "3.5" (never rounded, never "1,200")."""
    if value.denominator == 1:
        return str(value.numerator)
    whole, remainder = divmod(abs(value.numerator), value.denominator)
    digits = []
    while remainder and len(digits) < 4:
        remainder *= 10
        digit, remainder = divmod(remainder, value.denominator)
        digits.append(str(digit))
    if remainder:
        raise ValueError(f"{value} has no exact decimal form within 4 places")
    sign = "-" if value < 0 else ""
    return f"{sign}{whole}.{''.join(digits)}"


def make_rows(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[dict[str, str]]:
    """The dataset rows, cycling through :data:`FORMS` so every form is represented."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        question, answer = FORMS[index % len(FORMS)](rng)
        rows.append(
            {"id": f"arith-{index + 1:03d}", "question": question, "answer": format_answer(answer)}
        )
    return rows


def write_jsonl(rows: list[dict[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    rows = make_rows(args.count, args.seed)
    write_jsonl(rows, args.output)
    print(f"wrote {len(rows)} problems to {args.output}")


if __name__ == "__main__":
    main()
