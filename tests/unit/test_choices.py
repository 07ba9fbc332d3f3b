"""Multiple-choice options shuffled per sample: orders, letters, records and refusals."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from rewardflow.config import validate_config
from rewardflow.config.prompts import PrepareSettings
from rewardflow.errors import DatasetError
from rewardflow.generation.cache import GenerationSettings
from rewardflow.generation.job import assemble_records
from rewardflow.generation.work import plan_work
from rewardflow.prompts.choices import answer_index, for_sample, shuffled_order
from rewardflow.prompts.dataset import Row
from rewardflow.prompts.prepare import build_prompt_records

OPTIONS = ["Paris", "Rome", "Madrid", "Berlin"]
TEMPLATE = "{question}\n\n{options}\n\nAnswer with the letter."


def config(shuffle=None, dataset=None, generation=None):
    raw = {
        "run_name": "unit",
        "dataset": {"path": "mc.jsonl", "format": "jsonl", "id_field": "id", **(dataset or {})},
        "prompt": {"template": TEMPLATE, "shuffle_options": shuffle or {"seed": 7}},
        "model": {"provider": "simulator", "name": "sim"},
        "rewards": [{"name": "choice", "function": "pkg.mod:fn"}],
    }
    if generation is not None:
        raw["generation"] = generation
    return PrepareSettings.from_config(validate_config(raw))


def rows(count=1, answer="Paris"):
    return [
        Row(
            data={
                "id": f"q{n}",
                "question": "Capital of France?",
                "options": OPTIONS,
                "answer": answer,
            },
            source={"file": "mc.jsonl", "line": n + 1},
        )  # fmt: skip
        for n in range(count)
    ]


def shown_options(messages):
    """Letter -> option text, as the user message shows them."""
    return dict(re.findall(r"^([A-Z])\. (.+)$", messages[-1]["content"], flags=re.MULTILINE))


def test_the_order_is_a_permutation_fixed_by_seed_prompt_and_sample():
    order = shuffled_order(4, 0, "q1", 0)
    assert sorted(order) == [0, 1, 2, 3]
    assert shuffled_order(4, 0, "q1", 0) == order
    samples = {tuple(shuffled_order(4, 0, "q1", index)) for index in range(20)}
    seeds = {tuple(shuffled_order(4, seed, "q1", 0)) for seed in range(20)}
    assert len(samples) > 5 and len(seeds) > 5


def test_the_right_option_lands_on_every_letter_about_equally():
    letters = Counter(shuffled_order(4, 0, f"q{n}", 0).index(0) for n in range(4000))
    assert set(letters) == {0, 1, 2, 3}
    assert all(850 < count < 1150 for count in letters.values()), letters


def test_the_answer_may_be_the_options_text_letter_or_index():
    assert answer_index("Madrid", OPTIONS, "x") == 2
    assert answer_index(" (c) ", OPTIONS, "x") == 2
    assert answer_index(2, OPTIONS, "x") == 2
    # An option that is itself a letter is found by its text first.
    assert answer_index("A", ["B", "A"], "x") == 1
    with pytest.raises(DatasetError, match=r"mc.jsonl:3: the answer 'Lisbon'"):
        answer_index("Lisbon", OPTIONS, "mc.jsonl:3")
    with pytest.raises(DatasetError, match="index"):
        answer_index(4, OPTIONS, "x")


def test_each_sample_sees_its_own_order_and_its_letter_is_the_right_options():
    settings = GenerationSettings(model="sim", endpoint="http://x/v1", temperature=0.8,
                                  top_p=1.0, max_tokens=16)  # fmt: skip
    cfg = config()
    prompts = build_prompt_records(rows(), cfg)
    items = plan_work(prompts, settings, 8, prompt_settings=cfg.prompt)

    orders = {tuple(item.prompt.choices["order"]) for item in items}
    assert len(orders) > 1
    assert len({item.key for item in items}) == 8  # different prompts, different requests
    for item in items:
        shown = shown_options(item.prompt.messages)
        assert shown[item.prompt.ground_truth] == "Paris"
        assert [shown[letter] for letter in "ABCD"] == [
            OPTIONS[original] for original in item.prompt.choices["order"]
        ]
        assert item.prompt.choices["answer"] == item.prompt.ground_truth
    # The prompts file shows sample 0's order, so generation's sample 0 is the same prompt.
    assert items[0].prompt == prompts[0]

    records = assemble_records(items, {}, {})
    written = json.loads(json.dumps(records[3].to_dict()))
    assert written["choices"] == items[3].prompt.choices
    assert written["ground_truth"] == items[3].prompt.ground_truth


def test_without_shuffling_nothing_changes_and_records_have_no_choices_field():
    cfg = PrepareSettings.from_config(validate_config({
        "run_name": "unit",
        "dataset": {"path": "d.jsonl", "format": "jsonl", "ground_truth_field": "answer"},
        "model": {"provider": "simulator", "name": "sim"},
        "rewards": [{"name": "r", "function": "pkg.mod:fn"}],
    }))  # fmt: skip
    (prompt,) = build_prompt_records(rows(), cfg)
    assert for_sample(prompt, 3, cfg.prompt) is prompt
    assert "choices" not in prompt.to_dict()
    assert prompt.ground_truth == "Paris"


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (lambda: config(dataset={"ground_truth_field": "answer"}), "dataset.ground_truth_field"),
        (
            lambda: config(dataset={"response_field": "r"}, generation={"enabled": False}),
            "generation.enabled: false",
        ),
        (lambda: config(shuffle={"options_field": "choices"}), r"show the options as \{choices\}"),
    ],
)
def test_settings_that_cannot_go_with_shuffling_are_refused(cfg, message):
    with pytest.raises(DatasetError, match=message):
        build_prompt_records(rows(), cfg())


def test_a_row_without_a_list_of_options_is_named_by_location():
    bad = [Row(data={"id": "q", "question": "?", "options": "A or B", "answer": "A"},
               source={"file": "mc.jsonl", "line": 4})]  # fmt: skip
    with pytest.raises(DatasetError, match=r"mc.jsonl:4: .*'options' must hold a list"):
        build_prompt_records(bad, config())


def test_a_repeated_row_is_shuffled_under_its_final_id_in_the_prompts_file_too():
    # Without id_field, repeats get ids "...~2", "...~3": the prompts file must show the order
    # generation gives sample 0 under that final id.
    data = {"question": "Capital of France?", "options": OPTIONS, "answer": "Paris"}
    repeats = [Row(data=data, source={"file": "mc.jsonl", "line": n + 1}) for n in range(4)]
    cfg = config(dataset={"id_field": None})
    prompts = build_prompt_records(repeats, cfg)

    assert [prompt.id.rpartition("~")[2] for prompt in prompts][1:] == ["2", "3", "4"]
    for prompt in prompts:
        assert for_sample(prompt, 0, cfg.prompt) == prompt
