"""Find the reward functions a config names: ``package.module:function`` or ``file.py:function``.

Loading happens once before any generation starts (the workflow's ``onstart``) so a typo in a
reward's name fails in a second, not after an hour of paid requests; and again in each scoring
job, which is where the functions actually run.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardflow.errors import RewardLoadError

RewardFunction = Callable[..., Any]

# A module that calls sys.exit while imported (argparse at module level, under Snakemake's argv)
# is a broken reward, not a request to end the job silently with its exit status.
# KeyboardInterrupt is left alone: while loading it is the user's Ctrl-C.
_IMPORT_FAILURES = (Exception, SystemExit)


@dataclass(frozen=True)
class RewardSpec:
    """A configured reward: its name in outputs, the function, and its parameters."""

    name: str
    function: RewardFunction
    reference: str
    params: Mapping[str, Any] = field(default_factory=dict)
    primary: bool = False
    weight: float | None = None


def _load_module_from_file(
    path: Path, reference: str, what: str = "reward", error_class: type[Exception] = RewardLoadError
) -> Any:
    if not path.is_file():
        raise error_class(f"{what} {reference!r}: file {path} not found")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"rewardflow_user_reward_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise error_class(f"{what} {reference!r}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # The file's own folder is importable, so a reward can import its helper modules.
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except _IMPORT_FAILURES as error:
        raise error_class(
            f"{what} {reference!r}: importing {path} failed: {type(error).__name__}: {error}"
        ) from error
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def load_reward_function(reference: str) -> RewardFunction:
    """Import and return the reward named by ``reference``; RewardLoadError says what failed."""
    function = load_callable(reference)
    _check_signature(function, reference)
    return function


def load_callable(
    reference: str, what: str = "reward", error_class: type[Exception] = RewardLoadError
) -> Callable[..., Any]:
    """Import ``package.module:name`` or ``path/file.py:name`` and check it is callable.

    ``what`` names the thing in errors ("reward", "model.provider"), raised as ``error_class``.
    """
    target, sep, attribute = reference.rpartition(":")
    if not sep or not target or not attribute:
        noun = "function" if what == "reward" else "name"
        raise error_class(
            f"{what} {reference!r}: expected 'package.module:{noun}' or 'path/file.py:{noun}'"
        )
    if target.endswith(".py") or "/" in target:
        module = _load_module_from_file(Path(target), reference, what, error_class)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as error:
            raise error_class(f"{what} {reference!r}: module {error.name!r} not found") from error
        except _IMPORT_FAILURES as error:
            raise error_class(
                f"{what} {reference!r}: importing {target} failed: {type(error).__name__}: {error}"
            ) from error
    function = getattr(module, attribute, None)
    if function is None:
        raise error_class(f"{what} {reference!r}: {target} has no attribute {attribute!r}")
    if not callable(function):
        raise error_class(f"{what} {reference!r}: {attribute!r} is not callable")
    return function


def _check_signature(function: RewardFunction, reference: str) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # builtins and some C callables hide their signature; calling will tell
    try:
        signature.bind([], None)
    except TypeError:
        raise RewardLoadError(
            f"reward {reference!r}: must accept (messages, ground_truth, **kwargs), has {signature}"
        ) from None


def load_rewards(reward_configs: Sequence[Mapping[str, Any]]) -> list[RewardSpec]:
    """All configured rewards, the primary one flagged (the first when none is marked)."""
    any_primary = any(entry.get("primary") for entry in reward_configs)
    specs = []
    for position, entry in enumerate(reward_configs):
        specs.append(
            RewardSpec(
                name=entry["name"],
                function=load_reward_function(entry["function"]),
                reference=entry["function"],
                params=dict(entry.get("params") or {}),
                primary=bool(entry.get("primary")) if any_primary else position == 0,
                weight=entry.get("weight"),
            )
        )
    return specs
