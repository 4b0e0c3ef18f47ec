"""Objective weights: validation, Dirichlet sampling (the paper's w ~ Dir(alpha)) and simplex grids."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from moodpo.errors import MoodpoError


# The app's weight sliders move in this step; Rewarded Soups mix their adapters at weights
# rounded to it, so that nearby weight vectors share one mixed adapter.
WEIGHT_STEP = 0.01


def validate_weights(weights: Sequence[float], num_objectives: int, *, normalize: bool = True) -> np.ndarray:
    """Check one weight vector at a boundary (config, CLI, UI, API) and return it as float64 (K,).

    Weights must be finite, non-negative, `num_objectives` long and not all zero; with
    `normalize` they are scaled to sum to 1 so that a user may type "7,3" for "0.7,0.3".
    Anything else (NaN, inf, "1e999", a bare number, nested lists) raises a one-line MoodpoError.
    """
    try:
        w = np.asarray([float(x) for x in weights], dtype=np.float64)
    except (TypeError, ValueError):
        raise MoodpoError(f"weights must be numbers, a list of {num_objectives}; got {_short(weights)}") from None
    if w.shape != (num_objectives,):
        raise MoodpoError(f"expected {num_objectives} weights (one per objective), got {w.size}")
    if not np.all(np.isfinite(w)):
        raise MoodpoError(f"weights must be finite, got {w.tolist()}")
    if np.any(w < 0):
        raise MoodpoError(f"weights must be non-negative, got {w.tolist()}")
    if not np.any(w > 0):
        raise MoodpoError("weights must not all be zero")
    if not normalize:
        return w
    w = w / w.max()  # first, so that the sum cannot overflow (1e308 + 1e308 = inf)
    return w / w.sum()


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def split_values(text) -> list:
    """The items of "0.7, 0.3" or "0.7 0.3" (commas or spaces); a list or tuple as it is. The one
    reader of typed weights and alphas: the values are checked by validate_weights or parse_alpha."""
    if isinstance(text, (list, tuple)):
        return list(text)
    return str(text if text is not None else "").replace(",", " ").split()


def parse_weights(text, num_objectives: int) -> np.ndarray:
    """Parse "0.7,0.3" (commas or spaces, or a list) into a validated, normalised weight vector."""
    return validate_weights(split_values(text), num_objectives)


def parse_alpha(text) -> float | list[float]:
    """'0.3' -> 0.3; '0.3, 1' -> [0.3, 1.0]; every value finite and > 0 (resolve_alpha checks the count)."""
    try:
        values = [float(p) for p in split_values(text)]
    except (TypeError, ValueError):
        raise MoodpoError(f"alpha must be a number > 0 (or one per objective), got {text!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise MoodpoError(f"alpha must be a number > 0 (or one per objective), got {text!r}")
    return values[0] if len(values) == 1 else values


def resolve_alpha(alpha: float | Sequence[float], num_objectives: int) -> np.ndarray:
    """Dirichlet concentration as a (K,) vector: a scalar (or one value) means the symmetric Dir(alpha)."""
    try:
        a = np.asarray([float(x) for x in (alpha if isinstance(alpha, (list, tuple, np.ndarray)) else [alpha])],
                       dtype=np.float64)
    except (TypeError, ValueError):
        raise MoodpoError(f"alpha must be a number > 0 or one per objective, got {_short(alpha)}") from None
    if a.size == 1:
        a = np.full(num_objectives, a[0])
    if a.shape != (num_objectives,):
        raise MoodpoError(f"alpha needs 1 or {num_objectives} values (one per objective), got {a.size}")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise MoodpoError(f"alpha must be finite and > 0, got {alpha}")
    return a


class WeightSampler:
    """Draws a weight vector per example, as the paper does for each prompt in a batch.

    mode "dirichlet": w ~ Dir(alpha) (alpha small -> weights near the corners, large -> near the
    centre); "fixed": always `fixed` (e.g. one-hot for a single-objective or Rewarded Soups run).
    mirror: the second half of each draw is the first half with every vector reversed, for a
    batch whose second half repeats its first half's prompts (`mirror_weights`): where the
    weights decide a pair, its label flips between the halves, so the part of the gradient that
    ignores the prefix tends to cancel.
    The generator is owned here so the draw sequence is part of the resumable trainer state.
    """

    def __init__(self, num_objectives: int, *, mode: str = "dirichlet", alpha: float | Sequence[float] = 1.0,
                 fixed: Sequence[float] | None = None, seed: int = 0, mirror: bool = False):
        if mode not in ("dirichlet", "fixed"):
            raise MoodpoError(f"weight mode must be 'dirichlet' or 'fixed', got {mode!r}")
        self.num_objectives = num_objectives
        self.mode = mode
        self.alpha = resolve_alpha(alpha, num_objectives)
        if mode == "fixed":
            if fixed is None:
                raise MoodpoError("weight mode 'fixed' needs fixed_weights, e.g. --fixed_weights 1,0")
            self.fixed = validate_weights(fixed, num_objectives)
        else:
            self.fixed = None
        self.mirror = mirror
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> np.ndarray:
        """Return (n, K) float64 weights, rows on the simplex; with `mirror`, rows n/2.. reverse rows ..n/2."""
        if self.mirror:
            if n % 2:
                raise MoodpoError(f"mirrored weights come in pairs; asked for {n}")
            half = self._draw(n // 2)
            return np.concatenate([half, half[:, ::-1]])
        return self._draw(n)

    def _draw(self, n: int) -> np.ndarray:
        if self.mode == "fixed":
            return np.tile(self.fixed, (n, 1))
        return self.rng.dirichlet(self.alpha, size=n)

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


def one_hot(k: int, num_objectives: int) -> np.ndarray:
    w = np.zeros(num_objectives)
    w[k] = 1.0
    return w


# Points per simplex edge of an evaluation unless asked otherwise: steps of 0.1, and grid points
# at 0.2/0.3 and 0.7/0.8 on each edge for `moodpo.eval.pareto.interior_share` to interpolate 0.25 and
# 0.75 from (with 2 or 3 points per edge that share is undefined).
EVAL_GRID = 11


def simplex_grid(num_objectives: int, points_per_edge: int) -> np.ndarray:
    """The simplex lattice with `points_per_edge` points along each edge, shape (G, K).

    For K=2 and 11 points: (0,1), (0.1,0.9), ..., (1,0). For K=3 and 11: the 66 points with
    coordinates in multiples of 0.1. Rows are ordered lexicographically by w_1 descending.
    """
    if num_objectives < 1:
        raise MoodpoError("need at least one objective")
    if points_per_edge < 2:
        if points_per_edge == 1:
            return np.full((1, num_objectives), 1.0 / num_objectives)
        raise MoodpoError(f"grid must have at least 1 point per edge, got {points_per_edge}")
    steps = points_per_edge - 1
    rows = [c for c in itertools.product(range(steps, -1, -1), repeat=num_objectives) if sum(c) == steps]
    return np.asarray(rows, dtype=np.float64) / steps


def grid_size(num_objectives: int, points_per_edge: int) -> int:
    steps = points_per_edge - 1
    return math.comb(steps + num_objectives - 1, num_objectives - 1)
