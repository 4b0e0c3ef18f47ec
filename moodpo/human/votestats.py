"""Statistics of pairwise human votes: win rates, Bradley-Terry strengths, agreement with the reward
models and between annotators. Pure functions of the votes frame (`VoteStore.votes_frame`, one row
per (vote, question)) or of plain arrays; `report` bundles them for the CLI and the app.

A system is a policy at a weight vector, labelled "name@w1,w2" (`system_label`): MO-ODPO at
(0.7, 0.3) and at (0.3, 0.7) are different systems, which is what a steerability study compares.
From A's side a vote scores 1 (A better), 0 (B better) or 1/2 (tie); "both bad" says nothing
about which is better and is counted but left out of every rate and strength.
"""

from __future__ import annotations

import html
import json
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from moodpo.errors import MoodpoError
from moodpo.eval.pareto import bootstrap_ci
from moodpo.human.votes import OUTCOMES

_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5}


def system_label(system: str, weights) -> str:
    """"name@w1,w2" for a system and its weights (a sequence or the JSON list the frame holds)."""
    if isinstance(weights, str):
        weights = json.loads(weights)
    return f"{system}@" + ",".join(format(round(float(w), 4), "g") for w in weights)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with label_a, label_b and `score` (A's score: 1, 0, 1/2; NaN for both_bad)."""
    out = frame.copy()
    out["label_a"] = [system_label(s, w) for s, w in zip(frame["system_a"], frame["weights_a"])]
    out["label_b"] = [system_label(s, w) for s, w in zip(frame["system_b"], frame["weights_b"])]
    out["score"] = frame["outcome"].map(_SCORE).astype(float)
    return out


def _questions(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["question"]))


WIN_RATE_COLUMNS = ("system", "opponent", "question", "n", "wins", "losses", "ties", "both_bad", "win_rate",
                    "ci_low", "ci_high")


