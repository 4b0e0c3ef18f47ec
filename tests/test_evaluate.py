"""Evaluation, baselines and their commands, end to end on a tiny Llama (2 grid points, few prompts)."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # so "python:test_evaluate:letters" imports this module

from moodpo.cli import main
from moodpo.data import Prompt, load_prompts
from moodpo.evaluate import EvalResult, compare_results, load_eval

OBJECTIVES = ["conciseness", "python:test_evaluate:letters"]
TINY_TRAIN = ["--max_steps", "1", "--batch_size", "2", "--num_samples", "2", "--max_new_tokens", "6",
              "--warmup_steps", "0", "--save_every", "0", "--precision", "fp32", "--max_prompts", "8"]
TINY_EVAL = ["--grid", "2", "--limit", "2", "--max_new_tokens", "6"]
TABLE_COLUMNS = ["system", "w_conciseness", "w_python:test_evaluate:letters", "conciseness", "conciseness_lo",
                 "conciseness_hi", "python:test_evaluate:letters", "python:test_evaluate:letters_lo",
                 "python:test_evaluate:letters_hi", "length", "step", "alpha"]


def letters(prompts, responses):
    """Share of alphabetic characters: a cheap second objective that differs from conciseness."""
    return [sum(ch.isalpha() for ch in r) / max(1, len(r)) for r in responses]


def run_cli(*args):
    assert main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    """A 2-step MO-ODPO run that evaluates a 2-point grid on 2 held-out prompts after every step."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run_cli("train", "--model", tiny_model_dir, "--objectives", *OBJECTIVES, *TINY_TRAIN, "--max_steps", 2,
            "--eval_every", 1, "--eval_grid", 2, "--eval_prompts", 2, "--run_dir", run)
    return run


def test_training_appends_eval_rows(run_dir):
    rows = [json.loads(ln) for ln in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 1, 2, 2]
    assert {r["system"] for r in rows} == {"tiny"}
    assert list(rows[0]) == TABLE_COLUMNS
    assert sorted((r["w_conciseness"], r["step"]) for r in rows) == [(0.0, 1), (0.0, 2), (1.0, 1), (1.0, 2)]


def test_training_eval_uses_the_dev_split_else_eval(tmp_path):
    from moodpo.evaluate import _held_out

    assert {p.id for p in _held_out("builtin", 5, 0)} <= {p.id for p in load_prompts("builtin", "dev")}
    source = tmp_path / "no_dev.jsonl"
    source.write_text("".join(json.dumps({"prompt": t, "split": s}) + "\n" for t, s in (("a", "train"), ("b", "eval"))))
    assert [p.text for p in _held_out(str(source), 5, 0)] == ["b"]


def test_training_eval_restores_rng_and_train_mode(tiny_model_dir, tmp_path):
    from moodpo.config import load_config
    from moodpo.evaluate import append_training_eval
    from moodpo.trainer import Trainer

    config = load_config(overrides={"model": tiny_model_dir, "objectives": OBJECTIVES, "max_new_tokens": 4,
                                    "eval_grid": 2, "eval_prompts": 1, "run_dir": str(tmp_path / "r")})
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
                                   "scores", "length"}
    assert set(generations[0]["scores"]) == set(OBJECTIVES)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("hypervolume", "steerability", "adherence_spread", "length", "length_controlled", "settings"):
        assert key in summary
    assert len(summary["hypervolume"]["reference_point"]) == 2
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
    assert json.loads((tmp_path / "summary.json").read_text())["prompts"]["categories"] == ["harmful", "borderline"]
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
    run_cli("train-soups", "--model", tiny_model_dir, "--objectives", *OBJECTIVES, *TINY_TRAIN, "--run_dir", soups)
    meta = json.loads((soups / "soups.json").read_text())
    assert meta["objectives"] == OBJECTIVES
    assert meta["runs"] == {"conciseness": "conciseness", "python:test_evaluate:letters": "python_test_evaluate_letters"}
    member = (soups / "python_test_evaluate_letters" / "config.yaml").read_text()
    assert "weight_mode: fixed" in member and "- 0.0\n- 1.0" in member
    assert (soups / "conciseness" / "adapter" / "adapter_config.json").is_file()
    soup_args = ["train-soups", "--model", tiny_model_dir, "--objectives", *OBJECTIVES, *TINY_TRAIN, "--run_dir", soups]
    assert main([str(a) for a in soup_args]) == 2  # an existing soups folder needs --resume or --overwrite
    before = (soups / "conciseness" / "metrics.jsonl").read_text()
    run_cli(*soup_args, "--resume")  # finished members are kept, not retrained
    assert (soups / "conciseness" / "metrics.jsonl").read_text() == before
    assert (soups / "soups.json").is_file()

    run_cli("eval", "--run", soups, *TINY_EVAL)
    run_cli("eval", "--run", f"base:{tiny_model_dir}", "--objectives", *OBJECTIVES, *TINY_EVAL,
            "--out", tmp_path / "base" / "eval")
    if not (run_dir / "eval").is_dir():
        run_cli("eval", "--run", run_dir, *TINY_EVAL)
    capsys.readouterr()
    run_cli("compare", run_dir, soups, tmp_path / "base", "--out", tmp_path / "cmp")
    printed = capsys.readouterr().out
    assert "hypervolume" in printed and "win_rate" in printed and "soups (soups)" in printed
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert list(table["system"]) == ["tiny", "soups (soups)", f"base ({tiny_model_dir})"]
    assert table.loc[1:, "win_rate"].between(0, 1).all()
    assert set(table["vs_first"]) <= {"-", "dominates", "dominated", "neither"}
    assert {"steer_conciseness", "mono_conciseness", "hv_length_controlled"} <= set(table.columns)
    details = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert len(details["reference_point"]) == 2 and len(details["systems"]) == 3
    assert (tmp_path / "cmp" / "compare.html").stat().st_size > 1000


