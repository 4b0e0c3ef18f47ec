import itertools

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from moodpo.errors import MoodpoError
from moodpo.plots import (
    curves_figure,
    decline_figure,
    eval_objectives,
    pairwise_figures,
    pareto_figure,
    wilson_interval,
    write_html,
)


def eval_table(objectives, systems=("mo-odpo", "rewarded-soups"), n=4, steps=None, ci=True):
    """A small eval table on the simplex lattice with step 1/n, scores equal to sqrt(weights)."""
    k = len(objectives)
    grid = np.array([c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n]) / n
    rows = []
    for offset, system in enumerate(systems):
        for step in steps or [None]:
            for w in grid:
                row = {"system": system}
                row.update({f"w_{o}": wk for o, wk in zip(objectives, w)})
                for o, wk in zip(objectives, w):
                    row[o] = np.sqrt(wk) - 0.1 * offset
                    if ci:
                        row[f"{o}_lo"], row[f"{o}_hi"] = row[o] - 0.05, row[o] + 0.05
                row["length"] = 100.0
                if step is not None:
                    row["step"] = step
                rows.append(row)
    return pd.DataFrame(rows)


def test_eval_objectives_reads_weight_columns():
    df = eval_table(["helpful", "harmless"])
    assert eval_objectives(df) == ["helpful", "harmless"]


def test_pareto_figure_one_trace_per_system_with_hover_weights():
    df = eval_table(["helpful", "harmless"])
    fig = pareto_figure(df, x="helpful", y="harmless")
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["mo-odpo", "rewarded-soups"]
    trace = fig.data[0]
    assert trace.mode == "lines+markers"
    assert len(trace.x) == 5
    assert "weights: helpful=0.25, harmless=0.75" in "".join(trace.hovertext)
    assert "[" in trace.hovertext[0] and "length: 100" in trace.hovertext[0]
    np.testing.assert_allclose(trace.error_x.array, 0.05)
    np.testing.assert_allclose(trace.error_y.arrayminus, 0.05)
    assert fig.layout.xaxis.title.text == "helpful"


def test_pareto_figure_orders_points_by_weight():
    df = eval_table(["a", "b"]).sample(frac=1.0, random_state=0)
    trace = pareto_figure(df, x="a", y="b").data[0]
    assert list(trace.x) == sorted(trace.x)


def test_pareto_figure_emphasises_front_points():
    df = pd.DataFrame(
        {
            "system": ["s"] * 3,
            "w_a": [0.0, 0.5, 1.0],
            "w_b": [1.0, 0.5, 0.0],
            "a": [0.5, 0.2, 1.0],
            "b": [1.0, 0.2, 0.0],  # (0.2, 0.2) is dominated by (0.5, 1.0) in this plane
        }
    )
    trace = pareto_figure(df, x="a", y="b").data[0]
    sizes = list(trace.marker.size)
    assert sizes[0] == sizes[2] > sizes[1]
    assert trace.error_x is None or trace.error_x.array is None


def test_pareto_figure_live_table_plots_latest_step():
    df = eval_table(["a", "b"], steps=[10, 20])
    df.loc[df["step"] == 20, "a"] += 1.0
    fig = pareto_figure(df, x="a", y="b")
    assert len(fig.data) == 2
    assert len(fig.data[0].x) == 5
    assert min(fig.data[0].x) >= 1.0
    assert "step: 20" in fig.data[0].hovertext[0]


def test_pareto_figure_three_objectives_markers_only():
    df = eval_table(["a", "b", "c"])
    fig = pareto_figure(df, x="a", y="c")
    assert len(fig.data) == 2
    assert fig.data[0].mode == "markers"
    assert "a=" in fig.data[0].hovertext[0] and "c=" in fig.data[0].hovertext[0]


def test_pareto_figure_empty_table():
    df = eval_table(["a", "b"]).iloc[:0]
    fig = pareto_figure(df, x="a", y="b")
    assert len(fig.data) == 0


def test_pareto_figure_single_point():
    df = eval_table(["a", "b"], systems=["s"]).iloc[:1]
    fig = pareto_figure(df, x="a", y="b")
    assert len(fig.data) == 1 and len(fig.data[0].x) == 1


def test_pareto_figure_unknown_objective():
    with pytest.raises(MoodpoError, match="objectives are"):
        pareto_figure(eval_table(["a", "b"]), x="a", y="nope")


def test_pairwise_figures_three_objectives():
    df = eval_table(["a", "b", "c"], systems=["x", "y", "z"])
    fig = pairwise_figures(df, ["a", "b", "c"])
    assert len(fig.data) == 3 * 3  # 3 pairs x 3 systems
    assert sum(t.showlegend for t in fig.data) == 3
    assert {t.legendgroup for t in fig.data} == {"x", "y", "z"}
    assert [a.text for a in fig.layout.annotations] == ["b vs a", "c vs a", "c vs b"]
    # Same system, same colour in every subplot.
    assert len({t.marker.color for t in fig.data if t.name == "x"}) == 1


