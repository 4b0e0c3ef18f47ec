import itertools

import numpy as np
import pytest

from moodpo.errors import MoodpoError
from moodpo.eval.pareto import (
    adherence_spread,
    bootstrap_ci,
    dominates,
    front_dominance,
    hypervolume,
    interior_share,
    length_controlled,
    paired_bootstrap,
    pareto_front,
    pareto_mask,
    reference_point,
    scalarise,
    steerability,
    win_rate,
)


def simplex_lattice(k: int, n: int) -> np.ndarray:
    """All weight vectors with entries in {0, 1/n, ..., 1} summing to 1: (G, k)."""
    return np.array([c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n]) / n


def hv_inclusion_exclusion(points: np.ndarray, ref: np.ndarray) -> float:
    """Brute-force hypervolume: union of boxes [ref, p] by inclusion-exclusion."""
    points = points[np.all(points > ref, axis=1)]
    total = 0.0
    for r in range(1, len(points) + 1):
        for subset in itertools.combinations(points, r):
            total += (-1) ** (r + 1) * np.prod(np.min(subset, axis=0) - ref)
    return total


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([2, 2], [1, 1], True),
        ([2, 1], [1, 1], True),
        ([1, 1], [1, 1], False),
        ([2, 0], [1, 1], False),
        ([1, 1], [2, 1], False),
        ([1, 1, 3], [1, 1, 2], True),
    ],
)
def test_dominates(a, b, expected):
    assert dominates(a, b) is expected


def test_dominates_rejects_mismatched_shapes():
    with pytest.raises(MoodpoError):
        dominates([1, 2], [1, 2, 3])


@pytest.mark.parametrize(
    "points, expected",
    [
        ([[1, 3], [2, 2], [3, 1], [1, 1]], [True, True, True, False]),
        ([[1, 1], [1, 1]], [True, True]),
        ([[1, 1], [1, 2]], [False, True]),
        ([[5, 5]], [True]),
        ([[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 0.5]], [True, True, True, False]),
    ],
)
def test_pareto_mask(points, expected):
    np.testing.assert_array_equal(pareto_mask(points), expected)


def test_pareto_mask_empty():
    assert pareto_mask(np.empty((0, 2))).shape == (0,)


def test_pareto_mask_rejects_nan_and_1d():
    with pytest.raises(MoodpoError):
        pareto_mask([[1.0, np.nan]])
    with pytest.raises(MoodpoError):
        pareto_mask([1.0, 2.0])


def test_pareto_front_sorted_deduplicated():
    points = [[3, 1], [1, 3], [2, 2], [2, 2], [1, 1], [0.5, 2.5]]
    np.testing.assert_array_equal(pareto_front(points), [[1, 3], [2, 2], [3, 1]])


def test_pareto_front_empty_keeps_columns():
    assert pareto_front(np.empty((0, 3))).shape == (0, 3)


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.integers(0, 4, size=(40, 3)).astype(float)
    expected = [not any(dominates(q, p) for q in pts) for p in pts]
    np.testing.assert_array_equal(pareto_mask(pts), expected)


@pytest.mark.parametrize(
    "a, b, verdict, b_dom, a_dom",
    [
        # A equals B plus a point that dominates one of B's points.
        ([[1, 3], [2.5, 2.5], [3, 1]], [[1, 3], [2, 2], [3, 1]], "A dominates", 1 / 3, 0.0),
        ([[1, 3], [2, 2], [3, 1]], [[2, 4], [4, 2]], "B dominates", 0.0, 1.0),
        ([[1, 3], [2, 2], [3, 1]], [[1, 3], [2, 2], [3, 1]], "neither", 0.0, 0.0),
        ([[0, 5], [5, 0]], [[2, 2]], "neither", 0.0, 0.0),
        ([[3, 3]], [[1, 1], [2, 2], [2, 0]], "A dominates", 1.0, 0.0),
    ],
)
def test_front_dominance(a, b, verdict, b_dom, a_dom):
    out = front_dominance(a, b)
    assert out["verdict"] == verdict
    assert out["frac_b_dominated_by_a"] == pytest.approx(b_dom)
    assert out["frac_a_dominated_by_b"] == pytest.approx(a_dom)


