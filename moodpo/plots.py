"""Pure plotly figure builders for evaluation tables and training metrics (no gradio here).

The eval table has one row per (system, weight point):

    system           str    which policy or baseline produced the row
    w_<objective>    float  the weight on each objective (the conditioning vector w)
    <objective>      float  mean score of that objective over the evaluation prompts
    <objective>_lo   float  lower end of its 95% confidence interval   (optional)
    <objective>_hi   float  upper end of its 95% confidence interval   (optional)
    length           float  mean response length                       (optional)
    step             int    training step of the checkpoint, for live fronts (optional)
    alpha            float  the run's alpha hyperparameter, shown on hover (optional)
    decline_rate, echo_rate, degenerate_rate
                     float  audit rates at the point (`moodpo.eval.audit`), on hover (optional)

The objectives of a table are the names after ``w_``. The metrics table is a DataFrame of
``<run_dir>/metrics.jsonl``: one row per logged step, a ``step`` column and one column per
metric key (``loss``, ``rewards/margins``, ...); rows may leave keys out.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moodpo.errors import MoodpoError
from moodpo.eval.pareto import pareto_mask

_PALETTE = plotly.colors.qualitative.Plotly
AUDIT_COLUMNS = ("decline_rate", "echo_rate", "degenerate_rate")
_FRONT_SIZE, _OTHER_SIZE = 11, 7


def eval_objectives(df: pd.DataFrame) -> list[str]:
    """Objective names of an eval table: the columns named ``w_<objective>``, in column order."""
    return [c[2:] for c in df.columns if isinstance(c, str) and c.startswith("w_") and len(c) > 2]


def _latest_step(df: pd.DataFrame) -> pd.DataFrame:
    """Keep each system's most recent training step, so a live table plots one front per system."""
    if "step" not in df.columns or df.empty:
        return df
    latest = df.groupby("system")["step"].transform("max")
    # Systems without steps (base model, soups) have a null max and keep all their rows.
    return df[latest.isna() | (df["step"] == latest)]


def _check_columns(df: pd.DataFrame, objectives: Sequence[str], color: str) -> None:
    known = eval_objectives(df)
    missing = [c for c in [color, *objectives] if c not in df.columns]
    missing += [f"w_{o}" for o in objectives if f"w_{o}" not in df.columns]
    if missing:
        raise MoodpoError(f"eval table lacks columns {missing}; its objectives are {known}")


def _fmt(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3g}"


def _hover_lines(row: pd.Series, objectives: Sequence[str], color: str) -> str:
    weights = ", ".join(f"{o}={_fmt(row[f'w_{o}'])}" for o in objectives)
    lines = [f"<b>{row[color]}</b>", f"weights: {weights}"]
    for o in objectives:
        interval = ""
        if f"{o}_lo" in row.index and f"{o}_hi" in row.index:
            interval = f" [{_fmt(row[f'{o}_lo'])}, {_fmt(row[f'{o}_hi'])}]"
        lines.append(f"{o}: {_fmt(row[o])}{interval}")
    lines += [f"{c}: {_fmt(row[c])}" for c in ("length", "step", "alpha") if c in row.index]
    rates = [f"{c.removesuffix('_rate')} {_fmt(row[c])}" for c in AUDIT_COLUMNS if c in row.index and pd.notna(row[c])]
    if rates:
        lines.append("audit: " + ", ".join(rates))
    return "<br>".join(lines)


def _error_bars(group: pd.DataFrame, axis: str) -> dict | None:
    """Asymmetric plotly error bars from the ``<axis>_lo``/``<axis>_hi`` columns, if present."""
    if f"{axis}_lo" not in group.columns or f"{axis}_hi" not in group.columns:
        return None
    return dict(
        type="data",
        symmetric=False,
        array=(group[f"{axis}_hi"] - group[axis]).to_numpy(dtype=float),
        arrayminus=(group[axis] - group[f"{axis}_lo"]).to_numpy(dtype=float),
        thickness=1,
        width=3,
    )


