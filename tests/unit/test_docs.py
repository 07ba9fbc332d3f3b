"""The docs keep up with the schema: every config key is documented."""

from __future__ import annotations

from conftest import REPO

from rewardflow.config import load_schema


def _keys(schema: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, sub in schema.get("properties", {}).items():
        keys.append(name)
        keys.extend(_keys(sub, f"{prefix}{name}."))
        if isinstance(sub.get("items"), dict):
            keys.extend(_keys(sub["items"], f"{prefix}{name}[]."))
    return keys


def test_every_config_key_is_documented():
    text = (REPO / "docs" / "configuration.md").read_text()
    missing = [key for key in _keys(load_schema()) if f"`{key}`" not in text]
    assert not missing, f"docs/configuration.md lacks: {missing}"


def test_the_docs_speak_of_the_product_not_of_how_it_was_made():
    # Readers of a clone have no "closing notes" and no "development machine" to refer to.
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    pages += sorted((REPO / "examples").rglob("*.md"))
    for page in pages:
        text = page.read_text(encoding="utf-8").lower()
        for phrase in ("closing note", "development machine"):
            assert phrase not in text, f"{page.relative_to(REPO)} mentions {phrase!r}"
