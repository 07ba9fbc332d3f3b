r"""Graded (expected answer, response) pairs for the math reward, with a careful grader's verdict.

One table serves two readers: ``tests/unit/test_math_reward.py`` asserts that ``math_reward``
agrees with the verdict on every case not listed in :data:`KNOWN_DISAGREEMENTS` (and
disagrees on exactly those, so the list cannot rot), and ``bench/math_agreement.py`` prints
how often the reward and math-verify's default settings each agree with the verdicts.

The verdict is what a careful human grader gives who knows the question only from its expected
answer: the same value in another spelling is right (``\cfrac{2}{3}`` and ``2/3``, ``3,15 €``
and ``3.15``, ``(a,b)=(5,1)`` and ``(5,1)``), a different value or an approximation of an exact
answer is wrong (``1.414`` for ``\sqrt{2}``), and the final answer counts, not an earlier one.
Rows marked ``issue=True`` are the pairs reported in issue 12; two of them (``\frac4{4}`` and
``\cfrac{2}{3}``) were already scored right in the issue's direction and wrong the other way
round, so both directions are marked.
"""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    family: str
    expected: str
    response: str
    verdict: bool
    issue: bool = False


PM = r"\begin{pmatrix}1 & 2\\ 3 & 4\end{pmatrix}"
COSINE = (
    r"Since $\cos\theta = \frac{1}{2}$ and $0 < \theta < \pi/2$, we get "
    r"$\theta = \frac{\pi}{3}$."
)
PM01 = r"\begin{pmatrix} 0 & 1 \\ 1 & 0 \end{pmatrix}"
SEATS = r"Each row has 6 seats and there are 6 rows, so $6 \times 6 = 36$ seats. Final answer: 36"
HALF = r"Adding gives $2x = 5$, so $x = \frac{5}{2}$."

