"""Write the competition-math example's problems and the simulated model's answers.

The 30 problems are MATH-style (competition algebra, number theory, counting, geometry,
precalculus), written for rewardflow: each row has the ``problem``, a worked ``solution``
ending in ``\\boxed{...}`` as MATH's do (the math reward takes the boxed answer as the ground
truth), its ``subject`` and a ``level`` from 1 to 5.

``simulated_responses.jsonl`` is what the built-in simulator answers offline (the config's
``simulator.responses``): most answers are right, several in another but equal LaTeX form
(``\\dfrac{5}{6}``, ``\\frac{6}{36}``, ``(x+3)(x-3)``, ``3, -1``), and eight are wrong, some
only in a detail a loose checker would miss (``[4, \\infty)`` for ``(4, \\infty)``, the ordered
pair reversed). The offline accuracy is therefore 22/30.

    python examples/competition_math/make_dataset.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent

# (id, subject, level, problem, solution (ending in \boxed{}), simulated response or None
# for "the reference solution, with its final answer written as below", simulated answer)
PROBLEMS: list[tuple[str, str, int, str, str, str | None, str]] = [
    ("alg-01", "Algebra", 1, r"Solve for $x$: $3x + 7 = 22$.",
     r"Subtracting 7 gives $3x = 15$, so $x = \boxed{5}$.", None, "5"),
    ("alg-02", "Algebra", 2, r"What is the sum of the roots of $x^2 - 7x + 10 = 0$?",
     r"The roots are $2$ and $5$, so their sum is $\boxed{7}$.", None, "7"),
    ("pre-03", "Prealgebra", 1, r"Compute $\frac{2}{3} + \frac{1}{6}$.",
     r"$\frac{2}{3} = \frac{4}{6}$, and $\frac{4}{6} + \frac{1}{6} = \boxed{\frac{5}{6}}$.",
     None, r"\dfrac{5}{6}"),
    ("nt-04", "Number Theory", 2, r"What is the greatest common divisor of $84$ and $126$?",
     r"$84 = 2^2 \cdot 3 \cdot 7$ and $126 = 2 \cdot 3^2 \cdot 7$, so the GCD is "
     r"$2 \cdot 3 \cdot 7 = \boxed{42}$.",
     r"Both numbers are divisible by $3$ and by $7$, so the GCD is $3 \cdot 7$.", "21"),
    ("nt-05", "Number Theory", 3, r"What is the remainder when $2^{10}$ is divided by $7$?",
     r"$2^3 = 8 \equiv 1 \pmod 7$, so $2^{10} = (2^3)^3 \cdot 2 \equiv 2$. The remainder is "
     r"$\boxed{2}$.", None, "2"),
    ("geo-06", "Geometry", 1,
     r"A right triangle has legs of length $5$ and $12$. What is the length of its hypotenuse?",
     r"$\sqrt{5^2 + 12^2} = \sqrt{169} = \boxed{13}$.", None, "13"),
    ("geo-07", "Geometry", 1,
     r"What is the area of a circle with radius $3$? Express your answer in terms of $\pi$.",
     r"The area is $\pi r^2 = \boxed{9\pi}$.", None, r"9\pi"),
    ("pc-08", "Precalculus", 2, r"Compute $\sin 60^\circ$.",
     r"In a 30-60-90 triangle with hypotenuse 2 the side opposite $60^\circ$ is $\sqrt{3}$, "
     r"so $\sin 60^\circ = \boxed{\frac{\sqrt{3}}{2}}$.", None, r"\frac{\sqrt3}{2}"),
    ("alg-09", "Algebra", 3,
     r"Find the domain of $f(x) = \sqrt{2 - x}$. Express your answer in interval notation.",
     r"We need $2 - x \ge 0$, that is $x \le 2$: the domain is $\boxed{(-\infty, 2]}$.",
     None, r"(-\infty,2]"),
    ("alg-10", "Algebra", 2,
     r"Solve the inequality $2x - 3 > 5$. Express your answer in interval notation.",
     r"$2x > 8$, so $x > 4$: the solution set is $\boxed{(4, \infty)}$.",
     r"Adding 3 and dividing by 2 gives $x \ge 4$.", r"[4, \infty)"),
    ("cp-11", "Counting & Probability", 1,
     r"In how many ways can $5$ different books be arranged on a shelf?",
     r"There are $5! = \boxed{120}$ arrangements.", None, "120"),
    ("cp-12", "Counting & Probability", 2, r"How many subsets does a set with $6$ elements have?",
     r"Each element is in or out, so there are $2^6 = \boxed{64}$ subsets.",
     r"A set with $n$ elements has $2^{n-1}$ subsets, which is $2^5$.", "32"),
    ("cp-13", "Counting & Probability", 2, r"Compute $\dbinom{8}{3}$.",
     r"$\dbinom{8}{3} = \frac{8 \cdot 7 \cdot 6}{3 \cdot 2 \cdot 1} = \boxed{56}$.", None, "56"),
    ("cp-14", "Counting & Probability", 2,
     r"Two fair six-sided dice are rolled. What is the probability that their sum is $7$? "
     r"Express your answer as a common fraction.",
     r"Six of the $36$ equally likely outcomes sum to $7$, so the probability is "
     r"$\boxed{\frac{1}{6}}$.", r"Six of the $36$ outcomes sum to $7$.", r"\frac{6}{36}"),
    ("alg-15", "Algebra", 2, r"Simplify $\sqrt{50}$.",
     r"$\sqrt{50} = \sqrt{25 \cdot 2} = \boxed{5\sqrt{2}}$.", None, r"5\sqrt{2}"),
    ("alg-16", "Algebra", 1, r"Expand $(x + 3)^2$.",
     r"$(x + 3)^2 = \boxed{x^2 + 6x + 9}$.", None, "x^2+6x+9"),
    ("alg-17", "Algebra", 2, r"Factor $x^2 - 9$.",
     r"It is a difference of squares: $x^2 - 9 = \boxed{(x - 3)(x + 3)}$.",
     None, "(x+3)(x-3)"),
    ("alg-18", "Algebra", 2,
     r"Find the ordered pair $(x, y)$ that satisfies $x + y = 10$ and $x - y = 4$.",
     r"Adding the equations gives $2x = 14$, so $x = 7$ and $y = 3$: $\boxed{(7, 3)}$.",
     r"Subtracting the equations gives $2y = 6$, so $y = 3$ and $x = 7$.", "(3, 7)"),
    ("nt-19", "Number Theory", 1, r"What is the least common multiple of $12$ and $18$?",
     r"$12 = 2^2 \cdot 3$ and $18 = 2 \cdot 3^2$, so the LCM is $2^2 \cdot 3^2 = \boxed{36}$.",
     None, "36"),
    ("nt-20", "Number Theory", 2, r"Express $0.\overline{3}$ as a common fraction.",
     r"If $x = 0.\overline{3}$ then $10x - x = 3$, so $x = \boxed{\frac{1}{3}}$.",
     None, r"\frac13"),
    ("pre-21", "Prealgebra", 1, r"What is $15\%$ of $80$?",
     r"$0.15 \cdot 80 = \boxed{12}$.", None, "12"),
    ("pre-22", "Prealgebra", 2, r"Compute $-3^2 + (-3)^2$.",
     r"$-3^2 = -9$ and $(-3)^2 = 9$, so the sum is $\boxed{0}$.",
     r"$-3^2 = 9$ and $(-3)^2 = 9$, so the sum is $18$.", "18"),
    ("ia-23", "Intermediate Algebra", 2,
     r"Find all real solutions of $x^2 = 2x + 3$. Enter the solutions separated by commas.",
     r"$x^2 - 2x - 3 = (x - 3)(x + 1) = 0$, so $x = \boxed{-1, 3}$.", None, "3, -1"),
    ("pc-24", "Precalculus", 1, r"Compute $\log_2 64$.",
     r"$2^6 = 64$, so $\log_2 64 = \boxed{6}$.", None, "6"),
    ("ia-25", "Intermediate Algebra", 2, r"Compute $(1 + i)^2$, where $i^2 = -1$.",
     r"$(1 + i)^2 = 1 + 2i + i^2 = \boxed{2i}$.", None, "2i"),
    ("geo-26", "Geometry", 2, r"What is the sum of the interior angles of a hexagon, in degrees?",
     r"A hexagon splits into $4$ triangles, so the sum is $4 \cdot 180 = \boxed{720}$.",
     None, r"720^\circ"),
    ("pre-27", "Prealgebra", 2, r"Round $\frac{22}{7}$ to the nearest hundredth.",
     r"$\frac{22}{7} = 3.142857\ldots$, which rounds to $\boxed{3.14}$.",
     r"$\frac{22}{7} = 3.142857\ldots$", "3.143"),
    ("alg-28", "Algebra", 1, r"What is the slope of the line through $(1, 2)$ and $(4, 11)$?",
     r"The slope is $\frac{11 - 2}{4 - 1} = \boxed{3}$.", None, "3"),
    ("pc-29", "Precalculus", 1, r"Convert $\frac{\pi}{3}$ radians to degrees.",
     r"$\frac{\pi}{3} \cdot \frac{180^\circ}{\pi} = \boxed{60}$ degrees.",
     r"$\pi$ radians is $180^\circ$, so $\frac{\pi}{3}$ is $180 / 6$.", "30"),
    ("ia-30", "Intermediate Algebra", 3, r"Find the minimum value of $x^2 - 4x + 7$.",
     r"$x^2 - 4x + 7 = (x - 2)^2 + 3$, so the minimum is $\boxed{3}$.",
     r"$x^2 - 4x + 7 = (x - 2)^2 + 2$, which is smallest at $x = 2$.", "2"),
]  # fmt: skip


def unboxed(solution: str) -> str:
    """The solution with its last ``\\boxed{X}`` written as plain ``X``."""
    start = solution.rindex("\\boxed{")
    opening = start + len("\\boxed")
    depth = 0
    for end in range(opening, len(solution)):
        depth += {"{": 1, "}": -1}.get(solution[end], 0)
        if depth == 0:
            return solution[:start] + solution[opening + 1 : end] + solution[end + 1 :]
    raise ValueError(f"unbalanced \\boxed{{}} in {solution!r}")


def main() -> None:
    with (
        open(HERE / "problems.jsonl", "w", encoding="utf-8") as problems,
        open(HERE / "simulated_responses.jsonl", "w", encoding="utf-8") as responses,
    ):
        for pid, subject, level, problem, solution, reasoning, answer in PROBLEMS:
            row = {"id": pid, "problem": problem, "solution": solution,
                   "subject": subject, "level": level}  # fmt: skip
            problems.write(json.dumps(row, ensure_ascii=False) + "\n")
            steps = reasoning or unboxed(solution)
            response = f"{steps}\n\nThe final answer is $\\boxed{{{answer}}}$."
            responses.write(json.dumps({"prompt": problem, "response": response}) + "\n")


if __name__ == "__main__":
    main()
