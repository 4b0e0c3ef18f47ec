"""How evaluation, the app and human studies sample: the one definition of their defaults.

Identical settings make systems comparable, so every evaluation, comparison in the app and study
pair starts from these. Training samples from the untempered policy instead (TrainConfig's
temperature 1.0, top_p 1.0): online DPO learns from the policy's own distribution.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GenerationSettings:
    """How evaluation and the app sample; identical settings make systems comparable."""

    max_new_tokens: int = 96
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 0
    do_sample: bool = True
    max_prompt_tokens: int = 256
    # Benchmarks force a length with it; evaluation and the app leave it at 0.
    min_new_tokens: int = 0


# Named once for the places that take one value as a default (CLI flags, study fields, UI sliders).
MAX_NEW_TOKENS = GenerationSettings.max_new_tokens
TEMPERATURE = GenerationSettings.temperature
TOP_P = GenerationSettings.top_p