def win_rates(frame: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per pair of systems and question: counts and win rate = (wins + ties / 2) / (wins + losses + ties)
    of `system` over `opponent`, with a 95% percentile bootstrap interval that resamples votes.

    Each pair of systems is reported once, from the side that was system A in most of its votes
    (the first-named system of a study comparison); n counts every vote, both-bad included.
    """
    data = _labelled(frame)
    rows = []
    for question in _questions(data):
        votes = data[data["question"] == question]
        keys = [tuple(sorted(k)) for k in zip(votes["label_a"], votes["label_b"])]
        for key in dict.fromkeys(keys):
            group = votes[[k == key for k in keys]]
            a_first = (group["label_a"] == key[0]).sum()
            system, opponent = key if 2 * a_first >= len(group) else key[::-1]
            score = np.where(group["label_a"] == system, group["score"], 1 - group["score"])
            decided = score[~np.isnan(score)]
            low, high = bootstrap_ci(decided, n_boot=n_boot, seed=seed)
            rows.append({"system": system, "opponent": opponent, "question": question, "n": len(group),
                         "wins": int((decided == 1).sum()), "losses": int((decided == 0).sum()),
                         "ties": int((decided == 0.5).sum()), "both_bad": int(np.isnan(score).sum()),
                         "win_rate": float(decided.mean()) if len(decided) else math.nan,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=list(WIN_RATE_COLUMNS))


BT_COLUMNS = ("question", "system", "log_strength", "ci_low", "ci_high", "n", "component")


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected component of each of n systems in the graph of compared pairs (i[k], j[k])."""
    parent = list(range(n))

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(i, j):
        parent[root(a)] = root(b)
    roots = [root(x) for x in range(n)]
    order = {r: c for c, r in enumerate(dict.fromkeys(roots))}
    return np.array([order[r] for r in roots])


def fit_bradley_terry(n: int, i: np.ndarray, j: np.ndarray, score: np.ndarray, *, prior: float = 0.1,
                      tol: float = 1e-9, max_iter: int = 100) -> np.ndarray:
    """Log-strengths theta (n,) of the Bradley-Terry model P(i beats j) = sigmoid(theta_i - theta_j),
    the maximum-likelihood fit by Newton's method with a backtracking line search.

    i, j: (M,) indices of the two systems of each comparison; score: (M,) i's result, 1, 0 or 1/2
    (a tie counts half a win each way). `prior` adds that many virtual ties to every compared
    pair, so a system that never won (or never lost) gets a finite strength; with 0 (the plain
    MLE) such a system's strength runs off towards infinity and comes back merely very large.
    Strengths in different connected components of the comparison graph are not comparable, so
    each component is centred at 0 on its own; a system never compared is NaN.

    Newton rather than Hunter's (2004) MM iteration: MM needs thousands of steps when one system
    wins nearly everything, which small studies (and their bootstrap draws) often see.
    """
    wins = np.zeros((n, n))
    np.add.at(wins, (i, j), score)
    np.add.at(wins, (j, i), 1 - score)
    compared = (wins + wins.T) > 0
    wins += prior / 2 * compared
    seen = np.flatnonzero(compared.any(axis=1))
    logp = np.full(n, np.nan)
    if not len(seen):
        return logp
    wins = wins[np.ix_(seen, seen)]  # wins[a, b]: how often a beat b
    games, total = wins + wins.T, wins.sum(axis=1)

    def loglik(theta):
        return -(wins * np.logaddexp(0, theta[None, :] - theta[:, None])).sum()

    theta = np.zeros(len(seen))
    for _ in range(max_iter):
        p_win = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))  # P(a beats b)
        grad = total - (games * p_win).sum(axis=1)
        if np.abs(grad).max() < tol:
            break
        weight = games * p_win * p_win.T
        # The negative Hessian is a graph Laplacian, singular along each component's shift; the
        # minimum-norm solution moves no component's mean.
        step = np.linalg.lstsq(np.diag(weight.sum(axis=1)) - weight, grad, rcond=None)[0]
        current, scale = loglik(theta), 1.0
        while loglik(theta + scale * step) < current and scale > 1e-6:
            scale /= 2
        theta = theta + scale * step
    logp[seen] = theta
    component = _components(n, i, j)
    for c in np.unique(component[seen]):
        members = component == c
        logp[members] -= logp[members].mean()
    return logp
    games = (wins + wins.T)[np.ix_(seen, seen)]
    total = wins.sum(axis=1)[seen]
    p = np.ones(len(seen))
    for _ in range(max_iter):
        pair_sums = p[:, None] + p[None, :]
        new = total / np.divide(games, pair_sums, out=np.zeros_like(games), where=games > 0).sum(axis=1)
        won = new > 0  # only without a prior can a system end at strength 0 (log -inf)
        new /= np.exp(np.log(new[won]).mean())
        converged = np.max(np.abs(np.log(new[won]) - np.log(p[won]))) < tol
        p = new
        if converged:
            break
    with np.errstate(divide="ignore"):
        logp[seen] = np.log(p)
    component = _components(n, i, j)
    for c in np.unique(component[seen]):
        members = (component == c) & np.isfinite(logp)
        logp[members] -= logp[members].mean()
    return logp