def test_front_dominance_coverage_counts_ties():
    out = front_dominance([[1, 3], [2, 2], [3, 1]], [[1, 3], [2, 2], [3, 1]])
    assert out["frac_b_covered_by_a"] == 1.0
    assert out["frac_a_covered_by_b"] == 1.0


def test_front_dominance_empty_front():
    out = front_dominance(np.empty((0, 2)), [[1, 1]])
    assert out["verdict"] == "neither"
    assert np.isnan(out["frac_a_dominated_by_b"])
    assert out["frac_b_dominated_by_a"] == 0.0


def test_reference_point_default_margin():
    a = np.array([[0.0, 4.0], [2.0, 1.0]])
    b = np.array([[1.0, 3.0]])
    # min (0, 1), span (2, 3), margin 10% of the span.
    np.testing.assert_allclose(reference_point(a, b), [-0.2, 0.7])


def test_reference_point_without_margin_is_componentwise_worst():
    np.testing.assert_allclose(
        reference_point([[0.0, 4.0], [2.0, 1.0]], [[1.0, 3.0]], margin=0.0), [0.0, 1.0]
    )


def test_reference_point_zero_span_and_empty_sets():
    ref = reference_point(np.empty((0, 2)), [[1.0, 5.0]], [[2.0, 5.0]])
    np.testing.assert_allclose(ref, [0.9, 4.9])


def test_reference_point_extreme_points_contribute():
    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert hypervolume(front, reference_point(front, margin=0.0)) == 0.0
    assert hypervolume(front, reference_point(front)) > 0.0


@pytest.mark.parametrize("bad", [[], [np.empty((0, 2))], [[[1, 2]], [[1, 2, 3]]]])
def test_reference_point_rejects(bad):
    with pytest.raises(MoodpoError):
        reference_point(*bad)


@pytest.mark.parametrize(
    "points, ref, expected",
    [
        ([[2, 3]], [0, 0], 6.0),
        ([[2, 3]], [1, 1], 2.0),
        ([[1, 3], [2, 2], [3, 1]], [0, 0], 6.0),
        ([[1, 3], [2, 2], [3, 1], [1, 1], [2, 2]], [0, 0], 6.0),
        ([[1, 3], [3, 1]], [0, 0], 5.0),
        ([[2, 3, 4]], [0, 0, 0], 24.0),
        # Three 2x1x1 boxes pairwise overlapping in a unit cube: 3*2 - 3*1 + 1 = 4.
        ([[2, 1, 1], [1, 2, 1], [1, 1, 2]], [0, 0, 0], 4.0),
        ([[1, 1, 1], [2, 2, 2]], [0, 0, 0], 8.0),
        ([[2, 2, 1], [1, 1, 3]], [0, 0, 0], 4.0 + 3.0 - 1.0),
        ([[2, 2, 2, 2]], [1, 0, 0, 0], 8.0),
        ([[3]], [1], 2.0),
    ],
)
def test_hypervolume_known_answers(points, ref, expected):
    assert hypervolume(points, ref) == pytest.approx(expected)


@pytest.mark.parametrize(
    "points, ref",
    [
        ([[1, 1]], [1, 0]),  # on the reference in one coordinate
        ([[0, 5]], [1, 0]),  # worse than the reference
        (np.empty((0, 3)), [0, 0, 0]),
    ],
)
def test_hypervolume_zero_when_nothing_beats_ref(points, ref):
    assert hypervolume(points, ref) == 0.0


def test_hypervolume_ignores_points_outside_ref():
    assert hypervolume([[2, 3], [5, -1]], [0, 0]) == pytest.approx(6.0)


