"""Evaluation, baselines and their commands, end to end on a tiny Llama (2 grid points, few prompts)."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # so "python:test_evaluate:letters" imports this module

from moodpo.cli import main
from moodpo.data import Prompt, load_prompts
from moodpo.eval.evaluate import EvalResult, compare_results, load_eval
from moodpo.errors import MoodpoError
from moodpo.policy import load_policy

OBJECTIVES = ["conciseness", "python:test_evaluate:letters"]
TINY_TRAIN = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--num_generations", "2",
              "--max_new_tokens", "6", "--warmup_steps", "0", "--save_steps", "0", "--precision", "fp32", "--max_prompts", "8"]
TINY_EVAL = ["--grid", "2", "--limit", "2", "--max_new_tokens", "6"]
TABLE_COLUMNS = ["system", "w_conciseness", "w_python:test_evaluate:letters", "conciseness", "conciseness_lo",
                 "conciseness_hi", "python:test_evaluate:letters", "python:test_evaluate:letters_lo",
                 "python:test_evaluate:letters_hi", "length", "step", "alpha", "decline_rate", "echo_rate",
                 "degenerate_rate"]


def letters(prompts, responses):
    """Share of alphabetic characters: a cheap second objective that differs from conciseness."""
    return [sum(ch.isalpha() for ch in r) / max(1, len(r)) for r in responses]


def run_cli(*args):
    assert main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    """A 2-step MO-ODPO run that evaluates a 2-point grid on 2 held-out prompts after every step."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run_cli("train", "--model_name_or_path", tiny_model_dir, "--objectives", *OBJECTIVES, *TINY_TRAIN, "--max_steps", 2,
            "--eval_every", 1, "--eval_grid", 2, "--eval_prompts", 2, "--output_dir", run)
    return run


def test_training_appends_eval_rows(run_dir):
    rows = [json.loads(ln) for ln in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 1, 2, 2]
    assert {r["system"] for r in rows} == {"tiny"}
    assert list(rows[0]) == TABLE_COLUMNS
    assert sorted((r["w_conciseness"], r["step"]) for r in rows) == [(0.0, 1), (0.0, 2), (1.0, 1), (1.0, 2)]


def test_training_eval_uses_the_dev_split_else_eval(tmp_path):
    from moodpo.eval.evaluate import _held_out

    assert {p.id for p in _held_out("builtin", 5, 0)} <= {p.id for p in load_prompts("builtin", "dev")}
    source = tmp_path / "no_dev.jsonl"
    source.write_text("".join(json.dumps({"prompt": t, "split": s}) + "\n" for t, s in (("a", "train"), ("b", "eval"))))
    assert [p.text for p in _held_out(str(source), 5, 0)] == ["b"]


def test_training_eval_restores_rng_and_train_mode(tiny_model_dir, tmp_path):
    from moodpo.config import load_config
    from moodpo.eval.evaluate import append_training_eval
    from moodpo.train.trainer import Trainer

    config = load_config(overrides={"model_name_or_path": tiny_model_dir, "objectives": OBJECTIVES, "max_new_tokens": 4,
                                    "eval_grid": 2, "eval_prompts": 1, "output_dir": str(tmp_path / "r")})
    trainer = Trainer(config, show_progress=False)
    trainer.step = 3
    (tmp_path / "r" / "eval.jsonl").write_text('{"system": "r", "step": 1}\n{"system": "r", "step": 3}\n')
    state = torch.get_rng_state()
    append_training_eval(trainer, tmp_path / "r" / "eval.jsonl")
    assert torch.equal(torch.get_rng_state(), state)
    assert trainer.model.training
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "r" / "eval.jsonl").read_text().splitlines()]
    assert steps == [1, 3, 3]  # the earlier attempt at step 3 (a resumed run) was replaced