def bradley_terry(frame: pd.DataFrame, question: str | None = None, *, n_boot: int = 200, seed: int = 0,
                  prior: float = 0.1) -> pd.DataFrame:
    """Bradley-Terry log-strengths of every system on one question (None: all votes pooled), with
    95% percentile bootstrap intervals that resample votes; strongest first.

    Ties count half a win each way, both-bad votes are dropped (see `fit_bradley_terry` for
    `prior` and for `component`: strengths are comparable only within one component). n is the
    number of votes a system took part in.
    """
    if n_boot < 1:
        raise MoodpoError(f"n_boot must be >= 1, got {n_boot}")
    data = _labelled(frame if question is None else frame[frame["question"] == question])
    data = data[data["score"].notna() & (data["label_a"] != data["label_b"])]
    systems = sorted(set(data["label_a"]) | set(data["label_b"]))
    if not systems:
        return pd.DataFrame(columns=list(BT_COLUMNS))
    index = {s: k for k, s in enumerate(systems)}
    i = data["label_a"].map(index).to_numpy()
    j = data["label_b"].map(index).to_numpy()
    score = data["score"].to_numpy()
    n = len(systems)
    logp = fit_bradley_terry(n, i, j, score, prior=prior)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, n))
    for b in range(n_boot):
        draw = rng.integers(0, len(score), size=len(score))
        boot[b] = fit_bradley_terry(n, i[draw], j[draw], score[draw], prior=prior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a system absent from every draw: NaN
        low, high = np.nanquantile(boot, [0.025, 0.975], axis=0)
    counts = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    table = pd.DataFrame({"question": question if question is not None else "all", "system": systems,
                          "log_strength": logp, "ci_low": low, "ci_high": high, "n": counts,
                          "component": _components(n, i, j)}, columns=list(BT_COLUMNS))
    return table.sort_values(["component", "log_strength"], ascending=[True, False], ignore_index=True)


def cohen_kappa(x: Sequence, y: Sequence) -> float:
    """Cohen's kappa of two raters over the same items: (p_o - p_e) / (1 - p_e), with p_o the observed
    agreement and p_e the agreement expected from each rater's label frequencies. NaN when
    undefined (no items, or both raters always gave the one same label)."""
    x, y = np.asarray(x, dtype=object), np.asarray(y, dtype=object)
    if x.shape != y.shape or x.ndim != 1:
        raise MoodpoError(f"cohen_kappa needs two equally long label sequences, got {x.shape} and {y.shape}")
    if not len(x):
        return math.nan
    labels = list(dict.fromkeys([*x, *y]))
    observed = float(np.mean(x == y))
    expected = sum(float(np.mean(x == c)) * float(np.mean(y == c)) for c in labels)
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


AGREEMENT_COLUMNS = ("question", "n", "agreement", "ci_low", "ci_high", "kappa", "human_ties", "model_ties")


def human_model_agreement(frame: pd.DataFrame, *, margin: float = 0.0, n_boot: int = 1000,
                          seed: int = 0) -> pd.DataFrame:
    """Per objective question: how often the human's outcome (a, b or tie) matches the reward
    model's, with a 95% bootstrap interval over votes, and Cohen's kappa between the two.

    The reward model picks a when score_a - score_b > margin, b when < -margin, else tie: with
    continuous scores and margin 0 it almost never ties, so every human tie counts as a
    disagreement; a margin of the size of the score noise makes ties comparable. Both-bad votes
    and questions without scores ("overall") are left out.
    """
    if not math.isfinite(margin) or margin < 0:
        raise MoodpoError(f"margin must be >= 0, got {margin}")
    rows = []
    for question in _questions(frame):
        votes = frame[(frame["question"] == question) & (frame["outcome"] != "both_bad")
                      & frame["score_a"].notna() & frame["score_b"].notna()]
        if votes.empty:
            continue
        diff = (votes["score_a"] - votes["score_b"]).to_numpy(dtype=float)
        model = np.where(diff > margin, "a", np.where(diff < -margin, "b", "tie"))
        human = votes["outcome"].to_numpy(dtype=object)
        agree = (human == model).astype(float)
        low, high = bootstrap_ci(agree, n_boot=n_boot, seed=seed)
        rows.append({"question": question, "n": len(votes), "agreement": float(agree.mean()), "ci_low": low,
                     "ci_high": high, "kappa": cohen_kappa(human, model),
                     "human_ties": int((human == "tie").sum()), "model_ties": int((model == "tie").sum())})
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))


def fleiss_kappa(table) -> float:
    """Fleiss' kappa of an (N units, K categories) table of counts, every unit rated by the same
    number n >= 2 of raters: (P - P_e) / (1 - P_e), with P the mean over units of the share of
    agreeing rater pairs and P_e the sum of squared category shares. NaN when P_e = 1."""
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or not len(counts) or (counts < 0).any():
        raise MoodpoError(f"fleiss_kappa needs a non-empty (units, categories) table of counts, got {counts.shape}")
    per_unit = counts.sum(axis=1)
    n = per_unit[0]
    if n < 2 or (per_unit != n).any():
        raise MoodpoError("fleiss_kappa needs the same number (>= 2) of ratings for every unit")
    agreement = ((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))).mean()
    expected = ((counts.sum(axis=0) / counts.sum()) ** 2).sum()
    return math.nan if expected == 1 else float((agreement - expected) / (1 - expected))


