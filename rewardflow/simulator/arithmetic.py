"""Arithmetic: finding the last expression in a question, evaluating it, explaining it.

The simulated model's "reasoning": a safe, exact evaluator (an allowlisted AST walk over
fractions, never ``eval``) and a short worked solution in one of several answer styles, with an
optional slip that makes the answer wrong by a given amount.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

NO_ANSWER = "I don't know."

#: Scans text for the pieces of an expression. A number glued to a word character ("x2",
#: "mp3") is not a number; "1,200" is (thousands separators are dropped). ASCII mode, so that
#: CJK text counts as non-word characters: "计算12+3" holds "12+3". A stretch of characters that
#: cannot start a number, symbol or space is one ``other`` match rather than one per character
#: (it only ends a run, and prose is most of a question), which halves the scan's cost.
_SCAN = re.compile(
    r"(?P<number>(?<![\w.,])(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?![\w]|,[0-9]))"
    r"|(?P<symbol>[-+*/()×÷−])"
    r"|(?P<space>\s+)"
    r"|(?P<other>[^0-9\s\-+*/()×÷−]+|.)",
    re.DOTALL | re.ASCII,
)
_SYMBOLS = {"×": "*", "÷": "/", "−": "-"}
_OPERATORS: dict[type[ast.operator], tuple[str, Callable[[Fraction, Fraction], Fraction]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
}
#: Bounds the parsing work per run of symbols (candidates grow quadratically) and the size of
#: the numbers a product can reach; real questions are far shorter.
_MAX_RUN_TOKENS = 60
#: Caps the parser calls per question (about 10 ms), so that no prompt, however adversarial,
#: can stall the event loop that serves every other request.
_MAX_PARSE_ATTEMPTS = 2000
_CANNOT_START = frozenset("*/)")
_CANNOT_END = frozenset("+-*/(")
MAX_EXPRESSION_CHARS = 300


class _Token(NamedTuple):
    text: str  # normalized to ASCII Python syntax: "1,200" -> "1200", "007" -> "7", "×" -> "*"
    start: int
    end: int


class _Parsed(NamedTuple):
    source: str  # the normalized, ASCII-only text that was parsed
    tree: ast.expr


class Step(NamedTuple):
    """One binary operation of a worked solution, e.g. ``12 * 9 = 108``."""

    left: Fraction
    op: str
    right: Fraction
    result: Fraction


@dataclass(frozen=True)
class Solution:
    """The expression found in a question (as written), its evaluation steps and value."""

    expression: str
    steps: tuple[Step, ...]
    value: Fraction


def _expression_runs(text: str) -> list[list[_Token]]:
    """Split ``text`` into maximal runs of numbers and operators separated only by spaces."""
    runs: list[list[_Token]] = [[]]
    for match in _SCAN.finditer(text):
        kind = match.lastgroup
        if kind == "other":
            runs.append([])
        elif kind != "space":
            piece = match.group()
            if kind == "number":  # Python rejects "007"; the thousands separators go too
                normalized = piece.replace(",", "").lstrip("0") or "0"
                normalized = "0" + normalized if normalized.startswith(".") else normalized
            else:
                normalized = _SYMBOLS.get(piece, piece)
            runs[-1].append(_Token(normalized, match.start(), match.end()))
    return [run for run in runs if run]


def _parse_arithmetic(tokens: Sequence[_Token]) -> _Parsed | None:
    """Parse tokens as a Python expression made only of numbers, + - * / and parentheses.

    Tokens are joined with spaces so that "* *" and "/ /" cannot become ``**`` or ``//``. The
    result must contain a binary operation: a lone number is not an expression to compute.
    """
    if not tokens or tokens[0].text in _CANNOT_START or tokens[-1].text in _CANNOT_END:
        return None  # cheap rejections before the parser
    source = " ".join(token.text for token in tokens)
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError:
        return None
    if not _is_arithmetic(tree) or not any(isinstance(n, ast.BinOp) for n in ast.walk(tree)):
        return None
    return _Parsed(source, tree)


def _is_arithmetic(node: ast.AST) -> bool:
    """Whether ``node`` uses only the operations :func:`_evaluate` knows (an allowlist)."""
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.UAdd | ast.USub) and _is_arithmetic(node.operand)
    if isinstance(node, ast.BinOp):
        return (
            type(node.op) in _OPERATORS and _is_arithmetic(node.left) and _is_arithmetic(node.right)
        )
    return False


def _find(text: str) -> tuple[str, _Parsed] | None:
    """Return the last expression in ``text`` (as written there) and its parse.

    "Last" means the one that ends latest; among those the longest, so in "Compute 2 * 3 + 4"
    the whole "2 * 3 + 4" wins over its tail "3 + 4", and an unbalanced "5 - (3 + 2" still
    yields "3 + 2". Searching from the end keeps the common case (the expression closes the
    question) cheap. Past :data:`_MAX_PARSE_ATTEMPTS` the search gives up (``None``).
    """
    attempts = 0
    for run in reversed(_expression_runs(text)):
        run = run[-_MAX_RUN_TOKENS:]
        for end in range(len(run), 0, -1):
            for start in range(end):
                if run[end - 1].end - run[start].start > MAX_EXPRESSION_CHARS:
                    continue
                attempts += 1
                if attempts > _MAX_PARSE_ATTEMPTS:
                    return None
                parsed = _parse_arithmetic(run[start:end])
                if parsed is not None:
                    return text[run[start].start : run[end - 1].end], parsed
    return None


def find_expression(text: str) -> str | None:
    """The last arithmetic expression in ``text``, exactly as written there, or ``None``.

    Integers, decimals and ``1,200``-style numbers combined with ``+ - * /`` (also ``× ÷ −``),
    unary signs and parentheses. Nothing is ever evaluated here; see :func:`evaluate_expression`.
    """
    found = _find(text)
    return found[0] if found else None


def _evaluate(parsed: _Parsed, steps: list[Step]) -> Fraction:
    """Evaluate an allowlisted tree exactly, appending each binary operation to ``steps``.

    This walker is the only evaluator: it raises on any node it does not know, so no name,
    call, attribute or power (``2 ** 10 ** 10``) can ever run. Literals are read from their
    source text, so "0.1" is exactly one tenth rather than the nearest binary float.
    """
    return _walk(parsed.tree, parsed.source, steps)


def _walk(node: ast.expr, source: str, steps: list[Step]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Fraction(node.value)  # exact already, and far cheaper than parsing the text
    if isinstance(node, ast.Constant) and type(node.value) is float:
        # The source is ASCII, so the parser's byte offsets are character offsets.
        return Fraction(source[node.col_offset : node.end_col_offset])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        value = _walk(node.operand, source, steps)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left = _walk(node.left, source, steps)
        right = _walk(node.right, source, steps)
        symbol, function = _OPERATORS[type(node.op)]
        result = function(left, right)  # Fraction division by zero raises ZeroDivisionError
        steps.append(Step(left, symbol, right, result))
        return result
    raise ValueError(f"not allowed in an arithmetic expression: {type(node).__name__}")


def evaluate_expression(expression: str) -> Fraction:
    """Evaluate an arithmetic expression exactly and safely (an AST walk, never ``eval``).

    Raises ``ValueError`` for anything that is not numbers, ``+ - * /``, unary signs and
    parentheses -- ``__import__('os')`` is rejected before Python's parser even sees it -- and
    ``ZeroDivisionError`` for division by zero.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    runs = _expression_runs(expression)
    if len(runs) != 1 or any(m.lastgroup == "other" for m in _SCAN.finditer(expression)):
        raise ValueError(f"not an arithmetic expression: {expression!r}")
    source = " ".join(token.text for token in runs[0])
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as error:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from error
    return _evaluate(_Parsed(source, tree), [])


