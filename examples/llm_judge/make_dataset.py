"""Write the LLM-judge example's questions, the model's answers and the judge's verdicts.

``questions.jsonl`` holds 20 open-ended questions written for rewardflow, each with a short
``reference`` answer. Offline, two simulators stand in for the two models:

* ``simulated_responses.jsonl``: the model under test (the config's ``simulator.responses``).
  Most answers are right in their own words; some are partly right, some wrong.
* ``judge_verdicts.jsonl``: the judge, started by hand (see README.md). A canned answer is
  found by the exact text of the judge's prompt, so this script builds each prompt as
  ``rewardflow.rewards.judge.llm_judge`` will (its template, the fenced response, the
  reference) and files the verdict under it: a short explanation, then ``SCORE: 1``,
  ``SCORE: 0.5`` or ``SCORE: 0``, graded by hand below.

Rerun it after changing the questions, the answers, the prompt or the judge's template:

    python examples/llm_judge/make_dataset.py
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from rewardflow.config import validate_config
from rewardflow.config.prompts import PromptSettings
from rewardflow.config.scoring import JudgeSettings
from rewardflow.prompts.prepare import build_messages
from rewardflow.rewards.judge import judge_messages

HERE = Path(__file__).parent

# (question, reference, the model's answer, the judge's verdict, its explanation)
ITEMS: list[tuple[str, str, str, str, str]] = [
    ("Why is the sky blue on a clear day?",
     "Air molecules scatter short (blue) wavelengths of sunlight much more than long ones "
     "(Rayleigh scattering), so scattered blue light reaches us from every direction.",
     "Sunlight is scattered by the molecules in the air, and blue light, having a shorter "
     "wavelength, is scattered far more strongly than red, so the whole sky glows blue.",
     "1", "The response names scattering by air molecules and its dependence on wavelength."),
    ("Why do we have seasons on Earth?",
     "Because Earth's axis is tilted about 23.5 degrees, so each hemisphere gets more direct "
     "sunlight and longer days during part of the year.",
     "Seasons happen because the Earth is closer to the Sun in summer and farther in winter.",
     "0", "Distance is not the cause; the response misses the axial tilt."),
    ("What does a vaccine do?",
     "It trains the immune system to recognise a pathogen, using a harmless part or form of "
     "it, so the body can fight the real infection quickly.",
     "A vaccine shows the immune system a harmless piece or weakened form of a germ, so it "
     "learns to recognise it and responds fast if the real germ appears.",
     "1", "Matches the reference: training the immune system with a harmless form."),
    ("Why does ice float on water?",
     "Ice is less dense than liquid water because its hydrogen-bonded crystal structure holds "
     "the molecules farther apart.",
     "Ice floats because it is lighter than water.",
     "0.5", "Right direction (less dense), but 'lighter' is vague and there is no reason why."),
    ("What is photosynthesis?",
     "The process by which plants, algae and some bacteria use light energy to turn carbon "
     "dioxide and water into sugar, releasing oxygen.",
     "Plants use sunlight to make sugar from carbon dioxide and water, giving off oxygen.",
     "1", "All the essential parts are there."),
    ("Why does a metal spoon feel colder than a wooden one at the same temperature?",
     "Metal conducts heat away from your hand much faster than wood, so it feels colder "
     "although both are at the same temperature.",
     "Because metal is actually colder than wood in the same room.",
     "0", "Wrong: both are at room temperature; the difference is thermal conductivity."),
    ("What causes the tides?",
     "Mainly the Moon's gravity (and to a lesser extent the Sun's), pulling differently on "
     "different parts of the Earth and raising bulges of water.",
     "The Moon's gravitational pull, with some help from the Sun, makes the oceans bulge, "
     "and Earth's rotation carries us through those bulges.",
     "1", "Correct, and adds the rotation, which is right."),
    ("Why do we see lightning before we hear thunder?",
     "Light travels about a million times faster than sound, so the flash arrives almost "
     "at once while the sound takes about 3 seconds per kilometre.",
     "Because light travels much faster than sound.",
     "1", "Short but correct: the speed difference is the point."),
    ("What is inflation in economics?",
     "A general rise in the price level over time, which lowers the purchasing power of money.",
     "Inflation is when a country prints money.",
     "0", "Printing money can cause inflation, but inflation is the rise in prices."),
    ("Why does salt melt ice on roads?",
     "Dissolved salt lowers the freezing point of water, so the ice melts at temperatures "
     "where pure water would stay frozen.",
     "Salt lowers the temperature at which water freezes, so ice turns into brine even below "
     "zero degrees Celsius.",
     "1", "Freezing-point depression, correctly described."),
    ("What does DNA do in a cell?",
     "It stores the genetic instructions, as sequences of bases, that are used to build "
     "proteins and are passed on when cells divide.",
     "DNA gives the cell its energy.",
     "0", "That is ATP's role; DNA stores genetic information."),
    ("Why do objects fall at the same rate in a vacuum?",
     "Gravity's pull is proportional to mass, and so is inertia, so the acceleration is the "
     "same for all objects when there is no air resistance.",
     "Without air resistance the only force is gravity, and heavier things need more force "
     "to accelerate, which gravity exactly provides, so all fall with the same acceleration.",
     "1", "Explains the cancellation of mass correctly."),
    ("What is a prime number?",
     "A natural number greater than 1 whose only divisors are 1 and itself.",
     "A number that can only be divided by 1 and itself.",
     "0.5", "Misses 'greater than 1' (1 is not prime) but is otherwise right."),
    ("Why does the Moon show phases?",
     "As the Moon orbits Earth we see different portions of its sunlit half.",
     "The Earth's shadow covers different parts of the Moon during the month.",
     "0", "That describes an eclipse; phases come from the viewing angle of the lit half."),
    ("What is the greenhouse effect?",
     "Gases such as carbon dioxide and water vapour absorb infrared radiation emitted by the "
     "Earth's surface and re-emit it, keeping the lower atmosphere warmer.",
     "Some gases in the atmosphere, like CO2 and water vapour, trap the heat the ground "
     "radiates, warming the planet.",
     "1", "Correct in substance."),
    ("Why do onions make people cry?",
     "Cutting onions releases enzymes that form a volatile sulfur compound "
     "(syn-propanethial-S-oxide) which irritates the eyes and triggers tears.",
     "Cutting an onion releases a sulfur gas that irritates the eyes.",
     "1", "Right mechanism, briefly stated."),
    ("What is the difference between weather and climate?",
     "Weather is the state of the atmosphere over hours or days; climate is the average "
     "pattern of weather over decades.",
     "Weather is what happens today; climate is the long-term average of weather over many "
     "years in a region.",
     "1", "Matches the reference."),
    ("Why do cats purr?",
     "Mostly to communicate contentment or to self-soothe when stressed or hurt; the sound "
     "comes from rapid twitching of the laryngeal muscles.",
     "Cats purr only when they are happy.",
     "0.5", "Contentment is one reason, but 'only' is wrong: cats also purr when stressed."),
    ("What is an algorithm?",
     "A finite, well-defined sequence of steps for solving a problem or performing a task.",
     "An algorithm is a step-by-step procedure that solves a problem in a finite number of "
     "steps.",
     "1", "Correct definition."),
    ("Why is the ocean salty?",
     "Rivers carry dissolved minerals from weathered rocks into the sea, and evaporation "
     "removes water but leaves the salts, which build up over time.",
     "Because fish release salt into the water.",
     "0", "Wrong cause; the salt comes from weathered rock carried by rivers."),
]  # fmt: skip


def main() -> None:
    with open(HERE / "config.yaml", encoding="utf-8") as handle:
        config = validate_config(yaml.safe_load(handle))
    judge_reward = next(r for r in config["rewards"] if r["function"].endswith(":llm_judge"))
    judge = JudgeSettings.from_params(judge_reward["params"])
    prompt_settings = PromptSettings.from_config(config)
    with (
        open(HERE / "questions.jsonl", "w", encoding="utf-8") as questions,
        open(HERE / "simulated_responses.jsonl", "w", encoding="utf-8") as responses,
        open(HERE / "judge_verdicts.jsonl", "w", encoding="utf-8") as verdicts,
    ):
        for index, (question, reference, answer, score, why) in enumerate(ITEMS):
            row = {"id": f"q-{index + 1:02d}", "question": question, "reference": reference}
            questions.write(json.dumps(row) + "\n")
            responses.write(json.dumps({"prompt": question, "response": answer}) + "\n")
            prompt = build_messages(prompt_settings, prompt_settings.template.format(**row))
            conversation = [*prompt, {"role": "assistant", "content": answer}]
            judged = judge_messages(conversation, reference, judge.template, judge.system)
            verdict = f"{why}\nSCORE: {score}"
            verdicts.write(
                json.dumps({"prompt": judged[-1]["content"], "response": verdict}) + "\n"
            )


if __name__ == "__main__":
    main()
