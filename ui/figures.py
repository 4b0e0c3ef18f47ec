"""Small pure builders for the app's own figures and widgets (the big ones live in moodpo.plots)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from moodpo.conditioning import display_name

SIDE_COLORS = ("#636efa", "#ef553b")


def empty_figure(message: str) -> go.Figure:
    """A blank figure that says why it is blank."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#666"))
    fig.update_layout(template="plotly_white", height=260, xaxis=dict(visible=False), yaxis=dict(visible=False),
                      margin=dict(t=20, l=10, r=10, b=10))
    return fig


def scores_figure(objectives: Sequence[str], scores: Mapping[str, Mapping[str, float] | None]) -> go.Figure:
    """Grouped bars: one group per objective, one bar per side ({"A": {objective: score}, "B": ...})."""
    fig = go.Figure()
    for i, (side, values) in enumerate(scores.items()):
        values = values or {}
        y = [values.get(o) for o in objectives]
        fig.add_trace(go.Bar(x=[display_name(o) for o in objectives], y=y, name=side,
                             marker_color=SIDE_COLORS[i % len(SIDE_COLORS)],
                             text=[f"{v:.2f}" if v is not None else "" for v in y], textposition="outside",
                             cliponaxis=False, hovertemplate=f"{side}<br>%{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(barmode="group", template="plotly_white", height=300, yaxis_title="score", showlegend=True,
                      margin=dict(t=30, l=10, r=10, b=10), legend_title_text="response")
    return fig


def scores_table(objectives: Sequence[str], weights: Sequence[float],
                 scores: Mapping[str, float] | None) -> pd.DataFrame:
    """The Steer tab's score panel: objective, the weight it got, the response's score."""
    return pd.DataFrame({
        "objective": [display_name(o) for o in objectives],
        "weight": [round(float(w), 3) for w in weights],
        "score": [round(scores[o], 3) if scores else None for o in objectives],
    })


def weights_text(objectives: Sequence[str], weights: Sequence[float] | None) -> str:
    """'Helpfulness 0.70 · Harmlessness 0.30', or a hint when the weights are unusable."""
    if weights is None:
        return "Move at least one slider above zero."
    return " · ".join(f"{display_name(o)} **{w:.2f}**" for o, w in zip(objectives, weights))


def progress_html(step: int, total: int, text: str) -> str:
    """A progress bar for the Train tab; the caption is escaped (it may hold a run name)."""
    total = max(int(total), 1)
    step = min(max(int(step), 0), total)
    return (f'<div style="display:flex;gap:.75em;align-items:center">'
            f'<progress value="{step}" max="{total}" style="flex:1;height:1.1em"></progress>'
            f'<span style="white-space:nowrap">{html.escape(text)}</span></div>')
