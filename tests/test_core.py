"""Unit tests of the pure pieces: loss, weights, prefix, completion masks, lr schedule (pairs: test_pairs.py)."""

import math

import numpy as np
import pytest
import torch

from moodpo.conditioning import build_messages, build_prefix, display_name
from moodpo.errors import MoodpoError
from moodpo.train.loss import chosen_nll, dpo_loss
from moodpo.sampling import completion_mask
from moodpo.train.trainer import PromptOrder, lr_factor
from moodpo.weights import WeightSampler, grid_size, parse_weights, resolve_alpha, simplex_grid, validate_weights


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_dpo_sigmoid_loss_by_hand():
    # chosen log-ratio = -1 - (-1.5) = 0.5, rejected = -2 - (-1.5) = -0.5, h = 1
    losses, chosen, rejected = dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.5)
    assert losses.item() == pytest.approx(math.log(1 + math.exp(-0.5)))  # -log sigmoid(0.5) = 0.474077
    assert losses.item() == pytest.approx(0.4740770)
    assert chosen.item() == pytest.approx(0.25)
    assert rejected.item() == pytest.approx(-0.25)


def test_dpo_loss_is_log2_at_reference_and_falls_with_margin():
    losses, _, _ = dpo_loss(t(-3.0, -3.0), t(-4.0, -5.0), t(-3.0, -4.0), t(-4.0, -4.0), beta=0.1)
    assert losses[0].item() == pytest.approx(math.log(2))
    # second pair: h = (−3+4) − (−5+4) = 2 → −log σ(0.2)
    assert losses[1].item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.2))))


@pytest.mark.parametrize("beta,expected", [(0.5, 0.0), (0.1, 16.0), (1.0, 0.25)])
def test_ipo_loss_by_hand(beta, expected):
    losses, _, _ = dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=beta, loss_type="ipo")  # h = 1
    assert losses.item() == pytest.approx(expected)  # (1 - 1/(2 beta))^2


def test_soft_loss_by_hand():
    # h = 1, beta = 0.5: p = 1 is DPO; p = 0.75 -> -(0.75 log s(0.5) + 0.25 log s(-0.5))
    hard, _, _ = dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.5)
    one, _, _ = dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.5, loss_type="soft", targets=t(1.0))
    assert one.item() == pytest.approx(hard.item())
    soft, _, _ = dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.5, loss_type="soft", targets=t(0.75))
    assert soft.item() == pytest.approx(0.75 * 0.4740770 + 0.25 * 0.9740770)   # -log s(-0.5) = 0.974077


def test_soft_loss_is_smallest_where_the_log_ratio_gap_matches_the_target():
    gaps = torch.linspace(-6, 6, 241, dtype=torch.float64)       # beta h
    zeros = torch.zeros_like(gaps)
    losses, _, _ = dpo_loss(gaps, zeros, zeros, zeros, beta=1.0, loss_type="soft", targets=torch.full_like(gaps, 0.8))
    assert gaps[losses.argmin()].item() == pytest.approx(math.log(0.8 / 0.2), abs=0.05)
    with pytest.raises(ValueError, match="needs targets"):
        dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.5, loss_type="soft")


def test_dpo_loss_gradient_raises_chosen():
    policy_chosen = t(-2.0).requires_grad_()
    losses, _, _ = dpo_loss(policy_chosen, t(-2.0), t(-2.0), t(-2.0), beta=0.1)
    losses.sum().backward()
    assert policy_chosen.grad.item() == pytest.approx(-0.05)  # -beta * sigmoid(-0) = -0.05


def test_chosen_nll_is_per_token_and_raises_the_chosen():
    logps = t(-6.0, -3.0, 0.0).requires_grad_()
    nll = chosen_nll(logps, torch.tensor([3, 1, 0]))
    assert nll.tolist() == pytest.approx([2.0, 3.0, 0.0])   # an empty response counts as one token
    nll.sum().backward()
    assert logps.grad.tolist() == pytest.approx([-1 / 3, -1.0, -1.0])   # descent raises every chosen log-prob


def test_unknown_loss_type():
    with pytest.raises(ValueError, match="unknown loss_type"):
        dpo_loss(t(0.0), t(0.0), t(0.0), t(0.0), beta=0.1, loss_type="hinge2")


@pytest.mark.parametrize("alpha", [0.3, 1.0, 3.0])
def test_dirichlet_statistics(alpha):
    sampler = WeightSampler(3, alpha=alpha, seed=1)
    w = sampler.sample(40000)
    assert w.shape == (40000, 3)
    assert np.allclose(w.sum(1), 1)
    assert np.all(w >= 0)
    # Dir(alpha 1): mean 1/K, var = (1/K)(1-1/K)/(K alpha + 1)
    assert np.allclose(w.mean(0), 1 / 3, atol=0.01)
    assert np.allclose(w.var(0), (1 / 3) * (2 / 3) / (3 * alpha + 1), rtol=0.05)


def test_dirichlet_asymmetric_alpha_mean():
    w = WeightSampler(2, alpha=[1.0, 3.0], seed=0).sample(40000)
    assert np.allclose(w.mean(0), [0.25, 0.75], atol=0.01)