def test_hypervolume_identical_points():
    assert hypervolume([[1, 2, 3]] * 4, [0, 0, 0]) == pytest.approx(6.0)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_hypervolume_permutation_invariant_and_dominated_points_free(k):
    rng = np.random.default_rng(k)
    pts = rng.random((8, k))
    ref = np.zeros(k)
    hv = hypervolume(pts, ref)
    assert hypervolume(pts[rng.permutation(8)], ref) == pytest.approx(hv)
    assert hypervolume(np.vstack([pts, pts * 0.5]), ref) == pytest.approx(hv)
    # Permuting objectives (columns) along with the reference does not change the volume either.
    cols = rng.permutation(k)
    assert hypervolume(pts[:, cols], ref[cols]) == pytest.approx(hv)


@pytest.mark.parametrize("k, n", [(2, 7), (3, 6), (4, 6), (5, 5)])
def test_hypervolume_matches_inclusion_exclusion(k, n):
    rng = np.random.default_rng(10 * k + n)
    pts = rng.random((n, k))
    ref = np.full(k, 0.1)
    assert hypervolume(pts, ref) == pytest.approx(hv_inclusion_exclusion(pts, ref))


def test_hypervolume_3d_matches_monte_carlo():
    rng = np.random.default_rng(1)
    pts = np.sqrt(simplex_lattice(3, 6) + 0.05 * rng.random((28, 3)))
    ref = reference_point(pts)
    hi = pts.max(axis=0)
    samples = ref + (hi - ref) * rng.random((200_000, 3))
    covered = np.zeros(len(samples), dtype=bool)
    for p in pts:
        covered |= np.all(samples <= p, axis=1)
    mc = covered.mean() * np.prod(hi - ref)
    assert hypervolume(pts, ref) == pytest.approx(mc, rel=0.01)


def test_hypervolume_rejects_bad_ref():
    with pytest.raises(MoodpoError):
        hypervolume([[1, 2]], [0, 0, 0])


def test_bootstrap_ci_contains_mean_and_is_reproducible():
    values = np.random.default_rng(0).normal(1.0, 1.0, size=400)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    # Standard error is 0.05, so the 95% interval is about +-0.1 wide.
    assert high - low == pytest.approx(2 * 1.96 * values.std() / 20, rel=0.15)
    assert bootstrap_ci(values) == (low, high)
    assert bootstrap_ci(values, seed=1) != (low, high)


def test_bootstrap_ci_columns_and_other_stat():
    values = np.column_stack([np.arange(100.0), np.full(100, 3.0)])
    low, high = bootstrap_ci(values, stat=np.median)
    assert low.shape == high.shape == (2,)
    assert low[0] < 49.5 < high[0]
    assert low[1] == high[1] == 3.0


@pytest.mark.parametrize(
    "values, expected",
    [([2.5], (2.5, 2.5)), ([1.0, 1.0, 1.0], (1.0, 1.0))],
)
def test_bootstrap_ci_degenerate(values, expected):
    assert bootstrap_ci(values) == pytest.approx(expected)


def test_bootstrap_ci_empty():
    low, high = bootstrap_ci([])
    assert np.isnan(low) and np.isnan(high)
    low, high = bootstrap_ci(np.empty((0, 2)))
    assert low.shape == (2,) and np.isnan(low).all() and np.isnan(high).all()


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.0}, {"n_boot": 0}])
def test_bootstrap_ci_rejects(kwargs):
    with pytest.raises(MoodpoError):
        bootstrap_ci([1.0, 2.0], **kwargs)


