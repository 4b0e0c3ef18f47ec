"""The Gradio app: the Steer, Compare, Pareto, Train and Vote tabs (one module each, ui/*_tab.py),
the page-load fill and the timer that refreshes Train and Pareto while a run trains.

Each tab module lays out its widgets, maps component values to the plain handlers in ui/ and
returns a small typed handle; this module wires the handles together. The theme and CSS are in
ui/style.py, the shared widgets and event options in ui/widgets.py.
"""

from __future__ import annotations

import html

import gradio as gr

from moodpo.errors import MoodpoError
from ui.api import register_api
from ui.compare_tab import build_compare_tab
from ui.fronts import list_eval_sources
from ui.pareto_tab import ParetoTab, build_pareto_tab, default_fronts
from ui.policies import PolicyStore
from ui.settings import AppConfig
from ui.steer_tab import build_steer_tab
from ui.style import CSS, theme
from ui.train_tab import TrainTab, build_train_tab
from ui.training import TrainingManager
from ui.voting_tab import attach_votes, build_vote_tab
from ui.widgets import GENERATION_QUEUE, POLL_SECONDS, PRIVATE, QUICK, policy_choices

INTRO = """\
# MO-ODPO · one model, steerable across objectives
One policy is trained with weights over several objectives written into its system prompt
([MO-ODPO, arXiv 2503.00295](https://arxiv.org/abs/2503.00295)). Set the weights and the same
model answers more helpfully, more harmlessly, or anywhere in between. **Steer** one response,
**Compare** two, see the **Pareto** front of each run, **Train** a run of your own, or **Vote** on
blinded pairs to check the reward models against people.
"""


def _live_updates(demo: gr.Blocks, config: AppConfig, trainer: TrainingManager, pareto: ParetoTab, train: TrainTab,
                  pickers: list[gr.Dropdown]) -> None:
    """Page load fills the lists; while a run trains, the timer refreshes Train and Pareto, then stops itself."""
    timer, watch, table = train.timer, train.watch, train.table
    runs, x, y = pareto.runs, pareto.x, pareto.y

    def on_load(current_watch):
        available = list_eval_sources(config.runs_dir)
        names = default_fronts(available)
        active = trainer.active_runs()
        watched = current_watch or (active[0] if active else next(iter(trainer.run_names()), None))
        out = {p: gr.update(choices=policy_choices(config)) for p in pickers}
        out.update({runs: gr.update(choices=available, value=names), timer: gr.Timer(active=bool(active)),
                    watch: gr.update(choices=trainer.run_names(), value=watched), table: trainer.runs_table()})
        out.update(train.describe(watched))
        return out

    demo.load(on_load, [watch], {*pickers, runs, timer, watch, table, *train.outputs}, **PRIVATE)

    def tick(watched, names, x_value, y_value):
        active = trainer.active_runs()
        out = {timer: gr.Timer(active=bool(active)), table: trainer.runs_table()}
        if watched:
            out.update(train.describe(watched))
        available = list_eval_sources(config.runs_dir)
        live = [n for n in active if n in available]
        selected = list(dict.fromkeys([*(names or []), *live]))
        if selected != list(names or []):
            out[runs] = gr.update(choices=available, value=selected)  # its change event redraws the fronts
        elif live:
            try:
                out.update(pareto.show(selected, x_value, y_value, quiet=True))
            except MoodpoError:  # a selected run vanished; the next explicit refresh says so
                pass
        return out

    timer.tick(tick, [watch, runs, x, y], {timer, table, runs, *train.outputs, *pareto.outputs},
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
            steer_tab = build_steer_tab(config, store)
            compare_tab = build_compare_tab(config, store)
            pareto_tab = build_pareto_tab(config)
            train_tab = build_train_tab(config, trainer)
            vote_tab = build_vote_tab(config, store, votes, generation_queue=GENERATION_QUEUE)
        _live_updates(demo, config, trainer, pareto_tab, train_tab,
                      [steer_tab.policy, compare_tab.policy_a, compare_tab.policy_b])
        register_api(config, store, GENERATION_QUEUE)
        attach_votes(demo, vote_tab, tabs)
    demo.store, demo.trainer, demo.votes = store, trainer, vote_tab.votes
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """demo.launch with the app's theme and CSS (gradio 6 takes them at launch)."""
    return demo.launch(theme=theme(), css=CSS, **kwargs)
