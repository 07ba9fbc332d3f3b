"""The docs keep up with the schema: every config key is documented, by its full dotted name."""

from __future__ import annotations

import re

from conftest import REPO

from rewardflow.config import load_schema

CONFIGURATION = REPO / "docs" / "configuration.md"
# A cell naming a key: `name`, or `parent`: `name` for a key of a nested mapping.
_KEY_CELL = re.compile(r"`([\w.]+)`(?::\s*`(\w+)`)?")
_TICKED = re.compile(r"`(\w+)`")


def _keys(schema: dict, prefix: str = "") -> list[str]:
    """Every key of the schema as its dotted path; list items add no part (`rewards.name`)."""
    keys = []
    for name, sub in schema.get("properties", {}).items():
        keys.append(f"{prefix}{name}")
        keys.extend(_keys(sub, f"{prefix}{name}."))
        if isinstance(sub.get("items"), dict):
            keys.extend(_keys(sub["items"], f"{prefix}{name}."))
    return keys


def documented_keys(text: str) -> set[str]:
    """The dotted keys docs/configuration.md documents, read from its layout.

    A heading that starts with a key in backticks (`## \\`model\\``, `### \\`model.launch\\``)
    documents that key and opens its section; "Top level" opens the top-level one. A row of a
    section's `| key | default | meaning |` table documents section + key, and each key in
    backticks in that row's meaning documents a key nested in it (`dataset.huggingface`'s
    `repo`). So a `seed` documented under `metrics` says nothing of `generation.seed`.
    """
    documented: set[str] = set()
    section: str | None = None
    in_key_table = in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue  # a YAML comment is no heading
        if line.startswith("#"):
            title = line.lstrip("#").strip()
            heading = re.match(r"`([\w.]+)`", title)
            section = heading.group(1) if heading else ("" if title == "Top level" else None)
            if heading:
                documented.add(section)
            in_key_table = False
        elif re.fullmatch(r"\|\s*key\s*\|\s*default\s*\|\s*meaning\s*\|", line.strip()):
            assert section is not None, f"a key table outside a key's section: {line}"
            in_key_table = True
        elif in_key_table and line.startswith("|") and not line.startswith("|---"):
            first, *rest = line.strip("|").split("|")
            cell = _KEY_CELL.fullmatch(first.strip())
            assert cell, f"a key table row that names no key: {line}"
            key = ".".join(part for part in (section, *cell.groups()) if part)
            documented.add(key)
            documented.update(f"{key}.{nested}" for nested in _TICKED.findall("|".join(rest)))
        elif not line.startswith("|"):
            in_key_table = False
    return documented


def test_every_config_key_is_documented_by_its_full_name():
    documented = documented_keys(CONFIGURATION.read_text(encoding="utf-8"))
    missing = [key for key in _keys(load_schema()) if key not in documented]
    assert not missing, f"docs/configuration.md lacks: {missing}"


def test_a_key_documented_in_another_section_does_not_count():
    # `seed` is documented under `metrics` and `simulator`: neither documents generation.seed.
    head = "| key | default | meaning |\n|---|---|---|\n"
    metrics = f"## `metrics`\n\n{head}| `seed` | 0 | seed of the bootstrap |\n"
    assert documented_keys(metrics) == {"metrics", "metrics.seed"}
    prompt = f"## `prompt`\n\n{head}| `few_shot` | `[]` | pairs of `user` and `assistant` text |\n"
    prompt += "| `shuffle_options`: `seed` | 0 | the orders' seed |\n"
    assert documented_keys(prompt) == {
        "prompt", "prompt.few_shot", "prompt.few_shot.user", "prompt.few_shot.assistant",
        "prompt.shuffle_options.seed",
    }  # fmt: skip


def test_the_docs_speak_of_the_product_not_of_how_it_was_made():
    # Readers of a clone have no "closing notes" and no "development machine" to refer to.
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    pages += sorted((REPO / "examples").rglob("*.md"))
    for page in pages:
        text = page.read_text(encoding="utf-8").lower()
        for phrase in ("closing note", "development machine"):
            assert phrase not in text, f"{page.relative_to(REPO)} mentions {phrase!r}"