def test_scalarise_shapes():
    rewards = np.array([[[1.0, 2.0], [3.0, 4.0]]])  # (1, 2, 2)
    weights = np.array([[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(scalarise(rewards, weights), [[1.0, 3.5]])


def test_steerability_two_objectives_by_hand():
    weights = np.array([[0.0, 1.0], [0.25, 0.75], [0.5, 0.5], [0.75, 0.25], [1.0, 0.0]])
    scores = np.array([[0.0, 5.0], [1.0, 4.0], [0.5, 4.0], [2.0, 2.0], [3.0, 1.0]])
    out = steerability(weights, scores, objectives=["a", "b"])
    # a: steps 0->1 up, 1->0.5 down, 0.5->2 up, 2->3 up.
    assert out["a"]["monotone_fraction"] == pytest.approx(3 / 4)
    assert out["a"]["n_steps"] == 4
    assert out["a"]["spearman"] == pytest.approx(0.9)
    # b along increasing w_b: 1, 2, 4, 4, 5 never goes down; the tie counts as not decreasing.
    assert out["b"]["monotone_fraction"] == 1.0
    assert out["b"]["spearman"] == pytest.approx(np.sqrt(0.95))  # ranks 1, 2, 3.5, 3.5, 5


def test_steerability_three_objective_lattice():
    weights = simplex_lattice(3, 2)  # 6 points, each objective has 6 lattice edges toward it
    out = steerability(weights, weights.copy())
    for k in range(3):
        assert out[k]["n_steps"] == 6
        assert out[k]["monotone_fraction"] == 1.0
        assert out[k]["spearman"] == pytest.approx(1.0)
    flipped = steerability(weights, -weights)
    assert flipped[0]["monotone_fraction"] == 0.0


def test_steerability_three_objective_counts_one_bad_edge():
    weights = simplex_lattice(3, 2)
    scores = weights.copy()
    # Lower score 0 at the vertex (1, 0, 0): both edges into it, from (0.5, 0.5, 0) and
    # (0.5, 0, 0.5), now decrease score 0.
    at = np.flatnonzero(np.all(np.isclose(weights, [1.0, 0.0, 0.0]), axis=1))[0]
    scores[at, 0] = 0.1
    out = steerability(weights, scores)
    assert out[0]["monotone_fraction"] == pytest.approx(4 / 6)


def test_steerability_unnormalised_and_duplicated_weights():
    weights = np.array([[0, 2], [1, 1], [1, 1], [2, 0]], dtype=float)
    scores = np.array([[0, 1], [1, 0], [3, 0], [1, 0]], dtype=float)
    out = steerability(weights, scores)
    # Duplicates average to score 2 at w = (0.5, 0.5): path 0 -> 2 -> 1.
    assert out[0]["n_steps"] == 2
    assert out[0]["monotone_fraction"] == 0.5


def test_steerability_degenerate_grid():
    out = steerability([[0.5, 0.5]], [[1.0, 2.0]])
    assert out[0]["n_steps"] == 0
    assert np.isnan(out[0]["monotone_fraction"])
    assert np.isnan(out[0]["spearman"])


@pytest.mark.parametrize(
    "weights, scores",
    [
        ([[0.5, 0.5]], [[1.0, 2.0], [1.0, 2.0]]),
        ([[-0.5, 1.5]], [[1.0, 2.0]]),
        ([[0.0, 0.0]], [[1.0, 2.0]]),
        ([0.5, 0.5], [[1.0, 2.0]]),
    ],
)
def test_steerability_rejects(weights, scores):
    with pytest.raises(MoodpoError):
        steerability(weights, scores)


def edge_scores(t: np.ndarray, s0: np.ndarray, prompts: int = 1) -> np.ndarray:
    """Per-prompt scores (P, G, 2) on a 2-objective edge: objective 0 follows s0 along t = w_0,
    objective 1 mirrors it (s0 read from the other corner)."""
    return np.tile(np.stack([s0, s0[::-1]], axis=1), (prompts, 1, 1))


@pytest.mark.parametrize(
    "points, curve, expected",
    [
        (5, lambda t: t, 0.5),                                  # straight-line trade-off
        (5, lambda t: (t == 1).astype(float), 0.0),             # corner switch at the last point
        (11, lambda t: (t == 1).astype(float), 0.0),
        (11, lambda t: np.minimum(1.0, 5 * t), 0.0),            # moves early, saturates by 0.2
        (5, lambda t: np.array([0.0, 1.0, 0.0, -1.0, 1.0]), -2.0),  # non-monotone: unbounded
    ],
)
def test_interior_share_two_objectives_by_hand(points, curve, expected):
    weights = simplex_lattice(2, points - 1)       # w_0 = 0, 1/(n-1), ..., 1
    out = interior_share(weights, edge_scores(weights[:, 0], curve(weights[:, 0])), ["a", "b"], n_boot=20)
    assert out["a"]["share"] == pytest.approx(expected, abs=1e-12)
    assert out["b"]["share"] == pytest.approx(expected, abs=1e-12)
    assert out["a"]["corner_gap"] == pytest.approx(1.0) and out["a"]["n_edges"] == 1


def test_interior_share_interpolates_between_grid_points():
    # 11 points: s(0.25) = (0.2^3 + 0.3^3) / 2 = 0.0175, s(0.75) = (0.7^3 + 0.8^3) / 2 = 0.4275,
    # share 0.41; the cubic itself would give 0.75^3 - 0.25^3 = 0.40625.
    weights = simplex_lattice(2, 10)
    out = interior_share(weights, edge_scores(weights[:, 0], weights[:, 0] ** 3), n_boot=20)
    assert out[0]["share"] == pytest.approx(0.41)
    # Four points (0, 1/3, 2/3, 1): s(0.25) = 3/4 * s(1/3), s(0.75) = 3/4 * s(2/3) + 1/4 * s(1).
    weights = simplex_lattice(2, 3)
    s0 = np.array([0.0, 0.6, 0.7, 1.0])
    out = interior_share(weights, edge_scores(weights[:, 0], s0), n_boot=20)
    assert out[0]["share"] == pytest.approx(0.75 * 0.7 + 0.25 - 0.75 * 0.6)


def test_interior_share_unordered_unnormalised_duplicated_weights():
    weights = np.array([[2.0, 2.0], [0.0, 3.0], [1.0, 3.0], [4.0, 0.0], [3.0, 1.0], [1.0, 1.0]])
    scores = np.array([[[0.4, 0.0], [0.0, 0.0], [0.2, 0.0], [1.0, 0.0], [0.9, 0.0], [0.6, 0.0]]])
    # w_0 = 0, 0.25, 0.5 (scores 0.4 and 0.6 averaged), 0.75, 1 -> (0.9 - 0.2) / 1.
    assert interior_share(weights, scores, n_boot=5)[0]["share"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    "weights",
    [
        simplex_lattice(2, 1),                          # corners only
        simplex_lattice(2, 2),                          # corners and midpoint: always 0.5
        np.array([[0.0, 1.0], [0.25, 0.75], [0.75, 0.25]]),  # no corner e_0
    ],
)
def test_interior_share_undefined_without_the_points_needed(weights):
    out = interior_share(weights, edge_scores(weights[:, 0], weights[:, 0]), n_boot=5)
    assert np.isnan(out[0]["share"]) and np.isnan(out[0]["lo"]) and out[0]["n_edges"] == 0


def test_interior_share_flat_objective_is_nan():
    weights = simplex_lattice(2, 4)
    scores = np.stack([weights[:, 0], np.full(5, 0.3) + 1e-8 * weights[:, 1]], axis=1)[None]
    out = interior_share(weights, scores, ["moves", "flat"], n_boot=5)
    assert out["moves"]["share"] == pytest.approx(0.5)
    assert np.isnan(out["flat"]["share"]) and np.isnan(out["flat"]["hi"])
    assert out["flat"]["corner_gap"] == pytest.approx(1e-8) and out["flat"]["n_edges"] == 0
    assert interior_share(weights, scores, ["moves", "flat"], tol=1e-9, n_boot=5)["flat"]["share"] == (
        pytest.approx(0.5))


def test_interior_share_three_objectives_averages_the_edges():
    weights = simplex_lattice(3, 4)
    # Objective 0 is t^3 on the edge from e_1 (w_2 = 0) and t on the edge from e_2 (w_1 = 0):
    # shares 0.75^3 - 0.25^3 = 0.40625 and 0.5, mean 0.453125. Objectives 1, 2 follow their weight.
    s0 = np.where(weights[:, 2] == 0, weights[:, 0] ** 3, weights[:, 0])
    scores = np.stack([s0, weights[:, 1], weights[:, 2]], axis=1)[None]
    out = interior_share(weights, scores, n_boot=5)
    assert out[0]["share"] == pytest.approx(0.453125) and out[0]["n_edges"] == 2
    assert out[1]["share"] == pytest.approx(0.5) and out[2]["share"] == pytest.approx(0.5)
    # Only the edges the grid covers: without the corner e_2, objective 0 uses one edge.
    keep = weights[:, 2] < 1
    out = interior_share(weights[keep], scores[:, keep], n_boot=5)
    assert out[0]["share"] == pytest.approx(0.40625) and out[0]["n_edges"] == 1
    assert out[2]["n_edges"] == 0 and np.isnan(out[2]["share"])


def test_interior_share_interval_contains_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    weights = simplex_lattice(2, 10)
    t = weights[:, 0]
    scores = edge_scores(t, t ** 2, prompts=40) + rng.normal(0, 0.2, size=(40, 11, 2))
    out = interior_share(weights, scores, seed=3)
    for v in out.values():
        assert v["lo"] < v["share"] < v["hi"]
    assert interior_share(weights, scores, seed=3) == out
    assert interior_share(weights, scores, seed=4)[0]["lo"] != out[0]["lo"]


@pytest.mark.parametrize(
    "weights, scores, kwargs",
    [
        (simplex_lattice(2, 4), np.ones((5, 2)), {}),
        (simplex_lattice(2, 4), np.ones((1, 4, 2)), {}),
        (simplex_lattice(2, 4), np.ones((0, 5, 2)), {}),
        (simplex_lattice(2, 4), np.full((1, 5, 2), np.nan), {}),
        (simplex_lattice(2, 4), np.ones((1, 5, 2)), {"n_boot": 0}),
        (simplex_lattice(2, 4), np.ones((1, 5, 2)), {"level": 1.0}),
        (simplex_lattice(2, 4), np.ones((1, 5, 2)), {"objectives": ["a"]}),
    ],
)
def test_interior_share_rejects(weights, scores, kwargs):
    with pytest.raises(MoodpoError):
        interior_share(weights, scores, **kwargs)


def test_adherence_spread_by_hand():
    scores = np.array(
        [
            [[1.0, 0.0], [2.0, 2.0]],
            [[3.0, 4.0], [2.0, 2.0]],
        ]
    )  # (P=2, G=2, K=2)
    weights = np.array([[1.0, 0.0], [0.5, 0.5]])
    out = adherence_spread(scores, weights)
    # Scalarised: w0 -> prompts 1 and 3; w1 -> 2 and 2.
    np.testing.assert_allclose(out["scalarised_mean"], [2.0, 2.0])
    np.testing.assert_allclose(out["scalarised_var"], [1.0, 0.0])
    np.testing.assert_allclose(out["objective_std"], [[1.0, 2.0], [0.0, 0.0]])


def test_adherence_spread_one_prompt_has_zero_spread():
    out = adherence_spread(np.ones((1, 3, 2)), simplex_lattice(2, 2))
    np.testing.assert_array_equal(out["scalarised_var"], np.zeros(3))


@pytest.mark.parametrize(
    "scores, weights",
    [
        (np.ones((2, 3)), np.ones((3, 3))),
        (np.ones((2, 3, 2)), np.ones((2, 2))),
        (np.empty((0, 2, 2)), np.ones((2, 2))),
    ],
)
def test_adherence_spread_rejects(scores, weights):
    with pytest.raises(MoodpoError):
        adherence_spread(scores, weights)


def test_length_controlled_removes_linear_trend():
    lengths = np.array([10.0, 20.0, 30.0, 40.0])
    scores = 1.0 + 0.1 * lengths + np.array([0.5, -0.5, -0.5, 0.5])
    out = length_controlled(scores, lengths)
    # Slope 0.1 exactly (the bump is orthogonal to length); mean 3.5 is kept.
    np.testing.assert_allclose(out, [4.0, 3.0, 3.0, 4.0])
    assert out.mean() == pytest.approx(scores.mean())
    assert np.corrcoef(out, lengths)[0, 1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "scores, lengths",
    [([], []), ([2.0], [7.0]), ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])],
)
def test_length_controlled_degenerate_returns_scores(scores, lengths):
    np.testing.assert_array_equal(length_controlled(scores, lengths), scores)


def test_length_controlled_rejects_mismatch():
    with pytest.raises(MoodpoError):
        length_controlled([1.0, 2.0], [1.0])


def test_win_rate_flat_by_hand():
    weights = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    a = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[1.0, 9.0], [0.0, 2.0], [2.0, 0.0], [1.0, 1.0]])
    out = win_rate(a, b, weights)
    # Scalarised a: 2, 1, 1, 0; b: 1, 2, 1, 1 -> win, loss, tie, loss.
    assert (out["win"], out["tie"], out["loss"]) == (1, 1, 2)
    assert out["rate"] == pytest.approx(1.5 / 4)
    assert 0.0 <= out["ci_low"] <= out["rate"] <= out["ci_high"] <= 1.0


