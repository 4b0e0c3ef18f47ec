"""The pure steps from rewards to pairs (moodpo.train.pairs) and the weight sampler's mirror mode."""

import numpy as np
import pytest

from moodpo.errors import MoodpoError
from moodpo.train.pairs import (build_pool, row_prompts, scalarise, select_pairs, soft_targets, spread_weights, tchebycheff,
                          weight_dependent)
from moodpo.weights import WeightSampler


def test_pool_of_samples_is_each_prompts_rows():
    assert build_pool(3, 2).tolist() == [[0, 1], [2, 3], [4, 5]]


def test_an_extra_source_adds_a_column_and_a_prompt_without_one_repeats_its_first_sample():
    extra = np.array([6, -1, 7])                       # prompts 0 and 2 have a fixed response
    assert build_pool(3, 2, [extra]).tolist() == [[0, 1, 6], [2, 3, 2], [4, 5, 7]]
    # the repeated first sample changes neither the best nor the worst, even on ties
    scores = np.array([[0.5, 0.5, 0.5]])
    assert [x.tolist() for x in select_pairs(scores, 0.0)] == [[0], [0], [False]]


def test_mirrored_copies_pick_from_both_copies_candidates():
    # prompts 0, 1 and their mirrored copies 2, 3; two samples each
    pool = build_pool(4, 2, mirrored=True)
    assert pool.tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [0, 1, 4, 5], [2, 3, 6, 7]]
    with_extra = build_pool(4, 2, [np.array([8, -1, 9, -1])], mirrored=True)
    assert with_extra.tolist() == [[0, 1, 8, 4, 5, 9], [2, 3, 2, 6, 7, 6]] * 2


def test_scalarise_is_the_weighted_sum_per_candidate():
    rewards = np.array([[[1.0, 2.0], [3.0, -1.0]], [[0.0, 0.0], [0.5, 0.5]]])    # (B=2, m=2, K=2)
    weights = np.array([[0.25, 0.75], [1.0, 0.0]])
    assert scalarise(rewards, weights).tolist() == [[1.75, 0.0], [0.0, 0.5]]


def test_row_prompts_follow_the_samples_then_the_extra_rows():
    assert row_prompts(2, 3).tolist() == [0, 0, 0, 1, 1, 1]
    assert row_prompts(3, 1, [np.array([3, -1, 4])]).tolist() == [0, 1, 2, 0, 2]


def test_mirror_mode_reverses_the_second_half():
    plain, mirrored = WeightSampler(3, alpha=0.5, seed=4), WeightSampler(3, alpha=0.5, seed=4, mirror=True)
    w = mirrored.sample(4)
    assert np.array_equal(w[:2], plain.sample(2)) and np.array_equal(w[2:], w[:2, ::-1])
    with pytest.raises(MoodpoError, match="in pairs"):
        mirrored.sample(3)


def test_select_pairs_best_worst_and_ties():
    scores = np.array([[0.1, 0.9, 0.5], [0.3, 0.3, 0.3], [0.2, 0.205, 0.0], [1.0, -1.0, 0.0]])
    chosen, rejected, keep = select_pairs(scores, margin=0.1)
    assert chosen.tolist()[0] == 1 and rejected.tolist()[0] == 0
    assert chosen[3] == 0 and rejected[3] == 1
    assert keep.tolist() == [True, False, True, True]
    _, _, keep_strict = select_pairs(scores, margin=0.5)
    assert keep_strict.tolist() == [True, False, False, True]


def test_weighted_scalarisation_picks_by_weights():
    rewards = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # one prompt, two samples, two objectives
    for w, best in (([0.9, 0.1], 0), ([0.1, 0.9], 1)):
        scores = scalarise(rewards, np.array([w]))
        chosen, rejected, keep = select_pairs(scores, 0.0)
        assert chosen[0] == best and rejected[0] == 1 - best and keep[0]


