"""Evaluation measures for steerable multi-objective policies (MO-ODPO, arXiv 2503.00295, Sec. 5).

Evaluation sweeps a grid of G weight vectors w on the simplex, generates for P prompts, scores K
objectives and compares systems by their Pareto fronts. Everything here is a pure numpy/scipy
function of arrays:

    points / scores   (N, K)     one row per evaluated weight point, one column per objective
    weights           (G, K)     non-negative, finite, not all zero per row
    per-prompt scores (P, G, K)

All objectives are maximised. Several objectives are combined in one place, as the trainer does:
``(rewards * weights).sum(-1)``, shape (..., K) -> (...). Bootstrap intervals resample prompts
(whole rows of per-prompt scores) and take percentiles of the draws.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats

from moodpo.errors import MoodpoError

_ROUND = 9  # decimals used to match weight coordinates, so 0.1 + 0.2 and 0.3 are the same point


def _as_points(points, name: str = "points", k: int | None = None) -> np.ndarray:
    """Return `points` as a finite float array of shape (N, K); (K,) is not accepted."""
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2:
        raise MoodpoError(f"{name} must have shape (N, K), got shape {arr.shape}")
    if k is not None and arr.shape[1] != k:
        raise MoodpoError(f"{name} must have {k} objective columns, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        raise MoodpoError(f"{name} contains NaN or infinite values")
    return arr


def _check_weights(weights, k: int, name: str = "weights") -> np.ndarray:
    """Validate weights (..., K): finite, non-negative, K long, not all zero in any row."""
    w = np.asarray(weights, dtype=float)
    if w.ndim == 0 or w.shape[-1] != k:
        raise MoodpoError(f"{name} must have {k} entries per row, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise MoodpoError(f"{name} contains NaN or infinite values")
    if (w < 0).any():
        raise MoodpoError(f"{name} must be non-negative")
    if w.size and (w.sum(-1) <= 0).any():
        raise MoodpoError(f"every row of {name} needs at least one positive entry")
    return w


def scalarise(rewards, weights) -> np.ndarray:
    """Weighted reward sum_k w_k r_k: rewards (..., K), weights broadcastable -> (...)."""
    return (np.asarray(rewards, dtype=float) * np.asarray(weights, dtype=float)).sum(-1)


def dominates(a, b) -> bool:
    """True when a Pareto-dominates b: a >= b in every objective and a > b in at least one.

    a, b: (K,). Identical points do not dominate each other.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise MoodpoError(f"dominates needs two (K,) vectors, got shapes {a.shape} and {b.shape}")
    return bool(np.all(a >= b) and np.any(a > b))


def pareto_mask(points) -> np.ndarray:
    """Mask of non-dominated rows: points (N, K) -> bool (N,).

    A row is kept unless another row dominates it (see `dominates`). Duplicated rows do not
    dominate each other, so every copy of a non-dominated point is kept. O(N^2 K) time, O(N K)
    memory: rows already known to be dominated are skipped, since whatever they dominate is also
    dominated by the row that dominates them.
    """
    pts = _as_points(points)
    keep = np.ones(len(pts), dtype=bool)
    for i in range(len(pts)):
        if not keep[i]:
            continue
        dominated_by_i = np.all(pts[i] >= pts, axis=1) & np.any(pts[i] > pts, axis=1)
        keep &= ~dominated_by_i
    return keep


def pareto_front(points) -> np.ndarray:
    """Non-dominated points without duplicates: points (N, K) -> (M, K), M <= N.

    Rows are sorted lexicographically ascending (objective 0 first, then 1, ...); in 2-D this walks
    the front left to right, objective 0 increasing and objective 1 decreasing.
    """
    pts = _as_points(points)
    if len(pts) == 0:
        return pts.copy()
    return np.unique(pts[pareto_mask(pts)], axis=0)