def test_win_rate_per_prompt_grid_and_symmetry():
    rng = np.random.default_rng(0)
    weights = simplex_lattice(2, 4)
    a = rng.random((30, 5, 2)) + 0.2
    b = rng.random((30, 5, 2))
    ab = win_rate(a, b, weights)
    ba = win_rate(b, a, weights)
    assert ab["win"] == ba["loss"] and ab["tie"] == ba["tie"]
    assert ab["rate"] + ba["rate"] == pytest.approx(1.0)
    assert ab["win"] + ab["tie"] + ab["loss"] == 150
    assert ab["ci_low"] < ab["rate"] < ab["ci_high"]


def test_win_rate_identical_systems_all_ties():
    a = np.ones((4, 3, 2))
    out = win_rate(a, a.copy(), simplex_lattice(2, 2))
    assert out["tie"] == 12 and out["rate"] == 0.5
    assert out["ci_low"] == out["ci_high"] == 0.5


def test_win_rate_tie_tolerance():
    out = win_rate([[1.0, 1.0]], [[1.0, 1.05]], [0.5, 0.5], tie_tol=0.1)
    assert out["tie"] == 1


def test_win_rate_empty():
    out = win_rate(np.empty((0, 2)), np.empty((0, 2)), [0.5, 0.5])
    assert (out["win"], out["tie"], out["loss"]) == (0, 0, 0)
    assert np.isnan(out["rate"]) and np.isnan(out["ci_low"])