def test_pairwise_figures_four_objectives_grid():
    fig = pairwise_figures(eval_table(["a", "b", "c", "d"], n=2, ci=False))
    assert len(fig.data) == 6 * 2
    assert fig.layout.xaxis6.title.text == "c"


def test_pairwise_figures_needs_two_objectives():
    with pytest.raises(MoodpoError):
        pairwise_figures(eval_table(["a", "b"]), ["a"])


def test_curves_figure_one_subplot_per_key():
    metrics = pd.DataFrame(
        [
            {"step": 1, "loss": 0.69, "rewards/margins": 0.0},
            {"step": 2, "loss": 0.60},
            {"step": 3, "loss": 0.50, "rewards/margins": 0.3},
        ]
    )
    fig = curves_figure(metrics, ["loss", "rewards/margins", "objective/kl"])
    assert len(fig.data) == 3
    assert list(fig.data[0].x) == [1, 2, 3]
    assert list(fig.data[1].x) == [1, 3]
    assert len(fig.data[2].x) == 0  # not logged yet
    assert [a.text for a in fig.layout.annotations] == ["loss", "rewards/margins", "objective/kl"]


def test_curves_figure_by_member_one_named_trace_each():
    metrics = pd.DataFrame([{"step": 1, "loss": 0.7, "member": "a"}, {"step": 2, "loss": 0.6, "member": "a"},
                            {"step": 1, "loss": 0.5, "member": "b"}])
    fig = curves_figure(metrics, ["loss", "objective/kl"], by="member")
    assert [(t.name, list(t.x)) for t in fig.data] == [("a", [1, 2]), ("b", [1]), ("a", []), ("b", [])]
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    assert len(curves_figure(metrics.drop(columns="member"), ["loss"], by="member").data) == 1


def test_curves_figure_without_step_column_and_empty_frame():
    fig = curves_figure(pd.DataFrame({"loss": [1.0, 0.5]}), ["loss"])
    assert list(fig.data[0].x) == [0, 1]
    assert len(curves_figure(pd.DataFrame(), ["loss"]).data[0].x) == 0


def test_curves_figure_needs_keys():
    with pytest.raises(MoodpoError):
        curves_figure(pd.DataFrame({"loss": [1.0]}), [])


def test_write_html_standalone(tmp_path):
    fig = pairwise_figures(eval_table(["a", "b", "c"], n=2))
    out = write_html(fig, tmp_path / "plots" / "front.html")
    assert out == tmp_path / "plots" / "front.html"
    text = out.read_text(encoding="utf-8")
    assert "plotly" in text.lower()
    assert '<script src="https://cdn.plot.ly' not in text  # plotly.js inlined: opens offline
    assert len(text) > 1_000_000
    assert [p.name for p in out.parent.iterdir()] == ["front.html"]


def test_latest_step_keeps_systems_without_steps():
    from moodpo.plots import _latest_step

    df = pd.DataFrame({"system": ["run", "run", "base", "base"], "step": [1, 2, None, None]})
    kept = _latest_step(df)
    assert kept["system"].tolist() == ["run", "base", "base"]


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(np.array([0, 5, 10]), np.array([10, 10, 10]))
    # Known values for n = 10 at z = 1.96: 0/10 -> [0, 0.278], 5/10 -> [0.237, 0.763], 10/10 -> [0.722, 1].
    assert np.allclose(lo, [0.0, 0.2366, 0.7225], atol=1e-3) and np.allclose(hi, [0.2775, 0.7634, 1.0], atol=1e-3)
    lo, hi = wilson_interval(np.array([0]), np.array([0]))
    assert lo[0] == 0.0 and hi[0] <= 1.0


def test_decline_figure_pools_weights_and_draws_a_panel_per_category():
    rows = []
    for system, rate in (("moodpo", 0.5), ("base", 0.0)):
        for w in (0.0, 0.5, 1.0):
            rows.append({"system": system, "category": "all", "n": 20, "decline_rate": rate, "w_harm": w})
            for category, n in (("harmful", 4), ("everyday", 16)):
                rows.append({"system": system, "category": category, "n": n, "decline_rate": rate * w,
                             "w_harm": w, "w_help": 1 - w})
    # A third objective's points sharing w_harm = 1 are pooled: 2 of 4 and 4 of 4 -> 6 of 8.
    rows.append({"system": "moodpo", "category": "harmful", "n": 4, "decline_rate": 1.0, "w_harm": 1.0})
    fig = decline_figure(pd.DataFrame(rows), "harm")
    names = [(t.name, t.xaxis) for t in fig.data]
    assert names == [("moodpo", "x"), ("base", "x"), ("moodpo", "x2"), ("base", "x2")]  # "all" left out
    harmful = fig.data[0]
    assert list(harmful.x) == [0.0, 0.5, 1.0] and np.allclose(harmful.y, [0.0, 0.25, 0.75])
    assert harmful.error_y.array[-1] > 0 and [a.text for a in fig.layout.annotations] == ["harmful", "everyday"]
    with pytest.raises(MoodpoError, match="w_conciseness"):
        decline_figure(pd.DataFrame(rows), "conciseness")