def krippendorff_alpha_nominal(units: Sequence[Sequence]) -> float:
    """Krippendorff's alpha for nominal labels, 1 - D_o / D_e, from the coincidence matrix
    (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"). units: the labels each unit
    got, any number per unit (None for a missing rating); units with fewer than two are not
    pairable and are dropped. NaN when there is nothing to compare or a single label was used."""
    units = [[v for v in unit if v is not None] for unit in units]
    units = [u for u in units if len(u) >= 2]
    labels = list(dict.fromkeys(v for u in units for v in u))
    if not units or len(labels) < 2:
        return math.nan
    index = {v: k for k, v in enumerate(labels)}
    coincidence = np.zeros((len(labels), len(labels)))
    for unit in units:
        counts = np.bincount([index[v] for v in unit], minlength=len(labels)).astype(float)
        # Every ordered pair of ratings within the unit, weighted 1 / (m_u - 1).
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    marginals = coincidence.sum(axis=1)
    total = marginals.sum()
    observed = coincidence.sum() - np.trace(coincidence)
    expected = (marginals.sum() ** 2 - (marginals ** 2).sum()) / (total - 1)
    return float(1 - observed / expected)


IAA_COLUMNS = ("question", "n_pairs", "n_ratings", "krippendorff_alpha", "fleiss_kappa", "percent_agreement")


def inter_annotator_agreement(frame: pd.DataFrame) -> pd.DataFrame:
    """Per question, on the pairs judged by two or more annotators: Krippendorff's alpha (nominal,
    any number of ratings per pair), Fleiss' kappa (only when every pair has the same number of
    ratings, else NaN) and percent agreement (the share of agreeing annotator pairs, averaged over
    pairs). Ratings are unblinded outcomes (a, b, tie, both_bad), so sides do not matter."""
    rows = []
    for question in _questions(frame):
        votes = frame[frame["question"] == question]
        units = [group.tolist() for _, group in votes.groupby("pair_id", sort=False)["outcome"]]
        units = [u for u in units if len(u) >= 2]
        if not units:
            continue
        table = np.array([[u.count(c) for c in OUTCOMES] for u in units])
        sizes = table.sum(axis=1)
        pairs = sizes * (sizes - 1)
        rows.append({"question": question, "n_pairs": len(units), "n_ratings": int(sizes.sum()),
                     "krippendorff_alpha": krippendorff_alpha_nominal(units),
                     "fleiss_kappa": fleiss_kappa(table) if (sizes == sizes[0]).all() else math.nan,
                     "percent_agreement": float(((table * (table - 1)).sum(axis=1) / pairs).mean())})
    return pd.DataFrame(rows, columns=list(IAA_COLUMNS))


