"""Dotted paths into a row: ``reward_model.ground_truth`` names a field inside a field.

verl-style data nests what rewardflow needs (the ground truth under ``reward_model``, the index
under ``extra_info``), so every dataset key that names a row field (``id_field``,
``ground_truth_field``, ``response_field``, ``messages_field``) goes through :func:`get_field`.
A key that exists verbatim wins over the dotted reading, so a CSV column literally called
``a.b`` still works. Ten lines do not justify a dependency such as glom or jmespath, whose
query languages would also make ``extra_info.index`` mean something subtly different.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final


class _Missing:
    """The type of :data:`MISSING`: absent, as opposed to present with the value ``None``."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def get_field(data: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` (``a.b.c``; a number part indexes a list), or :data:`MISSING`."""
    if path in data:
        return data[path]
    value: Any = data
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value