def test_weight_dependent_pairs():
    # prompt 0: sample 0 is best and sample 2 worst on both objectives; prompt 1: they disagree.
    rewards = np.array([[[1.0, 0.9], [0.5, 0.5], [0.0, 0.1]],
                        [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]])
    assert weight_dependent(rewards).tolist() == [False, True]
    # same best, different worst
    assert weight_dependent(np.array([[[1.0, 1.0], [0.0, 0.5], [0.5, 0.0]]])).tolist() == [True]


def test_gguf_conversion_builds_each_parse_once_and_restores_gguf():
    import gguf

    from moodpo import models

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    arch = next(iter(gguf.MODEL_ARCH_NAMES))
    with models._gguf_parsed_once():
        assert gguf.get_tensor_name_map(arch, 2) is gguf.get_tensor_name_map(arch, 2)
        assert gguf.GGUFReader is not reader
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader, name_map)


def test_tchebycheff_prefers_the_balanced_candidate_a_weighted_sum_ranks_last():
    # candidates (1, 0), (0, 1) and (0.45, 0.45): under w = (0.5, 0.5) the weighted sum ranks the
    # balanced one last; Tchebycheff measures the worst weighted shortfall from (1, 1) and ranks it first.
    rewards = np.array([[[1.0, 0.0], [0.0, 1.0], [0.45, 0.45]]])
    weights = np.array([[0.5, 0.5]])
    assert scalarise(rewards, weights).argmax() != 2 and scalarise(rewards, weights).argmin() == 2
    sharp = tchebycheff(rewards, weights, mu=1e-3)
    assert sharp[0].tolist() == pytest.approx([-0.5, -0.5, -0.275], abs=1e-2)
    assert select_pairs(sharp, 0.0)[0].tolist() == [2]
    # at a corner it ranks by that objective alone
    assert tchebycheff(rewards, np.array([[1.0, 0.0]]), mu=1e-3).argmax() == 0


def test_smooth_tchebycheff_is_a_lower_bound_within_mu_log_k_of_the_max():
    rng = np.random.default_rng(0)
    rewards, weights = rng.normal(size=(5, 4, 3)), rng.dirichlet([1, 1, 1], size=5)
    sharp = -(weights[:, None, :] * (rewards.max(axis=1, keepdims=True) - rewards)).max(axis=-1)
    smooth = tchebycheff(rewards, weights, mu=0.1)
    assert np.all(smooth <= sharp + 1e-12) and np.all(smooth >= sharp - 0.1 * np.log(3) - 1e-12)


def test_spread_weights_keeps_the_drawn_ones_first_and_covers_the_edge():
    rng = np.random.default_rng(0)
    drawn = np.array([[0.95, 0.05], [0.1, 0.9], [0.5, 0.5]])
    out = spread_weights(drawn, 4, rng)
    assert out.shape == (12, 2) and np.array_equal(out[:3], drawn)
    assert np.allclose(out.sum(axis=1), 1) and np.all(out >= 0)
    for i in range(3):                          # each prompt's 4 weights fall in 4 different quarters
        quarters = np.minimum((out[i::3, 0] * 4).astype(int), 3)
        assert sorted(quarters.tolist()) == [0, 1, 2, 3]
    assert spread_weights(drawn, 1, rng) is drawn
    three = spread_weights(np.array([[0.2, 0.3, 0.5]]), 3, rng)
    assert three.shape == (3, 3) and np.allclose(three.sum(axis=1), 1)


def test_soft_targets_grow_with_the_score_gap():
    scores = np.array([[0.0, 0.01, -0.01], [2.0, 0.0, 0.0]])
    chosen, rejected, _ = select_pairs(scores, 0.0)
    p = soft_targets(scores, chosen, rejected, tau=0.5)
    assert p[0] == pytest.approx(1 / (1 + np.exp(-0.04)))        # a near-tie: barely above 0.5
    assert p[1] == pytest.approx(1 / (1 + np.exp(-4.0)))
