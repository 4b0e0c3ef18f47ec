"""The Pareto tab: the evaluated weight points of the chosen runs, their fronts and hypervolumes,
and the sample responses at a chosen point. The handlers are in ui/fronts.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from ui.errors import user_errors, warn
from ui.figures import empty_figure
from ui.fronts import front_figure, hypervolume_table, list_eval_sources, load_fronts, point_samples, points_table
from ui.settings import SHIPPED_POLICY, AppConfig
from ui.widgets import PRIVATE

PARETO_DEFAULT_RUNS = 8


@dataclass(frozen=True)
class ParetoTab:
    runs: gr.Dropdown
    x: gr.Dropdown
    y: gr.Dropdown
    show: Callable[..., dict]  # (names, x, y, quiet=False) -> updates for `outputs`
    outputs: set


def build_pareto_tab(config: AppConfig) -> ParetoTab:
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
    return ParetoTab(runs, x, y, show, outputs)


def default_fronts(available: list[str]) -> list[str]:
    """The fronts the Pareto tab opens with: the shipped comparison (MO-ODPO, soups and base on the
    shipped policy's objectives) where it exists, else the first few eval sources."""
    shipped = SHIPPED_POLICY.rsplit("/", 1)[0] + "/"
    return [n for n in available if n.startswith(shipped)] or available[:PARETO_DEFAULT_RUNS]

