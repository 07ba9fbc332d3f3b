"""Write the answers the simulated model gives offline in the multiple-choice example.

``questions.jsonl`` is written by hand for rewardflow (24 questions: science, math,
reasoning). Each sample of a question sees the options in its own order, so the simulator
needs a canned answer for every shuffled prompt. This script builds those prompts exactly as
the pipeline does (the config's template and ``prompt.shuffle_options``, through
``rewardflow.prompts.choices``) and answers each like a model would: it picks an option *text* and
names the *letter* at which that text appears in this prompt. It picks the right text, except
for about one prompt in four (a SHA-256 draw over the prompt), where it picks the question's
first wrong option; and it always falls for the two trick questions (``TRAPS``). So a letter
scored against the row's order instead of the sample's would come out near chance, not near
the 70% this gives.

Rerun it after changing the questions, the template, the seed or ``generation.samples``:

    python examples/multiple_choice/make_dataset.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from rewardflow.config import validate_config
from rewardflow.config.prompts import PrepareSettings
from rewardflow.prompts.choices import LETTERS, answer_index, for_sample
from rewardflow.prompts.dataset import iter_rows
from rewardflow.prompts.prepare import build_prompt_records

HERE = Path(__file__).parent
WRONG_RATE = 0.25
#: Questions whose intuitive wrong answer the simulated model always gives.
TRAPS = {"mc-23": "0.10 dollars", "mc-24": "100 minutes"}


def main() -> None:
    with open(HERE / "config.yaml", encoding="utf-8") as handle:
        config = validate_config(yaml.safe_load(handle))
    config["dataset"]["path"] = str(HERE / "questions.jsonl")
    settings = PrepareSettings.from_config(config)
    prompts = build_prompt_records(iter_rows(settings.dataset), settings)
    canned: dict[str, str] = {}
    for prompt in prompts:
        options = prompt.metadata["options"]
        right = answer_index(prompt.metadata["answer"], options, prompt.id)
        distractor = next(k for k in range(len(options)) if k != right)
        if prompt.id in TRAPS:
            right = distractor = options.index(TRAPS[prompt.id])
        for index in range(config["generation"]["samples"]):
            sample = for_sample(prompt, index, settings.prompt)
            text = sample.messages[-1]["content"]
            draw = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
            chosen = distractor if draw / 2**64 < WRONG_RATE else right
            letter = LETTERS[sample.choices["order"].index(chosen)]
            canned[text] = f"I think it is {options[chosen]}.\nThe answer is ({letter})."
    with open(HERE / "simulated_responses.jsonl", "w", encoding="utf-8") as out:
        for text, response in canned.items():
            out.write(json.dumps({"prompt": text, "response": response}) + "\n")


if __name__ == "__main__":
    main()
