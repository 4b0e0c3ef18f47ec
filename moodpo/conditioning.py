"""The conditioning prefix: the objective weights written into the system message.

One function builds it for training, evaluation and the UI, so the model always sees the same
format it was trained on. The default follows the paper's prompt (Gupta et al., Sec. 3):
"[Begin System Instruction] Helpfulness: 0.70, Harmlessness: 0.30 [End System Instruction]".
"""

from __future__ import annotations

from collections.abc import Sequence

from moodpo.errors import MoodpoError

DEFAULT_TEMPLATE = "[Begin System Instruction] {weights} [End System Instruction]"
DEFAULT_ITEM = "{Name}: {weight:.2f}"


def display_name(objective: str) -> str:
    """'helpfulness' and 'helpfulness@v1' -> 'Helpfulness'; 'hf:Ray2333/gpt2-large-harmless-reward_model' -> 'Harmless Reward Model'."""
    base = objective.split("?")[0].rstrip("/").split("/")[-1].split(":")[-1].split("@")[0]
    return " ".join(part.capitalize() for part in base.replace("-", " ").replace("_", " ").split())


def build_prefix(objectives: Sequence[str], weights: Sequence[float], *, template: str = DEFAULT_TEMPLATE,
                 item: str = DEFAULT_ITEM, separator: str = ", ") -> str:
    """Render the system instruction for one weight vector.

    `item` may use {Name} (display name), {name} (objective spec) and {weight}; `template` uses {weights}.
    """
    if len(objectives) != len(weights):
        raise MoodpoError(f"{len(objectives)} objectives but {len(weights)} weights")
    try:
        items = separator.join(item.format(Name=display_name(o), name=o, weight=float(w))
                               for o, w in zip(objectives, weights))
        return template.format(weights=items)
    except (KeyError, IndexError, ValueError) as e:
        raise MoodpoError(f"bad prefix template: {e}; use {{weights}} in the template and "
                          "{Name}/{name}/{weight} in the item") from None


def build_messages(prompt: str, prefix: str | None) -> list[dict]:
    """Chat messages for the policy: the prefix as the system message, then the user's prompt.

    With prefix None (the unconditioned model) no system message is added and the chat
    template's own default applies.
    """
    messages = [] if prefix is None else [{"role": "system", "content": prefix}]
    messages.append({"role": "user", "content": prompt})
    return messages
