"""Objectives (reward functions) for MO-ODPO, with normalisation and conflict analysis.

Each objective scores (prompt, response) pairs, where the prompt is the user's request without
the weight-conditioning prefix, and returns float64 (N,); higher is better.

    from moodpo.objectives import get_objective, score_all, RewardNormalizer
    objectives = [get_objective(n) for n in ("helpfulness", "harmlessness", "conciseness")]
    rewards = score_all(objectives, prompts, responses)       # (N, K)
    norm = RewardNormalizer(num_objectives=len(objectives))   # running z-score per objective
    norm.update(rewards)
    rewards = norm(rewards)

Built-ins (`builtin.py`, all offline): helpfulness, harmlessness, conciseness (version 2;
"helpfulness@v1" etc. keep the first definitions for rescoring old runs). Also
"hf:<hub id or local path>[?format=chat|pair|hh]" for any sequence-classification reward model
(`hf.py`) and "python:<module>:<function>" for a function (prompts, responses) -> N floats.
"""

from moodpo.objectives.analysis import objective_correlations
from moodpo.objectives.base import Objective
from moodpo.objectives.normalize import RewardNormalizer
from moodpo.objectives.registry import (available_objectives, get_objective, objective_versions, previous_version,
                                        score_all)

__all__ = [
    "Objective",
    "RewardNormalizer",
    "available_objectives",
    "get_objective",
    "objective_versions",
    "objective_correlations",
    "previous_version",
    "score_all",
]
