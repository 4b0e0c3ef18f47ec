"""The Pareto tab's data: eval tables found under the runs folder, fronts, hypervolumes, samples.

Where a run's evaluation lives (first found wins):
    <run>/eval/eval.jsonl or eval.csv   `moodpo evaluate` output (plots.py schema), with
                                        generations.jsonl beside it
    <run>/eval.jsonl                    the trainer's in-training evaluation (a `step` column)
A folder under the runs folder holding eval.jsonl/eval.csv but no run (an evaluation written
with --out) is a source of its own. Names are paths relative to the runs folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from moodpo.config import training_alpha
from moodpo.errors import MoodpoError
from moodpo.eval.evaluate import fixed_reference
from moodpo.eval.pareto import hypervolume
from moodpo.plots import eval_objectives, pareto_figure
from moodpo.runs import (EVAL_DIR, GENERATIONS_FILE, TABLE_CSV, TABLE_JSONL, is_run, is_soups, read_jsonl,
                         walk_runs)
from moodpo.weights import validate_weights
from ui.figures import empty_figure
from ui.policies import read_run_config, resolve_under

TABLE_FILES = (TABLE_JSONL, TABLE_CSV)


@dataclass(frozen=True)
class EvalSource:
    name: str
    table: Path
    generations: Path | None
    live: bool  # the trainer's in-training table, which grows while the run trains


def _is_run(folder: Path) -> bool:
    return is_run(folder) or is_soups(folder)


def find_eval(folder: Path, name: str) -> EvalSource | None:
    candidates = [folder / EVAL_DIR, folder] if _is_run(folder) else [folder]
    for where in candidates:
        for file in TABLE_FILES:
            if (where / file).is_file():
                generations = where / GENERATIONS_FILE
                return EvalSource(name, where / file, generations if generations.is_file() else None,
                                  live=where == folder and _is_run(folder))
    return None


def list_eval_sources(runs_dir: Path) -> list[str]:
    """Names of every run or eval folder under runs_dir that has an eval table, sorted."""
    return [name for name, has_eval in walk_runs(runs_dir, _has_eval) if has_eval]


def _has_eval(folder: Path) -> bool | None:
    """True: an eval source; False: a run without an eval table (the walk does not look inside it,
    at its checkpoints); None: neither, look inside."""
    if find_eval(folder, "") is not None:
        return True
    return False if _is_run(folder) else None


def read_table(path: Path) -> pd.DataFrame:
    """An eval table from .jsonl or .csv."""
    if path.suffix == ".csv":
        try:
            return pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise MoodpoError(f"{path.name} is not a readable CSV table: {e}") from None
    return pd.DataFrame(read_jsonl(path))


def _alpha(source: EvalSource, table: pd.DataFrame, runs_dir: Path) -> float | None:
    if "alpha" in table.columns:
        values = pd.to_numeric(table["alpha"], errors="coerce").dropna()
        if len(values):
            return float(values.iloc[0])
    config = read_run_config(Path(runs_dir) / source.name)
    alpha = training_alpha(config.get("method"), config.get("alpha"))
    if isinstance(alpha, (int, float)):
        return float(alpha)
    if isinstance(alpha, list) and alpha and all(isinstance(a, (int, float)) for a in alpha):
        return float(np.mean(alpha))  # asymmetric alpha: its mean orders the legend
    return None


def _eval_kind(source: EvalSource, table: pd.DataFrame) -> str:
    """'training, step 40' for the in-training table, else 'final' (with the adapter's step if known)."""
    steps = pd.to_numeric(table.get("step", pd.Series(dtype=float)), errors="coerce").dropna()
    step = f"step {int(steps.max())}" if len(steps) else ""
    if source.live:
        return f"training, {step}" if step else "training"
    return f"final, {step}" if step else "final"


def _latest(table: pd.DataFrame) -> pd.DataFrame:
    """Each system's most recent training step (an in-training table holds every eval step)."""
    if "step" not in table.columns or table.empty:
        return table
    steps = pd.to_numeric(table["step"], errors="coerce")
    latest = steps.groupby(table["system"]).transform("max")
    return table[latest.isna() | (steps == latest)]  # systems without steps (base, soups) keep every row


@dataclass
class Fronts:
    """The selected runs' eval rows in one table: one row per (run, system, weight point)."""

    table: pd.DataFrame
    objectives: list[str]
    missing: list[str] = field(default_factory=list)  # selected, but no eval data (yet)
    skipped: list[str] = field(default_factory=list)  # evaluated on other objectives

    @property
    def empty(self) -> bool:
        return self.table.empty

    def warnings(self) -> list[str]:
        out = []
        if self.missing:
            out.append(f"no evaluation data yet for {', '.join(self.missing)}: run `python -m moodpo evaluate` "
                       "on it, or train with eval_every > 0")
        if self.skipped:
            out.append(f"left out {', '.join(self.skipped)}: evaluated on other objectives than "
                       f"{', '.join(self.objectives)}")
        return out


def load_fronts(runs_dir: Path, names: list[str]) -> Fronts:
    """Eval rows of the named runs; names are resolved under runs_dir (anything else is refused)."""
    frames, objectives, missing, skipped = [], None, [], []
    for name in dict.fromkeys(names or []):
        folder = resolve_under(runs_dir, name, what="run")
        source = find_eval(folder, name)
        table = read_table(source.table) if source else pd.DataFrame()
        if table.empty:
            missing.append(name)
            continue
        found = eval_objectives(table)
        if not found or any(o not in table.columns for o in found):
            raise MoodpoError(f"{name}: {source.table.name} has no w_<objective> and <objective> columns")
        if objectives is None:
            objectives = found
        elif sorted(found) != sorted(objectives):
            skipped.append(name)
            continue
        if "system" not in table.columns:
            table["system"] = name
        table["system"] = table["system"].astype(str)
        table = _latest(table).copy()
        alpha = _alpha(source, table, runs_dir)
        several = table["system"].nunique() > 1
        suffix = f" (α={alpha:g})" if alpha is not None else ""
        table["run"] = name
        table["label"] = [(f"{name} · {s}" if several else name) + suffix for s in table["system"]]
        table["eval"] = _eval_kind(source, table)
        table["alpha_order"] = alpha if alpha is not None else math.inf
        frames.append(table)
    if not frames:
        return Fronts(pd.DataFrame(), [], missing, skipped)
    table = pd.concat(frames, ignore_index=True).sort_values(["alpha_order", "label"], kind="stable")
    return Fronts(table.reset_index(drop=True), list(objectives), missing, skipped)


def front_figure(fronts: Fronts, x: str | None = None, y: str | None = None) -> go.Figure:
    """The fronts of all selected runs in one (x, y) plane, one trace per run, legend ordered by alpha."""
    if fronts.empty:
        return empty_figure("No evaluation data for the selected runs yet")
    objs = fronts.objectives
    if x not in objs:
        x = objs[0]
    if y not in objs or y == x:
        y = next((o for o in objs if o != x), x)
    # One trace (and legend entry) per label: pareto_figure colours by "system".
    plot = fronts.table.drop(columns=["system"]).rename(columns={"label": "system"})
    fig = pareto_figure(plot, x=x, y=y, color="system")
    fig.update_layout(legend_title_text="run (α)", height=460, margin=dict(t=30, l=10, r=10, b=10))
    return fig


def training_front_figure(runs_dir: Path, name: str) -> go.Figure:
    """The Train tab's live front: every in-training evaluation of one run (<run>/eval.jsonl), one
    trace per evaluated step, so the front is seen moving as the run trains."""
    folder = resolve_under(runs_dir, name, what="run")
    path = folder / TABLE_FILES[0]
    table = read_table(path) if path.is_file() else pd.DataFrame()
    objectives = eval_objectives(table) if not table.empty else []
    if "step" not in table.columns or len(objectives) < 2 or any(o not in table.columns for o in objectives):
        every = read_run_config(folder).get("eval_every")
        when = f"every {every} steps" if isinstance(every, int) and every > 0 else "when eval_every is set"
        return empty_figure(f"The front appears after the run's first evaluation ({when})"
                            if len(objectives) != 1 else "A front needs two objectives")
    steps = pd.to_numeric(table["step"], errors="coerce")
    table = table[steps.notna()].assign(step=steps.dropna().astype(int)).sort_values("step", kind="stable")
    table["system"] = [f"step {s}" for s in table["step"]]
    fig = pareto_figure(table, x=objectives[0], y=objectives[1], color="system")
    fig.update_layout(legend_title_text="evaluated at", height=380, margin=dict(t=30, l=10, r=10, b=10))
    return fig


def hypervolume_table(fronts: Fronts) -> tuple[pd.DataFrame, list[float]]:
    """Hypervolume of each run's points against one reference point shared by all of them: the
    objectives' floors when every objective has one (`moodpo.eval.evaluate.fixed_reference`)."""
    columns = ["run", "α", "eval", "points", "hypervolume"]
    if fronts.empty:
        return pd.DataFrame(columns=columns), []
    objs = fronts.objectives
    sets = {label: group[objs].apply(pd.to_numeric, errors="coerce").dropna().to_numpy()
            for label, group in fronts.table.groupby("label", sort=False)}
    sets = {label: pts for label, pts in sets.items() if len(pts)}
    if not sets:
        return pd.DataFrame(columns=columns), []
    # The objectives' floors when they have them, so a run's hypervolume does not move when
    # another run is shown beside it.
    ref, _ = fixed_reference(objs, list(sets.values()))
    rows = []
    for label, group in fronts.table.groupby("label", sort=False):
        if label not in sets:
            continue
        alpha = group["alpha_order"].iloc[0]
        rows.append({"run": label, "α": "" if math.isinf(alpha) else f"{alpha:g}", "eval": group["eval"].iloc[0],
                     "points": len(sets[label]), "hypervolume": round(hypervolume(sets[label], ref), 5)})
    return pd.DataFrame(rows, columns=columns), [round(float(r), 5) for r in ref]


def points_table(fronts: Fronts) -> pd.DataFrame:
    """One row per plotted point, for choosing one: run, system, weights and mean scores."""
    if fronts.empty:
        return pd.DataFrame(columns=["run", "system"])
    objs = fronts.objectives
    cols = ["run", "system", *[f"w_{o}" for o in objs], *objs]
    table = fronts.table[cols].copy()
    for c in cols[2:]:
        table[c] = pd.to_numeric(table[c], errors="coerce").round(3)
    return table.reset_index(drop=True)


def _weights_of(weights, objectives: list[str]) -> list[float] | None:
    """A generations.jsonl weight vector, {objective: w} (as `moodpo evaluate` writes it) or a list."""
    if isinstance(weights, dict):
        return [weights[o] for o in objectives] if all(o in weights for o in objectives) else None
    return weights if isinstance(weights, list) else None


def _scores_text(scores, objectives: list[str]) -> str:
    if isinstance(scores, dict):
        items = scores.items()
    elif isinstance(scores, list):
        items = zip(objectives, scores)
    else:
        return ""
    return " · ".join(f"{k} {v:.3f}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in items)


def point_samples(runs_dir: Path, name: str, system: str, weights: list[float], objectives: list[str],
                  limit: int = 5) -> pd.DataFrame:
    """Up to `limit` sampled responses of one evaluated point, from the run's generations.jsonl."""
    system = str(system)
    folder = resolve_under(runs_dir, name, what="run")
    source = find_eval(folder, name)
    if source is None or source.generations is None:
        raise MoodpoError(f"{name} has no {GENERATIONS_FILE}; `python -m moodpo evaluate` writes sample "
                          "responses there")
    w = validate_weights(weights, len(objectives), normalize=False)
    rows = []
    for row in read_jsonl(source.generations):
        # An eval table without a system column is labelled by its folder name (see load_fronts).
        if system != name and str(row.get("system", system)) != system:
            continue
        got = _weights_of(row.get("weights"), objectives)
        if got is None or len(got) != len(w) or not np.allclose(got, w, atol=5e-4):
            continue
        rows.append({"prompt": row.get("prompt", ""), "category": row.get("category", ""),
                     "response": row.get("response", ""), "scores": _scores_text(row.get("scores"), objectives),
                     "audit": _audit_text(row.get("audit"))})
        if len(rows) >= limit:
            break
    return pd.DataFrame(rows, columns=["prompt", "category", "response", "scores", "audit"])


def _audit_text(flags) -> str:
    """'declined', 'echo', 'degenerate' (those set) or 'answered'; '' for evaluations made before the audit."""
    if not isinstance(flags, dict):
        return ""
    return ", ".join(k for k, v in flags.items() if v) or "answered"
