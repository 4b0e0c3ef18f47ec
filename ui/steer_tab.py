"""The Steer tab: one policy, one prompt, a weight vector on sliders; the response, its scores
and the exact prefix the model saw. The handler is ui/generation.steer."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui.errors import user_errors
from ui.figures import scores_table
from ui.generation import steer
from ui.policies import PolicyStore
from ui.settings import AppConfig
from ui.widgets import (GENERATION_QUEUE, PRIVATE, QUICK, WeightControls, policy_choices,
                        sampling_controls)

EXAMPLE_IDS = ("p0007", "p0047", "p0137", "p0066")


@dataclass(frozen=True)
class SteerTab:
    policy: gr.Dropdown


def example_prompts() -> list[list[str]]:
    from moodpo.data import load_prompts

    by_id = {p.id: p.text for p in load_prompts("builtin", "all", seed=None)}
    return [[by_id[i]] for i in EXAMPLE_IDS if i in by_id]



def build_steer_tab(config: AppConfig, store: PolicyStore) -> SteerTab:
    objectives = store.objectives(config.policy)
    with gr.Tab("Steer", id="steer"):
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                refresh = gr.Button("↻ refresh", size="sm", render=False)
                policy = gr.Dropdown(policy_choices(config), value=config.policy, label="Policy", buttons=[refresh],
                                     info="the base model, a trained run, a checkpoint or a Rewarded Soups set")
                gr.Markdown("**Objective weights** · moving one slider rebalances the others")
                weights = WeightControls(objectives)
                tokens, temperature, seed = sampling_controls(config)
            with gr.Column(scale=3, min_width=360):
                prompt = gr.Textbox(label="Prompt", lines=3, max_lines=12, elem_id="steer-prompt",
                                    placeholder="Ask anything, e.g. How do airplanes stay in the air?",
                                    info=f"up to {config.max_prompt_chars:,} characters")
                generate = gr.Button("Generate", variant="primary", elem_id="steer-generate")
                response = gr.Textbox(label="Response", lines=8, max_lines=20, interactive=False,
                                      buttons=["copy"], elem_id="steer-response")
                status = gr.Markdown(elem_classes=["status-line"])
                scores = gr.Dataframe(scores_table(objectives, [1 / len(objectives)] * len(objectives), None),
                                      label="Scores of this response (higher is better)", interactive=False,
                                      elem_id="steer-scores")
                prefix = gr.Textbox(label="Exact prefix the model saw (its system message)", lines=2,
                                    interactive=False, buttons=["copy"], elem_id="steer-prefix")
                examples = example_prompts()
                if examples:
                    gr.Examples(examples, inputs=[prompt], label="Example prompts (everyday, borderline, harmful)")

    @user_errors
    def run(data: dict, progress=gr.Progress()):
        value = data[policy]
        k = len(store.objectives(value))
        for state in steer(store, config, value, data[prompt], weights.values(data)[:k], seed=data[seed],
                           max_new_tokens=data[tokens], temperature=data[temperature],
                           on_load=lambda message: progress(0, desc=message)):
            done = state["status"] == "done"
            yield {response: state["response"], prefix: state["prefix"],
                   scores: scores_table(state["objectives"], state["weights"], state["scores"]),
                   status: f"Done in {state['seconds']} s · seed {int(data[seed])}" if done else
                   "Scoring the response on every objective… (the first time loads the scorers)"
                   if state["status"] == "scoring" else "Generating…"}

    inputs = {policy, prompt, seed, tokens, temperature, *weights.sliders}
    outputs = {response, prefix, scores, status}
    for trigger in (generate.click, prompt.submit):
        trigger(run, inputs, outputs, concurrency_id=GENERATION_QUEUE, concurrency_limit=1, show_progress_on=[response],
                **PRIVATE)

    @user_errors
    def change_policy(value, previous):
        return weights.update_for(list(store.objectives(value)), previous)

    policy.change(change_policy, [policy, weights.objectives], weights.components, **PRIVATE)
    refresh.click(lambda: gr.update(choices=policy_choices(config)), None, [policy], **QUICK)
    return SteerTab(policy)