def _system_traces(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str,
    objectives: Sequence[str],
    colors: dict,
    lines: bool,
    showlegend: bool,
) -> list[go.Scatter]:
    """One scatter per system: points along the x-vs-y trade-off, its 2-D front drawn larger."""
    traces = []
    for system, group in df.groupby(color, sort=False):
        # Order by how far the weights lean from y toward x: for two objectives this is w_x.
        lean = (group[f"w_{x}"] - group[f"w_{y}"]).to_numpy()
        group = group.iloc[np.argsort(lean, kind="stable")]
        xy = group[[x, y]].to_numpy(dtype=float)
        finite = np.isfinite(xy).all(axis=1)
        on_front = np.zeros(len(group), dtype=bool)
        on_front[finite] = pareto_mask(xy[finite])
        traces.append(
            go.Scatter(
                x=group[x],
                y=group[y],
                mode="lines+markers" if lines else "markers",
                name=str(system),
                legendgroup=str(system),
                showlegend=showlegend,
                line=dict(color=colors[system], width=1.5),
                marker=dict(
                    color=colors[system],
                    size=np.where(on_front, _FRONT_SIZE, _OTHER_SIZE),
                    opacity=np.where(on_front, 1.0, 0.55),
                    line=dict(color="black", width=np.where(on_front, 1.0, 0.0)),
                ),
                error_x=_error_bars(group, x),
                error_y=_error_bars(group, y),
                hovertext=[_hover_lines(row, objectives, color) for _, row in group.iterrows()],
                hoverinfo="text",
            )
        )
    return traces


def _color_map(df: pd.DataFrame, color: str) -> dict:
    return {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(pd.unique(df[color]))}


def pareto_figure(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str = "system",
    *,
    lines: bool | None = None,
    title: str | None = None,
) -> go.Figure:
    """Scatter of objective y against objective x, one trace (and legend entry) per system.

    df: an eval table (see the module docstring). Each system's points are joined in order of
    weight (w_x - w_y), with 95% CI error bars where ``<objective>_lo/_hi`` exist; the points on
    that system's front in the (x, y) plane are drawn larger with an outline. Hover shows the
    weights, every objective's score with its interval, and length/step/alpha when present. With
    a ``step`` column only each system's latest step is drawn. ``lines`` defaults to True for
    two-objective tables, where the weights form one path; with more, a line would zig-zag.
    """
    objectives = eval_objectives(df)
    _check_columns(df, [x, y], color)
    df = _latest_step(df)
    if lines is None:
        lines = len(objectives) == 2
    fig = go.Figure(
        _system_traces(df, x, y, color, objectives, _color_map(df, color), lines, showlegend=True)
    )
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        legend_title_text=color,
        hoverlabel=dict(align="left"),
        template="plotly_white",
    )
    return fig


def pairwise_figures(
    df: pd.DataFrame,
    objectives: Sequence[str] | None = None,
    color: str = "system",
    *,
    title: str | None = None,
) -> go.Figure:
    """Grid of pairwise projections (x = first, y = second of each pair) for 3+ objectives.

    df: an eval table; objectives default to the table's own. There is one subplot per pair, at
    most three per row (three objectives give one row of three), and one trace per system in each
    subplot; the legend has one entry per system and toggles it in every subplot.
    """
    objectives = list(objectives) if objectives is not None else eval_objectives(df)
    if len(objectives) < 2:
        raise MoodpoError(f"pairwise_figures needs at least 2 objectives, got {objectives}")
    _check_columns(df, objectives, color)
    df = _latest_step(df)
    pairs = list(itertools.combinations(objectives, 2))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"{b} vs {a}" for a, b in pairs],
        horizontal_spacing=0.08,
        vertical_spacing=0.12,
    )
    colors = _color_map(df, color)
    hover_objectives = eval_objectives(df)
    for i, (a, b) in enumerate(pairs):
        row, col = divmod(i, cols)
        for trace in _system_traces(
            df, a, b, color, hover_objectives, colors, lines=False, showlegend=i == 0
        ):
            fig.add_trace(trace, row=row + 1, col=col + 1)
        fig.update_xaxes(title_text=a, row=row + 1, col=col + 1)
        fig.update_yaxes(title_text=b, row=row + 1, col=col + 1)
    fig.update_layout(
        title=title,
        legend_title_text=color,
        hoverlabel=dict(align="left"),
        template="plotly_white",
        height=380 * rows,
    )
    return fig


