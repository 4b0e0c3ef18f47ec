"""Per-objective reward normalisation, so that objective weights compare like with like.

Objectives live on different scales (a reward model's logit vs. a score in [0, 1]); the weighted
sum that picks chosen and rejected responses only means what the weights say once each column
has a comparable spread. Modes:

- "running": z-score with a running mean and (population) standard deviation per objective,
  accumulated over every batch passed to `update()` (Welford/Chan parallel update, float64).
  Until two rewards have been seen the std is taken as 1.
- "fixed": z-score with the `mean` and `std` given (scalars or K-long sequences).
- "none": identity.
"""

from collections.abc import Sequence

import numpy as np
import torch

from moodpo.errors import MoodpoError

MODES = ("running", "fixed", "none")


def _as_numpy(rewards) -> np.ndarray:
    if isinstance(rewards, torch.Tensor):
        return rewards.detach().to("cpu", torch.float64).numpy()
    return np.asarray(rewards, dtype=np.float64)


class RewardNormalizer:
    """z-scores an (N, K) reward matrix column by column; see the module doc for the modes."""

    def __init__(
        self,
        num_objectives: int,
        mode: str = "running",
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        eps: float = 1e-6,
    ):
        if mode not in MODES:
            raise MoodpoError(f"normalizer mode must be one of {', '.join(MODES)}, not {mode!r}")
        if num_objectives < 1:
            raise MoodpoError(f"normalizer needs at least one objective, got {num_objectives}")
        self.num_objectives = num_objectives
        self.mode = mode
        self.eps = eps
        self.count = 0
        self.mean = np.zeros(num_objectives)
        self.m2 = np.zeros(num_objectives)  # sum of squared deviations from the mean
        self._fixed_std = np.ones(num_objectives)
        if mode == "fixed":
            if mean is None or std is None:
                raise MoodpoError("normalizer mode 'fixed' needs both mean= and std=")
            self.mean = self._per_objective(mean, "mean")
            self._fixed_std = self._per_objective(std, "std")
            if (self._fixed_std <= 0).any():
                raise MoodpoError(f"normalizer std must be positive, got {self._fixed_std.tolist()}")

    def _per_objective(self, value, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        out = np.full(self.num_objectives, float(arr)) if arr.ndim == 0 else arr
        if out.shape != (self.num_objectives,) or not np.isfinite(out).all():
            raise MoodpoError(f"normalizer {what} must be {self.num_objectives} finite numbers, got {value!r}")
        return out

    @property
    def std(self) -> np.ndarray:
        """Current per-objective std, shape (K,)."""
        if self.mode == "fixed":
            return self._fixed_std
        if self.mode == "none" or self.count < 2:
            return np.ones(self.num_objectives)
        return np.sqrt(self.m2 / self.count)

    def _check(self, rewards: np.ndarray) -> np.ndarray:
        if rewards.ndim != 2 or rewards.shape[1] != self.num_objectives:
            raise MoodpoError(f"rewards must have shape (N, {self.num_objectives}), got {rewards.shape}")
        return rewards

    def update(self, rewards) -> None:
        """Fold a batch of rewards (N, K) into the running statistics; no-op unless mode='running'."""
        if self.mode != "running":
            return
        batch = self._check(_as_numpy(rewards))
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean = batch.mean(axis=0)
        batch_m2 = ((batch - batch_mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        # Chan et al.'s pairwise combination of (count, mean, M2); exact for any batch sizes.
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + batch_m2 + delta**2 * self.count * n / total
        self.count = total

    def __call__(self, rewards):
        """Normalised rewards, (N, K), of the same type (and dtype/device for tensors) as given."""
        if self.mode == "none":
            return rewards
        scale = np.maximum(self.std, self.eps)
        if isinstance(rewards, torch.Tensor):
            self._check(rewards.detach())
            mean = torch.as_tensor(self.mean, dtype=rewards.dtype, device=rewards.device)
            return (rewards - mean) / torch.as_tensor(scale, dtype=rewards.dtype, device=rewards.device)
        return (self._check(np.asarray(rewards, dtype=np.float64)) - self.mean) / scale

    def state_dict(self) -> dict:
        """JSON-able state; `load_state_dict` restores it exactly."""
        return {
            "mode": self.mode,
            "num_objectives": self.num_objectives,
            "eps": self.eps,
            "count": self.count,
            "mean": self.mean.tolist(),
            "m2": self.m2.tolist(),
            "std": self._fixed_std.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("mode") != self.mode or state.get("num_objectives") != self.num_objectives:
            raise MoodpoError(
                f"normalizer state is for mode {state.get('mode')!r} with {state.get('num_objectives')} objectives, "
                f"this normalizer is {self.mode!r} with {self.num_objectives}"
            )
        self.eps = float(state["eps"])
        self.count = int(state["count"])
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.m2 = np.asarray(state["m2"], dtype=np.float64)
        self._fixed_std = np.asarray(state["std"], dtype=np.float64)