def test_weight_sampler_state_round_trip():
    a = WeightSampler(2, alpha=0.5, seed=3)
    a.sample(5)
    state = a.state_dict()
    expected = a.sample(4)
    b = WeightSampler(2, alpha=0.5, seed=99)
    b.load_state_dict(state)
    assert np.array_equal(b.sample(4), expected)


def test_fixed_and_one_hot_weights():
    s = WeightSampler(2, mode="fixed", fixed=[3, 1])
    assert np.allclose(s.sample(3), [[0.75, 0.25]] * 3)
    with pytest.raises(MoodpoError, match="fixed_weights"):
        WeightSampler(2, mode="fixed")


@pytest.mark.parametrize("weights,msg", [
    ([0.5], "expected 2 weights"),
    ([0, 0], "not all be zero"),
    ([-1, 2], "non-negative"),
    ([float("nan"), 1], "finite"),
    (["a", 1], "numbers"),
])
def test_validate_weights_errors(weights, msg):
    with pytest.raises(MoodpoError, match=msg):
        validate_weights(weights, 2)


def test_parse_weights_normalises():
    assert np.allclose(parse_weights("7, 3", 2), [0.7, 0.3])


@pytest.mark.parametrize("alpha", [0, -1, float("inf")])
def test_alpha_must_be_positive(alpha):
    with pytest.raises(MoodpoError, match="alpha"):
        resolve_alpha(alpha, 2)


def test_simplex_grid():
    g2 = simplex_grid(2, 11)
    assert g2.shape == (11, 2)
    assert np.allclose(g2[0], [1, 0]) and np.allclose(g2[-1], [0, 1])
    g3 = simplex_grid(3, 11)
    assert g3.shape == (66, 3) == (grid_size(3, 11), 3)
    assert np.allclose(g3.sum(1), 1)
    assert len({tuple(r) for r in g3.round(6)}) == 66


def test_prefix_default_format():
    prefix = build_prefix(["helpfulness", "harmlessness"], [0.7, 0.3])
    assert prefix == "[Begin System Instruction] Helpfulness: 0.70, Harmlessness: 0.30 [End System Instruction]"


def test_prefix_custom_format_and_names():
    prefix = build_prefix(["hf:Ray2333/gpt2-large-harmless-reward_model", "conciseness"], [0.25, 0.75],
                          template="<w>{weights}</w>", item="{name}={weight:.1f}", separator=";")
    assert prefix == "<w>hf:Ray2333/gpt2-large-harmless-reward_model=0.2;conciseness=0.8</w>"
    assert display_name("hf:Ray2333/gpt2-large-harmless-reward_model") == "Gpt2 Large Harmless Reward Model"
    with pytest.raises(MoodpoError, match="template"):
        build_prefix(["a"], [1.0], template="{nope}")


def test_messages_put_prefix_in_system():
    assert build_messages("hi", "P") == [{"role": "system", "content": "P"}, {"role": "user", "content": "hi"}]
    assert build_messages("hi", None) == [{"role": "user", "content": "hi"}]


def test_completion_mask_stops_after_first_eos():
    ids = torch.tensor([[5, 6, 2, 2, 2], [5, 2, 7, 2, 9], [5, 6, 7, 8, 9]])
    assert completion_mask(ids, [2]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]


def test_lr_schedule():
    assert lr_factor(0, warmup_steps=4, max_steps=10, schedule="cosine") == pytest.approx(0.25)
    assert lr_factor(4, warmup_steps=4, max_steps=10, schedule="cosine") == pytest.approx(1.0)
    assert lr_factor(10, warmup_steps=4, max_steps=10, schedule="cosine") == pytest.approx(0.0)
    assert lr_factor(7, warmup_steps=0, max_steps=10, schedule="constant") == 1.0


def test_prompt_order_resumes_and_covers_each_epoch():
    a = PromptOrder(7, seed=5)
    first = a.take(5)
    state = a.state_dict()
    rest = a.take(9)
    b = PromptOrder(7, seed=5)
    b.load_state_dict(state)
    assert b.take(9) == rest
    assert sorted(first + rest[:2]) == list(range(7))


def test_category_repeats_oversample_and_leave_out():
    from moodpo.config import TrainConfig, parse_category_repeats
    from moodpo.data import Prompt
    from moodpo.train.trainer import repeat_categories

    prompts = [Prompt("a", "x", "everyday"), Prompt("b", "y", "harmful"), Prompt("c", "z", "summarize")]
    out = repeat_categories(prompts, parse_category_repeats(["harmful=3", "summarize=0"]))
    assert [p.id for p in out] == ["a", "b", "b", "b"]
    assert repeat_categories(prompts, {}) == prompts
    with pytest.raises(MoodpoError, match="not a category of these prompts"):
        repeat_categories(prompts, {"borderlin": 2})
    with pytest.raises(MoodpoError, match="leaves no prompts"):
        repeat_categories(prompts, {"everyday": 0, "harmful": 0, "summarize": 0})
    for bad in (["harmful"], ["harmful=-1"], ["harmful=1.5"], ["=2"], ["harmful=2", "harmful=3"]):
        with pytest.raises(MoodpoError, match="category_repeats"):
            TrainConfig(category_repeats=bad)
    assert TrainConfig(category_repeats=[" harmful = 2"]).category_repeats == ["harmful=2"]
