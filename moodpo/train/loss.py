"""Preference losses as pure functions (DPO, Rafailov et al. 2023, Eq. 7; IPO, Azar et al. 2023, Eq. 17;
a soft-label DPO whose target carries the size of the preference; the NLL term of RPO, Pang et al. 2024)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "ipo", "soft")


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, *,
             beta: float, loss_type: str = "sigmoid", targets: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair preference loss and implicit rewards.

    Args:
        policy_chosen_logps: (B,) summed log p_theta(y_w | x) over response tokens.
        policy_rejected_logps: (B,) summed log p_theta(y_l | x).
        ref_chosen_logps, ref_rejected_logps: (B,) the same under the frozen reference.
        beta: the KL-regularisation strength.
        loss_type: "sigmoid" (DPO): -log sigmoid(beta * h), h = chosen log-ratio - rejected log-ratio;
            "ipo": (h - 1 / (2 beta))^2 with h on length-summed log-probs (as TRL does);
            "soft": binary cross-entropy of sigmoid(beta * h) against `targets`, i.e.
            -(p log sigmoid(beta h) + (1 - p) log sigmoid(-beta h)); p = 1 is DPO, p = 0.5 asks
            for no preference. Its minimum is at beta h = logit(p), so a near-tie (p near 0.5)
            teaches a proportionally small step instead of a hard label.
        targets: (B,) preference probabilities in [0, 1] for "soft" (e.g. sigmoid(score gap / tau)).

    Returns:
        losses (B,), chosen_rewards (B,) = beta * (policy - ref) chosen log-probs (detached),
        rejected_rewards (B,) likewise.
    """
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    logits = chosen_logratios - rejected_logratios
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    elif loss_type == "soft":
        if targets is None:
            raise ValueError("loss_type 'soft' needs targets")
        losses = -(targets * F.logsigmoid(beta * logits) + (1 - targets) * F.logsigmoid(-beta * logits))
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose one of {LOSS_TYPES}")
    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return losses, chosen_rewards, rejected_rewards


def chosen_nll(policy_chosen_logps: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """Per-pair negative log-likelihood of the chosen response per token, (B,): the term that
    Iterative RPO (Pang et al. 2024, arXiv 2404.19733, Eq. 1) adds to DPO, which on its own can
    widen a margin by lowering both responses. An empty response contributes 0."""
    return -policy_chosen_logps / chosen_lengths.clamp(min=1).to(policy_chosen_logps.dtype)
