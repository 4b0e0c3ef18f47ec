"""From scored responses to preference pairs: each prompt's candidate pool, the scalarisation of
its candidates' rewards under the prompt's weights, and the pair rule (Gupta et al., arXiv
2503.00295, Algorithm 1: best and worst of the samples by sum_k w_k r_k(x, y)).

Pure numpy; the trainer calls them in this order, and a recipe replaces one of them:

    pool = build_pool(B, n, extra_rows, mirrored=...)         # (B, m) rollout rows
    scores = scalarise(rewards[pool], weights)                # (B, m, K), (B, K) -> (B, m)
    chosen, rejected, keep = select_pairs(scores, margin)     # (B,) positions in the pool, kept
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


def row_prompts(num_prompts: int, num_samples: int, extra_rows: np.ndarray | None = None) -> np.ndarray:
    """The prompt index of every rollout row, (rows,): n samples per prompt, then the extra rows
    (`extra_rows` (B,), -1 for none) in prompt order, as `sampling.add_extra_responses` appends them."""
    samples = np.repeat(np.arange(num_prompts), num_samples)
    if extra_rows is None:
        return samples
    return np.concatenate([samples, np.flatnonzero(np.asarray(extra_rows) >= 0)])


def weight_dependent(rewards: np.ndarray) -> np.ndarray:
    """(B,) bool: True where the one-hot weight vectors do not all pick the same (chosen, rejected)
    pair from a prompt's candidates, i.e. where what is preferred depends on the weights.

    rewards: (B, m, K) normalised rewards of the m candidates of B prompts on K objectives.
    """
    best, worst = rewards.argmax(axis=1), rewards.argmin(axis=1)                  # (B, K)
    return ((best != best[:, :1]) | (worst != worst[:, :1])).any(axis=1)