def test_sweep_trains_evaluates_and_compares(tiny_model_dir, tmp_path, capsys):
    base = tmp_path / "sw"
    run_cli("sweep", "--model", tiny_model_dir, "--objectives", *OBJECTIVES, *TINY_TRAIN, "--run_dir", base,
            "--alpha", 0.5, 2, "--grid", 2, "--limit", 2, "--eval_max_new_tokens", 4)
    for a in ("0.5", "2"):
        summary = json.loads((tmp_path / f"sw-alpha{a}" / "eval" / "summary.json").read_text())
        assert summary["prompts"]["split"] == "dev"  # alpha is chosen on dev, never on the eval split
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
    (["steer-report", "--run", "base:{tiny}", "--weights", "1,x"], "weights must be numbers"),
    (["steer-report", "--run", "base:{tiny}", "--weights", "1,0,0"], "expected 2 weights"),
    (["sweep", "--model", "{tiny}", "--alpha", "0", "--run_dir", "{tmp}/s"], "--alpha values must be > 0"),
])
def test_bad_input_is_one_line(args, message, tiny_model_dir, tmp_path, capsys):
    args = [a.format(tiny=tiny_model_dir, tmp=tmp_path) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def synthetic(system, offset, lengths=10):
    """A 2-objective result on 3 weights x 4 prompts whose scores follow the weights, shifted by offset."""
    weights = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    noise = np.random.default_rng(0).normal(0, 0.01, size=(4, 3, 1, 2))
    scores = weights[None, :, None, :] + offset + noise
    return EvalResult(system=system, objectives=["a", "b"], weights=weights,
                      prompts=[Prompt(str(i), f"p{i}", "c") for i in range(4)], sample_scores=scores,
                      sample_lengths=np.full((4, 3, 1), lengths), responses=[[["r"]] * 3] * 4, meta={})


def test_compare_known_answer():
    table, details = compare_results([synthetic("A", 0.0), synthetic("B", 0.5)])
    b = table.iloc[1]
    assert b["vs_first"] == "dominates" and b["first_dominated"] == 1.0
    assert b["win_rate"] == 1.0 and b["win_lo"] == 1.0
    assert b["hypervolume"] > table.iloc[0]["hypervolume"]
    assert (table["hv_lo"] <= table["hypervolume"]).all() and (table["hypervolume"] <= table["hv_hi"]).all()
    assert table.iloc[0]["hv_hi"] < b["hv_lo"]          # B's front is 0.5 better on both objectives
    assert b["steer_a"] == pytest.approx(1.0) and b["mono_a"] == 1.0
    # The common reference is the worst mean point minus 10% of the span, over both systems.
    points = np.concatenate([synthetic("A", 0.0).points, synthetic("B", 0.5).points])
    span = points.max(0) - points.min(0)
    assert np.allclose(details["reference_point"], points.min(0) - 0.1 * span)


def test_compare_rejects_different_objectives():
    other = synthetic("B", 0.0)
    other.objectives = ["a", "c"]
    with pytest.raises(Exception, match="same objectives"):
        compare_results([synthetic("A", 0.0), other])


def test_rescore_scores_the_same_responses_again(tmp_path, capsys):
    from moodpo.evaluate import write_eval

    old = synthetic("A", 0.0)
    old.objectives = ["conciseness", "helpfulness"]
    old.responses = [[[" ".join(["word"] * (p * 10 + g))] for g in range(3)] for p in range(4)]
    write_eval(old, tmp_path / "old")
    assert main(["rescore", str(tmp_path / "old"), "--out", str(tmp_path / "new")]) == 0
    assert "12 responses rescored" in capsys.readouterr().out
    new = load_eval(tmp_path / "new")
    assert new.responses == old.responses and np.array_equal(new.weights, old.weights)
    words = np.array([[p * 10 + g for g in range(3)] for p in range(4)])
    np.testing.assert_allclose(new.sample_scores[:, :, 0, 0], 1 / (1 + words / 50))
    assert new.meta["rescored"] and load_eval(tmp_path / "old").meta.get("rescored") is None
    # Never in place: the old scores stay.
    assert main(["rescore", str(tmp_path / "old"), "--out", str(tmp_path / "old")]) == 2
    assert "choose another folder" in capsys.readouterr().err
