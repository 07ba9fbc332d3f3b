"""Write the reasoning-format example's word problems and the simulated model's answers.

24 short word problems written for rewardflow, each with its numeric ``answer``.
``simulated_responses.jsonl`` is what the offline simulator answers, in the
``<think>...</think><answer>...</answer>`` format the system prompt asks for, except where
``FLAWS`` says otherwise: a wrong answer in the right format, the right answer with no
``<think>`` block or with chatter after ``</answer>``, an answer cut off before
``</answer>``. So the format and the accuracy rewards disagree on some samples, which is what
weighting them is about.

    python examples/reasoning_format/make_dataset.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent

# (question, reasoning, answer)
PROBLEMS: list[tuple[str, str, str]] = [
    ("A baker makes 12 loaves an hour for 7 hours. How many loaves is that?",
     "12 loaves times 7 hours is 84.", "84"),
    ("Ana has 45 stickers and gives 17 to her brother. How many does she keep?",
     "45 - 17 = 28.", "28"),
    ("A train travels 180 km in 2 hours. What is its average speed in km per hour?",
     "180 / 2 = 90.", "90"),
    ("Pencils cost 3 dollars a pack. How much do 8 packs cost, in dollars?",
     "8 * 3 = 24.", "24"),
    ("A garden is 9 m long and 6 m wide. What is its area in square metres?",
     "9 * 6 = 54.", "54"),
    ("Tickets are 15 euros each. How many can you buy with 100 euros?",
     "100 / 15 is 6 with 10 left over, so 6 tickets.", "6"),
    ("A tank holds 250 litres and is 40% full. How many litres are in it?",
     "0.4 * 250 = 100.", "100"),
    ("Sam reads 25 pages a day. How many days does a 300-page book take?",
     "300 / 25 = 12.", "12"),
    ("A class of 28 splits into teams of 4. How many teams are there?",
     "28 / 4 = 7.", "7"),
    ("The temperature was -3 degrees and rose by 11 degrees. What is it now?",
     "-3 + 11 = 8.", "8"),
    ("A shirt costs 40 dollars and is discounted by 25%. What is the new price in dollars?",
     "25% of 40 is 10, so 40 - 10 = 30.", "30"),
    ("Three friends share 57 marbles equally. How many does each get?",
     "57 / 3 = 19.", "19"),
    ("A car uses 6 litres of fuel per 100 km. How many litres for 350 km?",
     "350 / 100 * 6 = 21.", "21"),
    ("A rectangle has a perimeter of 30 cm and a width of 5 cm. How long is it, in cm?",
     "2 * (L + 5) = 30, so L + 5 = 15 and L = 10.", "10"),
    ("Lena saves 15 dollars a week. How many weeks until she has 210 dollars?",
     "210 / 15 = 14.", "14"),
    ("A box has 6 rows of 8 eggs, and 5 eggs are broken. How many are whole?",
     "6 * 8 = 48, and 48 - 5 = 43.", "43"),
    ("What is the average of 12, 15 and 21?", "12 + 15 + 21 = 48, and 48 / 3 = 16.", "16"),
    ("A recipe needs 3 eggs for 4 people. How many eggs for 12 people?",
     "12 people is 3 times 4 people, so 3 * 3 = 9 eggs.", "9"),
    ("A movie starts at 7:40 pm and lasts 95 minutes. How many minutes after 9 pm does it end?",
     "7:40 pm plus 95 minutes is 9:15 pm, 15 minutes after 9.", "15"),
    ("A school buys 14 chairs at 23 dollars each. What is the total in dollars?",
     "14 * 23 = 322.", "322"),
    ("Half of a number is 36. What is the number?", "It is 2 * 36 = 72.", "72"),
    ("A jar has 5 red and 15 blue beads. What percent of the beads are red?",
     "5 of 20 beads is 1/4, which is 25%.", "25"),
    ("A runner does 4 laps of a 400 m track. How many metres is that?",
     "4 * 400 = 1600.", "1600"),
    ("Tom is 3 times as old as his son, who is 11. How old is Tom?", "3 * 11 = 33.", "33"),
]  # fmt: skip

#: Problem index -> how the simulated answer departs from a right, well-formed one.
FLAWS = {
    3: "wrong",
    8: "wrong",
    15: "wrong",
    1: "chatter",
    5: "no_think",
    11: "chatter",
    18: "no_think",
    13: "cut_off",
    21: "wrong_no_think",
}


def respond(index: int, reasoning: str, answer: str) -> str:
    flaw = FLAWS.get(index)
    if flaw in ("wrong", "wrong_no_think"):
        answer = str(int(answer) + 2)
        reasoning = reasoning.rsplit(" ", 1)[0] + f" about {answer}."
    if flaw == "cut_off":
        return f"<think>\n{reasoning}\n</think>\n<answer>{answer}"
    if flaw in ("no_think", "wrong_no_think"):
        return f"<answer>{answer}</answer>"
    text = f"<think>\n{reasoning}\n</think>\n<answer>{answer}</answer>"
    return text + "\nLet me know if you need anything else!" if flaw == "chatter" else text


def main() -> None:
    with (
        open(HERE / "problems.jsonl", "w", encoding="utf-8") as problems,
        open(HERE / "simulated_responses.jsonl", "w", encoding="utf-8") as responses,
    ):
        for index, (question, reasoning, answer) in enumerate(PROBLEMS):
            row = {"id": f"wp-{index + 1:02d}", "question": question, "answer": answer}
            problems.write(json.dumps(row) + "\n")
            reply = respond(index, reasoning, answer)
            responses.write(json.dumps({"prompt": question, "response": reply}) + "\n")


if __name__ == "__main__":
    main()
