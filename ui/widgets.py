"""What the tabs share: event options, the generation queue, the weight sliders, the sampling
controls and the policy list.

Every UI event is private (`api_visibility="private"`); the public API is the typed endpoints in
ui/api.py. Generation events, UI and API alike, share one concurrency queue, because one process
holds one copy of each model.
"""

from __future__ import annotations

import functools

import gradio as gr

from moodpo.conditioning import display_name
from moodpo.sampling_settings import TEMPERATURE
from moodpo.weights import WEIGHT_STEP, one_hot
from ui.figures import weights_text
from ui.policies import list_policies
from ui.settings import MAX_OBJECTIVES, AppConfig

GENERATION_QUEUE = "generation"
PRIVATE = dict(api_visibility="private")
QUICK = dict(api_visibility="private", queue=False, show_progress="hidden")
POLL_SECONDS = 2.0


def rebalance(values: list[float], k: int, moved: int) -> list[float]:
    """Keep the first k weights on the simplex after slider `moved` was set: the others share the rest.

    They keep their proportions; if they were all zero they split the rest evenly.
    """
    values = [min(max(float(v or 0.0), 0.0), 1.0) for v in values[:k]]
    if k == 1:
        return [1.0]
    rest = 1.0 - values[moved]
    others = [i for i in range(k) if i != moved]
    total = sum(values[i] for i in others)
    for i in others:
        values[i] = rest * values[i] / total if total > 0 else rest / (k - 1)
    return [round(v, 3) for v in values]


def mix_text(objectives: list[str], values: list[float]) -> str:
    weights = values[:len(objectives)]
    total = sum(max(float(w or 0), 0) for w in weights)
    normalised = [max(float(w or 0), 0) / total for w in weights] if total > 0 else None
    return "Normalised: " + weights_text(objectives, normalised)


class WeightControls:
    """MAX_OBJECTIVES sliders, of which the first K (the policy's objectives) are shown."""

    def __init__(self, objectives: tuple[str, ...], presets: bool = True, corner: int | None = None):
        """corner: start with all weight on this objective (index; -1 = the last), else balanced."""
        self.corner = corner
        k = len(objectives)
        start = self.start(k)
        self.objectives = gr.State(list(objectives))
        self.sliders = [
            gr.Slider(0, 1, value=start[i] if i < k else 0.0, step=WEIGHT_STEP,
                      label=display_name(objectives[i]) if i < k else f"objective {i + 1}", visible=i < k,
                      elem_classes=["weight-slider"])
            for i in range(MAX_OBJECTIVES)
        ]
        self.mix = gr.Markdown(mix_text(list(objectives), start), elem_classes=["status-line"])
        self.presets: list[gr.Button] = []
        if presets:
            with gr.Row(elem_classes=["preset-row"]):
                self.presets = [gr.Button(self._preset_label(objectives, i), size="sm", visible=i <= k)
                                for i in range(MAX_OBJECTIVES + 1)]
        for i, slider in enumerate(self.sliders):
            slider.release(functools.partial(self._linked, moved=i), [self.objectives, *self.sliders],
                           [*self.sliders, self.mix], **QUICK)
        for i, button in enumerate(self.presets):
            button.click(functools.partial(self._preset, index=i), [self.objectives], [*self.sliders, self.mix],
                         **QUICK)

    @staticmethod
    def _preset_label(objectives, i: int) -> str:
        # Button i < K is corner i (all weight on one objective); button K is the centre.
        return f"All {display_name(objectives[i])}" if i < len(objectives) else "Balanced"

    def start(self, k: int) -> list[float]:
        return one_hot(self.corner % k, k).tolist() if self.corner is not None else [round(1 / k, 3)] * k

    def values(self, data: dict) -> list[float]:
        return [data[s] for s in self.sliders]

    def _linked(self, objectives, *values, moved: int):
        k = len(objectives)
        if moved >= k:
            return [gr.skip()] * (MAX_OBJECTIVES + 1)
        new = rebalance(list(values), k, moved)
        updates = [gr.skip() if i == moved or i >= k else new[i] for i in range(MAX_OBJECTIVES)]
        return [*updates, mix_text(objectives, new)]

    def _preset(self, objectives, index: int):
        k = len(objectives)
        weights = one_hot(index, k).tolist() if index < k else [round(1 / k, 3)] * k
        return [*[weights[i] if i < k else gr.skip() for i in range(MAX_OBJECTIVES)], mix_text(objectives, weights)]

    def update_for(self, objectives: list[str], previous: list[str], visible: bool = True) -> list:
        """Updates for [state, *sliders, mix, *presets] after a policy change; same objectives keep their weights."""
        k = len(objectives)
        if list(objectives) == list(previous):
            # Same sliders: leave them alone (an update here could undo a move made meanwhile).
            return [gr.skip(), *[gr.update(visible=visible and i < k) for i in range(MAX_OBJECTIVES)],
                    gr.update(visible=visible), *[gr.skip()] * len(self.presets)]
        weights = self.start(k)
        sliders = [gr.update(visible=visible and i < k, label=display_name(objectives[i]) if i < k else None,
                             value=weights[i] if i < k else 0.0) for i in range(MAX_OBJECTIVES)]
        presets = [gr.update(visible=visible and i <= k, value=self._preset_label(objectives, i) if i <= k else None)
                   for i in range(len(self.presets))]
        return [list(objectives), *sliders, gr.update(value=mix_text(objectives, weights), visible=visible), *presets]

    @property
    def components(self) -> list:
        return [self.objectives, *self.sliders, self.mix, *self.presets]


def policy_choices(config: AppConfig) -> list[tuple[str, str]]:
    return [(c.label, c.value) for c in list_policies(config)]


def sampling_controls(config: AppConfig):
    with gr.Accordion("Sampling", open=False):
        with gr.Row():
            tokens = gr.Slider(8, config.max_new_tokens_limit, value=config.max_new_tokens, step=8,
                               label="Max new tokens")
            temperature = gr.Slider(0, 2, value=TEMPERATURE, step=0.05, label="Temperature", info="0 = greedy")
            seed = gr.Number(0, label="Seed", precision=0, minimum=0, info="same seed, same draw")
    return tokens, temperature, seed

