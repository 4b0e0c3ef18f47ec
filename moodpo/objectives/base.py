"""The objective interface: a named, batched scorer of (prompt, response) pairs."""

from collections.abc import Callable, Sequence

import numpy as np

from moodpo.errors import MoodpoError


class Objective:
    """Scores responses to prompts; higher is better.

    Subclasses set `name` and implement `score(prompts, responses)` on lists of equal length
    N >= 1, returning N floats. `__call__` validates both sides and returns float64 (N,).

    `floor` is the worst score the objective can give (0.0 for a score in [0, 1]), or None when
    it has none (a reward model's logit). When every objective of an evaluation has a floor, the
    floors are its hypervolume reference point, fixed whatever systems are compared
    (`moodpo.eval.evaluate.fixed_reference`).
    """

    name: str = ""
    description: str = ""
    floor: float | None = None

    def score(self, prompts: list[str], responses: list[str]) -> Sequence[float]:
        raise NotImplementedError

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        prompts, responses = list(prompts), list(responses)
        if len(prompts) != len(responses):
            raise MoodpoError(
                f"objective {self.name!r}: got {len(prompts)} prompts but {len(responses)} responses"
            )
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        return check_scores(self.name, self.score(prompts, responses), len(prompts))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_scores(name: str, scores, n: int) -> np.ndarray:
    """`scores` as float64 (n,), or MoodpoError naming the objective if that is not what it is."""
    try:
        out = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise MoodpoError(f"objective {name!r} returned scores that are not numbers") from None
    if out.shape != (n,):
        raise MoodpoError(f"objective {name!r} returned shape {out.shape} for {n} responses; expected ({n},)")
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise MoodpoError(
            f"objective {name!r} returned {bad.size} non-finite score(s), first {out[bad[0]]} at index {bad[0]}"
        )
    return out


class CallableObjective(Objective):
    """Wraps a user function `fn(prompts, responses) -> N floats` (the `python:` objectives)."""

    def __init__(self, name: str, fn: Callable[[list[str], list[str]], Sequence[float]]):
        self.name = name
        self.fn = fn
        self.description = (fn.__doc__ or "").strip().split("\n")[0]

    def score(self, prompts, responses):
        return self.fn(prompts, responses)
