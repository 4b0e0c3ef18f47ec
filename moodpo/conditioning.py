"""The conditioning prefix: the objective weights written into the system message.

One function builds it for training, evaluation and the UI, so the model always sees the same
format it was trained on. The default follows the paper's prompt (Gupta et al., Sec. 3):
"[Begin System Instruction] Helpfulness: 0.70, Harmlessness: 0.30 [End System Instruction]".

A run trained on another conditioning (Rewards-in-Context writes desired *scores*, not weights)
keeps a `conditioning.json` beside its config; `Conditioning` reads it and turns weights into that
run's text, so evaluation and the app call one `prefix(objectives, weights)` for every system.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from moodpo.errors import MoodpoError
from moodpo.runs import CONDITIONING_FILE

DEFAULT_TEMPLATE = "[Begin System Instruction] {weights} [End System Instruction]"
DEFAULT_ITEM = "{Name}: {weight:.2f}"
# Rewards-in-Context's score prompt ("<rm1_score> 0.5 <rm2_score> -0.3" in the authors' code), named by objective.
SCORE_TEMPLATE = "{scores}"
SCORE_ITEM = "<{name}> {score:.2f}"
SCORE_MAPPINGS = ("linf", "l2", "linear")
CONDITIONING_KINDS = ("weights", "scores")


def display_name(objective: str) -> str:
    """'helpfulness' and 'helpfulness@v1' -> 'Helpfulness'; 'hf:Ray2333/gpt2-large-harmless-reward_model' -> 'Harmless Reward Model'."""
    base = objective.split("?")[0].rstrip("/").split("/")[-1].split(":")[-1].split("@")[0]
    return " ".join(part.capitalize() for part in base.replace("-", " ").replace("_", " ").split())


def build_prefix(objectives: Sequence[str], weights: Sequence[float], *, template: str = DEFAULT_TEMPLATE,
                 item: str = DEFAULT_ITEM, separator: str = ", ") -> str:
    """Render the system instruction for one weight vector.

    `item` may use {Name} (display name), {name} (objective spec) and {weight}; `template` uses {weights}.
    """
    return _render(objectives, weights, "weight", template=template, item=item, separator=separator)


def build_score_prefix(objectives: Sequence[str], scores: Sequence[float], *, template: str = SCORE_TEMPLATE,
                       item: str = SCORE_ITEM, separator: str = " ") -> str:
    """Render desired scores, Rewards-in-Context style: "<helpfulness> 0.80 <harmlessness> -0.30".

    `item` may use {Name}, {name} and {score}; `template` uses {scores}.
    """
    return _render(objectives, scores, "score", template=template, item=item, separator=separator)


def _render(objectives, values, key: str, *, template: str, item: str, separator: str) -> str:
    if len(objectives) != len(values):
        raise MoodpoError(f"{len(objectives)} objectives but {len(values)} {key}s")
    try:
        items = separator.join(item.format(Name=display_name(o), name=o, **{key: float(v)})
                               for o, v in zip(objectives, values))
        return template.format(**{key + "s": items})
    except (KeyError, IndexError, ValueError) as e:
        raise MoodpoError(f"bad prefix template: {e}; use {{{key}s}} in the template and "
                          f"{{Name}}/{{name}}/{{{key}}} in the item") from None


def desired_scores(weights: Sequence[float], low: Sequence[float], high: Sequence[float],
                   method: str = "linf") -> np.ndarray:
    """Rewards-in-Context's map from a weight vector to the scores asked for in the prompt, (K,) -> (K,).

    low, high: (K,) the least and greatest (normalised) score of each objective in the training
    data. "linf" (Yang et al., arXiv 2402.10207, Sec. 3.2): the objective with the largest weight
    asks for its best score, each other one for min(K w_k, 1) of the way from low to high; "l2"
    scales by w_k / ||w||_2 and "linear" by w_k. Rounded to one decimal, as the training labels
    are. Follows `map_rewards_from_preference` in the authors' ric/utils.py
    (github.com/YangRui2015/RiC); note its ric/evaluation.py calls it with method="l2".
    """
    w, low, high = (np.asarray(x, dtype=float) for x in (weights, low, high))
    if not (len(w) == len(low) == len(high)):
        raise MoodpoError(f"{len(w)} weights but score ranges for {len(low)} and {len(high)} objectives")
    if method == "linf":
        share = np.minimum(len(w) * w, 1.0)
        share[np.argmax(w)] = 1.0
    elif method == "l2":
        share = w / np.sqrt((w ** 2).sum())
    elif method == "linear":
        share = w
    else:
        raise MoodpoError(f"score mapping must be one of {', '.join(SCORE_MAPPINGS)}, got {method!r}")
    return np.round(low + share * (high - low), 1)


@dataclass(frozen=True)
class Conditioning:
    """How a run turns weights into its system message; saved as `<run>/conditioning.json`.

    kind "weights": MO-ODPO's weight prefix (`build_prefix` with template and item).
    kind "scores": Rewards-in-Context; weights map to desired scores (`desired_scores` with
    mapping, low and high), written by `build_score_prefix` with template and item. mean and std
    are the pool statistics the training scores were normalised with.
    """

    kind: str = "weights"
    template: str = DEFAULT_TEMPLATE
    item: str = DEFAULT_ITEM
    mapping: str = "linf"
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    method: str = "moodpo"  # the training method, for labels: moodpo, ric, rl

    def __post_init__(self):
        if self.kind not in CONDITIONING_KINDS:
            raise MoodpoError(f"conditioning kind must be one of {', '.join(CONDITIONING_KINDS)}, got {self.kind!r}")
        if self.kind == "scores" and (not self.low or len(self.low) != len(self.high)):
            raise MoodpoError("score conditioning needs low and high, one value per objective")
        if self.kind == "scores" and self.mapping not in SCORE_MAPPINGS:
            raise MoodpoError(f"score mapping must be one of {', '.join(SCORE_MAPPINGS)}, got {self.mapping!r}")

    def prefix(self, objectives: Sequence[str], weights: Sequence[float]) -> str:
        """The system message for one (validated) weight vector."""
        if self.kind == "weights":
            return build_prefix(objectives, weights, template=self.template, item=self.item)
        scores = desired_scores(weights, self.low, self.high, self.mapping)
        return build_score_prefix(objectives, scores, template=self.template, item=self.item)

    def save(self, run_dir: str | Path) -> None:
        (Path(run_dir) / CONDITIONING_FILE).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, run_dir: str | Path) -> "Conditioning | None":
        """The run's conditioning.json, or None when it has none (MO-ODPO runs: their config says it)."""
        path = Path(run_dir) / CONDITIONING_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (ValueError, TypeError) as e:
            raise MoodpoError(f"{path} is not a valid conditioning file: {e}") from None


def build_messages(prompt: str, prefix: str | None) -> list[dict]:
    """Chat messages for the policy: the prefix as the system message, then the user's prompt.

    With prefix None (the unconditioned model) no system message is added and the chat
    template's own default applies.
    """
    messages = [] if prefix is None else [{"role": "system", "content": prefix}]
    messages.append({"role": "user", "content": prompt})
    return messages