SUMMARY_COLUMNS = ("question", "votes", "annotators", "pairs", "a", "b", "tie", "both_bad")


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per question: votes, distinct annotators and pairs, and how often each outcome was chosen."""
    rows = []
    for question in _questions(frame):
        votes = frame[frame["question"] == question]
        counts = votes["outcome"].value_counts()
        rows.append({"question": question, "votes": len(votes), "annotators": votes["annotator_id"].nunique(),
                     "pairs": votes["pair_id"].nunique(), **{c: int(counts.get(c, 0)) for c in OUTCOMES}})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def report(frame: pd.DataFrame, *, n_boot: int = 1000, bt_boot: int = 200, seed: int = 0,
           margin: float = 0.0) -> dict[str, pd.DataFrame]:
    """Every table of a votes report, by name: summary, win_rates, bradley_terry (one fit per
    question), human_model (agreement with the reward models) and inter_annotator."""
    fits = [bradley_terry(frame, q, n_boot=bt_boot, seed=seed) for q in _questions(frame)]
    return {
        "summary": summary(frame),
        "win_rates": win_rates(frame, n_boot=n_boot, seed=seed),
        "bradley_terry": pd.concat(fits, ignore_index=True) if fits else pd.DataFrame(columns=list(BT_COLUMNS)),
        "human_model": human_model_agreement(frame, margin=margin, n_boot=n_boot, seed=seed),
        "inter_annotator": inter_annotator_agreement(frame),
    }


def report_figure(tables: dict[str, pd.DataFrame]):
    """Bradley-Terry log-strengths (left) and win rates (right) with their 95% intervals, one colour
    per question: a plotly Figure."""
    import plotly.colors
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    bt, wr = tables["bradley_terry"], tables["win_rates"]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.25,
                        subplot_titles=("Bradley-Terry log-strength", "win rate of system vs opponent"))
    palette = plotly.colors.qualitative.Plotly
    questions = list(dict.fromkeys([*bt["question"], *wr["question"]]))
    for k, question in enumerate(questions):
        color = palette[k % len(palette)]
        part = bt[bt["question"] == question]
        fig.add_trace(go.Scatter(
            x=part["log_strength"], y=part["system"], orientation="h", mode="markers", name=question,
            legendgroup=question, marker=dict(color=color, size=10),
            error_x=dict(type="data", symmetric=False, array=part["ci_high"] - part["log_strength"],
                         arrayminus=part["log_strength"] - part["ci_low"])), row=1, col=1)
        part = wr[wr["question"] == question]
        fig.add_trace(go.Scatter(
            x=part["win_rate"], y=part["system"] + " vs " + part["opponent"], orientation="h", mode="markers",
            name=question, legendgroup=question, showlegend=False, marker=dict(color=color, size=10, symbol="diamond"),
            error_x=dict(type="data", symmetric=False, array=part["ci_high"] - part["win_rate"],
                         arrayminus=part["win_rate"] - part["ci_low"]),
            customdata=part[["n", "wins", "losses", "ties"]].to_numpy(),
            hovertemplate="%{y}<br>win rate %{x:.3f}<br>n=%{customdata[0]}: %{customdata[1]} wins, "
                          "%{customdata[2]} losses, %{customdata[3]} ties<extra></extra>"), row=1, col=2)
    fig.add_vline(x=0.5, line_dash="dot", line_color="#999", row=1, col=2)
    fig.update_xaxes(title_text="log-strength (centred)", row=1, col=1)
    fig.update_xaxes(title_text="win rate", range=[0, 1], row=1, col=2)
    # Questions side by side within each system's row rather than drawn over each other.
    fig.update_layout(template="plotly_white", legend_title_text="question", scattermode="group", scattergap=0.5,
                      margin=dict(t=60),
                      height=max(350, 120 + 25 * len(questions) * max(bt["system"].nunique(), len(set(
                          zip(wr["system"], wr["opponent"]))))))
    return fig


TABLE_TITLES = {
    "summary": "Votes",
    "win_rates": "Win rates (ties count half; both-bad left out; 95% bootstrap intervals over votes)",
    "bradley_terry": "Bradley-Terry strengths over all systems (95% bootstrap intervals)",
    "human_model": "Human vs reward model agreement per objective (Cohen's kappa)",
    "inter_annotator": "Inter-annotator agreement on pairs with two or more annotators",
}


def report_html(tables: dict[str, pd.DataFrame], title: str) -> str:
    """A standalone page with the figure (plotly.js inlined, opens offline) and every table, all
    text escaped."""
    figure = report_figure(tables).to_html(include_plotlyjs=True, full_html=False)
    sections = "".join(
        f"<h2>{html.escape(TABLE_TITLES.get(name, name))}</h2>"
        + (table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-", escape=True)
           if len(table) else "<p>none</p>")
        for name, table in tables.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
            "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3em .6em}"
            "th{background:#f4f4f4}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{figure}{sections}</body></html>\n")