def test_eval_run_writes_documented_files(run_dir):
    run_cli("eval", "--run", run_dir, *TINY_EVAL)
    out = run_dir / "eval"
    table = pd.read_csv(out / "eval.csv")
    assert list(table.columns) == TABLE_COLUMNS
    assert len(table) == 2 and (table["step"] == 2).all() and (table["alpha"] == 1.0).all()
    assert (table["conciseness_lo"] <= table["conciseness"]).all() and (table["conciseness"] <= table["conciseness_hi"]).all()
    assert [json.loads(ln) for ln in (out / "eval.jsonl").read_text().splitlines()][0]["system"] == "tiny"
    generations = [json.loads(ln) for ln in (out / "generations.jsonl").read_text().splitlines()]
    assert len(generations) == 4
    assert set(generations[0]) == {"system", "prompt_id", "prompt", "category", "sample", "weights", "response",
                                   "scores", "length", "audit"}
    assert set(generations[0]["audit"]) == {"declined", "echo", "degenerate"}
    assert set(generations[0]["scores"]) == set(OBJECTIVES)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("hypervolume", "steerability", "interior_share", "adherence_spread", "length", "length_controlled",
                "settings"):
        assert key in summary
    assert len(summary["hypervolume"]["reference_point"]) == 2 and summary["hypervolume"]["reference"]
    assert set(summary["interior_share"]) == set(OBJECTIVES)
    assert set(summary["interior_share"]["conciseness"]) == {"share", "lo", "hi", "corner_gap", "n_edges"}
    assert summary["prompts"] == {"source": "builtin", "split": "eval", "count": 2}
    assert (out / "front.html").stat().st_size > 1000

    loaded = load_eval(run_dir)  # a run folder with eval/ is accepted
    assert loaded.scores.shape == (2, 2, 2)
    assert np.allclose(loaded.points, table[OBJECTIVES].to_numpy())


