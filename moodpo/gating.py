"""Conditioning beyond text: a LoRA update scaled, row by row, by the objective weights.

With `lora_gate` the adapter's rank r splits into K groups of r / K (K objectives), and group k's
share of the update is scaled by K * w_k for a row with weights w:

    delta W(w) x = B diag(g(w)) A x,   g(w) = K * (w_1, ..., w_1, w_2, ..., w_K)   (each w_k r/K times)

so at uniform weights the adapter is a plain LoRA, and at a corner only its objective's group acts.
The prefix still carries the weights in text; the gate gives the weights a path into the network
that the text alone, on a 135M model trained for 72 updates, did not open (docs/experiments-2026-12.md,
rows A-I). Issue 19 names it, after the paper's future work, as the lever to try when the front
still fragments.

A gated model needs its rows' weights whenever the adapter is on: `gate_rows(model, weights)`
around the forward or generate call. Without them a forward pass raises, so an unplumbed path
fails loudly instead of silently running the ungated (uniform-weight) adapter. The fast sampler
(`moodpo.fastgen.FastSampler`) keeps a gated adapter's factors unmerged and reads the same rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from moodpo.errors import MoodpoError

GATE_ATTRIBUTE = "moodpo_weight_gate"


def _root(model):
    """The model a gate is attached to: under accelerate's or DDP's wrapper."""
    return getattr(model, "module", model)


class WeightGate:
    """Forward hooks on every LoRA A matrix of `model` that scale its output (..., r) per row by g(w)."""

    def __init__(self, model, num_objectives: int):
        self.num_objectives = num_objectives
        self.gates: torch.Tensor | None = None  # (N, K) or (1, K), set by `gate_rows`
        self.handles = []
        for name, module in _root(model).named_modules():
            if len(getattr(module, "lora_embedding_A", {})):
                raise MoodpoError(f"lora_gate cannot gate the LoRA of the embedding {name}; leave embeddings out "
                                  "of lora_target_modules")
            for adapter, lora_a in getattr(module, "lora_A", {}).items():
                if lora_a.out_features % num_objectives:
                    raise MoodpoError(f"lora_gate splits the LoRA rank over {num_objectives} objectives, but "
                                      f"{name} ({adapter}) has rank {lora_a.out_features}; make lora_r a multiple "
                                      f"of {num_objectives}")
                self.handles.append(lora_a.register_forward_hook(self._scale))
        if not self.handles:
            raise MoodpoError("lora_gate needs a LoRA adapter on the model; set lora true")

    def rows(self, batch: int) -> torch.Tensor:
        """The weights in use for a batch of `batch` rows, (batch or 1, K); raises outside `gate_rows`
        or when they fit neither the batch nor all rows at once."""
        if self.gates is None:
            raise MoodpoError("this policy's LoRA update is gated by the objective weights (lora_gate); run it "
                              "inside moodpo.gating.gate_rows(model, weights)")
        if len(self.gates) not in (1, batch):
            raise ValueError(f"gate_rows got {len(self.gates)} weight rows for a batch of {batch}")
        return self.gates

    def scales(self, rank: int) -> torch.Tensor:
        """g(w) of each row, (N, rank): group k of rank / K columns gets K * w_k."""
        k = self.num_objectives
        return (self.gates * k).repeat_interleave(rank // k, dim=-1)

    def _scale(self, module, inputs, output: torch.Tensor) -> torch.Tensor:
        rows = len(self.rows(output.shape[0]))
        scale = self.scales(output.shape[-1]).to(output.dtype)
        return output * scale.view(rows, *[1] * (output.dim() - 2), output.shape[-1])


def attach_gate(model, num_objectives: int) -> WeightGate:
    """Gate `model`'s LoRA update by the weights (module docstring); returns the gate."""
    if gate_of(model) is not None:
        raise MoodpoError("this model already has a weight gate; attaching a second would scale its LoRA twice")
    gate = WeightGate(model, num_objectives)
    setattr(_root(model), GATE_ATTRIBUTE, gate)
    return gate


def gate_of(model) -> WeightGate | None:
    """The model's weight gate, or None for an ordinary model."""
    return getattr(_root(model), GATE_ATTRIBUTE, None)


@contextlib.contextmanager
def gate_rows(model, weights) -> Iterator[None]:
    """Run `model` with each batch row's LoRA update gated by its weights, (N, K) or (K,) for all rows.

    A no-op for a model without a gate, so callers need not ask. Weights are used as given (a
    simplex point); the previous rows are restored on exit, so calls nest.
    """
    gate = gate_of(model)
    if gate is None:
        yield
        return
    # A tensor stays a tensor (it may live on the GPU, where numpy cannot read it).
    w = (weights.detach().float() if torch.is_tensor(weights)
         else torch.as_tensor(np.asarray(weights, dtype=np.float32)))
    w = w.view(1, -1) if w.dim() == 1 else w
    if w.shape[-1] != gate.num_objectives:
        raise ValueError(f"gate_rows got weights of {w.shape[-1]} objectives, the gate has {gate.num_objectives}")
    device = next(_root(model).parameters()).device
    previous, gate.gates = gate.gates, w.to(device)
    try:
        yield
    finally:
        gate.gates = previous