def solve(question: str) -> Solution | None:
    """Find and evaluate the last expression of ``question``; ``None`` if there is none.

    Division by zero also gives ``None``: the simulated model declines rather than inventing
    a number.
    """
    found = _find(question)
    if found is None:
        return None
    expression, parsed = found
    steps: list[Step] = []
    try:
        value = _evaluate(parsed, steps)
    except ZeroDivisionError:
        return None
    return Solution(expression.strip(), tuple(steps), value)


def format_number(value: Fraction | int, *, grouping: bool = False) -> str:
    """Format like an int when integral, else rounded half-up to at most 4 decimals.

    ``grouping`` adds thousands separators ("1,200"), which real models often write.
    Integers (the common case) skip the rounding arithmetic, which costs a dozen
    ``Fraction`` operations per number on the simulator's hot path.
    """
    if value.denominator == 1:  # an int has one too
        whole = abs(value.numerator)
        digits = f"{whole:,}" if grouping else str(whole)
        return f"-{digits}" if value < 0 else digits
    units = math.floor(abs(Fraction(value)) * 10_000 + Fraction(1, 2))
    whole, fraction = divmod(units, 10_000)
    sign = "-" if value < 0 and units else ""
    digits = f"{whole:,}" if grouping else str(whole)
    if fraction == 0:
        return f"{sign}{digits}"
    return f"{sign}{digits}.{fraction:04d}".rstrip("0")


def _dollars(value: Fraction) -> str:
    """``$1,200``, with a minus sign before the dollar sign when negative."""
    text = format_number(value, grouping=True)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


#: The final-answer formats, so that downstream answer extraction meets the variety real
#: models produce. The dollar style also groups thousands ("$1,200").
ANSWER_STYLES: tuple[Callable[[Fraction], str], ...] = (
    lambda value: f"The answer is {format_number(value)}.",
    lambda value: f"#### {format_number(value)}",
    lambda value: f"\\boxed{{{format_number(value)}}}",
    lambda value: f"So the result is {_dollars(value)}.",
)


def arithmetic_response(question: str, *, style: int = 0, offset: int = 0) -> str:
    """A short worked solution of ``question``'s last expression, ending in the answer.

    ``style`` indexes :data:`ANSWER_STYLES` (modulo its length); a non-zero ``offset`` makes
    the answer wrong by that much, shown in the last step as an arithmetic slip. An offset
    that would turn a non-negative answer negative is mirrored, since models slip by a little
    rather than flip signs. Without an expression the answer is :data:`NO_ANSWER`.
    """
    solution = solve(question)
    if solution is None:
        return NO_ANSWER
    if offset and solution.value >= 0 > solution.value + offset:
        offset = -offset
    answer = solution.value + offset
    lines = [f"Let's compute {solution.expression}."]
    for index, step in enumerate(solution.steps):
        is_last = index == len(solution.steps) - 1 and step.result == solution.value
        result = answer if is_last else step.result
        lines.append(
            f"{format_number(step.left)} {step.op} {format_number(step.right)}"
            f" = {format_number(result)}"
        )
    lines.append(ANSWER_STYLES[style % len(ANSWER_STYLES)](answer))
    return "\n".join(lines)
