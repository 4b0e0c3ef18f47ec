"""Statistics of the votes against answers worked out by hand or published with worked examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from moodpo.errors import MoodpoError
from moodpo.human.votes import FRAME_COLUMNS
from moodpo.human.votestats import (bradley_terry, cohen_kappa, fit_bradley_terry, fleiss_kappa, human_model_agreement,
                              inter_annotator_agreement, krippendorff_alpha_nominal, report, report_figure,
                              report_html, system_label, win_rates)


def vote(outcome, *, a=("moodpo", [0.5, 0.5]), b=("base", [0.5, 0.5]), question="overall", pair="p1",
         annotator="ann-1", score_a=math.nan, score_b=math.nan, n=[0]):
    """One row of a votes frame (the columns VoteStore.votes_frame returns)."""
    n[0] += 1
    row = dict.fromkeys(FRAME_COLUMNS, "")
    row.update(vote_id=f"v{n[0]}", study_id="s", pair_id=pair, annotator=annotator, annotator_id=annotator,
               question=question, outcome=outcome, choice=outcome if outcome in ("tie", "both_bad") else "left",
               left="a", system_a=a[0], weights_a=json.dumps(a[1]), system_b=b[0], weights_b=json.dumps(b[1]),
               score_a=score_a, score_b=score_b, prompt=f"prompt {pair}", response_a="A", response_b="B")
    return row


def frame(rows):
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def test_cohen_kappa_worked_example():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5
    x = ["yes"] * 25 + ["no"] * 25
    y = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(x, y) == pytest.approx(0.4)
    assert cohen_kappa(x, x) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))  # one label everywhere: undefined
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(MoodpoError):
        cohen_kappa(["a"], ["a", "b"])


def test_fleiss_kappa_wikipedia_example():
    # 10 subjects, 14 raters each, 5 categories (Fleiss' kappa, Wikipedia): P = 0.378, P_e = 0.213, kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-5)
    assert fleiss_kappa([[2, 0], [0, 2]]) == pytest.approx(1.0)
    with pytest.raises(MoodpoError, match="same number"):
        fleiss_kappa([[2, 0], [1, 2]])


def test_krippendorff_alpha_textbook_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal data, 4 observers,
    # 12 units with missing values: alpha = 0.743. Unit 12 has one rating and is not pairable.
    N = None
    observers = [[1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
                 [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
                 [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
                 [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N]]
    units = list(zip(*observers))
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha_nominal([["a", "a"], ["a"]]))


def test_bradley_terry_two_systems_exact():
    # 3 wins, 1 loss: p0 / p1 = 3, centred log-strengths +-ln(3)/2; a tie is half a win each way.
    i, j = np.zeros(4, int), np.ones(4, int)
    assert fit_bradley_terry(2, i, j, np.array([1, 1, 1, 0.0]), prior=0) == pytest.approx([math.log(3) / 2,
                                                                                           -math.log(3) / 2])
    assert fit_bradley_terry(2, i, j, np.array([1, 1, 0.5, 0.5]), prior=0) == pytest.approx([math.log(3) / 2,
                                                                                             -math.log(3) / 2])


def test_bradley_terry_recovers_known_strengths():
    rng = np.random.default_rng(0)
    true = np.array([1.0, 0.5, 0.0, -1.5])
    true -= true.mean()
    i = rng.integers(0, 4, 4000)
    j = (i + rng.integers(1, 4, 4000)) % 4
    score = (rng.random(4000) < 1 / (1 + np.exp(true[j] - true[i]))).astype(float)
    assert fit_bradley_terry(4, i, j, score, prior=0) == pytest.approx(true, abs=0.1)


def test_bradley_terry_prior_components_and_frame():
    # A system that never won stays finite with a prior; unconnected systems are centred apart.
    logp = fit_bradley_terry(4, np.array([0, 0, 2]), np.array([1, 1, 3]), np.array([1.0, 1.0, 0.5]))
    assert np.isfinite(logp).all() and logp[0] > 0 > logp[1]
    assert logp[0] + logp[1] == pytest.approx(0) and logp[2] == pytest.approx(0) and logp[3] == pytest.approx(0)
    assert np.isnan(fit_bradley_terry(3, np.array([0]), np.array([1]), np.array([1.0])))[2]

    rows = [vote("a")] * 6 + [vote("b")] * 2 + [vote("both_bad")] * 3
    table = bradley_terry(frame(rows), "overall", n_boot=50)
    assert list(table["system"]) == ["moodpo@0.5,0.5", "base@0.5,0.5"]
    assert list(table["n"]) == [8, 8]  # both-bad dropped
    top = table.iloc[0]
    assert top["log_strength"] == pytest.approx(math.log((6 + 0.05) / (2 + 0.05)) / 2)
    assert top["ci_low"] <= top["log_strength"] <= top["ci_high"]
    assert bradley_terry(frame([]), n_boot=5).empty


def test_win_rates_with_ties_and_orientation():
    rows = ([vote("a")] * 3 + [vote("b")] + [vote("tie")] * 2 + [vote("both_bad")]
            # the same two systems with the sides swapped: B winning here is a moodpo win
            + [vote("b", a=("base", [0.5, 0.5]), b=("moodpo", [0.5, 0.5]))])
    table = win_rates(frame(rows), n_boot=200)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["system"], row["opponent"]) == ("moodpo@0.5,0.5", "base@0.5,0.5")
    assert (row["n"], row["wins"], row["losses"], row["ties"], row["both_bad"]) == (8, 4, 1, 2, 1)
    assert row["win_rate"] == pytest.approx((4 + 1) / 7)
    assert row["ci_low"] <= row["win_rate"] <= row["ci_high"]
    assert system_label("runs/x", [1 / 3, 2 / 3]) == "runs/x@0.3333,0.6667"


def test_human_model_agreement_by_hand():
    q = "helpfulness"
    rows = [vote("a", question=q, score_a=0.9, score_b=0.1),      # model a, agree
            vote("a", question=q, score_a=0.2, score_b=0.8),      # model b
            vote("b", question=q, score_a=0.1, score_b=0.5),      # model b, agree
            vote("tie", question=q, score_a=0.5, score_b=0.45),   # model a (tie with margin 0.1)
            vote("both_bad", question=q, score_a=0.1, score_b=0.9),
            vote("a")]                                            # overall: no scores
    table = human_model_agreement(frame(rows), n_boot=100)
    assert list(table["question"]) == [q]
    row = table.iloc[0]
    assert row["n"] == 4 and row["agreement"] == pytest.approx(0.5)
    # human a,a,b,tie vs model a,b,b,a: p_o = 1/2, p_e = 2/4*2/4 + 1/4*2/4 + 1/4*0 = 3/8
    assert row["kappa"] == pytest.approx((0.5 - 3 / 8) / (1 - 3 / 8))
    margin = human_model_agreement(frame(rows), margin=0.1, n_boot=100).iloc[0]
    assert margin["agreement"] == pytest.approx(0.75) and margin["model_ties"] == 1
    with pytest.raises(MoodpoError):
        human_model_agreement(frame(rows), margin=-1)


def test_inter_annotator_agreement_by_hand():
    rows = [vote("a", pair="p1", annotator="x"), vote("a", pair="p1", annotator="y"),
            vote("a", pair="p2", annotator="x"), vote("b", pair="p2", annotator="y"),
            vote("tie", pair="p3", annotator="x"),                       # one rating: not a unit
            *(vote("b", pair="p4", annotator=who) for who in "xyz")]
    table = inter_annotator_agreement(frame(rows))
    row = table.iloc[0]
    assert (row["n_pairs"], row["n_ratings"]) == (3, 7)
    assert row["krippendorff_alpha"] == pytest.approx(krippendorff_alpha_nominal([["a", "a"], ["a", "b"],
                                                                                  ["b", "b", "b"]]))
    assert math.isnan(row["fleiss_kappa"])  # 2, 2 and 3 ratings
    assert row["percent_agreement"] == pytest.approx((1 + 0 + 1) / 3)
    equal = inter_annotator_agreement(frame(rows[:4])).iloc[0]
    assert equal["fleiss_kappa"] == pytest.approx(fleiss_kappa([[2, 0, 0, 0], [1, 1, 0, 0]]))


def test_report_tables_figure_and_escaped_html():
    evil = ("<script>alert(1)</script>", [1.0, 0.0])
    rows = [vote("a", a=evil, pair=f"p{k}", annotator=who, question=q, score_a=0.6, score_b=0.4)
            for k in range(3) for who in ("x", "y") for q in ("helpfulness", "overall")]
    tables = report(frame(rows), n_boot=50, bt_boot=20)
    assert set(tables) == {"summary", "win_rates", "bradley_terry", "human_model", "inter_annotator"}
    assert tables["summary"].set_index("question").loc["overall", "votes"] == 6
    assert len(report_figure(tables).data) == 4
    assert all(table.empty for table in report(frame([])).values())
    page = report_html(tables, "votes <b>")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page and "votes &lt;b&gt;" in page