CASES: list[Case] = [
    # --- numbers with locale separators ----------------------------------------------------
    Case("locale", "3.15", "3,15 €", True, issue=True),
    Case("locale", "2000", "2 000", True, issue=True),
    Case("locale", "1200", "1,200", True),
    Case("locale", "1200", "1 200 dollars", True),
    Case("locale", "1234567", "1 234 567", True),
    Case("locale", "1234567", "1,234,567", True),
    Case("locale", "1234567", "1\u202f234\u202f567", True),
    Case("locale", "1234567", "1\u00a0234\u00a0567", True),
    Case("locale", "1234567", "1.234.567", True),
    Case("locale", "2.5", "2,5", True),
    Case("locale", "2.5", "The result is 2,5 kg.", True),
    Case("locale", "0.75", "0,75", True),
    Case("locale", "1500.5", "1 500,5", True),
    Case("locale", "1500.5", "1.500,5", True),
    Case("locale", "3.15", "3,16 €", False),
    Case("locale", "2000", "2 001", False),
    Case("locale", "1200", "12", False),
    Case("locale", "12.5", "12,50 €", True),
    Case("locale", "1000", "1{,}000", True),
    Case("locale", "1000", r"1\,000", True),
    Case("locale", "1000", r"$1\,000$", True),
    Case("locale", "10000", "10 000", True),
    Case("locale", "3.14", "π ≈ 3,14", True),
    Case("locale", "-2.5", "\u22122,5", True),
    Case("locale", "0.5", "0,50", True),
    Case("locale", "7", "7,0", True),
    Case("locale", "45", "45,00 $", True),
    Case("locale", "275", "2,75", False),
    Case("locale", "3", "3,15", False),
    Case("locale", "1000", "1 000 000", False),
    # --- fractions and roots in every LaTeX spelling ---------------------------------------
    Case("fractions", r"\frac4{4}", "1", True, issue=True),
    Case("fractions", "1", r"\frac4{4}", True, issue=True),
    Case("fractions", r"\sqrt5", r"\sqrt{5}", True, issue=True),
    Case("fractions", r"\sqrt{5}", r"$\sqrt5$", True),
    Case("fractions", r"\cfrac{2}{3}", "2/3", True, issue=True),
    Case("fractions", "2/3", r"\cfrac{2}{3}", True, issue=True),
    Case("fractions", r"\frac{1}{2}", r"\dfrac{1}{2}", True),
    Case("fractions", r"\frac{1}{2}", r"\tfrac12", True),
    Case("fractions", r"\frac12", "0.5", True),
    Case("fractions", r"\frac{3}{4}", "3/4", True),
    Case("fractions", r"\frac{3}{4}", r"\frac{6}{8}", True),
    Case("fractions", r"\frac{3}{4}", "0.75", True),
    Case("fractions", r"\frac{3}{4}", r"\frac{4}{3}", False),
    Case("fractions", r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    Case("fractions", r"\frac{\sqrt{2}}{2}", r"\frac{\sqrt2}{2}", True),
    Case("fractions", r"\frac{\sqrt{2}}{2}", r"The answer is $\sqrt{2}/2$.", True),
    Case("fractions", r"\frac{\sqrt{2}}{2}", r"\frac{\sqrt{3}}{2}", False),
    Case("fractions", r"2\sqrt{3}", r"\sqrt{12}", True),
    Case("fractions", r"2\sqrt{3}", r"2\sqrt3", True),
    Case("fractions", r"2\sqrt{3}", r"3\sqrt{2}", False),
    Case("fractions", r"\sqrt[3]{2}", r"\boxed{2^{1/3}}", True),
    Case("fractions", r"\sqrt[3]{8}", "2", True),
    Case("fractions", r"\frac{1+\sqrt{5}}{2}", r"\dfrac{1 + \sqrt 5}{2}", True),
    Case("fractions", r"\frac{1+\sqrt{5}}{2}", r"\frac{1-\sqrt{5}}{2}", False),
    Case("fractions", r"-\frac{1}{3}", r"\frac{-1}{3}", True),
    Case("fractions", r"-\frac{1}{3}", r"\frac{1}{3}", False),
    Case("fractions", r"\frac{22}{7}", "22/7", True),
    Case("fractions", r"\frac{22}{7}", "3.14", False),
    Case("fractions", r"\frac{\pi}{4}", r"\pi/4", True),
    Case("fractions", r"\frac{\pi}{4}", r"\frac14\pi", True),
    Case("fractions", r"\sqrt{2}", "1.414", False),
    Case("fractions", r"\frac{5}{\sqrt{5}}", r"\sqrt{5}", True),
    Case("fractions", r"\dfrac{10}{3}", r"\frac{10}{3}", True),
    Case("fractions", r"\frac{10}{3}", r"\frac{10}{9}", False),
    Case("fractions", r"\frac{9}{4}", r"\left(\frac{3}{2}\right)^2", True),
    Case("fractions", r"\sqrt{2}", r"\boxed{2^{\frac{1}{2}}}", True),
    # --- intervals -------------------------------------------------------------------------
    Case("intervals", "[2,5)", "$[2,5)$", True, issue=True),
    Case("intervals", "[2,5)", "The answer is [2, 5).", True),
    Case("intervals", "[2,5)", r"\boxed{[2,5)}", True),
    Case("intervals", "[2,5)", r"\boxed{(2,5)}", False),
    Case("intervals", "[2,5)", r"\boxed{[2,5]}", False),
    Case("intervals", r"(-\infty, 3]", r"$(-\infty,3]$", True),
    Case("intervals", r"(-\infty, 3]", r"\boxed{(-\infty, 3)}", False),
    Case("intervals", r"(0, \infty)", r"$(0,\infty)$", True),
    Case("intervals", r"(0,\infty)", r"\boxed{(0, +\infty)}", True),
    Case("intervals", r"(0,\infty)", r"\boxed{[0, \infty)}", False),
    Case("intervals", r"(-\infty,-1)\cup(1,\infty)", r"$(-\infty,-1) \cup (1,\infty)$", True),
    Case("intervals", r"(-\infty,-1)\cup(1,\infty)", r"$(1,\infty) \cup (-\infty,-1)$", True),
    Case("intervals", r"(-\infty,-1)\cup(1,\infty)", r"$(-\infty,-1]\cup[1,\infty)$", False),
    Case("intervals", "[-1, 1]", r"\boxed{\left[-1, 1\right]}", True),
    Case("intervals", r"\left[ \frac{1}{2}, 3 \right)", r"\boxed{[0.5, 3)}", True),
    Case("intervals", r"\left[ \frac{1}{2}, 3 \right)", r"\boxed{[\frac{1}{3}, 3)}", False),
    Case("intervals", r"(-\infty, 3]", r"The solution set is $x \leq 3$.", True),
    # --- sets ------------------------------------------------------------------------------
    Case("sets", r"\{1,2,3\}", r"\boxed{\{3,2,1\}}", True),
    Case("sets", r"\{1,2,3\}", r"$\{1, 2, 3\}$", True),
    Case("sets", r"\{1,2,3\}", r"\boxed{1,2,3}", True),
    Case("sets", r"\{1,2,3\}", r"\boxed{\{1,2\}}", False),
    Case("sets", r"\{1,2,3\}", r"\boxed{\{1,2,3,4\}}", False),
    Case("sets", "-2, 1", r"\boxed{1, -2}", True),
    Case("sets", "-2, 1", r"\boxed{-2}", False),
    Case("sets", "-2, 1", "The solutions are $x=-2$ and $x=1$.", True),
    Case("sets", r"\emptyset", r"\boxed{\varnothing}", True),
    Case("sets", r"\emptyset", r"\boxed{\{0\}}", False),
    Case("sets", r"\{-1, 1\}", r"\boxed{\pm 1}", True),
    Case("sets", r"\{-1,1\}", r"\boxed{\{-1\}}", False),
    Case("sets", r"\{\frac{1}{2}, 2\}", r"\boxed{\{2, 0.5\}}", True),
    Case("sets", r"\{\frac{1}{2}, 2\}", r"\boxed{\{2, 0.25\}}", False),
    Case("sets", r"\mathbb{R}", r"\boxed{(-\infty,\infty)}", True),
    Case("sets", r"\{2\}", r"\boxed{2}", True),
    Case("sets", r"1, 3, 5, 7", r"The odd ones are $1, 3, 5, 7$.", True),
    Case("sets", r"1, 3, 5, 7", r"The odd ones are $1, 3, 5$.", False),
    # --- tuples ----------------------------------------------------------------------------
    Case("tuples", r"(2,\frac{7}{2})", "(2,3.5)", True, issue=True),
    Case("tuples", "(a,b)=(5,1)", "(5,1)", True, issue=True),
    Case("tuples", "(5,1)", r"\boxed{(1,5)}", False),
    Case("tuples", "(5,1)", r"\boxed{(5, 1)}", True),
    Case("tuples", "(5,1)", "$(a, b) = (5, 1)$", True),
    Case("tuples", "(1,2,3)", r"\boxed{(1,2,3)}", True),
    Case("tuples", "(1,2,3)", r"\boxed{(1,2)}", False),
    Case("tuples", "(1,-2)", "The point is $(1, -2)$.", True),
    Case("tuples", "(1,-2)", "The point is $(-2, 1)$.", False),
    Case("tuples", r"(\frac{1}{2}, -\frac{3}{2})", r"\boxed{(0.5,-1.5)}", True),
    Case("tuples", r"(3, \sqrt{2})", r"\boxed{\left(3, \sqrt{2}\right)}", True),
    Case("tuples", "(0,0)", r"\boxed{(0, 0)}", True),
    Case("tuples", r"(2,\frac{7}{2})", r"\boxed{(2, \frac{7}{3})}", False),
    Case("tuples", "(4, 6)", r"\boxed{(4,6)}", True),
    Case("tuples", "(4,6)", r"\boxed{(6,4)}", False),
    Case("tuples", "(4,6)", "The answer is (4, 6).", True),
    # --- matrices --------------------------------------------------------------------------
    Case("matrices", PM, PM.replace("pmatrix", "bmatrix"), True, issue=True),
    Case(
        "matrices",
        PM,
        r"$\left[\begin{array}{cc}1 & 2\\ 3 & 4\end{array}\right]$",
        True,
        issue=True,
    ),
    Case("matrices", PM, r"$\begin{pmatrix}1 & 2\\ 3 & 5\end{pmatrix}$", False),
    Case("matrices", PM, r"$\begin{pmatrix}1 & 3\\ 2 & 4\end{pmatrix}$", False),
    Case("matrices", PM, rf"\[{PM}\]", True),
    Case("matrices", PM, rf"\boxed{{{PM}}}", True),
    Case(
        "matrices",
        r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}",
        r"$\begin{bmatrix}1\\2\end{bmatrix}$",
        True,
    ),
    Case(
        "matrices",
        r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}",
        r"$\begin{pmatrix}2\\1\end{pmatrix}$",
        False,
    ),
    Case(
        "matrices",
        r"\begin{pmatrix} \frac{1}{2} & 0 \\ 0 & 1 \end{pmatrix}",
        r"\boxed{\begin{pmatrix} 0.5 & 0 \\ 0 & 1 \end{pmatrix}}",
        True,
    ),
    Case(
        "matrices",
        r"\begin{pmatrix} -1 \\ 3 \end{pmatrix}",
        r"The vector is $\begin{pmatrix} -1 \\ 3 \end{pmatrix}$.",
        True,
    ),
    Case(
        "matrices",
        r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}",
        r"\boxed{\begin{pmatrix} 1 & 0 \\ 0 & -1 \end{pmatrix}}",
        False,
    ),
    Case(
        "matrices",
        r"\begin{pmatrix} 2 \\ -1 \\ 0 \end{pmatrix}",
        r"\boxed{\begin{bmatrix} 2 \\ -1 \\ 0 \end{bmatrix}}",
        True,
    ),
    Case(
        "matrices",
        r"\begin{pmatrix} 2 \\ -1 \\ 0 \end{pmatrix}",
        r"\boxed{\begin{bmatrix} 2 \\ -1 \end{bmatrix}}",
        False,
    ),
    # --- inequalities and equations --------------------------------------------------------
    Case("relations", "y >= 3", r"Therefore $y \geq 3$", True, issue=True),
    Case("relations", r"4 \geq y", r"y \leq 4", True, issue=True),
    Case("relations", "x > 2", "$x > 2$", True),
    Case("relations", "x > 2", "$2 < x$", True),
    Case("relations", "x > 2", r"$x \geq 2$", False),
    Case("relations", "x > 2", "$x < 2$", False),
    Case("relations", r"x \le 3", r"\boxed{x \leq 3}", True),
    Case("relations", "x=5", r"\boxed{5}", True),
    Case("relations", "x=5", r"\boxed{x = 5}", True),
    Case("relations", "x=5", "$x=6$", False),
    Case("relations", "y = 2x + 3", r"\boxed{y = 3 + 2x}", True),
    Case("relations", "y = 2x + 3", r"\boxed{y = 2x - 3}", False),
    Case("relations", "x^2 + y^2 = 25", r"\boxed{x^2+y^2=25}", True),
    Case("relations", "x^2 + y^2 = 25", r"\boxed{x^2+y^2=5}", False),
    Case("relations", "-3 < x < 2", "$-3<x<2$", True),
    Case("relations", "-3 < x < 2", r"\boxed{(-3, 2)}", True),
    Case("relations", "k = -2", r"\boxed{k=-2}", True),
    Case("relations", "k = -2", r"\boxed{k=2}", False),
    Case("relations", r"a \geq 0", r"\boxed{a \ge 0}", True),
    Case("relations", r"a \geq 0", r"\boxed{a > 0}", False),
    Case("relations", "y >= 3", "From 2y - 1 >= 5 we get 2y >= 6, so y >= 3.", True),
    # --- text answers ----------------------------------------------------------------------
    Case("text", r"\text{B}", "B", True, issue=True),
    Case("text", "B", "The answer is (B).", True),
    Case("text", "B", r"\boxed{B}", True),
    Case("text", "B", r"\boxed{\text{B}}", True),
    Case("text", "B", r"\boxed{C}", False),
    Case("text", "(C)", "Answer: C", True),
    Case("text", "C", "**Answer: (C)**", True),
    Case("text", r"\text{yes}", "Yes", True),
    Case("text", "yes", "The answer is no.", False),
    Case("text", "no", r"\boxed{\text{No}}", True),
    Case("text", "Monday", "The answer is Monday.", True),
    Case("text", "Monday", r"\boxed{\text{Tuesday}}", False),
    Case("text", r"\text{even}", r"\boxed{\text{even}}", True),
    Case("text", r"\text{odd}", r"\boxed{\text{even}}", False),
    Case("text", r"\textbf{(A)}", r"\boxed{A}", True),
    Case("text", "A", r"\boxed{(A)}", True),
    Case("text", r"\text{Devon}", r"\boxed{\text{Devon}}", True),
    Case("text", r"\text{Devon}", "The answer is Devon", True),
    Case("text", "Devon", "The answer is Evan", False),
    Case("text", r"\text{(E)}", r"\boxed{E}", True),
    Case("text", "E", r"\boxed{D}", False),
    Case("text", r"\text{true}", "True", True),
    # --- several boxed answers -------------------------------------------------------------
    Case("boxes", r"\boxed{3}, \boxed{4}", r"\boxed{3,4}", True, issue=True),
    Case("boxes", "3, 4", r"\boxed{3} and \boxed{4}", True),
    Case("boxes", "3, 4", r"\boxed{3}, \boxed{4}", True),
    Case("boxes", "3, 4", r"\boxed{4}, \boxed{3}", True),
    Case("boxes", "3, 4", r"\boxed{3}", False),
    Case("boxes", r"\boxed{3}, \boxed{4}", r"\boxed{3}", False),
    Case("boxes", "4", r"First I got \boxed{3}. That is wrong; the answer is \boxed{4}.", True),
    Case("boxes", "3", r"First I got \boxed{3}. That is wrong; the answer is \boxed{4}.", False),
    Case("boxes", "-1, 2", r"$x = \boxed{-1}$ or $x = \boxed{2}$", True),
    Case("boxes", "-1, 2", r"\boxed{-1, 2}", True),
    Case("boxes", "-1, 2", r"\boxed{2, -1}", True),
    Case("boxes", "-1, 2", r"\boxed{-1, 3}", False),
    Case("boxes", r"\boxed{5}", r"The answer is \boxed{5}", True),
    Case("boxes", r"\frac{1}{2}", r"\boxed{\frac{1}{3}} is wrong, so \boxed{\frac{1}{2}}", True),
    # --- units and percent -----------------------------------------------------------------
    Case("units", "50", "50%", True),
    Case("units", r"50\%", "50", True),
    Case("units", r"50\%", "0.5", True),
    Case("units", "0.5", "50%", True),
    Case("units", r"50\%", "5%", False),
    Case("units", "25", r"25 \text{ cm}", True),
    Case("units", "25", r"\boxed{25\text{ cm}^2}", True),
    Case("units", "25", "25 cm", True),
    Case("units", "90", r"90^\circ", True),
    Case("units", r"90^\circ", r"\boxed{90}", True),
    Case("units", r"\$18", "18 dollars", True),
    Case("units", "18", r"\$18.00", True),
    Case("units", "18", "$18.50", False),
    Case("units", r"12\%", "12 percent", True),
    Case("units", r"12\%", r"\boxed{12\%}", True),
    Case("units", r"12\%", r"\boxed{13\%}", False),
    Case("units", r"5\text{ m/s}", "5 m/s", True),
    Case("units", r"5 \mbox{ km}", r"\boxed{5}", True),
    Case("units", "3", "3 hours", True),
    Case("units", "3", "30 minutes", False),
    Case("units", "60", "60 mph", True),
    Case("units", "60", r"\boxed{60 \text{ miles per hour}}", True),
    Case("units", "7.5", "7.5 kg", True),
    Case("units", "7.5", "75 kg", False),
    # --- answers buried in long reasoning with earlier numbers ----------------------------
    Case("reasoning", "12", r"Answer \( (10+2) \)", True, issue=True),
    Case(
        "reasoning",
        "18",
        "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 "
        "eggs remain. She sells them at $2 each: 9 * 2 = 18.\nSo she makes $18 every day.",
        True,
    ),
    Case(
        "reasoning",
        "18",
        "16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars. Wait, she also sells 2 more eggs, so 22.",
        False,
    ),
    Case("reasoning", r"\frac{1}{2}", r"We have P = 3/6. Simplifying, $P = \frac{1}{2}$.", True),
    Case(
        "reasoning",
        r"\frac{1}{2}",
        r"First try gave $\frac{1}{3}$, but recounting gives $\frac{1}{2}$.",
        True,
    ),
    Case(
        "reasoning",
        r"\frac{1}{3}",
        r"First try gave $\frac{1}{3}$, but recounting gives $\frac{1}{2}$.",
        False,
    ),
    Case("reasoning", "x=5", "Subtract 3: 2x = 10. Divide by 2: $x = 5$.", True),
    Case("reasoning", "5", "Subtract 3: 2x = 10. Divide by 2: $x = 5$.", True),
    Case("reasoning", "10", "Subtract 3: 2x = 10. Divide by 2: $x = 5$.", False),
    Case("reasoning", r"2\sqrt{3}", r"The side is 4, the height is $\sqrt{12} = 2\sqrt{3}$.", True),
    Case(
        "reasoning",
        r"(-\infty, 3]",
        r"We need $x - 3 \le 0$, as $x = 4$ fails. The final answer is $(-\infty, 3]$. "
        "I hope it is correct.",
        True,
    ),
    Case(
        "reasoning",
        r"\{1,2,3\}",
        r"Testing n=1, 2, 3, 4: only 1, 2 and 3 work, so the answer is $\{1,2,3\}$.",
        True,
    ),
    Case(
        "reasoning",
        "70000",
        "He buys the house for 80,000 and puts in 50,000 of repairs, so the profit is "
        "70,000.\n#### 70000",
        True,
    ),
    Case(
        "reasoning",
        "3",
        "Step 1: 12 / 4 = 3. Step 2: check 3 * 4 = 12. So there are 3 boxes.",
        True,
    ),
    Case(
        "reasoning",
        "12",
        "Step 1: 12 / 4 = 3. Step 2: check 3 * 4 = 12. So there are 3 boxes.",
        False,
    ),
    Case(
        "reasoning",
        r"\frac{\pi}{3}",
        COSINE,
        True,
    ),
    Case(
        "reasoning",
        r"\frac{1}{2}",
        COSINE,
        False,
    ),
    Case(
        "reasoning", "42", "We add 40 and 2. The final answer is $42$. I hope it is correct.", True
    ),
    Case(
        "reasoning",
        "(2,3)",
        "Solving the system gives x = 2 and y = 3, so the point is $(2, 3)$.",
        True,
    ),
    Case(
        "reasoning",
        "(2,3)",
        "Solving the system gives x = 3 and y = 2, so the point is $(3, 2)$.",
        False,
    ),
    Case(
        "reasoning",
        "100",
        "Total = 25 * 4 = 100. The answer is 100 apples. Double-check: 4 * 25 = 100.",
        True,
    ),
    Case(
        "reasoning",
        "8",
        r"Try $x=2$: $2^3 = 8$. So the answer is \boxed{8}. (Earlier I wrote 6.)",
        True,
    ),
    # --- written after the reward was changed, and first run blind: the reward agreed with
    # 42 of these 44 verdicts and math-verify's defaults with 27 -------------------------
    Case("locale", "1250.75", "Total: 1 250,75 €", True),
    Case("locale", "0.05", "0,05", True),
    Case("locale", "1000000", "1 000 000", True),
    Case("locale", "99.9", "99,9 %", True),
    Case("locale", "0.05", "0,5", False),
    Case("fractions", r"\frac{3}{8}", r"\boxed{\dfrac38}", True),
    Case("fractions", r"\frac{3}{8}", "0.375", True),
    Case("fractions", r"\frac{3}{8}", "0.38", False),
    Case("fractions", r"\sqrt{3}/3", r"\frac{1}{\sqrt3}", True),
    Case("fractions", r"4\sqrt{2}", r"\sqrt{32}", True),
    Case("fractions", r"\frac{2}{3}", r"The probability is $\frac{4}{6}$.", True),
    Case("fractions", "1/6", r"\boxed{\frac{1}{6}}", True),
    Case("intervals", "[0, 1]", r"\boxed{0 \le x \le 1}", True),
    Case("intervals", "(1, 4]", "The answer is $(1,4]$.", True),
    Case("intervals", "(1, 4]", "The answer is $[1,4]$.", False),
    Case("sets", r"\{0, 5\}", "The solutions are $x = 0$ and $x = 5$.", True),
    Case("sets", r"\{0, 5\}", r"\boxed{0, 5, 10}", False),
    Case("sets", "2, -3", "$x=2$ or $x=-3$", True),
    Case("tuples", "(3, -1)", r"\boxed{x=3, y=-1}", True),
    Case("tuples", "(3,-1)", "The intersection point is (3, -1).", True),
    Case("tuples", "(3,-1)", r"\boxed{(-1, 3)}", False),
    Case("matrices", PM01, f"$${PM01}$$", True),
    Case(
        "matrices",
        r"\begin{pmatrix} 3 \\ -2 \end{pmatrix}",
        r"\boxed{\begin{pmatrix} 3 \\ 2 \end{pmatrix}}",
        False,
    ),
    Case("relations", r"x \geq -2", r"\boxed{x \ge -2}", True),
    Case("relations", r"x \geq -2", r"The answer is $-2 \le x$.", True),
    Case("relations", "y = -x + 4", r"\boxed{y = 4 - x}", True),
    Case("relations", "y = -x + 4", r"\boxed{y = x + 4}", False),
    Case("text", r"\text{(D)}", "The correct answer is (D).", True),
    Case("text", "D", "Answer: (B)", False),
    Case("text", r"\text{no}", r"\boxed{\text{yes}}", False),
    Case("text", "Sunday", "**Sunday**", True),
    Case("boxes", "1, 2", r"\boxed{1} or \boxed{2}", True),
    Case("boxes", "2", r"\boxed{1} or \boxed{2}", False),
    Case("units", "120", r"\boxed{120\text{ km}}", True),
    Case("units", "45", r"45^{\circ}", True),
    Case("units", r"20\%", r"\boxed{0.2}", True),
    Case("units", "20", r"\boxed{20\%}", True),
    Case("units", "8", r"\$8.5", False),
    Case("reasoning", "36", SEATS, True),
    Case("reasoning", "6", SEATS, False),
    Case("reasoning", r"\frac{5}{2}", HALF, True),
    Case("reasoning", "5", HALF, False),
    Case("reasoning", "-4", r"Checking: $f(-4) = 0$ and $f(2) = 6$, so the root is $x=-4$.", True),
    Case("reasoning", "24", r"The area is $\frac{1}{2} \cdot 6 \cdot 8 = 24$ square units.", True),
]

KNOWN_DISAGREEMENTS: dict[tuple[str, str], str] = {
    ("(3,-1)", "The intersection point is (3, -1)."): (
        "a tuple in plain text at the end of prose is not read: no marker, no LaTeX, and "
        "math-verify's extraction of plain text finds numbers and expressions, not tuples"
    ),
    ("y >= 3", "From 2y - 1 >= 5 we get 2y >= 6, so y >= 3."): (
        "an inequality written in plain text (`>=`) at the end of prose is not read: no marker, "
        "no LaTeX, so the last number, 3, is compared with y >= 3 (math-verify reads 3 too)"
    ),
}
"""(expected, response) pairs where ``math_reward`` differs from the verdict, and why.

``docs/rewards.md`` lists each of them; the unit tests check both lists against the table."""
