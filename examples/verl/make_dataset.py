"""Write the verl example dataset: the demo's arithmetic problems in verl's Parquet layout.

verl's data preprocessing scripts (e.g. ``examples/data_preprocess/gsm8k.py``) write one row
per problem with these columns, which is what ``dataset.format: verl`` reads:

* ``data_source``: the dataset name (here ``arithmetic/basic`` or ``arithmetic/compound``,
  so ``metrics.group_by: [data_source]`` has two groups to break the score down by);
* ``prompt``: the chat messages to send, as a list of ``{role, content}``;
* ``ability``: a free-form label (``math``);
* ``reward_model``: ``{style: rule, ground_truth: <answer>}``;
* ``extra_info``: ``{split, index, question, answer}``; rewardflow takes ids from ``index``.

The output is a pure function of the demo data, so rerunning the script rewrites the same rows:

    python examples/verl/make_dataset.py     # examples/demo/arithmetic.jsonl -> arithmetic.parquet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_INPUT = HERE.parent / "demo" / "arithmetic.jsonl"
DEFAULT_OUTPUT = HERE / "arithmetic.parquet"
SYSTEM = "You are a careful calculator. Work step by step and state the final answer."


def verl_row(index: int, row: dict[str, str]) -> dict[str, object]:
    """One demo row in verl's layout."""
    kind = "basic" if row["question"].startswith("What is") else "compound"
    return {
        "data_source": f"arithmetic/{kind}",
        "prompt": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": row["question"]},
        ],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": row["answer"]},
        "extra_info": {
            "split": "test",
            "index": index,
            "question": row["question"],
            "answer": row["answer"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    with open(args.input, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    table = pa.Table.from_pylist([verl_row(index, row) for index, row in enumerate(rows)])
    pq.write_table(table, args.output)
    print(f"wrote {len(rows)} rows to {args.output}")


if __name__ == "__main__":
    main()
