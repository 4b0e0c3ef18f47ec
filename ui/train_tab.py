"""The Train tab: start a run from a config in the background, stop it, and watch its curves and
live Pareto front. Process handling is ui/training.TrainingManager; the timer that refreshes this
tab while a run trains is wired in ui/layout.py."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from moodpo.errors import MoodpoError
from moodpo.plots import curves_figure
from ui.errors import user_errors
from ui.figures import empty_figure, progress_html
from ui.fronts import training_front_figure
from ui.settings import ADMIN_PASSWORD_ENV, AppConfig
from ui.training import CURVE_KEYS, TAB_EVAL_EVERY, TrainingManager
from ui.widgets import POLL_SECONDS, PRIVATE

NO_FRONT = "The live Pareto front appears after the first evaluation"


@dataclass(frozen=True)
class TrainTab:
    watch: gr.Dropdown
    timer: gr.Timer
    table: gr.Dataframe
    describe: Callable[[str | None], dict]  # run name -> updates for `outputs`
    inputs: list  # config, run name, alpha, steps, objectives, eval interval
    outputs: set  # status, progress bar, curves, front


def alpha_text(alpha: float | list[float]) -> str:
    return ", ".join(map(str, alpha)) if isinstance(alpha, list) else str(alpha)


def password_info(config: AppConfig) -> str:
    if config.admin_password:
        return "this is a public app: starting and stopping runs is for its admins"
    return f"training is off on this public app: it has no admin password ({ADMIN_PASSWORD_ENV})"


def run_view(config: AppConfig, trainer: TrainingManager, name: str | None) -> tuple[str, str, go.Figure, go.Figure]:
    """What the tab shows for a run: (status line, progress bar HTML, curves figure, live front figure)."""
    if not name:
        return "No run selected.", progress_html(0, 1, ""), empty_figure("Start a run, or choose one above"), \
            empty_figure("")
    try:
        state = trainer.status(name)
    except MoodpoError as e:  # e.g. the run folder was deleted while shown
        return html.escape(str(e)), progress_html(0, 1, ""), empty_figure(""), empty_figure("")
    exists = (config.runs_dir / name).exists()
    metrics = trainer.metrics(name) if exists else pd.DataFrame()
    keys = [*CURVE_KEYS, *[k for k in metrics.columns if k.startswith("objectives/") and k.endswith("/mean")]]
    figure = (curves_figure(metrics, keys, by="member") if len(metrics) else
              empty_figure("Loss and reward curves appear once the run logs its first step"))
    return (f"**{html.escape(name)}** · {state.state} · {html.escape(state.message)}",
            progress_html(state.step, state.max_steps or 1, f"{state.step} / {state.max_steps}"), figure,
            training_front_figure(config.runs_dir, name) if exists else empty_figure(NO_FRONT))


@dataclass(frozen=True)
class _Widgets:
    timer: gr.Timer
    config_name: gr.Dropdown
    run_name: gr.Textbox
    alpha: gr.Textbox
    steps: gr.Number
    objectives: gr.CheckboxGroup
    eval_every: gr.Number
    password: gr.Textbox | gr.State
    start: gr.Button
    stop: gr.Button
    watch: gr.Dropdown
    status: gr.Markdown
    bar: gr.HTML
    curves: gr.Plot
    front: gr.Plot
    table: gr.Dataframe
    refresh: gr.Button


def _layout(config: AppConfig, trainer: TrainingManager) -> _Widgets:
    configs = list(trainer.config_files())
    first = trainer.default_config()
    try:
        defaults = trainer.load(first)
        objective_choices = trainer.objective_choices(first)
        eval_every = trainer.eval_every(first)
    except MoodpoError:  # a broken config file: the user sees why once they choose it
        defaults, objective_choices, eval_every = None, [], TAB_EVAL_EVERY
    alpha = alpha_text(defaults.alpha) if defaults else "1.0"
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
                                       info=password_info(config)) if config.public else gr.State(None))
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
                    front = gr.Plot(empty_figure(NO_FRONT), label="Live front (in-training evaluations)",
                                    elem_id="train-front", min_width=300)
        table = gr.Dataframe(trainer.runs_table(), interactive=False, label="Runs in the runs folder",
                             buttons=["copy"])
        refresh = gr.Button("↻ Refresh the list", size="sm")
    return _Widgets(timer, config_name, run_name, alpha_box, steps, objectives, eval_box, password, start, stop, watch,
                    status, bar, curves, front, table, refresh)


def build_train_tab(config: AppConfig, trainer: TrainingManager) -> TrainTab:
    w = _layout(config, trainer)
    shown = (w.status, w.bar, w.curves, w.front)

    def describe(name):
        return dict(zip(shown, run_view(config, trainer, name)))

    @user_errors
    def choose_config(name):
        loaded = trainer.load(name)
        alpha_value = alpha_text(loaded.alpha)
        return (alpha_value, loaded.max_steps, gr.update(choices=trainer.objective_choices(name),
                                                         value=list(loaded.objectives)),
                trainer.suggest_name(name, alpha_value), trainer.eval_every(name))

    w.config_name.change(choose_config, [w.config_name], [w.alpha, w.steps, w.objectives, w.run_name, w.eval_every],
                         **PRIVATE)

    @user_errors
    def start_run(name, run, alpha_value, steps_value, objs, every, password_value):
        started = trainer.start(name, run, alpha_value, steps_value, objs, every, password=password_value)
        gr.Info(f"Started {html.escape(started)}: it trains in the background; the curves update every few seconds.")
        return {w.watch: gr.update(choices=trainer.run_names(), value=started), w.timer: gr.Timer(active=True),
                w.table: trainer.runs_table(), w.run_name: trainer.suggest_name(name, alpha_value)}

    @user_errors
    def stop_run(name, password_value):
        if not name:
            raise MoodpoError("choose the run to stop")
        gr.Info(html.escape(trainer.stop(name, password=password_value)))
        return describe(name)

    inputs = [w.config_name, w.run_name, w.alpha, w.steps, w.objectives, w.eval_every]
    w.start.click(start_run, [*inputs, w.password], {w.watch, w.timer, w.table, w.run_name}, **PRIVATE)
    w.stop.click(stop_run, [w.watch, w.password], set(shown), **PRIVATE)
    w.watch.change(user_errors(describe), [w.watch], set(shown), **PRIVATE)
    w.refresh.click(lambda: gr.update(value=trainer.runs_table()), None, [w.table], **PRIVATE)
    return TrainTab(w.watch, w.timer, w.table, describe, inputs, set(shown))
