"""Write the structured-output example's order messages and the simulated model's answers.

Each row of ``orders.jsonl`` is a short customer message, written for rewardflow, and the
order it contains (``expected``), which must be extracted as JSON fitting ``schema.json``.
``simulated_responses.jsonl`` is what the offline simulator answers: mostly the right object
(bare, in a ```json block, or inside a sentence), and, for the orders listed in ``MISTAKES``,
the kinds of mistakes models make: a number as a string, a currency symbol instead of its
code, an extra field, a misread value, a missing field, a cut-off answer.

    python examples/structured_output/make_dataset.py
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

# (customer, item, quantity, unit price, currency, express, message)
ORDERS: list[tuple[str, str, int, float, str, bool, str]] = [
    ("Maria Lopez", "blue mug", 3, 8.5, "EUR", False,
     "Hi, this is Maria Lopez. I'd like 3 blue mugs at 8.50 EUR each, standard shipping is fine."),
    ("Tom Becker", "desk lamp", 1, 39.99, "USD", True,
     "Tom Becker here: one desk lamp ($39.99), and please send it express."),
    ("Aiko Tanaka", "notebook", 12, 2.25, "GBP", False,
     "Please send twelve notebooks (GBP 2.25 each) to Aiko Tanaka. No rush."),
    ("Lars Nilsson", "wool scarf", 2, 24.0, "EUR", True,
     "Two wool scarves for Lars Nilsson, 24 euros apiece, express delivery please!"),
    ("Priya Nair", "phone case", 4, 12.75, "USD", False,
     "Order from Priya Nair: 4 phone cases at 12.75 USD. Regular post."),
    ("Jonas Weber", "coffee grinder", 1, 64.9, "EUR", False,
     "I'm Jonas Weber and I want a coffee grinder, listed at 64.90 EUR. Normal shipping."),
    ("Emma Clarke", "tea towel", 6, 4.5, "GBP", True,
     "Emma Clarke: six tea towels, £4.50 each. I need them quickly, so express."),
    ("Diego Ramos", "water bottle", 5, 15.0, "USD", False,
     "Hello! Diego Ramos would like 5 water bottles for 15 dollars each. Standard delivery."),
    ("Sofia Rossi", "linen shirt", 2, 45.0, "EUR", True,
     "Sofia Rossi ordering 2 linen shirts at EUR 45 each - express shipping, thanks."),
    ("Noah Kim", "usb cable", 10, 3.99, "USD", False,
     "Ten USB cables ($3.99 per cable) for Noah Kim, no express needed."),
    ("Olivia Brown", "candle", 8, 6.25, "GBP", False,
     "Could Olivia Brown get 8 candles at 6.25 pounds each? Ordinary post is fine."),
    ("Lukas Novak", "bike light", 2, 18.5, "EUR", True,
     "Lukas Novak here, two bike lights at 18.50 EUR. Express, please: my old ones broke."),
    ("Fatima Zahra", "yoga mat", 1, 29.0, "USD", False,
     "One yoga mat for Fatima Zahra, price 29 USD, regular shipping."),
    ("Ben Carter", "pencil set", 3, 7.8, "GBP", True,
     "Ben Carter wants 3 pencil sets (GBP 7.80 each), sent express."),
    ("Chloe Martin", "plant pot", 4, 11.0, "EUR", False,
     "Hi! Chloe Martin. 4 plant pots, 11 euros each. Standard shipping."),
    ("Ravi Patel", "headphones", 1, 89.0, "USD", True,
     "Ravi Patel: a pair of headphones at $89, express delivery."),
    ("Hannah Schmidt", "cutting board", 2, 21.5, "EUR", False,
     "Two cutting boards for Hannah Schmidt at 21.50 EUR each; no hurry."),
    ("Mateo Silva", "backpack", 1, 55.0, "GBP", False,
     "Mateo Silva would like one backpack, 55 pounds, by normal post."),
    ("Grace Lee", "sticker pack", 20, 1.5, "USD", False,
     "Grace Lee: twenty sticker packs at 1.50 USD each, standard."),
    ("Omar Haddad", "rain jacket", 1, 79.95, "EUR", True,
     "Omar Haddad ordering a rain jacket (79.95 EUR). Express please, trip on Friday!"),
    ("Lena Fischer", "wall clock", 1, 34.0, "EUR", False,
     "Lena Fischer, one wall clock at 34 EUR, regular shipping."),
    ("Sam Okafor", "chess set", 2, 27.5, "GBP", True,
     "Sam Okafor needs 2 chess sets at £27.50 each, express."),
    ("Julia Wagner", "mouse pad", 3, 9.0, "USD", False,
     "Three mouse pads for Julia Wagner, 9 dollars each, usual shipping."),
    ("Hugo Laurent", "teapot", 1, 32.0, "EUR", True,
     "Hugo Laurent: one teapot for 32 euros. Express delivery if possible."),
]  # fmt: skip


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda order: {**order, key: value}


def _drop(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda order: {k: v for k, v in order.items() if k != key}


#: Order index -> the mistake the simulated model makes on it (None: the text is cut off).
MISTAKES: dict[int, Callable[[dict[str, Any]], dict[str, Any]] | None] = {
    2: lambda order: {**order, "quantity": str(order["quantity"])},  # "12": not an integer
    6: _set("currency", "£"),  # a symbol, not the code
    9: _set("notes", "customer asked for no express"),  # an extra field
    13: _set("quantity", 1),  # misread "3 pencil sets"
    16: _drop("express"),  # a required field left out
    20: None,  # cut off mid-object
}


def answer(index: int, order: dict[str, Any]) -> str:
    """The simulated model's response: right, or with this order's mistake; varied framing."""
    if index in MISTAKES and MISTAKES[index] is None:
        return json.dumps(order)[:40]
    shown = MISTAKES[index](order) if index in MISTAKES else dict(order)
    if index == 4:
        shown["customer"] = shown["customer"].lower()  # right: strings compare normalised
    text = json.dumps(shown, indent=2)
    frame = index % 3
    if frame == 1:
        return f"Here is the order as JSON:\n\n```json\n{text}\n```"
    if frame == 2:
        return f"The extracted order is {json.dumps(shown)}."
    return text


def main() -> None:
    with (
        open(HERE / "orders.jsonl", "w", encoding="utf-8") as orders,
        open(HERE / "simulated_responses.jsonl", "w", encoding="utf-8") as responses,
    ):
        for index, (customer, item, quantity, price, currency, express, message) in enumerate(
            ORDERS
        ):
            expected = {"customer": customer, "item": item, "quantity": quantity,
                        "unit_price": price, "currency": currency, "express": express}  # fmt: skip
            row = {"id": f"order-{index + 1:02d}", "message": message, "expected": expected}
            orders.write(json.dumps(row, ensure_ascii=False) + "\n")
            reply = answer(index, expected)
            responses.write(json.dumps({"prompt": message, "response": reply}) + "\n")


if __name__ == "__main__":
    main()
