"""The Compare tab: two answers to one prompt under the same seed, from two weight vectors on one
policy or from two policies at one weight vector. The handler is ui/generation.compare."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui.errors import user_errors
from ui.figures import empty_figure, scores_figure
from ui.generation import Side, compare, reorder
from ui.policies import PolicyStore
from ui.settings import AppConfig
from ui.widgets import GENERATION_QUEUE, PRIVATE, WeightControls, policy_choices, sampling_controls

MODE_WEIGHTS = "Two weight vectors · one policy"
MODE_POLICIES = "Two policies · one weight vector"


@dataclass(frozen=True)
class CompareTab:
    policy_a: gr.Dropdown
    policy_b: gr.Dropdown


def build_compare_tab(config: AppConfig, store: PolicyStore) -> CompareTab:
    objectives = store.objectives(config.policy)
    choices = policy_choices(config)
    with gr.Tab("Compare", id="compare"):
        mode = gr.Radio([MODE_WEIGHTS, MODE_POLICIES], value=MODE_WEIGHTS, label="Compare",
                        info="same prompt, same seed; only the weights or only the policy differ")
        with gr.Row():
            with gr.Column():
                policy_a = gr.Dropdown(choices, value=config.policy, label="Policy A", info="answers on the left")
                weights_a = WeightControls(objectives, presets=False, corner=0)
            with gr.Column():
                policy_b = gr.Dropdown(choices, value=config.policy, label="Policy B", interactive=False,
                                       info="the same as A when comparing two weight vectors")
                weights_b = WeightControls(objectives, presets=False, corner=-1)
                same_weights = gr.Markdown("B uses A's weights.", visible=False)
        prompt = gr.Textbox(label="Prompt", lines=2, max_lines=12, elem_id="compare-prompt",
                            info=f"up to {config.max_prompt_chars:,} characters")
        tokens, temperature, seed = sampling_controls(config)
        go_button = gr.Button("Compare", variant="primary", elem_id="compare-run")
        with gr.Row():
            response_a = gr.Textbox(label="Response A", lines=8, max_lines=20, interactive=False, elem_id="compare-a")
            response_b = gr.Textbox(label="Response B", lines=8, max_lines=20, interactive=False, elem_id="compare-b")
        with gr.Row():
            prefix_a = gr.Textbox(label="Prefix A", interactive=False, lines=1)
            prefix_b = gr.Textbox(label="Prefix B", interactive=False, lines=1)
        status = gr.Markdown(elem_classes=["status-line"])
        chart = gr.Plot(empty_figure("Scores appear here after a comparison"), label="Scores side by side")

    def sides(data: dict) -> tuple[Side, Side]:
        objs_a = list(store.objectives(data[policy_a]))
        wa = weights_a.values(data)[:len(objs_a)]
        a = Side(data[policy_a], wa)
        if data[mode] == MODE_WEIGHTS:
            return a, Side(data[policy_a], weights_b.values(data)[:len(objs_a)])
        objs_b = list(store.objectives(data[policy_b]))
        return a, Side(data[policy_b], reorder(wa, objs_a, objs_b))

    @user_errors
    def run(data: dict, progress=gr.Progress()):
        a, b = sides(data)
        for state in compare(store, config, data[prompt], a, b, seed=data[seed], max_new_tokens=data[tokens],
                             temperature=data[temperature], on_load=lambda message: progress(0, desc=message)):
            out = {response_a: state["a"]["response"], response_b: state["b"]["response"],
                   prefix_a: state["a"]["prefix"], prefix_b: state["b"]["prefix"],
                   status: "Scoring both responses…" if state["status"] == "scoring" else "Generating…"}
            if state["status"] == "done":
                out[status] = f"Done in {state['seconds']} s · seed {int(data[seed])} for both"
                out[chart] = scores_figure(state["objectives"], {"A": state["a"]["scores"], "B": state["b"]["scores"]})
            yield out

    inputs = {mode, policy_a, policy_b, prompt, seed, tokens, temperature, *weights_a.sliders, *weights_b.sliders}
    go_button.click(run, inputs, {response_a, response_b, prefix_a, prefix_b, status, chart},
                    concurrency_id=GENERATION_QUEUE, concurrency_limit=1, show_progress_on=[response_a, response_b],
                    **PRIVATE)

    @user_errors
    def change(mode_value, value, previous_a, previous_b):
        objs = list(store.objectives(value))
        two_weights = mode_value == MODE_WEIGHTS
        return [*weights_a.update_for(objs, previous_a),
                *weights_b.update_for(objs, previous_b, visible=two_weights),
                gr.update(interactive=False, value=value, info="the same as A when comparing two weight vectors")
                if two_weights else gr.update(interactive=True, info="compared at A's weights"),
                gr.update(visible=not two_weights)]

    change_inputs = [mode, policy_a, weights_a.objectives, weights_b.objectives]
    change_outputs = [*weights_a.components, *weights_b.components, policy_b, same_weights]
    policy_a.change(change, change_inputs, change_outputs, **PRIVATE)
    mode.change(change, change_inputs, change_outputs, **PRIVATE)
    return CompareTab(policy_a, policy_b)

