"""Write the code-generation example's problems and the simulated model's candidate programs.

Sixteen small Python functions, written for rewardflow. Each row of ``problems.jsonl`` has the
task (``prompt``), the function's name (``entry_point``) and hidden ``tests``: a script of
asserts that the code reward runs against the response's code in the sandbox. The model sees
the task only, never the tests.

``simulated_responses.jsonl`` gives the offline simulator one to three candidate programs per
task; at temperature > 0 each sample draws one of them, so samples of a task disagree the way
a model's do. Some candidates are right, some have the bug a model typically writes (an
``elif`` in the wrong order, no wrap-around, duplicates not handled), two tasks have only
buggy candidates, and one candidate is an apology with no code.

    python examples/code_generation/make_dataset.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent

# name: (task, tests, candidate programs)
PROBLEMS: dict[str, tuple[str, str, list[str]]] = {
    "digit_sum": (
        "Write `digit_sum(n)` returning the sum of the decimal digits of a non-negative "
        "integer `n`.",
        "assert digit_sum(0) == 0\nassert digit_sum(7) == 7\nassert digit_sum(1234) == 10\n"
        "assert digit_sum(99999) == 45",
        ["def digit_sum(n):\n    return sum(int(d) for d in str(n))",
         "def digit_sum(n):\n    return n % 10 + n // 10"],
    ),
    "is_palindrome": (
        "Write `is_palindrome(s)` returning True if the string `s` reads the same backwards, "
        "ignoring case and every character that is not a letter or a digit.",
        "assert is_palindrome('racecar')\nassert is_palindrome('A man, a plan, a canal: Panama')\n"
        "assert not is_palindrome('hello')\nassert is_palindrome('')",
        ["def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n"
         "    return t == t[::-1]",
         "def is_palindrome(s):\n    t = [c for c in s if c.isalnum()]\n    return t == t[::-1]"],
    ),
    "fizzbuzz": (
        "Write `fizzbuzz(n)` returning a list of strings for 1..n: 'Fizz' for multiples of 3, "
        "'Buzz' for multiples of 5, 'FizzBuzz' for multiples of both, else the number.",
        "assert fizzbuzz(5) == ['1', '2', 'Fizz', '4', 'Buzz']\n"
        "assert fizzbuzz(15)[-1] == 'FizzBuzz'\nassert fizzbuzz(0) == []",
        ["def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n"
         "        if i % 15 == 0:\n            out.append('FizzBuzz')\n"
         "        elif i % 3 == 0:\n            out.append('Fizz')\n"
         "        elif i % 5 == 0:\n            out.append('Buzz')\n"
         "        else:\n            out.append(str(i))\n    return out",
         "def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n"
         "        if i % 3 == 0:\n            out.append('Fizz')\n"
         "        elif i % 5 == 0:\n            out.append('Buzz')\n"
         "        elif i % 15 == 0:\n            out.append('FizzBuzz')\n"
         "        else:\n            out.append(str(i))\n    return out"],
    ),
    "second_largest": (
        "Write `second_largest(nums)` returning the second largest distinct value in the list "
        "`nums`, or None if there is none.",
        "assert second_largest([3, 1, 2]) == 2\nassert second_largest([5, 5, 4]) == 4\n"
        "assert second_largest([7]) is None\nassert second_largest([2, 2]) is None",
        ["def second_largest(nums):\n    values = sorted(set(nums))\n"
         "    return values[-2] if len(values) > 1 else None",
         "def second_largest(nums):\n    return sorted(nums)[-2] if len(nums) > 1 else None"],
    ),
    "count_vowels": (
        "Write `count_vowels(s)` returning how many of the characters of `s` are vowels "
        "(a, e, i, o, u, in either case).",
        "assert count_vowels('hello') == 2\nassert count_vowels('AEIOU') == 5\n"
        "assert count_vowels('rhythm') == 0",
        ["def count_vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s)"],
    ),
    "flatten": (
        "Write `flatten(items)` returning a flat list of the non-list values in the nested "
        "list `items`, at any depth, in order.",
        "assert flatten([1, [2, [3, [4]]], 5]) == [1, 2, 3, 4, 5]\nassert flatten([]) == []\n"
        "assert flatten([[[]]]) == []",
        ["def flatten(items):\n    out = []\n    for item in items:\n"
         "        if isinstance(item, list):\n            out.extend(flatten(item))\n"
         "        else:\n            out.append(item)\n    return out",
         "def flatten(items):\n    out = []\n    for item in items:\n"
         "        if isinstance(item, list):\n            out.extend(item)\n"
         "        else:\n            out.append(item)\n    return out"],
    ),
    "run_length": (
        "Write `run_length(s)` returning the run-length encoding of `s`: each run of a "
        "character as the character followed by the run's length, e.g. 'aaabcc' -> 'a3b1c2'.",
        "assert run_length('aaabcc') == 'a3b1c2'\nassert run_length('') == ''\n"
        "assert run_length('z') == 'z1'",
        ["def run_length(s):\n    out, i = [], 0\n    while i < len(s):\n        j = i\n"
         "        while j < len(s) and s[j] == s[i]:\n            j += 1\n"
         "        out.append(f'{s[i]}{j - i}')\n        i = j\n    return ''.join(out)",
         "def run_length(s):\n    out, count = [], 1\n    for a, b in zip(s, s[1:]):\n"
         "        if a == b:\n            count += 1\n        else:\n"
         "            out.append(f'{a}{count}')\n            count = 1\n    return ''.join(out)"],
    ),
    "gcd": (
        "Write `gcd(a, b)` returning the greatest common divisor of two positive integers.",
        "assert gcd(12, 18) == 6\nassert gcd(7, 13) == 1\nassert gcd(100, 10) == 10",
        ["def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a"],
    ),
    "rotate": (
        "Write `rotate(items, k)` returning the list `items` rotated right by `k` places; "
        "`k` may be larger than the list, and the list may be empty.",
        "assert rotate([1, 2, 3, 4], 1) == [4, 1, 2, 3]\nassert rotate([1, 2, 3], 5) == [2, 3, 1]\n"
        "assert rotate([], 3) == []",
        ["def rotate(items, k):\n    if not items:\n        return []\n    k %= len(items)\n"
         "    return items[-k:] + items[:-k]",
         "def rotate(items, k):\n    return items[-k:] + items[:-k]"],
    ),
    "word_count": (
        "Write `word_count(text)` returning a dict from each lower-cased word of `text` "
        "(split on whitespace) to how often it occurs.",
        "assert word_count('The cat the hat') == {'the': 2, 'cat': 1, 'hat': 1}\n"
        "assert word_count('') == {}",
        ["def word_count(text):\n    counts = {}\n    for word in text.lower().split():\n"
         "        counts[word] = counts.get(word, 0) + 1\n    return counts"],
    ),
    "binary_search": (
        "Write `binary_search(items, target)` returning the index of `target` in the sorted "
        "list `items`, or -1 if it is not there.",
        "assert binary_search([1, 3, 5, 7], 7) == 3\nassert binary_search([1, 3, 5, 7], 1) == 0\n"
        "assert binary_search([1, 3, 5, 7], 4) == -1\nassert binary_search([], 1) == -1",
        ["def binary_search(items, target):\n    lo, hi = 0, len(items) - 1\n"
         "    while lo <= hi:\n        mid = (lo + hi) // 2\n"
         "        if items[mid] == target:\n            return mid\n"
         "        if items[mid] < target:\n            lo = mid + 1\n"
         "        else:\n            hi = mid - 1\n    return -1",
         "def binary_search(items, target):\n    lo, hi = 0, len(items) - 1\n"
         "    while lo < hi:\n        mid = (lo + hi) // 2\n"
         "        if items[mid] == target:\n            return mid\n"
         "        if items[mid] < target:\n            lo = mid + 1\n"
         "        else:\n            hi = mid - 1\n    return -1"],
    ),
    "merge_intervals": (
        "Write `merge_intervals(intervals)` merging overlapping [start, end] intervals and "
        "returning them sorted by start; the input may be in any order.",
        "assert merge_intervals([[1, 3], [2, 6], [8, 10]]) == [[1, 6], [8, 10]]\n"
        "assert merge_intervals([[8, 10], [1, 3], [2, 4]]) == [[1, 4], [8, 10]]\n"
        "assert merge_intervals([]) == []",
        ["def merge_intervals(intervals):\n    out = []\n    for start, end in intervals:\n"
         "        if out and start <= out[-1][1]:\n            out[-1][1] = max(out[-1][1], end)\n"
         "        else:\n            out.append([start, end])\n    return out"],
    ),
    "roman_to_int": (
        "Write `roman_to_int(s)` converting a Roman numeral such as 'XIV' to an integer.",
        "assert roman_to_int('III') == 3\nassert roman_to_int('XIV') == 14\n"
        "assert roman_to_int('MCMXCIV') == 1994",
        ["def roman_to_int(s):\n    values = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100,"
         " 'D': 500, 'M': 1000}\n    return sum(values[c] for c in s)",
         "I am sorry, I cannot convert Roman numerals without more information."],
    ),
    "transpose": (
        "Write `transpose(matrix)` returning the transpose of a rectangular list of lists.",
        "assert transpose([[1, 2, 3], [4, 5, 6]]) == [[1, 4], [2, 5], [3, 6]]\n"
        "assert transpose([[1]]) == [[1]]",
        ["def transpose(matrix):\n    return [list(row) for row in zip(*matrix)]"],
    ),
    "is_leap_year": (
        "Write `is_leap_year(year)` returning True for leap years of the Gregorian calendar.",
        "assert is_leap_year(2024)\nassert not is_leap_year(2023)\nassert not is_leap_year(1900)\n"
        "assert is_leap_year(2000)",
        ["def is_leap_year(year):\n"
         "    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)",
         "def is_leap_year(year):\n    return year % 4 == 0"],
    ),
    "caesar": (
        "Write `caesar(text, shift)` shifting every letter of `text` forward by `shift` places "
        "in the alphabet, wrapping around and keeping its case; other characters stay as they are.",
        "assert caesar('abc', 1) == 'bcd'\nassert caesar('xyz', 3) == 'abc'\n"
        "assert caesar('Hello, World!', 13) == 'Uryyb, Jbeyq!'",
        ["def caesar(text, shift):\n    out = []\n    for c in text:\n"
         "        if c.isalpha():\n            base = ord('A') if c.isupper() else ord('a')\n"
         "            out.append(chr(base + (ord(c) - base + shift) % 26))\n"
         "        else:\n            out.append(c)\n    return ''.join(out)",
         "def caesar(text, shift):\n"
         "    return ''.join(chr(ord(c) + shift) if c.isalpha() else c for c in text)"],
    ),
}  # fmt: skip


def as_response(candidate: str) -> str:
    """A candidate as a model writes it: code in a fenced block, prose as it is."""
    if candidate.startswith("def "):
        return f"Here is the function:\n\n```python\n{candidate}\n```"
    return candidate


def main() -> None:
    with (
        open(HERE / "problems.jsonl", "w", encoding="utf-8") as problems,
        open(HERE / "simulated_responses.jsonl", "w", encoding="utf-8") as responses,
    ):
        for name, (task, tests, candidates) in PROBLEMS.items():
            row = {"id": name, "prompt": task, "entry_point": name,
                   "tests": {"tests": tests, "entry_point": name}}  # fmt: skip
            problems.write(json.dumps(row) + "\n")
            answers = [as_response(candidate) for candidate in candidates]
            responses.write(json.dumps({"prompt": task, "responses": answers}) + "\n")


if __name__ == "__main__":
    main()
