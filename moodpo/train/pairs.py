"""From scored responses to preference pairs: each prompt's candidate pool, the scalarisation of
its candidates' rewards under the prompt's weights, and the pair rule (Gupta et al., arXiv
2503.00295, Algorithm 1: best and worst of the samples by sum_k w_k r_k(x, y)).

Pure numpy; the trainer calls them in this order, and a recipe replaces one of them:

    pool = build_pool(B, n, extra_rows, mirrored=...)         # (B, m) rollout rows
    scores = scalarise(rewards[pool], weights)                # (B, m, K), (B, K) -> (B, m)
    chosen, rejected, keep = select_pairs(scores, margin)     # (B,) positions in the pool, kept

A multi-weight pool (`pool_weights` J > 1) reuses each prompt's scored candidates under J weight
vectors: `spread_weights` draws the J-1 others, `np.tile(pool, (J, 1))` repeats the pool, and
the same scalarise and select_pairs order the same responses differently under each prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def build_pool(num_prompts: int, num_samples: int, extra_rows: Sequence[np.ndarray] = (), *,
               mirrored: bool = False) -> np.ndarray:
    """The rollout rows each prompt picks its pair from: (B, m), B = num_prompts.

    The rollout holds prompt i's n = num_samples samples at rows i*n .. i*n+n-1. Each array of
    `extra_rows` is one more candidate source, (B,): the rollout row of prompt i's candidate, -1
    where it has none; a prompt without one gets its first sample again in that column, which
    cannot change the best or the worst (argmax and argmin take the first of equals). So m = n +
    len(extra_rows).

    mirrored: prompts i and i + B/2 are one prompt under mirrored weights; both copies pick
    from the candidates of both, m = 2 (n + len(extra_rows)). Where the copies pick the same two
    responses in opposite order, only the prefix tells the two pairs apart.
    """
    pool = np.arange(num_prompts * num_samples).reshape(num_prompts, num_samples)
    columns = [np.where(rows >= 0, rows, pool[:, 0])[:, None] for rows in map(np.asarray, extra_rows)]
    pool = np.concatenate([pool, *columns], axis=1)
    if mirrored:
        half = num_prompts // 2
        pool = np.tile(np.concatenate([pool[:half], pool[half:]], axis=1), (2, 1))
    return pool


def scalarise(rewards: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Linear scalarisation, sum_k w_k r_k: rewards (B, m, K) of each prompt's m candidates and the
    prompt's weights (B, K) -> scores (B, m)."""
    return (rewards * weights[:, None, :]).sum(axis=-1)


def tchebycheff(rewards: np.ndarray, weights: np.ndarray, mu: float = 0.1) -> np.ndarray:
    """Smooth Tchebycheff scalarisation, -mu log sum_k exp(w_k (z_k - r_k) / mu): rewards (B, m, K),
    weights (B, K) -> scores (B, m); z_k is the best r_k among the prompt's m candidates.

    As mu -> 0 it is -max_k w_k (z_k - r_k), the weighted distance to the prompt's ideal point,
    which can rank a balanced candidate above both extremes where a weighted sum never does
    (Lin et al., "Smooth Tchebycheff Scalarization for Multi-Objective Optimization", 2024).
    """
    gaps = weights[:, None, :] * (rewards.max(axis=1, keepdims=True) - rewards) / mu   # (B, m, K)
    top = gaps.max(axis=-1, keepdims=True)
    return -mu * (top[..., 0] + np.log(np.exp(gaps - top).sum(axis=-1)))


SCALARISATIONS = {"linear": scalarise, "tchebycheff": tchebycheff}


def spread_weights(weights: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """The weights of a multi-weight pool: (B, K) drawn weights -> (num * B, K), the drawn ones first.

    Block j (1 <= j < num) holds one more weight vector per prompt, stratified so that each
    prompt's num vectors spread over the simplex: for K = 2, w_1 = (j' + u) / num with u ~ U(0, 1)
    and j' a random permutation of the strata not in the drawn weight's own; for K > 2, Dir(1).
    """
    b, k = weights.shape
    if num <= 1:
        return weights
    if k != 2:
        return np.concatenate([weights, rng.dirichlet(np.ones(k), size=(num - 1) * b)])
    own = np.minimum((weights[:, 0] * num).astype(int), num - 1)                        # (B,)
    strata = np.stack([rng.permutation(np.delete(np.arange(num), s)) for s in own])     # (B, num - 1)
    first = (strata.T + rng.random((num - 1, b))) / num                                 # (num - 1, B)
    extra = np.stack([first.ravel(), 1 - first.ravel()], axis=1)
    return np.concatenate([weights, extra])


def soft_targets(scores: np.ndarray, chosen: np.ndarray, rejected: np.ndarray, tau: float) -> np.ndarray:
    """Preference probabilities sigmoid((s_chosen - s_rejected) / tau), (B,), for the "soft" loss: a pair
    whose weighted scores nearly tie asks for a small log-ratio gap, a clear one for a large gap."""
    rows = np.arange(len(scores))
    gap = scores[rows, chosen] - scores[rows, rejected]
    return 1.0 / (1.0 + np.exp(-gap / tau))


def select_pairs(scores: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chosen = best and rejected = worst candidate of each prompt by scalarised score.

    Args:
        scores: (B, m) scalarised scores of each prompt's m candidates.
        margin: prompts whose best-worst gap is below this are ties and are skipped.
    Returns:
        chosen (B,), rejected (B,) positions in [0, m), keep (B,) bool.
    """
    chosen = scores.argmax(axis=1)
    rejected = scores.argmin(axis=1)
    gap = scores.max(axis=1) - scores.min(axis=1)
    keep = (gap >= margin) & (gap > 0) & np.isfinite(gap)
    return chosen, rejected, keep


def row_prompts(num_prompts: int, num_samples: int, extra_rows: Sequence[np.ndarray] = ()) -> np.ndarray:
    """The prompt index of every rollout row, (rows,): n samples per prompt, then each candidate
    source's rows (each array of `extra_rows` (B,), -1 for none) in prompt order, as
    `sampling.add_extra_responses` and the guided candidates append them."""
    samples = np.repeat(np.arange(num_prompts), num_samples)
    return np.concatenate([samples, *(np.flatnonzero(np.asarray(rows) >= 0) for rows in extra_rows)])


def weight_dependent(rewards: np.ndarray) -> np.ndarray:
    """(B,) bool: True where the one-hot weight vectors do not all pick the same (chosen, rejected)
    pair from a prompt's candidates, i.e. where what is preferred depends on the weights.

    rewards: (B, m, K) normalised rewards of the m candidates of B prompts on K objectives.
    """
    best, worst = rewards.argmax(axis=1), rewards.argmin(axis=1)                  # (B, K)
    return ((best != best[:, :1]) | (worst != worst[:, :1])).any(axis=1)
