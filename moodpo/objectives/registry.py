"""Objective names -> objects: built-ins, `hf:` reward models and `python:` user functions."""

import importlib
import threading
from collections.abc import Sequence

import numpy as np

from moodpo.errors import MoodpoError
from moodpo.objectives.base import CallableObjective, Objective
from moodpo.objectives.builtin import BUILTIN_OBJECTIVES, VERSIONED_OBJECTIVES

_lock = threading.Lock()
_cache: dict[str, Objective] = {}


def available_objectives() -> list[str]:
    """Names of the built-in objectives (besides these, versioned names such as `helpfulness@v1`,
    `hf:...` and `python:...` are accepted)."""
    return list(BUILTIN_OBJECTIVES)


def get_objective(name: str) -> Objective:
    """The objective called `name`, created once per process and cached.

    name: a built-in ("helpfulness", "harmlessness", "conciseness", or a versioned name such as
    "helpfulness@v1"; see `builtin.py`), "hf:<hub id or local
    path>[?format=chat|pair|hh]" (see `hf.py`), or "python:<module>:<function>" for a function
    (prompts, responses) -> N floats. Models load on first call, not here; a name that cannot
    work (unknown, missing model, function that cannot be imported) raises MoodpoError now.
    """
    name = name.strip()
    with _lock:
        if name not in _cache:
            _cache[name] = _create(name)
        return _cache[name]


def _create(name: str) -> Objective:
    if name in BUILTIN_OBJECTIVES:
        return BUILTIN_OBJECTIVES[name]()
    if name in VERSIONED_OBJECTIVES:
        objective = VERSIONED_OBJECTIVES[name]()
        objective.name = name  # "helpfulness@v2" keeps its versioned name in tables
        return objective
    if name.startswith("hf:"):
        from moodpo.objectives.hf import HFRewardModel

        return HFRewardModel(name[len("hf:") :])
    if name.startswith("python:"):
        return _python_objective(name)
    raise MoodpoError(
        f"unknown objective {name!r}; choose from {', '.join(available_objectives())} (or a versioned name "
        "such as 'helpfulness@v1'), "
        "'hf:<model id or path>' or 'python:<module>:<function>'"
    )


def _python_objective(name: str) -> Objective:
    module_name, sep, attr = name[len("python:") :].partition(":")
    if not sep or not module_name or not attr:
        raise MoodpoError(f"objective {name!r}: expected 'python:<module>:<function>'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise MoodpoError(f"objective {name!r}: cannot import module {module_name!r} ({e})") from None
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise MoodpoError(f"objective {name!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise MoodpoError(f"objective {name!r}: {attr!r} is a {type(obj).__name__}, not a function")
    return CallableObjective(name, obj)


def score_all(
    objectives: Sequence[Objective | str], prompts: Sequence[str], responses: Sequence[str]
) -> np.ndarray:
    """Scores of every response under every objective, float64 (N, K); names are looked up."""
    objectives = [get_objective(o) if isinstance(o, str) else o for o in objectives]
    if not objectives:
        return np.zeros((len(responses), 0))
    return np.stack([objective(prompts, responses) for objective in objectives], axis=1)


def objective_versions(names: Sequence[str]) -> dict[str, int | None]:
    """{name: definition version} of objectives (None for objectives without one: hf:, python:)."""
    return {n: getattr(get_objective(n), "version", None) for n in names}


def previous_version(name: str) -> str | None:
    """The version-1 name of a version-2 built-in ("helpfulness" -> "helpfulness@v1"), else None."""
    plain = name.removesuffix("@v2")
    return f"{plain}@v1" if plain in BUILTIN_OBJECTIVES else None
