"""How objectives relate on a set of scored responses: MO-ODPO needs them to conflict."""

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from moodpo.errors import MoodpoError


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r, NaN when either side is constant (instead of scipy's warning)."""
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def objective_correlations(
    rewards: np.ndarray, names: Sequence[str], categories: Sequence[str] | None = None
) -> pd.DataFrame:
    """Pearson and Spearman correlation of every objective pair, overall and per category.

    rewards: (N, K) scores of N responses under K objectives; names: K objective names;
    categories: optional N labels (e.g. the prompt category of each response).
    Returns one row per (category, pair) with columns category ("all" first, then each category
    in order of first appearance), objective_a, objective_b, n, pearson, spearman. A correlation
    is NaN when fewer than 3 responses or one objective is constant within the group.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2 or rewards.shape[1] != len(names):
        raise MoodpoError(f"rewards must have shape (N, {len(names)}) to match the names, got {rewards.shape}")
    groups = [("all", np.ones(len(rewards), dtype=bool))]
    if categories is not None:
        categories = np.asarray(categories, dtype=object)
        if len(categories) != len(rewards):
            raise MoodpoError(f"got {len(categories)} categories for {len(rewards)} rewards")
        groups += [(c, categories == c) for c in dict.fromkeys(categories)]
    rows = []
    for category, mask in groups:
        r = rewards[mask]
        for a, b in combinations(range(len(names)), 2):
            x, y = r[:, a], r[:, b]
            enough = len(r) >= 3
            rows.append(
                {
                    "category": category,
                    "objective_a": names[a],
                    "objective_b": names[b],
                    "n": len(r),
                    "pearson": _pearson(x, y) if enough else float("nan"),
                    "spearman": _pearson(rankdata(x), rankdata(y)) if enough else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=["category", "objective_a", "objective_b", "n", "pearson", "spearman"])