def test_eval_is_deterministic_for_a_seed(tiny_model_dir, tmp_path):
    base = ["eval", "--run", f"base:{tiny_model_dir}", "--objectives", *OBJECTIVES, *TINY_EVAL, "--batch_size", 3]
    run_cli(*base, "--out", tmp_path / "a")
    run_cli(*base, "--out", tmp_path / "b")
    run_cli(*base, "--out", tmp_path / "c", "--seed", 1)
    for name in ("eval.csv", "generations.jsonl"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    assert (tmp_path / "a" / "generations.jsonl").read_text() != (tmp_path / "c" / "generations.jsonl").read_text()


def test_eval_on_chosen_categories(tiny_model_dir, tmp_path, capsys):
    run_cli("eval", "--run", f"base:{tiny_model_dir}", "--objectives", *OBJECTIVES, "--grid", 2, "--limit", 3,
            "--categories", "harmful", "borderline", "--max_new_tokens", 3, "--out", tmp_path)
    generations = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert len({g["prompt_id"] for g in generations}) == 3
    assert {g["category"] for g in generations} <= {"harmful", "borderline"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["prompts"]["categories"] == ["harmful", "borderline"]
    # the record says how responses were computed (tests/test_fastgen.py checks what numerics() says)
    assert summary["sampling"] == load_policy(f"base:{tiny_model_dir}").numerics()
    assert summary["sampling"].startswith("fast sampler")
    assert load_eval(tmp_path).meta["sampling"] == summary["sampling"]
    capsys.readouterr()
    assert main(["eval", "--run", f"base:{tiny_model_dir}", "--objectives", *OBJECTIVES, "--categories", "harmfull",
                 "--out", str(tmp_path / "x")]) == 2
    assert "no such category" in capsys.readouterr().err


def test_eval_three_objectives_draws_pairwise_projections(tiny_model_dir, tmp_path):
    objectives = [*OBJECTIVES, "python:test_evaluate:letters_too"]
    run_cli("eval", "--run", f"base:{tiny_model_dir}", "--objectives", *objectives, "--grid", 2, "--limit", 1,
            "--max_new_tokens", 3, "--out", tmp_path)
    assert len(pd.read_csv(tmp_path / "eval.csv")) == 3
    page = (tmp_path / "front.html").read_text()
    assert "letters_too vs conciseness" in page


letters_too = letters


def test_soups_and_compare(tiny_model_dir, run_dir, tmp_path, capsys):
    soups = tmp_path / "soups"
    run_cli("train-soups", "--model_name_or_path", tiny_model_dir, "--objectives", *OBJECTIVES, *TINY_TRAIN,
            "--output_dir", soups)
    meta = json.loads((soups / "soups.json").read_text())
    assert meta["objectives"] == OBJECTIVES
    assert meta["runs"] == {"conciseness": "conciseness", "python:test_evaluate:letters": "python_test_evaluate_letters"}
    member = (soups / "python_test_evaluate_letters" / "config.yaml").read_text()
    assert "weight_mode: fixed" in member and "- 0.0\n- 1.0" in member
    assert (soups / "conciseness" / "adapter" / "adapter_config.json").is_file()
    soup_args = ["train-soups", "--model_name_or_path", tiny_model_dir, "--objectives", *OBJECTIVES, *TINY_TRAIN,
                 "--output_dir", soups]
    assert main([str(a) for a in soup_args]) == 2  # an existing soups folder needs --resume or --overwrite
    before = (soups / "conciseness" / "metrics.jsonl").read_text()
    run_cli(*soup_args, "--resume")  # finished members are kept, not retrained
    assert (soups / "conciseness" / "metrics.jsonl").read_text() == before
    assert (soups / "soups.json").is_file()
    shutil.rmtree(soups / "conciseness" / "checkpoints")  # as git keeps a member: its adapter, no checkpoints
    run_cli(*soup_args, "--resume")
    assert (soups / "conciseness" / "metrics.jsonl").read_text() == before

    run_cli("eval", "--run", soups, *TINY_EVAL)
    run_cli("eval", "--run", f"base:{tiny_model_dir}", "--objectives", *OBJECTIVES, *TINY_EVAL,
            "--out", tmp_path / "base" / "eval")
    if not (run_dir / "eval").is_dir():
        run_cli("eval", "--run", run_dir, *TINY_EVAL)
    capsys.readouterr()
    run_cli("compare", run_dir, soups, tmp_path / "base", "--out", tmp_path / "cmp")
    printed = capsys.readouterr().out
    assert "hypervolume [95% CI]" in printed and "wins over tiny" in printed and "soups (soups)" in printed
    assert "minus tiny" in printed and "interior conciseness" in printed and "first_dominated" not in printed
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert list(table["system"]) == ["tiny", "soups (soups)", f"base ({tiny_model_dir})"]
    assert table.loc[1:, "win_rate"].between(0, 1).all()
    assert set(table["vs_first"]) <= {"-", "dominates", "dominated", "neither"}
    assert {"steer_conciseness", "mono_conciseness", "interior_conciseness", "hv_length_controlled", "hv_diff",
            "hv_diff_lo", "hv_diff_hi"} <= set(table.columns)
    assert "hypervolume reference point (conciseness=" in printed
    details = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert len(details["reference_point"]) == 2 and len(details["systems"]) == 3
    assert details["reference"] in printed and details["paired"]["prompts"] == 2

    capsys.readouterr()
    run_cli("compare", run_dir, soups, "--ref", "-1", "0", "--out", tmp_path / "cmp-ref")
    printed = capsys.readouterr().out
    assert "hypervolume reference point (conciseness=-1, python:test_evaluate:letters=0): given" in printed
    assert json.loads((tmp_path / "cmp-ref" / "compare.json").read_text())["reference_point"] == [-1.0, 0.0]
    assert main(["compare", str(run_dir), "--ref", "0", "0", "0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs 2 values" in err and "\n" not in err
    assert (tmp_path / "cmp" / "compare.html").stat().st_size > 1000
    assert "Declined, by prompt category" in (tmp_path / "cmp" / "declines.html").read_text()


def test_sweep_trains_evaluates_and_compares(tiny_model_dir, tmp_path, capsys):
    base = tmp_path / "sw"
    run_cli("sweep", "--model_name_or_path", tiny_model_dir, "--objectives", *OBJECTIVES, *TINY_TRAIN,
            "--output_dir", base,
            "--alpha", 0.5, 2, "--grid", 2, "--limit", 2, "--eval_max_new_tokens", 4,
            "--eval_categories", "everyday", "harmful")
    for a in ("0.5", "2"):
        summary = json.loads((tmp_path / f"sw-alpha{a}" / "eval" / "summary.json").read_text())
        assert summary["prompts"]["split"] == "dev"  # alpha is chosen on dev, never on the eval split
        assert summary["prompts"]["categories"] == ["everyday", "harmful"]
        assert f"alpha: {float(a)}" in (tmp_path / f"sw-alpha{a}" / "config.yaml").read_text()
    table = pd.read_csv(tmp_path / "sw-sweep" / "compare.csv")
    assert list(table["system"]) == ["alpha=0.5", "alpha=2"]
    assert "alpha=2" in (tmp_path / "sw-sweep" / "compare.html").read_text()


def test_steer_report_escapes_model_and_prompt_text(tiny_model_dir, tmp_path):
    source = tmp_path / "p.jsonl"
    source.write_text(json.dumps({"id": "x1", "prompt": "Say <script>alert(1)</script> & more", "split": "eval"}) + "\n")
    out = tmp_path / "report.html"
    run_cli("steer-report", "--run", f"base:{tiny_model_dir}", "--objectives", *OBJECTIVES, "--weights", "1,0",
            "0.5 0.5", "0,1", "--source", source, "--max_new_tokens", 4, "--out", out)
    page = out.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page and "<script>" not in page
    assert page.count("<tr>") == 2 and "Conciseness: 0.50" in page


def test_objectives_command_prints_correlations(tiny_model_dir, capsys):
    run_cli("objectives", "--model", tiny_model_dir, "--objectives", *OBJECTIVES, "--limit", 3, "--samples", 2,
            "--max_new_tokens", 4)
    printed = capsys.readouterr().out
    assert "6 responses" in printed and "pearson" in printed and "spearman" in printed


@pytest.mark.parametrize("args, message", [
    (["eval", "--run", "no/such/run"], "does not exist"),
    (["eval", "--run", "base:{tiny}", "--grid", "0"], "--grid must be >= 1"),
    (["compare", "{tmp}"], "holds no eval data"),
    (["compare", "{tmp}", "--ref", "0", "nan"], "--ref values must be finite"),
    (["compare", "{tmp}", "--ref", "0", "x"], "--ref values must be numbers"),
    (["steer-report", "--run", "base:{tiny}", "--weights", "1,x"], "weights must be numbers"),
    (["steer-report", "--run", "base:{tiny}", "--weights", "1,0,0"], "expected 2 weights"),
    (["sweep", "--model_name_or_path", "{tiny}", "--alpha", "0", "--output_dir", "{tmp}/s"],
     "--alpha values must be > 0"),
    (["sweep", "--model_name_or_path", "{tiny}", "--alpha", "1", "--output_dir", "{tmp}/s", "--eval_categories", "nope"],
     "no prompts in categories ['nope']"),
])
def test_bad_input_is_one_line(args, message, tiny_model_dir, tmp_path, capsys):
    args = [a.format(tiny=tiny_model_dir, tmp=tmp_path) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not list(tmp_path.glob("s-*"))  # a sweep with bad input fails before training any alpha


FLOORED = ["python:test_evaluate:letters", "python:test_evaluate:letters_too"]


def synthetic(system, offset, lengths=10, objectives=("a", "b"), seed=0):
    """A 2-objective result on 3 weights x 4 prompts whose scores follow the weights, shifted by offset."""
    weights = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    noise = np.random.default_rng(seed).normal(0, 0.01, size=(4, 3, 1, 2))
    scores = weights[None, :, None, :] + offset + noise
    return EvalResult(system=system, objectives=list(objectives), weights=weights,
                      prompts=[Prompt(str(i), f"p{i}", "c") for i in range(4)], sample_scores=scores,
                      sample_lengths=np.full((4, 3, 1), lengths), responses=[[["r"]] * 3] * 4, meta={})


@pytest.fixture
def floors(monkeypatch):
    """FLOORED's objectives get floor -1 (get_objective caches them, so the floor is undone after)."""
    from moodpo.objectives import get_objective

    for name in FLOORED:
        monkeypatch.setattr(get_objective(name), "floor", -1.0)


def test_compare_known_answer():
    table, details = compare_results([synthetic("A", 0.0), synthetic("B", 0.5)])
    b = table.iloc[1]
    assert b["vs_first"] == "dominates" and b["first_dominated"] == 1.0
    assert b["win_rate"] == 1.0 and b["win_lo"] == 1.0
    assert b["hypervolume"] > table.iloc[0]["hypervolume"]
    assert (table["hv_lo"] <= table["hypervolume"]).all() and (table["hypervolume"] <= table["hv_hi"]).all()
    assert table.iloc[0]["hv_hi"] < b["hv_lo"]          # B's front is 0.5 better on both objectives
    assert b["hv_diff"] == pytest.approx(b["hypervolume"] - table.iloc[0]["hypervolume"])
    assert 0 < b["hv_diff_lo"] <= b["hv_diff"] <= b["hv_diff_hi"]
    assert np.isnan(table.iloc[0]["hv_diff"]) and np.isnan(table.iloc[0]["win_rate"])
    assert b["steer_a"] == pytest.approx(1.0) and b["mono_a"] == 1.0
    assert np.isnan(b["interior_a"])                    # 3 points per edge: the share is undefined
    # No objective has a floor ("a", "b" are no objectives), so the common reference is the worst
    # mean point minus 10% of the span, over both systems, and the details say it depends on them.
    points = np.concatenate([synthetic("A", 0.0).points, synthetic("B", 0.5).points])
    span = points.max(0) - points.min(0)
    assert np.allclose(details["reference_point"], points.min(0) - 0.1 * span)
    assert "depends on the systems compared" in details["reference"]
    assert details["paired"] == {"prompts": 4, "weights": 3, "n_boot": 1000, "seed": 0}


def test_compare_columns_in_order():
    table, _ = compare_results([synthetic("A", 0.0), synthetic("B", 0.5)])
    assert list(table.columns) == ["system", "points", "hypervolume", "hv_lo", "hv_hi", "hv_diff", "hv_diff_lo",
                                   "hv_diff_hi", "hv_length_controlled", "vs_first", "first_dominated", "steer_a",
                                   "mono_a", "interior_a", "steer_b", "mono_b", "interior_b", "win_rate", "win_lo",
                                   "win_hi", "length", "decline_rate", "max_decline_rate", "echo_rate",
                                   "max_echo_rate", "degenerate_rate", "max_degenerate_rate", "declines", "decline_phrasings"]


def test_fixed_reference_order_of_sources(floors):
    from moodpo.eval.evaluate import fixed_reference

    results = [synthetic("A", 0.0, objectives=FLOORED)]
    ref, source = fixed_reference(FLOORED, [r.points for r in results], ref=[0.5, -2])
    assert ref.tolist() == [0.5, -2.0] and source.startswith("given")
    ref, source = fixed_reference(FLOORED, [r.points for r in results])
    assert ref.tolist() == [-1.0, -1.0] and "floors" in source
    ref, source = fixed_reference(["python:test_evaluate:letters", "b"], [r.points for r in results])
    assert np.allclose(ref, results[0].points.min(0) - 0.1 * np.ptp(results[0].points, axis=0))
    assert "b: no floor" in source and "depends on the systems compared" in source
    for bad, message in (([0.0], "needs 2 values"), ([0.0, np.inf], "finite")):
        with pytest.raises(Exception, match=message):
            fixed_reference(FLOORED, [r.points for r in results], ref=bad)


def test_compare_on_floors_a_third_system_changes_nothing_for_the_first_two(floors):
    a, b = synthetic("A", 0.0, objectives=FLOORED), synthetic("B", 0.1, objectives=FLOORED, seed=1)
    c = synthetic("C", 2.0, objectives=FLOORED, seed=2)    # would move a data-derived reference point
    two, details = compare_results([a, b])
    three, _ = compare_results([a, b, c])
    assert details["reference_point"] == [-1.0, -1.0] and "floors" in details["reference"]
    columns = ["hypervolume", "hv_lo", "hv_hi", "hv_diff", "hv_diff_lo", "hv_diff_hi", "win_rate", "win_lo", "win_hi"]
    pd.testing.assert_frame_equal(three.loc[:1, columns], two[columns])
    # The same numbers as one evaluation's summary: its hypervolume is on the floors too.
    summary = a.summary()
    assert summary["hypervolume"]["reference_point"] == [-1.0, -1.0]
    assert summary["hypervolume"]["value"] == pytest.approx(two.iloc[0]["hypervolume"])


def test_compare_pairs_on_the_shared_prompts_and_weights(caplog):
    a = synthetic("A", 0.0)
    b = synthetic("B", 0.5)
    b.prompts = [Prompt(str(i), f"p{i}", "c") for i in (1, 0, 2, 9)]   # prompt 3 missing, another added
    with caplog.at_level("WARNING"):
        table, details = compare_results([a, b])
    assert "3 prompts and 3 weights all systems share" in caplog.text
    assert details["paired"]["prompts"] == 3
    assert table.iloc[1]["win_rate"] == 1.0


def test_summary_interior_share_and_line(tmp_path):
    from moodpo.commands import _summary_line
    from moodpo.eval.pareto import interior_share
    from moodpo.weights import simplex_grid

    weights = simplex_grid(2, 11)
    t = weights[:, :1]
    scores = np.concatenate([t, 1 - t], axis=1)[None, :, None, :] + np.zeros((3, 1, 1, 1))
    result = EvalResult(system="line", objectives=["a", "b"], weights=weights,
                        prompts=[Prompt(str(i), f"p{i}", "c") for i in range(3)], sample_scores=scores,
                        sample_lengths=np.full((3, 11, 1), 5), responses=[[["r"]] * 11] * 3,
                        meta={"wall_seconds": 1.0})
    summary = result.summary()
    assert summary["interior_share"]["a"]["share"] == pytest.approx(0.5)
    assert summary["interior_share"] == json.loads(json.dumps(interior_share(weights, result.scores, ["a", "b"])))
    line = _summary_line(result, tmp_path)
    assert "steerability (spearman) a=1.00, b=1.00, interior share a=0.50, b=0.50" in line


def test_compare_rejects_different_objectives():
    other = synthetic("B", 0.0)
    other.objectives = ["a", "c"]
    with pytest.raises(Exception, match="same objectives"):
        compare_results([synthetic("A", 0.0), other])


def test_rescore_scores_the_same_responses_again(tmp_path, capsys):
    from moodpo.eval.evaluate import write_eval

    old = synthetic("A", 0.0)
    old.objectives = ["conciseness", "helpfulness"]
    old.responses = [[[" ".join(["word"] * (p * 10 + g))] for g in range(3)] for p in range(4)]
    write_eval(old, tmp_path / "old")
    assert main(["rescore", str(tmp_path / "old"), "--out", str(tmp_path / "new")]) == 0
    assert "12 responses rescored" in capsys.readouterr().out
    new = load_eval(tmp_path / "new")
    assert new.responses == old.responses and np.array_equal(new.weights, old.weights)
    assert new.meta["objective_versions"] == {"conciseness": 2, "helpfulness": 2}
    # A repetition loop ("word word ... word", 10+ words) is no concise answer under version 2.
    assert (new.sample_scores[1:, :, 0, 0] < 0.05).all()
    assert new.meta["rescored"] and load_eval(tmp_path / "old").meta.get("rescored") is None
    # The first definitions on request, under their versioned names.
    assert main(["rescore", str(tmp_path / "old"), "--out", str(tmp_path / "v1"),
                 "--objectives", "conciseness@v1", "helpfulness@v1"]) == 0
    assert "-> conciseness@v1 0.781" in capsys.readouterr().out
    v1 = load_eval(tmp_path / "v1")
    assert v1.objectives == ["conciseness@v1", "helpfulness@v1"]
    words = np.array([[p * 10 + g for g in range(3)] for p in range(4)])
    np.testing.assert_allclose(v1.sample_scores[:, :, 0, 0], 1 / (1 + words / 50))
    assert main(["rescore", str(tmp_path / "old"), "--out", str(tmp_path / "x"), "--objectives", "conciseness"]) == 2
    assert "1 objectives for an evaluation of 2" in capsys.readouterr().err
    # Never in place: the old scores stay.
    assert main(["rescore", str(tmp_path / "old"), "--out", str(tmp_path / "old")]) == 2
    assert "choose another folder" in capsys.readouterr().err


def test_pool_seeds_puts_each_seeds_samples_side_by_side():
    from moodpo.eval.evaluate import pool_seeds

    s0, s1 = synthetic("run-s0", 0.0, seed=0), synthetic("run-s1", 0.2, seed=1)
    s0.meta, s1.meta = {"settings": {"temperature": 0.7}}, {"settings": {"temperature": 0.7}}
    pooled = pool_seeds([s0, s1], "run")
    assert pooled.sample_scores.shape == (4, 3, 2, 2) and pooled.sample_lengths.shape == (4, 3, 2)
    np.testing.assert_allclose(pooled.scores, (s0.scores + s1.scores) / 2)
    assert pooled.responses[0][0] == ["r", "r"]
    assert pooled.meta["pooled"] == ["run-s0", "run-s1"] and pooled.meta["samples_per_prompt"] == 2
    assert pooled.system == "run" and s0.sample_scores.shape == (4, 3, 1, 2)     # the inputs stay as they were


@pytest.mark.parametrize("change, what", [
    (lambda r: setattr(r, "weights", r.weights[::-1].copy()), "weights"),
    (lambda r: setattr(r, "prompts", r.prompts[::-1]), "prompts"),
    (lambda r: setattr(r, "meta", {"settings": {"temperature": 1.0}}), "generation settings"),
])
def test_pool_seeds_refuses_evaluations_that_differ(change, what):
    from moodpo.eval.evaluate import pool_seeds

    s0, s1 = synthetic("s0", 0.0), synthetic("s1", 0.0, seed=1)
    change(s1)
    with pytest.raises(MoodpoError, match=f"their {what} differ"):
        pool_seeds([s0, s1])
    with pytest.raises(MoodpoError, match="at least two"):
        pool_seeds([s0])


def test_compare_pools_seeds_joined_with_plus(tmp_path, capsys):
    from moodpo.eval.evaluate import pool_seeds, write_eval

    base, s0, s1 = synthetic("base", 0.0), synthetic("J", 0.3, seed=1), synthetic("J", 0.5, seed=2)
    for name, r in (("base", base), ("s0", s0), ("s1", s1)):
        write_eval(r, tmp_path / name)
    assert main(["compare", str(tmp_path / "base"), f"{tmp_path / 's0'}+{tmp_path / 's1'}",
                 "--out", str(tmp_path / "cmp")]) == 0
    systems = json.loads((tmp_path / "cmp" / "compare.json").read_text())["systems"]
    assert [s["system"] for s in systems] == ["base", "J (2 seeds)"]
    direct, _ = compare_results([base, pool_seeds([s0, s1])])
    assert systems[1]["hypervolume"] == pytest.approx(direct.iloc[1]["hypervolume"])
    assert systems[1]["hv_diff_lo"] == pytest.approx(direct.iloc[1]["hv_diff_lo"])
    capsys.readouterr()
    assert main(["compare", f"{tmp_path / 's0'}+{tmp_path / 'nope'}", "--out", str(tmp_path / "x")]) == 2
    assert "nope" in capsys.readouterr().err
