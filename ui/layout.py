"""The Gradio app: Steer, Compare, Pareto, Train and Vote tabs over the plain handlers in ui/.

Event handlers here only map component values to handler arguments and results back to
components. Every UI event is private (`api_visibility="private"`); the public API is the
typed endpoints in ui/api.py. Generation events, UI and API alike, share one concurrency queue,
because one process holds one copy of each model.
"""

from __future__ import annotations

import functools
import html

import gradio as gr
import pandas as pd

from moodpo.conditioning import display_name
from moodpo.errors import MoodpoError
from moodpo.plots import curves_figure
from moodpo.weights import WEIGHT_STEP, one_hot
from ui.api import register_api
from ui.errors import user_errors, warn
from ui.figures import empty_figure, progress_html, scores_figure, scores_table, weights_text
from ui.fronts import (front_figure, hypervolume_table, list_eval_sources, load_fronts, point_samples, points_table,
                       training_front_figure)
from ui.generation import Side, compare, reorder, steer
from ui.policies import PolicyStore, list_policies
from ui.settings import ADMIN_PASSWORD_ENV, MAX_OBJECTIVES, SHIPPED_POLICY, AppConfig
from ui.training import CURVE_KEYS, TAB_EVAL_EVERY, TrainingManager
from ui.voting_tab import attach_votes, build_vote_tab

GENERATION_QUEUE = "generation"
PRIVATE = dict(api_visibility="private")
QUICK = dict(api_visibility="private", queue=False, show_progress="hidden")
POLL_SECONDS = 2.0
PARETO_DEFAULT_RUNS = 8
EXAMPLE_IDS = ("p0007", "p0047", "p0137", "p0066")
MODE_WEIGHTS = "Two weight vectors · one policy"
MODE_POLICIES = "Two policies · one weight vector"

INTRO = """\
# MO-ODPO · one model, steerable across objectives
One policy is trained with weights over several objectives written into its system prompt
([MO-ODPO, arXiv 2503.00295](https://arxiv.org/abs/2503.00295)). Set the weights and the same
model answers more helpfully, more harmlessly, or anywhere in between. **Steer** one response,
**Compare** two, see the **Pareto** front of each run, **Train** a run of your own, or **Vote** on
blinded pairs to check the reward models against people.
"""