def front_dominance(front_a, front_b) -> dict:
    """Compare two systems' fronts: front_a (Na, K), front_b (Nb, K) -> dict.

    Both inputs are first reduced to their Pareto fronts (dominated rows and duplicates dropped),
    so a system is judged by its best trade-offs only. Returned keys:

    - ``frac_b_dominated_by_a``: fraction of B's front points that some A point dominates
      (strictly, in the sense of `dominates`); ``frac_a_dominated_by_b`` the other way round.
    - ``frac_b_covered_by_a``: fraction of B's points weakly dominated (a >= b everywhere) by some
      A point; ``frac_a_covered_by_b`` the other way round.
    - ``verdict``: "A dominates" when every B point is weakly dominated by an A point and at least
      one is strictly dominated; "B dominates" symmetrically; otherwise "neither" (this includes
      identical fronts). Both cannot hold at once for two fronts.

    Fractions over an empty front are NaN; an empty front never dominates or is dominated.
    """
    a = pareto_front(front_a)
    b = pareto_front(_as_points(front_b, "front_b", k=a.shape[1]))

    def coverage(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # geq[i, j]: x_i >= y_j everywhere; gt[i, j]: x_i > y_j somewhere; shapes (Nx, Ny).
        geq = np.all(x[:, None, :] >= y[None, :, :], axis=-1)
        gt = np.any(x[:, None, :] > y[None, :, :], axis=-1)
        return geq.any(axis=0), (geq & gt).any(axis=0)

    b_cov, b_dom = coverage(a, b)
    a_cov, a_dom = coverage(b, a)

    def frac(flags: np.ndarray) -> float:
        return float(flags.mean()) if flags.size else float("nan")

    def wins(cov: np.ndarray, dom: np.ndarray) -> bool:
        return bool(cov.size and cov.all() and dom.any())

    if wins(b_cov, b_dom):
        verdict = "A dominates"
    elif wins(a_cov, a_dom):
        verdict = "B dominates"
    else:
        verdict = "neither"
    return {
        "frac_b_dominated_by_a": frac(b_dom),
        "frac_a_dominated_by_b": frac(a_dom),
        "frac_b_covered_by_a": frac(b_cov),
        "frac_a_covered_by_b": frac(a_cov),
        "verdict": verdict,
    }


def reference_point(*point_sets, margin: float = 0.1) -> np.ndarray:
    """Shared hypervolume reference: each a (N_i, K) -> (K,).

    ref_k = min_k - margin * span_k, where min_k and span_k = max_k - min_k are taken over every
    point of every system in the comparison. Computing one reference for all systems is what makes
    their hypervolumes comparable; the margin (10% of the span by default) keeps each front's
    extreme points, which sit on the worst value of some objective, from contributing zero volume.
    An objective with zero span uses span 1. ``margin=0`` gives the plain component-wise worst.
    Empty sets are skipped; at least one point overall is required.
    """
    if margin < 0:
        raise MoodpoError(f"margin must be >= 0, got {margin}")
    if not point_sets:
        raise MoodpoError("reference_point needs at least one set of points")
    sets = [_as_points(p, "point set") for p in point_sets]
    k = sets[0].shape[1]
    if any(s.shape[1] != k for s in sets):
        raise MoodpoError("all point sets must have the same number of objectives")
    pts = np.concatenate(sets, axis=0)
    if len(pts) == 0:
        raise MoodpoError("reference_point needs at least one point")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return lo - margin * span


def hypervolume(points, ref) -> float:
    """Exact hypervolume dominated by points (N, K) and bounded below by ref (K,) -> float.

    HV = Lebesgue measure of the union over points p of the boxes [ref, p]. Points that are not
    strictly better than ref in every objective contribute nothing and are dropped, then dominated
    points are dropped (they lie inside another point's box). K = 1 is max - ref; K = 2 is a sweep;
    K >= 3 slices along the last objective (HSO, While et al. 2006): between consecutive distinct
    values of that objective the cross-section is the (K-1)-D hypervolume of the points above the
    slice. Exact for any K; cost grows like N^(K-1) log N, fine for evaluation grids.
    """
    pts = _as_points(points)
    ref = np.asarray(ref, dtype=float)
    if ref.shape != (pts.shape[1],):
        raise MoodpoError(f"ref must have shape ({pts.shape[1]},), got {ref.shape}")
    if not np.isfinite(ref).all():
        raise MoodpoError("ref contains NaN or infinite values")
    pts = pts[np.all(pts > ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[pareto_mask(pts)]
    return float(_hv_from_origin(pts - ref))


def _hv_from_origin(p: np.ndarray) -> float:
    """Hypervolume of points p (N, K), all coordinates > 0, with the origin as reference."""
    if p.shape[1] == 1:
        return float(p.max())
    if p.shape[1] == 2:
        # Sweep x from right to left: over (x_{i+1}, x_i] the covered height is the best y among
        # the points with x >= x_i, so dominated points and duplicates need no special case.
        order = np.argsort(-p[:, 0], kind="stable")
        x = p[order, 0]
        height = np.maximum.accumulate(p[order, 1])
        width = x - np.append(x[1:], 0.0)
        return float((width * height).sum())
    p = p[np.argsort(-p[:, -1], kind="stable")]
    z = p[:, -1]
    thickness = z - np.append(z[1:], 0.0)
    # Points enter the slice in order of decreasing z; keep only the cross-section's own front
    # and reuse its area while a newcomer adds nothing (weakly dominated in the projection).
    section = p[:0, :-1]
    area = 0.0
    total = 0.0
    for q, t in zip(p[:, :-1], thickness):
        if not np.all(section >= q, axis=1).any():
            section = np.vstack([section[~np.all(q >= section, axis=1)], q])
            area = _hv_from_origin(section)
        total += t * area
    return total


def bootstrap_ci(
    values,
    stat: Callable = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple:
    """Percentile bootstrap (1 - alpha) interval of stat over rows: values (N,) or (N, K).

    Rows are resampled with replacement n_boot times in one vectorised draw; `stat` must reduce
    with an ``axis`` keyword (np.mean, np.median, ...). Returns (low, high): floats for (N,)
    input, (K,) arrays for (N, K) input. N = 0 gives NaN bounds; N = 1 gives (v, v).
    """
    if not 0 < alpha < 1:
        raise MoodpoError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise MoodpoError(f"n_boot must be >= 1, got {n_boot}")
    vals = np.asarray(values, dtype=float)
    if vals.ndim not in (1, 2):
        raise MoodpoError(f"values must have shape (N,) or (N, K), got {vals.shape}")
    if not np.isfinite(vals).all():
        raise MoodpoError("values contains NaN or infinite values")
    if len(vals) == 0:
        nan = np.full(vals.shape[1:], np.nan)
        return (float("nan"), float("nan")) if vals.ndim == 1 else (nan, nan.copy())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(vals), size=(n_boot, len(vals)))
    boot = np.asarray(stat(vals[idx], axis=1), dtype=float)  # (n_boot,) or (n_boot, K)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    if vals.ndim == 1:
        return float(low), float(high)
    return low, high


def _grid_average(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct simplex points of weights (G, K) -> grid (G', K) and the averaging matrix (G', G).

    Rows are normalised onto the simplex and matched to _ROUND decimals; ``avg @ scores`` with
    scores (..., G, K) gives the mean score at each distinct point, (..., G', K).
    """
    grid, inverse = np.unique(np.round(weights / weights.sum(1, keepdims=True), _ROUND), axis=0,
                              return_inverse=True)
    inverse = inverse.reshape(-1)
    avg = np.zeros((len(grid), len(weights)))
    avg[inverse, np.arange(len(weights))] = 1.0
    return grid, avg / avg.sum(1, keepdims=True)


def _resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """How often each of n rows is drawn in each of n_boot resamples with replacement: (n_boot, n).

    ``counts @ values / n`` is the mean of values (n, ...) over each draw's rows; the draws are
    those of `bootstrap_ci` with the same seed.
    """
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], idx), 1.0)
    return counts


def _percentiles(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central `level` percentile interval over axis 0 of draws, NaN draws left out (all NaN: NaN)."""
    flat = draws.reshape(len(draws), -1)
    low = np.full(flat.shape[1], np.nan)
    high = low.copy()
    some = ~np.isnan(flat).all(axis=0)
    if some.any():
        low[some], high[some] = np.nanquantile(flat[:, some], [(1 - level) / 2, (1 + level) / 2], axis=0)
    return low.reshape(draws.shape[1:]), high.reshape(draws.shape[1:])


def _check_boot(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise MoodpoError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise MoodpoError(f"level must be in (0, 1), got {level}")


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho, NaN when fewer than 2 points or either input is constant."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def steerability(weights, scores, objectives: Sequence[str] | None = None) -> dict:
    """How well each objective's score follows its weight across the grid.

    weights (G, K), scores (G, K) -> {objective: {"spearman", "monotone_fraction", "n_steps"}},
    keyed by the names in `objectives` or by index 0..K-1.

    Weight rows are normalised onto the simplex and rows with the same weights are averaged.

    - ``spearman``: Spearman rank correlation between w_k and score_k over the grid points (NaN
      when either is constant).
    - ``monotone_fraction``: a step toward objective k is a pair of grid points (i, j) that differ
      only in w_k and one other weight w_m, with w_k larger at j (so w_m is smaller: weight moved
      from m to k), and no grid point between them on that line. On a simplex lattice these are
      the lattice edges where w_k goes up one step and some w_m down one step. The fraction is the
      share of such steps, over all m != k, where score_k does not decrease
      (score_k[j] >= score_k[i]). With two objectives this is: sort by w_k and count consecutive
      points where score_k does not go down. ``n_steps`` is the number of steps; the fraction is
      NaN when there are none.
    """
    w = _as_points(weights, "weights")
    w = _check_weights(w, k=w.shape[1])
    s = _as_points(scores, "scores", k=w.shape[1])
    if len(s) != len(w):
        raise MoodpoError(f"weights has {len(w)} rows but scores has {len(s)}")
    k_obj = w.shape[1]
    names = list(objectives) if objectives is not None else list(range(k_obj))
    if len(names) != k_obj:
        raise MoodpoError(f"got {len(names)} objective names for {k_obj} objectives")

    grid, avg = _grid_average(w)
    mean_s = avg @ s

    out = {}
    for k in range(k_obj):
        up = 0
        n_steps = 0
        for m in range(k_obj):
            if m == k:
                continue
            rest = [c for c in range(k_obj) if c not in (k, m)]
            if rest:
                line = np.unique(grid[:, rest], axis=0, return_inverse=True)[1].reshape(-1)
            else:
                line = np.zeros(len(grid), dtype=int)
            # On one line the other weights are fixed, so w_k + w_m is fixed and each w_k is one
            # point; consecutive points along w_k are the steps.
            order = np.lexsort((grid[:, k], line))
            same_line = line[order][1:] == line[order][:-1]
            delta = np.diff(mean_s[order, k])[same_line]
            n_steps += len(delta)
            up += int((delta >= 0).sum())
        out[names[k]] = {
            "spearman": _spearman(grid[:, k], mean_s[:, k]),
            "monotone_fraction": up / n_steps if n_steps else float("nan"),
            "n_steps": n_steps,
        }
    return out


_SHARE_AT = (0.0, 0.25, 0.75, 1.0)  # edge positions t = w_k that interior_share reads


def _edge_coefficients(grid: np.ndarray, k: int, m: int) -> np.ndarray | None:
    """Linear read-out of the edge from corner e_m (t = 0) to e_k (t = 1): (4, G') or None.

    grid (G', K): distinct simplex points. Row r of the result gives s(t_r) = coef[r] @ s for
    t_r in _SHARE_AT, s (G',) the scores at the grid points: the grid point at t_r, or linear
    interpolation between the nearest grid points on the edge on either side of it. None when
    the edge lacks a corner, or has no grid point strictly inside it except its midpoint: then
    s(0.75) - s(0.25) = (s(1) - s(0)) / 2 whatever s is, and the share would read 0.5 always.
    """
    rest = [c for c in range(grid.shape[1]) if c not in (k, m)]
    idx = np.flatnonzero(np.all(grid[:, rest] == 0, axis=1))
    idx = idx[np.argsort(grid[idx, k], kind="stable")]
    t = grid[idx, k]
    inner = t[(t > 0) & (t < 1)]
    if len(t) < 2 or t[0] != 0 or t[-1] != 1 or not np.any(inner != 0.5):
        return None
    coef = np.zeros((len(_SHARE_AT), len(grid)))
    for row, x in enumerate(_SHARE_AT):
        j = int(np.searchsorted(t, x))  # first edge point with t >= x
        if t[j] == x:
            coef[row, idx[j]] = 1.0
        else:
            frac = (x - t[j - 1]) / (t[j] - t[j - 1])
            coef[row, idx[j - 1]] = 1.0 - frac
            coef[row, idx[j]] = frac
    return coef


def interior_share(
    weights,
    per_prompt_scores,
    objectives: Sequence[str] | None = None,
    *,
    tol: float = 1e-6,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """How much of an objective's corner-to-corner change happens inside the simplex.

    weights (G, K), per_prompt_scores (P, G, K) -> {objective: {"share", "lo", "hi",
    "corner_gap", "n_edges"}}, keyed by the names in `objectives` or by index 0..K-1.

    On the edge from corner e_m to corner e_k (w_k = t, w_m = 1 - t, every other weight 0) let
    s_k(t) be the mean score of objective k over prompts. The edge's share is

        share = (s_k(0.75) - s_k(0.25)) / (s_k(1) - s_k(0)).

    A straight-line trade-off gives 0.5; a corner switch (flat, then a jump at the last grid
    point) gives 0, and so does a policy that moves before t = 0.25 and then saturates; a policy
    that is non-monotone along the edge can give any value, it is not clipped. Spearman over grid
    points cannot tell a switch from a line: it ranks only the order of the scores, so a jump at
    the last point after tiny steps up scores 1, as a straight line does.
    s_k(0.25) and s_k(0.75) come from the grid point there or, when there is none (an 11-point
    grid has 0.2 and 0.3), by linear interpolation between the nearest grid points on that
    edge. An edge needs both corners and a grid point strictly inside it other than the midpoint
    (with 2 or 3 points per edge the interpolated share is 0.5 whatever the scores).

    For K = 2 there is one edge per objective. For K > 2 objective k's share is the mean over
    the other objectives m of the edge (e_m, e_k) shares, over the edges the grid covers and
    whose corner gap |s_k(1) - s_k(0)| is at least `tol`. ``share`` is NaN when no edge
    qualifies (a flat objective, a grid without its corners). ``corner_gap`` is s_k(1) - s_k(0)
    (the mean over covered edges for K > 2; NaN when none), ``n_edges`` how many edges the
    share averages.

    ``lo``, ``hi``: percentile bootstrap interval at `level`, n_boot draws of whole prompts
    (seeded); each draw recomputes the means over its prompts and the share on the same edges.
    Draws whose corner gap falls below `tol` on one of those edges are left out. Weight rows are
    normalised onto the simplex and rows with the same weights are averaged, as in `steerability`.
    """
    scores, w, names = _check_interior_inputs(weights, per_prompt_scores, objectives, tol)
    _check_boot(n_boot, level)
    grid, avg = _grid_average(w)
    per_prompt = avg @ scores                                     # (P, G', K)
    mean = per_prompt.mean(axis=0)                                # (G', K)
    counts = _resample_counts(len(scores), n_boot, seed)
    boot = np.tensordot(counts, per_prompt, axes=1) / len(scores)  # (n_boot, G', K)
    return {name: _edge_share(grid, mean[:, k], boot[:, :, k], k, tol=tol, level=level)
            for k, name in enumerate(names)}


def _check_interior_inputs(weights, per_prompt_scores, objectives, tol: float):
    """interior_share's inputs checked: (scores (P, G, K), weights (G, K) on the simplex, names)."""
    scores = np.asarray(per_prompt_scores, dtype=float)
    if scores.ndim != 3:
        raise MoodpoError(f"per_prompt_scores must have shape (P, G, K), got {scores.shape}")
    if not np.isfinite(scores).all():
        raise MoodpoError("per_prompt_scores contains NaN or infinite values")
    if scores.shape[0] == 0:
        raise MoodpoError("per_prompt_scores has no prompts")
    k_obj = scores.shape[2]
    w = _check_weights(weights, k=k_obj)
    if w.shape != scores.shape[1:]:
        raise MoodpoError(f"weights must have shape {scores.shape[1:]}, got {w.shape}")
    names = list(objectives) if objectives is not None else list(range(k_obj))
    if len(names) != k_obj:
        raise MoodpoError(f"got {len(names)} objective names for {k_obj} objectives")
    if not tol >= 0:
        raise MoodpoError(f"tol must be >= 0, got {tol}")
    return scores, w, names


def _edge_share(grid: np.ndarray, mean: np.ndarray, boot: np.ndarray, k: int, *, tol: float, level: float) -> dict:
    """Objective k's interior share over the edges (e_m, e_k) the grid covers (see interior_share).

    grid (G', K) distinct weights; mean (G',) objective k's mean score at each; boot (n_boot, G')
    the same means over resampled prompts.
    """
    k_obj = grid.shape[1]
    edges = [c for m in range(k_obj) if m != k and (c := _edge_coefficients(grid, k, m)) is not None]
    nan = float("nan")
    if not edges:
        return {"share": nan, "lo": nan, "hi": nan, "corner_gap": nan, "n_edges": 0}
    coef = np.stack(edges)                                        # (E, 4, G')
    middle, span = coef[:, 2] - coef[:, 1], coef[:, 3] - coef[:, 0]
    gap = span @ mean                                             # (E,)
    use = np.abs(gap) >= tol
    share = float(np.mean((middle[use] @ mean) / gap[use])) if use.any() else nan
    lo = hi = nan
    if use.any():
        b_gap = boot @ span[use].T                                # (n_boot, E')
        b_mid = boot @ middle[use].T
        ok = np.abs(b_gap) >= tol
        b_share = np.divide(b_mid, b_gap, out=np.full_like(b_gap, np.nan), where=ok)
        lo, hi = (float(x) for x in _percentiles(b_share.mean(axis=1), level))
    return {"share": share, "lo": lo, "hi": hi, "corner_gap": float(gap.mean()), "n_edges": int(use.sum())}


def adherence_spread(per_prompt_scores, weights) -> dict:
    """Spread across prompts at each fixed weight: per_prompt_scores (P, G, K), weights (G, K).

    The paper leaves guaranteed adherence open (does each prompt follow the requested trade-off,
    not just the average?). We measure how much the trade-off varies across prompts at one weight:

    - ``scalarised_mean`` (G,): mean over prompts of the weighted score sum_k w_k r_k.
    - ``scalarised_var`` (G,): variance over prompts of that weighted score (ddof=0: the spread of
      the evaluated prompt set, defined for P = 1).
    - ``objective_std`` (G, K): standard deviation over prompts of each objective's score.
    """
    scores = np.asarray(per_prompt_scores, dtype=float)
    if scores.ndim != 3:
        raise MoodpoError(f"per_prompt_scores must have shape (P, G, K), got {scores.shape}")
    if not np.isfinite(scores).all():
        raise MoodpoError("per_prompt_scores contains NaN or infinite values")
    w = _check_weights(weights, k=scores.shape[2])
    if w.shape != scores.shape[1:]:
        raise MoodpoError(f"weights must have shape {scores.shape[1:]}, got {w.shape}")
    if scores.shape[0] == 0:
        raise MoodpoError("per_prompt_scores has no prompts")
    scalar = (scores * w).sum(-1)  # (P, G)
    return {
        "scalarised_mean": scalar.mean(axis=0),
        "scalarised_var": scalar.var(axis=0),
        "objective_std": scores.std(axis=0),
    }


def length_controlled(scores, lengths) -> np.ndarray:
    """Scores with their linear dependence on length removed: scores (N,), lengths (N,) -> (N,).

    Fits scores = a + b * lengths by ordinary least squares and returns the residual plus the mean
    score, i.e. scores - b * (lengths - mean(lengths)): the mean is unchanged and the result is
    uncorrelated with length. Fit on everything being compared at once (all systems pooled) so one
    slope applies to all of them. Constant lengths (or N < 2) leave the scores unchanged.
    """
    s = np.asarray(scores, dtype=float)
    x = np.asarray(lengths, dtype=float)
    if s.ndim != 1 or x.shape != s.shape:
        raise MoodpoError(
            f"scores and lengths must be (N,) of equal length, got {s.shape} and {x.shape}"
        )
    if not (np.isfinite(s).all() and np.isfinite(x).all()):
        raise MoodpoError("scores or lengths contain NaN or infinite values")
    if len(s) < 2:
        return s.copy()
    xc = x - x.mean()
    denom = (xc**2).sum()
    slope = (xc * (s - s.mean())).sum() / denom if denom > 0 else 0.0
    return s - slope * xc


def _win_outcome(diff: np.ndarray, tie_tol: float) -> np.ndarray:
    """1 where A's weighted reward beats B's by more than tie_tol, 0 where it loses, 0.5 a tie."""
    return np.where(diff > tie_tol, 1.0, np.where(diff < -tie_tol, 0.0, 0.5))


def win_rate(
    a_scores,
    b_scores,
    weights,
    *,
    tie_tol: float = 0.0,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """How often system A beats B on the weighted reward at matched weights.

    a_scores, b_scores: (P, G, K) with weights (G, K), or (N, K) with weights (N, K) or (K,).
    Each comparison scalarises both sides with ``(rewards * weights).sum(-1)``; A wins when its
    value exceeds B's by more than tie_tol, a tie counts half. Returns counts ``win``, ``tie``,
    ``loss`` and ``rate`` = (win + tie / 2) / total with a percentile bootstrap interval
    (``ci_low``, ``ci_high``) that resamples prompts (rows of (N, K) input; whole prompts, all G
    weights together, for (P, G, K) input). Empty input gives zero counts and NaN rate.
    """
    a = np.asarray(a_scores, dtype=float)
    b = np.asarray(b_scores, dtype=float)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise MoodpoError(
            f"a_scores and b_scores must share shape (P, G, K) or (N, K), got {a.shape}, {b.shape}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise MoodpoError("scores contain NaN or infinite values")
    w = _check_weights(weights, k=a.shape[-1])
    try:
        np.broadcast_shapes(w.shape, a.shape)
    except ValueError:
        raise MoodpoError(
            f"weights of shape {w.shape} do not match scores of shape {a.shape}"
        ) from None
    outcome = _win_outcome(scalarise(a, w) - scalarise(b, w), tie_tol)  # (P, G) or (N,)
    win, tie = int((outcome == 1).sum()), int((outcome == 0.5).sum())
    loss = outcome.size - win - tie
    per_prompt = outcome.reshape(len(outcome), -1).mean(axis=1) if outcome.size else outcome.ravel()
    low, high = bootstrap_ci(per_prompt, n_boot=n_boot, alpha=alpha, seed=seed)
    return {
        "win": win,
        "tie": tie,
        "loss": loss,
        "rate": float(outcome.mean()) if outcome.size else float("nan"),
        "ci_low": low,
        "ci_high": high,
    }


def paired_bootstrap(
    per_prompt_scores: Sequence,
    weights,
    ref,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    tie_tol: float = 0.0,
) -> dict:
    """Hypervolumes, differences from the first system and win rates over it, with paired intervals.

    per_prompt_scores: N >= 1 systems' scores, each (P, G, K), row p the same prompt and column g
    the weight weights[g] (G, K) in every system; ref (K,): the hypervolume reference point.
    Returns arrays of shape (N,), system 0 being the first:

    - ``hypervolume``: of each system's mean points (G, K) over all P prompts, against ref.
    - ``hv_lo``, ``hv_hi``: percentile bootstrap interval at `level` of that hypervolume.
    - ``hv_diff`` = hypervolume_i - hypervolume_0, with ``hv_diff_lo``, ``hv_diff_hi``: the
      interval of the per-draw difference.
    - ``win_rate``: share of (prompt, weight) pairs where system i's weighted reward
      ``(scores * weights).sum(-1)`` beats the first's, a tie (within tie_tol) counting half, as
      in `win_rate`; the first against itself is 0.5. ``win_lo``, ``win_hi``: its interval.

    Each of the n_boot draws (seeded) takes P prompts with replacement once and applies the same
    prompts to every system, so the intervals of differences and win rates are paired: what the
    prompts share cancels. A system's numbers depend only on its own scores, the first's, ref
    and the draws, so adding a system to the comparison leaves the others' unchanged; identical
    systems differ by exactly 0 in every draw.
    """
    systems = [np.asarray(x, dtype=float) for x in per_prompt_scores]
    if not systems:
        raise MoodpoError("paired_bootstrap needs at least one system")
    shape = systems[0].shape
    if len(shape) != 3 or any(x.shape != shape for x in systems):
        raise MoodpoError(f"every system's scores must share one shape (P, G, K), got {[x.shape for x in systems]}")
    if not all(np.isfinite(x).all() for x in systems):
        raise MoodpoError("per_prompt_scores contains NaN or infinite values")
    p_n, g_n, k_n = shape
    if p_n == 0 or g_n == 0:
        raise MoodpoError(f"paired_bootstrap needs at least one prompt and one weight, got shape {shape}")
    w = _check_weights(weights, k=k_n)
    if w.shape != (g_n, k_n):
        raise MoodpoError(f"weights must have shape {(g_n, k_n)}, got {w.shape}")
    ref = np.asarray(ref, dtype=float)
    if ref.shape != (k_n,) or not np.isfinite(ref).all():
        raise MoodpoError(f"ref must be {k_n} finite numbers, got {ref.tolist()}")
    _check_boot(n_boot, level)

    counts = _resample_counts(p_n, n_boot, seed)                      # (n_boot, P)
    hv = np.array([hypervolume(x.mean(axis=0), ref) for x in systems])
    # One system at a time, so a system's draws never depend on which others are compared.
    hv_draws = np.stack([
        [hypervolume(m, ref) for m in (counts @ x.reshape(p_n, -1) / p_n).reshape(n_boot, g_n, k_n)]
        for x in systems
    ], axis=1)                                                       # (n_boot, N)
    first_reward = scalarise(systems[0], w)                          # (P, G)
    per_prompt_win = np.stack([_win_outcome(scalarise(x, w) - first_reward, tie_tol).mean(axis=1)
                               for x in systems], axis=1)            # (P, N)
    hv_lo, hv_hi = _percentiles(hv_draws, level)
    diff_lo, diff_hi = _percentiles(hv_draws - hv_draws[:, :1], level)
    win_lo, win_hi = _percentiles(counts @ per_prompt_win / p_n, level)
    return {
        "hypervolume": hv, "hv_lo": hv_lo, "hv_hi": hv_hi,
        "hv_diff": hv - hv[0], "hv_diff_lo": diff_lo, "hv_diff_hi": diff_hi,
        "win_rate": per_prompt_win.mean(axis=0), "win_lo": win_lo, "win_hi": win_hi,
    }