def curves_figure(
    metrics_df: pd.DataFrame, keys: Sequence[str], *, title: str | None = None, by: str | None = None
) -> go.Figure:
    """Training curves over ``step``: one stacked subplot and one trace per key, shared x axis.

    metrics_df: rows of metrics.jsonl. Rows missing a key are skipped for that key; a key that
    was not logged yet gets an empty trace, so a live figure keeps its layout as metrics arrive.
    Without a ``step`` column the row number is used. ``by``: a column that splits the rows into
    one trace per value in each subplot, coloured and named by the value (a Rewarded Soups set's
    members, each counting its own steps).
    """
    keys = list(keys)
    if not keys:
        raise MoodpoError("curves_figure needs at least one metric key")
    fig = make_subplots(
        rows=len(keys), cols=1, shared_xaxes=True, subplot_titles=keys, vertical_spacing=0.06
    )
    steps = metrics_df["step"] if "step" in metrics_df.columns else pd.Series(
        np.arange(len(metrics_df)), index=metrics_df.index
    )
    groups = list(metrics_df.groupby(by, sort=False)) if by and by in metrics_df.columns else [(None, metrics_df)]
    for i, key in enumerate(keys):
        for g, (group, rows) in enumerate(groups):
            values = rows[key] if key in rows.columns else pd.Series(dtype=float)
            values = pd.to_numeric(values, errors="coerce").dropna()
            label = key if group is None else str(group)
            hover = "" if group is None else f"{label}<br>"
            fig.add_trace(
                go.Scatter(
                    x=steps.loc[values.index],
                    y=values,
                    mode="lines",
                    name=label,
                    legendgroup=label,
                    showlegend=group is not None and i == 0,
                    line=dict(color=_PALETTE[(i if group is None else g) % len(_PALETTE)]),
                    hovertemplate=f"{hover}step %{{x}}<br>{key}: %{{y:.4g}}<extra></extra>",
                ),
                row=i + 1,
                col=1,
            )
    fig.update_xaxes(title_text="step", row=len(keys), col=1)
    fig.update_layout(title=title, template="plotly_white", height=max(300, 220 * len(keys)))
    return fig


def wilson_interval(k: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of k successes in n trials, elementwise; (lo, hi) in [0, 1]."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    p = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    denom = 1.0 + z * z / np.maximum(n, 1)
    centre = (p + z * z / (2 * np.maximum(n, 1))) / denom
    half = z * np.sqrt(p * (1 - p) / np.maximum(n, 1) + z * z / (4 * np.maximum(n, 1) ** 2)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def decline_figure(df: pd.DataFrame, weight: str, *, title: str | None = None) -> go.Figure:
    """Share of responses declined against the weight on one objective: a panel per prompt
    category, a line per system, 95% Wilson intervals.

    df: one row per (system, weight point, category) with columns ``system``, ``category``,
    ``n`` (responses), ``decline_rate`` and ``w_<weight>``: the audit rows of each evaluation
    (`EvalResult.audit_rows`). Rows of category "all" are left out when others exist. With more
    than two objectives, the points that share a value of ``w_<weight>`` are pooled.
    """
    column = f"w_{weight}"
    missing = [c for c in ("system", "category", "n", "decline_rate", column) if c not in df.columns]
    if missing:
        raise MoodpoError(f"decline_figure needs the columns {', '.join(missing)}")
    if (df["category"] != "all").any():
        df = df[df["category"] != "all"]
    df = df.assign(k=df["decline_rate"] * df["n"])
    pooled = df.groupby(["category", "system", column], sort=False)[["k", "n"]].sum().reset_index()
    categories = list(pd.unique(pooled["category"]))
    colors = {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(pd.unique(pooled["system"]))}
    fig = make_subplots(rows=1, cols=len(categories), shared_yaxes=True, subplot_titles=categories)
    for col, category in enumerate(categories, start=1):
        for system, group in pooled[pooled["category"] == category].groupby("system", sort=False):
            group = group.sort_values(column)
            rate = group["k"] / group["n"]
            lo, hi = wilson_interval(group["k"], group["n"])
            fig.add_trace(go.Scatter(
                x=group[column], y=rate, mode="lines+markers", name=str(system), legendgroup=str(system),
                showlegend=col == 1, line=dict(color=colors[system]),
                error_y=dict(type="data", symmetric=False, array=hi - rate, arrayminus=rate - lo, thickness=1),
                customdata=np.c_[group["k"], group["n"]],
                hovertemplate=(f"{system}<br>{category}, w_{weight} %{{x:.2f}}<br>declined %{{y:.0%}} "
                               "(%{customdata[0]:.0f} of %{customdata[1]:.0f})<extra></extra>"),
            ), row=1, col=col)
        fig.update_xaxes(title_text=f"weight on {weight}", range=[-0.05, 1.05], row=1, col=col)
    fig.update_yaxes(title_text="declined", range=[-0.03, 1.03], tickformat=".0%", row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", height=380, width=max(520, 300 * len(categories)),
                      legend_title_text="system")
    return fig


def write_html(fig: go.Figure, path: str | os.PathLike) -> Path:
    """Write fig as a standalone HTML file with plotly.js inlined (opens offline); returns path.

    Writes to a temporary file in the same folder and renames it, so a reader polling the file
    never sees half of it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fig.write_html(f, include_plotlyjs=True, full_html=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