CSS = """
.intro p { margin: 0.2em 0 0.6em 0; }
.status-line { min-height: 1.5em; color: var(--body-text-color-subdued); }
.preset-row button { min-width: 0 !important; }
.train-progress progress { appearance: none; height: 0.7em; border: none; border-radius: 0.35em; overflow: hidden;
                           background: var(--neutral-200); }
.train-progress progress::-webkit-progress-bar { background: var(--neutral-200); }
.train-progress progress::-webkit-progress-value { background: var(--color-accent); }
.train-progress progress::-moz-progress-bar { background: var(--color-accent); }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate")


def example_prompts() -> list[list[str]]:
    from moodpo.data import load_prompts

    by_id = {p.id: p.text for p in load_prompts("builtin", "all", seed=None)}
    return [[by_id[i]] for i in EXAMPLE_IDS if i in by_id]


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


def _mix(objectives: list[str], values: list[float]) -> str:
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
        self.mix = gr.Markdown(_mix(list(objectives), start), elem_classes=["status-line"])
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
        return [*updates, _mix(objectives, new)]

    def _preset(self, objectives, index: int):
        k = len(objectives)
        weights = one_hot(index, k).tolist() if index < k else [round(1 / k, 3)] * k
        return [*[weights[i] if i < k else gr.skip() for i in range(MAX_OBJECTIVES)], _mix(objectives, weights)]

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
        return [list(objectives), *sliders, gr.update(value=_mix(objectives, weights), visible=visible), *presets]

    @property
    def components(self) -> list:
        return [self.objectives, *self.sliders, self.mix, *self.presets]


def _policy_choices(config: AppConfig) -> list[tuple[str, str]]:
    return [(c.label, c.value) for c in list_policies(config)]


def _sampling_controls(config: AppConfig):
    with gr.Accordion("Sampling", open=False):
        with gr.Row():
            tokens = gr.Slider(8, config.max_new_tokens_limit, value=config.max_new_tokens, step=8,
                               label="Max new tokens")
            temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature", info="0 = greedy")
            seed = gr.Number(0, label="Seed", precision=0, minimum=0, info="same seed, same draw")
    return tokens, temperature, seed


def _steer_tab(config: AppConfig, store: PolicyStore) -> dict:
    objectives = store.objectives(config.policy)
    with gr.Tab("Steer", id="steer"):
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                refresh = gr.Button("↻ refresh", size="sm", render=False)
                policy = gr.Dropdown(_policy_choices(config), value=config.policy, label="Policy", buttons=[refresh],
                                     info="the base model, a trained run, a checkpoint or a Rewarded Soups set")
                gr.Markdown("**Objective weights** · moving one slider rebalances the others")
                weights = WeightControls(objectives)
                tokens, temperature, seed = _sampling_controls(config)
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
    refresh.click(lambda: gr.update(choices=_policy_choices(config)), None, [policy], **QUICK)
    return {"policy": policy}


def _compare_tab(config: AppConfig, store: PolicyStore) -> dict:
    objectives = store.objectives(config.policy)
    choices = _policy_choices(config)
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
        tokens, temperature, seed = _sampling_controls(config)
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
    return {"policy_a": policy_a, "policy_b": policy_b}


def _pareto_tab(config: AppConfig) -> dict:
    with gr.Tab("Pareto", id="pareto"):
        gr.Markdown("Each run's evaluated weight points, scored on every objective: the larger, outlined "
                    "points are its front. Pick a row below the plot to read that point's sample responses.")
        refresh = gr.Button("↻ refresh", size="sm", render=False)
        runs = gr.Dropdown([], multiselect=True, label="Runs", buttons=[refresh],
                           info="runs and evaluation folders under the runs folder that have eval data")
        with gr.Row():
            x = gr.Dropdown([], label="x objective", scale=1)
            y = gr.Dropdown([], label="y objective", scale=1)
        plot = gr.Plot(empty_figure("Choose runs with evaluation data"), label="Pareto fronts", elem_id="pareto-plot")
        with gr.Row():
            hv = gr.Dataframe(pd.DataFrame(columns=["run", "α", "eval", "points", "hypervolume"]), interactive=False,
                              label="Hypervolume per run (one shared reference point)", scale=3, elem_id="pareto-hv")
            ref = gr.Markdown()
        points = gr.Dataframe(pd.DataFrame(columns=["run", "system"]), interactive=False, max_height=300,
                              label="Evaluated points: select a row to read its sample responses",
                              elem_id="pareto-points")
        samples = gr.Dataframe(pd.DataFrame(columns=["prompt", "category", "response", "scores", "audit"]), interactive=False,
                               wrap=True, label="Sample responses at the chosen point", elem_id="pareto-samples")

    def show(names, x_value, y_value, quiet: bool = False):
        fronts = load_fronts(config.runs_dir, list(names or []))
        if not quiet:
            warn(fronts.warnings())
        table, reference = hypervolume_table(fronts)
        objs = fronts.objectives
        x_value = x_value if x_value in objs else (objs[0] if objs else None)
        y_value = y_value if y_value in objs and y_value != x_value else next((o for o in objs if o != x_value), None)
        ref_text = ("Reference point: " + ", ".join(f"{o} = {r:.3f}" for o, r in zip(objs, reference))
                    if reference else "")
        return {plot: front_figure(fronts, x_value, y_value), hv: table, ref: ref_text, points: points_table(fronts),
                x: gr.update(choices=objs, value=x_value), y: gr.update(choices=objs, value=y_value)}

    outputs = {plot, hv, ref, points, x, y}
    for trigger in (runs.change, x.input, y.input):
        trigger(user_errors(show), [runs, x, y], outputs, **PRIVATE)

    def refresh_list(names):
        available = list_eval_sources(config.runs_dir)
        return gr.update(choices=available, value=[n for n in names or [] if n in available])

    refresh.click(refresh_list, [runs], [runs], **PRIVATE)

    @user_errors
    def choose(table: pd.DataFrame, evt: gr.SelectData):
        row = table.iloc[evt.index[0]]
        objs = [c[2:] for c in table.columns if c.startswith("w_")]
        found = point_samples(config.runs_dir, str(row["run"]), str(row["system"]),
                              [row[f"w_{o}"] for o in objs], objs)
        if found.empty:
            gr.Warning("No sample responses were saved for this point.")
        return found

    points.select(choose, [points], [samples], **PRIVATE)
    return {"runs": runs, "x": x, "y": y, "show": show, "outputs": outputs}


def default_fronts(available: list[str]) -> list[str]:
    """The fronts the Pareto tab opens with: the shipped comparison (MO-ODPO, soups and base on the
    shipped policy's objectives) where it exists, else the first few eval sources."""
    shipped = SHIPPED_POLICY.rsplit("/", 1)[0] + "/"
    return [n for n in available if n.startswith(shipped)] or available[:PARETO_DEFAULT_RUNS]


def _alpha_text(alpha: float | list[float]) -> str:
    return ", ".join(map(str, alpha)) if isinstance(alpha, list) else str(alpha)


def _train_password_info(config: AppConfig) -> str:
    if config.admin_password:
        return "this is a public app: starting and stopping runs is for its admins"
    return f"training is off on this public app: it has no admin password ({ADMIN_PASSWORD_ENV})"


def _train_tab(config: AppConfig, trainer: TrainingManager) -> dict:
    configs = list(trainer.config_files())
    first = trainer.default_config()
    try:
        defaults = trainer.load(first)
        objective_choices = trainer.objective_choices(first)
        eval_every = trainer.eval_every(first)
    except MoodpoError:  # a broken config file: the user sees why once they choose it
        defaults, objective_choices, eval_every = None, [], TAB_EVAL_EVERY
    alpha = _alpha_text(defaults.alpha) if defaults else "1.0"
    with gr.Tab("Train", id="train"):
        # Inside the tab: a Timer placed directly in gr.Tabs makes gradio draw later tabs twice.
        timer = gr.Timer(POLL_SECONDS, active=False)
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                config_name = gr.Dropdown(configs, value=first, label="Config", elem_id="train-config",
                                          info=f"a YAML file in {config.configs_dir}/ (the working recipes first, "
                                               "then experiments/ that did not work); the fields below override it")
                gr.Markdown(f"Base model: `{config.model}` · runs are written to `{config.runs_dir}/`")
                run_name = gr.Textbox(trainer.suggest_name(first, alpha), label="Run name",
                                      info=f"a new folder in {config.runs_dir}/")
                alpha_box = gr.Textbox(alpha, label="Alpha", info="Dirichlet concentration: small → corner weights, "
                                       "large → balanced; one value or one per objective")
                steps = gr.Number(defaults.max_steps if defaults else 100, label="Steps", precision=0, minimum=1)
                objectives = gr.CheckboxGroup(objective_choices, value=list(defaults.objectives) if defaults else [],
                                              label="Objectives")
                eval_box = gr.Number(eval_every, label="Evaluate every N steps", precision=0, minimum=0,
                                     elem_id="train-eval-every",
                                     info="a small weight grid on a few held-out prompts, drawn as the live front "
                                          "(0: off)")
                # Space mode only: training is an admin action there (checked again in TrainingManager).
                password = (gr.Textbox(label="Admin password", type="password", elem_id="train-admin-password",
                                       info=_train_password_info(config)) if config.public else gr.State(None))
                with gr.Row():
                    start = gr.Button("Start training", variant="primary", elem_id="train-start")
                    stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
            with gr.Column(scale=3, min_width=360):
                watch = gr.Dropdown(trainer.run_names(), label="Run", info="the run shown below")
                status = gr.Markdown(elem_classes=["status-line"], elem_id="train-status")
                bar = gr.HTML(progress_html(0, 1, ""), elem_classes=["train-progress"], elem_id="train-progress")
                with gr.Row():
                    curves = gr.Plot(empty_figure("Loss and reward curves appear once a run logs its first step"),
                                     label="Training curves", elem_id="train-curves", min_width=300)
                    front = gr.Plot(empty_figure("The live Pareto front appears after the first evaluation"),
                                    label="Live front (in-training evaluations)", elem_id="train-front",
                                    min_width=300)
        table = gr.Dataframe(trainer.runs_table(), interactive=False, label="Runs in the runs folder",
                             buttons=["copy"])
        refresh = gr.Button("↻ Refresh the list", size="sm")

    def describe(name):
        if not name:
            return {status: "No run selected.", bar: progress_html(0, 1, ""),
                    curves: empty_figure("Start a run, or choose one above"), front: empty_figure("")}
        try:
            state = trainer.status(name)
        except MoodpoError as e:  # e.g. the run folder was deleted while shown
            return {status: html.escape(str(e)), bar: progress_html(0, 1, ""), curves: empty_figure(""),
                    front: empty_figure("")}
        exists = (config.runs_dir / name).exists()
        metrics = trainer.metrics(name) if exists else pd.DataFrame()
        keys = [*CURVE_KEYS, *[k for k in metrics.columns if k.startswith("objectives/") and k.endswith("/mean")]]
        figure = (curves_figure(metrics, keys) if len(metrics) else
                  empty_figure("Loss and reward curves appear once the run logs its first step"))
        return {status: f"**{html.escape(name)}** · {state.state} · {html.escape(state.message)}",
                bar: progress_html(state.step, state.max_steps or 1, f"{state.step} / {state.max_steps}"),
                curves: figure,
                front: training_front_figure(config.runs_dir, name) if exists else
                empty_figure("The live Pareto front appears after the first evaluation")}

    @user_errors
    def choose_config(name):
        loaded = trainer.load(name)
        alpha_value = _alpha_text(loaded.alpha)
        return (alpha_value, loaded.max_steps, gr.update(choices=trainer.objective_choices(name),
                                                         value=list(loaded.objectives)),
                trainer.suggest_name(name, alpha_value), trainer.eval_every(name))

    config_name.change(choose_config, [config_name], [alpha_box, steps, objectives, run_name, eval_box], **PRIVATE)

    @user_errors
    def start_run(name, run, alpha_value, steps_value, objs, every, password_value):
        started = trainer.start(name, run, alpha_value, steps_value, objs, every, password=password_value)
        gr.Info(f"Started {html.escape(started)}: it trains in the background; the curves update every few seconds.")
        return {watch: gr.update(choices=trainer.run_names(), value=started), timer: gr.Timer(active=True),
                table: trainer.runs_table(), run_name: trainer.suggest_name(name, alpha_value)}

    @user_errors
    def stop_run(name, password_value):
        if not name:
            raise MoodpoError("choose the run to stop")
        gr.Info(html.escape(trainer.stop(name, password=password_value)))
        return describe(name)

    start.click(start_run, [config_name, run_name, alpha_box, steps, objectives, eval_box, password],
                {watch, timer, table, run_name}, **PRIVATE)
    stop.click(stop_run, [watch, password], {status, bar, curves, front}, **PRIVATE)
    watch.change(user_errors(describe), [watch], {status, bar, curves, front}, **PRIVATE)
    refresh.click(lambda: gr.update(value=trainer.runs_table()), None, [table], **PRIVATE)
    return {"watch": watch, "timer": timer, "table": table, "describe": describe,
            "inputs": [config_name, run_name, alpha_box, steps, objectives, eval_box],
            "outputs": {status, bar, curves, front}}


def _live_updates(demo: gr.Blocks, config: AppConfig, trainer: TrainingManager, pareto: dict, train: dict,
                  pickers: list[gr.Dropdown]) -> None:
    """Page load fills the lists; while a run trains, the timer refreshes Train and Pareto, then stops itself."""
    timer, watch = train["timer"], train["watch"]
    runs, x, y = pareto["runs"], pareto["x"], pareto["y"]

    def on_load(current_watch):
        available = list_eval_sources(config.runs_dir)
        names = default_fronts(available)
        active = trainer.active_runs()
        watched = current_watch or (active[0] if active else next(iter(trainer.run_names()), None))
        out = {p: gr.update(choices=_policy_choices(config)) for p in pickers}
        out.update({runs: gr.update(choices=available, value=names), timer: gr.Timer(active=bool(active)),
                    watch: gr.update(choices=trainer.run_names(), value=watched), train["table"]: trainer.runs_table()})
        out.update(train["describe"](watched))
        return out

    demo.load(on_load, [watch], {*pickers, runs, timer, watch, train["table"], *train["outputs"]}, **PRIVATE)

    def tick(watched, names, x_value, y_value):
        active = trainer.active_runs()
        out = {timer: gr.Timer(active=bool(active)), train["table"]: trainer.runs_table()}
        if watched:
            out.update(train["describe"](watched))
        available = list_eval_sources(config.runs_dir)
        live = [n for n in active if n in available]
        selected = list(dict.fromkeys([*(names or []), *live]))
        if selected != list(names or []):
            out[runs] = gr.update(choices=available, value=selected)  # its change event redraws the fronts
        elif live:
            try:
                out.update(pareto["show"](selected, x_value, y_value, quiet=True))
            except MoodpoError:  # a selected run vanished; the next explicit refresh says so
                pass
        return out

    timer.tick(tick, [watch, runs, x, y], {timer, train["table"], runs, *train["outputs"], *pareto["outputs"]},
               **PRIVATE, show_progress="hidden")


def loading_text(store: PolicyStore) -> str:
    """What the status line under the intro says: loading, a failed preload, or nothing."""
    if store.loading:
        return "⏳ Loading the model and scorers… the first answer waits for this."
    return f"⚠️ {html.escape(store.preload_error, quote=False)}" if store.preload_error else ""


def _loading_status(demo: gr.Blocks, store: PolicyStore) -> None:
    """A line that says "loading…" while the start-up preload runs; its timer runs only until then."""
    status = gr.Markdown(elem_classes=["status-line"], elem_id="app-loading")
    timer = gr.Timer(POLL_SECONDS, active=False)

    def update():
        text = loading_text(store)
        return {status: gr.update(value=text, visible=bool(text)), timer: gr.Timer(active=store.loading)}

    demo.load(update, None, {status, timer}, **QUICK)
    timer.tick(update, None, {status, timer}, **QUICK)


def build_demo(config: AppConfig, *, store: PolicyStore | None = None,
               trainer: TrainingManager | None = None, votes=None) -> gr.Blocks:
    """The whole app for one process: one PolicyStore and one TrainingManager shared by all sessions."""
    store = store or PolicyStore(config)
    trainer = trainer or TrainingManager(config)
    with gr.Blocks(title="MO-ODPO · steerable alignment") as demo:
        gr.Markdown(INTRO, elem_classes=["intro"])
        _loading_status(demo, store)
        with gr.Tabs() as tabs:
            steer_tab = _steer_tab(config, store)
            compare_tab = _compare_tab(config, store)
            pareto_tab = _pareto_tab(config)
            train_tab = _train_tab(config, trainer)
            vote_tab = build_vote_tab(config, store, votes, generation_queue=GENERATION_QUEUE)
        _live_updates(demo, config, trainer, pareto_tab, train_tab,
                      [steer_tab["policy"], compare_tab["policy_a"], compare_tab["policy_b"]])
        register_api(config, store, GENERATION_QUEUE)
        attach_votes(demo, vote_tab, tabs)
    demo.store, demo.trainer, demo.votes = store, trainer, vote_tab.votes
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """demo.launch with the app's theme and CSS (gradio 6 takes them at launch)."""
    return demo.launch(theme=theme(), css=CSS, **kwargs)