@pytest.mark.parametrize(
    "a, b, weights",
    [
        (np.ones((3, 2)), np.ones((4, 2)), [0.5, 0.5]),
        (np.ones((3, 2)), np.ones((3, 2)), [0.5, 0.5, 0.0]),
        (np.ones((3, 2)), np.ones((3, 2)), [-1.0, 2.0]),
        (np.ones((2, 3, 2)), np.ones((2, 3, 2)), np.ones((4, 2))),
    ],
)
def test_win_rate_rejects(a, b, weights):
    with pytest.raises(MoodpoError):
        win_rate(a, b, weights)


def noisy_front(prompts: int, offset: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 2-objective system on a 5-point grid: scores follow the weights, plus offset and noise."""
    weights = simplex_lattice(2, 4)
    noise = np.random.default_rng(seed).normal(0, 0.05, size=(prompts, 5, 2))
    return weights[None] + offset + noise, weights


def test_paired_bootstrap_identical_systems_differ_by_exactly_zero():
    a, weights = noisy_front(20, 0.0, seed=0)
    out = paired_bootstrap([a, a.copy()], weights, [-1.0, -1.0], n_boot=200)
    assert out["hv_diff"][1] == 0.0 and out["hv_diff_lo"][1] == 0.0 and out["hv_diff_hi"][1] == 0.0
    assert out["hv_lo"][0] == out["hv_lo"][1] and out["hv_hi"][0] == out["hv_hi"][1]
    assert out["hv_lo"][0] < out["hypervolume"][0] < out["hv_hi"][0]
    assert out["win_rate"][1] == 0.5 and out["win_lo"][1] == out["win_hi"][1] == 0.5


def test_paired_bootstrap_better_on_every_prompt():
    a, weights = noisy_front(20, 0.0, seed=0)
    b = a + 0.01                                        # a little better everywhere, same prompts
    out = paired_bootstrap([a, b], weights, [-1.0, -1.0], n_boot=200)
    assert out["hv_diff_lo"][1] > 0.0
    assert out["win_rate"][1] == 1.0 and out["win_lo"][1] == 1.0
    # The unpaired intervals overlap: the prompt-to-prompt spread hides a difference pairing sees.
    assert out["hv_lo"][1] < out["hv_hi"][0]


def test_paired_bootstrap_win_rate_matches_win_rate():
    a, weights = noisy_front(30, 0.0, seed=0)
    b, _ = noisy_front(30, 0.02, seed=1)
    out = paired_bootstrap([a, b], weights, [-1.0, -1.0])
    single = win_rate(b, a, weights)
    assert out["win_rate"][1] == pytest.approx(single["rate"])
    assert out["win_lo"][1] == pytest.approx(single["ci_low"]) and out["win_hi"][1] == pytest.approx(single["ci_high"])
    assert out["hypervolume"][1] == pytest.approx(hypervolume(b.mean(0), [-1.0, -1.0]))
    assert out["hv_diff"][1] == pytest.approx(out["hypervolume"][1] - out["hypervolume"][0])


def test_paired_bootstrap_a_third_system_changes_nothing_for_the_first_two():
    a, weights = noisy_front(15, 0.0, seed=0)
    b, _ = noisy_front(15, 0.1, seed=1)
    c, _ = noisy_front(15, 0.5, seed=2)   # would move a data-derived reference point; ref is fixed
    two = paired_bootstrap([a, b], weights, [-1.0, -1.0], n_boot=100, seed=7)
    three = paired_bootstrap([a, b, c], weights, [-1.0, -1.0], n_boot=100, seed=7)
    for key, value in two.items():
        np.testing.assert_array_equal(three[key][:2], value, err_msg=key)


def test_paired_bootstrap_same_seed_same_numbers():
    a, weights = noisy_front(15, 0.0, seed=0)
    b, _ = noisy_front(15, 0.1, seed=1)
    runs = [paired_bootstrap([a, b], weights, [-1.0, -1.0], n_boot=100, seed=s) for s in (5, 5, 6)]
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    assert runs[0]["hv_lo"][1] != runs[2]["hv_lo"][1]


@pytest.mark.parametrize(
    "systems, weights, ref",
    [
        ([], simplex_lattice(2, 1), [0.0, 0.0]),
        ([np.ones((2, 2, 2)), np.ones((3, 2, 2))], simplex_lattice(2, 1), [0.0, 0.0]),
        ([np.ones((2, 2, 2))], simplex_lattice(2, 2), [0.0, 0.0]),
        ([np.ones((2, 2, 2))], simplex_lattice(2, 1), [0.0]),
        ([np.ones((2, 2, 2))], simplex_lattice(2, 1), [0.0, np.inf]),
        ([np.ones((0, 2, 2))], simplex_lattice(2, 1), [0.0, 0.0]),
    ],
)
def test_paired_bootstrap_rejects(systems, weights, ref):
    with pytest.raises(MoodpoError):
        paired_bootstrap(systems, weights, ref)
