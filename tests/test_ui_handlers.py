"""The app's handlers and figure builders as plain functions: no browser, no server."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from moodpo.errors import MoodpoError
from moodpo.weights import parse_alpha
from test_ui_fixtures import OBJECTIVES, make_runs, snapshot
from ui.figures import progress_html, scores_figure, scores_table, weights_text
from ui.fronts import (front_figure, hypervolume_table, list_eval_sources, load_fronts, point_samples,
                       points_table)
from ui.generation import Side, check_prompt, check_sampling, compare, reorder, steer
from ui.policies import BASE, PolicyStore, list_policies, policy_spec
from ui.settings import AppConfig
from ui.training import TrainingManager
from ui.widgets import rebalance


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return make_runs(tmp_path_factory.mktemp("runs"), tiny_model_dir)


@pytest.fixture(scope="module")
def config(runs, tiny_model_dir, tmp_path_factory):
    return AppConfig(runs_dir=runs, model=tiny_model_dir, configs_dir=tmp_path_factory.mktemp("configs"),
                     max_new_tokens=8)


@pytest.fixture(scope="module")
def store(config):
    return PolicyStore(config)



def test_policy_list_has_base_runs_checkpoints_and_soups(config):
    choices = {c.value: c for c in list_policies(config)}
    assert list(choices)[0] == BASE
    assert choices["alpha-0.5"].kind == "run" and "final" in choices["alpha-0.5"].label
    assert "α=0.5" in choices["alpha-0.5"].label
    assert choices["alpha-0.5/checkpoints/step-000002"].kind == "checkpoint"
    assert "latest checkpoint (step 1)" in choices["alpha-2"].label
    assert choices["soups"].kind == "soups"
    assert choices["soups"].objectives == tuple(OBJECTIVES)
    # a run without any adapter, and a folder that is not a run, are not offered
    assert "sweep/alpha-1" not in choices and "notes" not in choices


@pytest.mark.parametrize("value", ["../alpha-0.5", "/etc", "/etc/passwd", "alpha-0.5/../../x", "", "  ", ".",
                                   "alpha-0.5/config.yaml", "notes", "sweep/alpha-1", "nope", "a\x00b",
                                   "base:/tmp/model", "alpha-0.5/eval"])
def test_policy_values_outside_or_unloadable_are_refused(config, value):
    with pytest.raises(MoodpoError):
        policy_spec(config, value)


def test_symlink_out_of_the_runs_folder_is_refused(config, runs, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(runs / "alpha-0.5", outside)
    link = runs / "linked"
    link.symlink_to(outside, target_is_directory=True)
    try:
        with pytest.raises(MoodpoError, match="not under the runs folder"):
            policy_spec(config, "linked")
    finally:
        link.unlink()


def test_soups_member_outside_the_runs_folder_is_refused(config, runs, tmp_path):
    bad = runs / "bad-soups"
    bad.mkdir()
    (bad / "soups.json").write_text('{"objectives": ["helpfulness"], "runs": {"helpfulness": "../../../etc"}}')
    try:
        with pytest.raises(MoodpoError, match="not under the runs folder"):
            policy_spec(config, "bad-soups")
    finally:
        shutil.rmtree(bad)


def test_policy_spec_objectives_without_loading(config):
    assert policy_spec(config, BASE) == (f"base:{config.model}", tuple(OBJECTIVES))
    spec, objectives = policy_spec(config, "alpha-0.5/checkpoints/step-000002")
    assert spec.endswith("step-000002") and objectives == tuple(OBJECTIVES)


class CountingLoader:
    def __init__(self):
        self.calls = []

    def __call__(self, spec, **kwargs):
        self.calls.append(spec)
        return f"policy:{spec}:{len(self.calls)}"


def test_store_loads_once_reloads_new_checkpoint_and_refuses_vanished(config, runs, tmp_path):
    run = tmp_path / "runs"
    shutil.copytree(runs, run, symlinks=True)
    cfg = AppConfig(runs_dir=run, model=config.model, cached_policies=2)
    loader = CountingLoader()
    store = PolicyStore(cfg, loader=loader)
    messages = []
    first = store.get("alpha-2", on_load=messages.append)
    assert store.get("alpha-2") == first and len(loader.calls) == 1 and len(messages) == 1
    # a newer checkpoint of a training run: the next request loads it
    shutil.copytree(run / "alpha-2/checkpoints/step-000001", run / "alpha-2/checkpoints/step-000003")
    assert store.get("alpha-2") != first and len(loader.calls) == 2
    # a checkpoint that vanished is refused even though it was loaded before
    store.get("alpha-0.5/checkpoints/step-000002")
    shutil.rmtree(run / "alpha-0.5/checkpoints/step-000002")
    with pytest.raises(MoodpoError, match="no longer exists"):
        store.get("alpha-0.5/checkpoints/step-000002")
    # least recently used policies leave memory
    store.get(BASE)
    store.get("alpha-0.5")
    assert not store.is_loaded("alpha-2")



@pytest.mark.parametrize("prompt,match", [("", "empty"), ("   \n", "empty"), (None, "empty"),
                                          ("x" * 4001, "4,001 characters; the limit is 4,000")])
def test_bad_prompts(prompt, match):
    with pytest.raises(MoodpoError, match=match):
        check_prompt(prompt, 4000)


def test_prompt_at_the_limit_passes():
    assert check_prompt("x" * 4000, 4000) == "x" * 4000


@pytest.mark.parametrize("tokens,temperature,seed", [(0, 0.7, 0), (10_000, 0.7, 0), (8.5, 0.7, 0),
                                                     (8, -1, 0), (8, math.nan, 0), (8, 5, 0), (8, 0.7, -1),
                                                     (8, 0.7, math.inf), ("many", 0.7, 0)])
def test_bad_sampling_settings(tokens, temperature, seed):
    with pytest.raises(MoodpoError):
        check_sampling(AppConfig(), tokens, temperature, seed)


def test_temperature_zero_is_greedy():
    settings, seed = check_sampling(AppConfig(), 16, 0, 3)
    assert not settings.do_sample and settings.max_new_tokens == 16 and seed == 3


@pytest.mark.parametrize("weights,match", [([0, 0], "all be zero"), ([math.nan, 1], "finite"),
                                           ([math.inf, 1], "finite"), ([-1, 2], "non-negative"),
                                           ([1], "expected 2 weights"), ([1, 0, 0], "expected 2 weights"),
                                           (None, "give 2 weights"), (["a", 1], "must be numbers")])
def test_bad_weights_are_refused_before_loading(config, weights, match, runs):
    loader = CountingLoader()
    before = snapshot(runs)
    with pytest.raises(MoodpoError, match=match):
        next(steer(PolicyStore(config, loader=loader), config, BASE, "hi", weights))
    assert loader.calls == [] and snapshot(runs) == before


def test_reorder_maps_weights_by_objective_name():
    assert reorder([0.7, 0.3], ["a", "b"], ["b", "a"]) == [0.3, 0.7]
    with pytest.raises(MoodpoError, match="different objectives"):
        reorder([0.7, 0.3], ["a", "b"], ["a", "c"])



def test_steer_streams_then_scores(store, config):
    states = list(steer(store, config, BASE, "How do airplanes stay in the air?", [3, 1], seed=0, max_new_tokens=8))
    assert [s["status"] for s in states][-2:] == ["scoring", "done"]
    final = states[-1]
    assert final["weights"] == [0.75, 0.25]
    assert final["prefix"] == ("[Begin System Instruction] Helpfulness: 0.75, Harmlessness: 0.25 "
                               "[End System Instruction]")
    assert set(final["scores"]) == set(OBJECTIVES)
    assert all(0 <= v <= 1 for v in final["scores"].values())
    texts = [s["response"] for s in states if s["status"] == "generating"]
    assert texts and all(b.startswith(a) for a, b in zip(texts, texts[1:]))


def test_steer_same_seed_same_text_other_weights_other_prefix(store, config):
    def final(weights, seed=0):
        return list(steer(store, config, "alpha-0.5", "Tell me about tea.", weights, seed=seed, max_new_tokens=8))[-1]

    a, again, b = final([1, 0]), final([1, 0]), final([0, 1])
    assert a["response"] == again["response"]
    assert a["prefix"] != b["prefix"] and "Helpfulness: 1.00" in a["prefix"] and "Harmlessness: 1.00" in b["prefix"]


def test_stream_advanced_from_different_threads_releases_the_policy_lock(store, config):
    """Gradio advances a sync generator on whichever worker thread is free; the next request must not hang."""
    import threading

    def advance(stream):
        out = []
        worker = threading.Thread(target=lambda: out.append(next(stream, None)))
        worker.start()
        worker.join(120)
        assert not worker.is_alive(), "the stream is stuck (policy lock never released?)"
        return out[0]

    for _ in range(2):
        stream = steer(store, config, BASE, "Hello there", [1, 1], max_new_tokens=8)
        states = iter(lambda: advance(stream), None)
        assert list(states)[-1]["status"] == "done"
    assert store.get(BASE).lock.acquire(timeout=5)
    store.get(BASE).lock.release()


def test_compare_pane_matches_steer_at_the_same_seed(store, config):
    prompt = "How can I become a better listener?"
    states = list(compare(store, config, prompt, Side(BASE, [1, 0]), Side("alpha-0.5", [0.5, 0.5]), seed=7,
                          max_new_tokens=8))
    final = states[-1]
    assert final["status"] == "done" and final["objectives"] == OBJECTIVES
    assert final["a"]["policy"] == BASE and final["b"]["policy"] == "alpha-0.5"
    assert set(final["a"]["scores"]) == set(final["b"]["scores"]) == set(OBJECTIVES)
    alone_a = list(steer(store, config, BASE, prompt, [1, 0], seed=7, max_new_tokens=8))[-1]
    alone_b = list(steer(store, config, "alpha-0.5", prompt, [0.5, 0.5], seed=7, max_new_tokens=8))[-1]
    assert final["a"]["response"] == alone_a["response"] and final["b"]["response"] == alone_b["response"]


def test_compare_streams_both_panes_together(store, config):
    """One policy at two weights runs as one batch: updates carry both panes growing at once."""
    states = list(compare(store, config, "Tell me about the moon.", Side(BASE, [1, 0]), Side(BASE, [0, 1]),
                          seed=3, max_new_tokens=12))
    final = states[-1]
    partial = [s for s in states if s["status"] == "generating" and s["a"]["response"] and s["b"]["response"]
               and s["a"]["response"] != final["a"]["response"] and s["b"]["response"] != final["b"]["response"]]
    assert partial, "no update had both panes part-way"


def test_compare_checks_both_sides_before_generating(config):
    loader = CountingLoader()
    with pytest.raises(MoodpoError, match="all be zero"):
        next(compare(PolicyStore(config, loader=loader), config, "hi", Side(BASE, [1, 0]), Side(BASE, [0, 0])))
    assert loader.calls == []



def test_eval_sources_and_fronts(config, runs):
    assert list_eval_sources(runs) == ["alpha-0.5", "alpha-2"]
    fronts = load_fronts(runs, ["alpha-2", "alpha-0.5", "sweep/alpha-1"])
    assert fronts.objectives == OBJECTIVES
    assert fronts.missing == ["sweep/alpha-1"] and "sweep/alpha-1" in fronts.warnings()[0]
    # legend ordered by alpha; only the latest step of an in-training table
    assert list(pd.unique(fronts.table["label"])) == ["alpha-0.5 (α=0.5)", "alpha-2 (α=2)"]
    live = fronts.table[fronts.table["run"] == "alpha-2"]
    assert len(live) == 5 and set(live["step"]) == {2}


def test_front_figure_one_trace_per_run_with_hover(runs):
    fig = front_figure(load_fronts(runs, ["alpha-0.5", "alpha-2"]), "helpfulness", "harmlessness")
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["alpha-0.5 (α=0.5)", "alpha-2 (α=2)"]
    hover = "".join(fig.data[0].hovertext)
    assert "weights: helpfulness=1, harmlessness=0" in hover and "[" in hover
    assert fig.layout.legend.title.text == "run (α)"


def test_hypervolume_uses_one_reference_point(runs):
    from moodpo.eval.pareto import hypervolume

    fronts = load_fronts(runs, ["alpha-0.5", "alpha-2"])
    table, ref = hypervolume_table(fronts)
    sets = [g[OBJECTIVES].to_numpy() for _, g in fronts.table.groupby("label", sort=False)]
    expected_ref = [0.0, 0.0]  # the built-in objectives' floors: fixed, whatever runs are shown
    np.testing.assert_allclose(ref, expected_ref, atol=1e-5)
    alone, alone_ref = hypervolume_table(load_fronts(runs, ["alpha-2"]))
    assert alone_ref == ref and alone["hypervolume"].iloc[0] == table["hypervolume"].iloc[1]
    np.testing.assert_allclose(table["hypervolume"], [hypervolume(s, expected_ref) for s in sets], atol=1e-5)
    assert list(table["run"]) == ["alpha-0.5 (α=0.5)", "alpha-2 (α=2)"]
    assert table["hypervolume"].iloc[0] > table["hypervolume"].iloc[1]  # alpha-2 sits 0.1 lower everywhere
    assert list(table["eval"]) == ["final", "training, step 2"] and list(table["points"]) == [5, 5]
    assert list(table["α"]) == ["0.5", "2"]


def test_points_and_their_samples(runs):
    fronts = load_fronts(runs, ["alpha-0.5"])
    points = points_table(fronts)
    assert list(points.columns) == ["run", "system", "w_helpfulness", "w_harmlessness", *OBJECTIVES]
    row = points.iloc[1]
    found = point_samples(runs, row["run"], row["system"], [row["w_helpfulness"], row["w_harmlessness"]], OBJECTIVES)
    assert len(found) == 2 and found["response"].iloc[0] == f"answer 0 at {row['w_helpfulness']:.2f}"
    assert "helpfulness 0.500" in found["scores"].iloc[0]


def test_reads_what_moodpo_evaluate_writes(tmp_path, tiny_model_dir):
    from moodpo.data import load_prompts
    from moodpo.eval.evaluate import evaluate_policy, write_eval
    from moodpo.objectives import get_objective
    from moodpo.policy import load_policy
    from moodpo.sampling_settings import GenerationSettings
    from moodpo.weights import simplex_grid

    objectives = ["conciseness", "helpfulness"]
    policy = load_policy(f"base:{tiny_model_dir}", objectives=objectives)
    result = evaluate_policy(policy, [get_objective(o) for o in objectives], load_prompts("builtin", "eval", limit=2),
                             simplex_grid(2, 3), settings=GenerationSettings(max_new_tokens=4), progress=False)
    write_eval(result, tmp_path / "base-eval")
    assert list_eval_sources(tmp_path) == ["base-eval"]
    fronts = load_fronts(tmp_path, ["base-eval"])
    assert fronts.objectives == objectives and len(fronts.table) == 3
    table, _ = hypervolume_table(fronts)
    assert list(table["eval"]) == ["final"] and table["hypervolume"].iloc[0] >= 0
    row = points_table(fronts).iloc[1]
    found = point_samples(tmp_path, "base-eval", row["system"], [row["w_conciseness"], row["w_helpfulness"]],
                          objectives)
    assert len(found) == 2 and "conciseness" in found["scores"].iloc[0]


def test_pareto_bad_input(runs):
    with pytest.raises(MoodpoError, match="not under the runs folder"):
        load_fronts(runs, ["../../etc"])
    with pytest.raises(MoodpoError, match="no generations.jsonl"):
        point_samples(runs, "alpha-2", "mo-odpo", [1, 0], OBJECTIVES)
    empty = load_fronts(runs, ["notes"])
    assert empty.empty and empty.missing == ["notes"]
    assert "No evaluation data" in front_figure(empty).layout.annotations[0].text


def test_mismatched_objectives_are_left_out(runs, tmp_path):
    other = tmp_path / "runs"
    shutil.copytree(runs, other, symlinks=True)
    pd.DataFrame([{"system": "x", "w_conciseness": 1.0, "conciseness": 0.5}]).to_csv(other / "notes" / "eval.csv")
    fronts = load_fronts(other, ["alpha-0.5", "notes"])
    assert fronts.skipped == ["notes"] and "other objectives" in fronts.warnings()[0]


def test_half_written_jsonl_line_is_skipped(runs, tmp_path):
    other = tmp_path / "runs"
    shutil.copytree(runs, other, symlinks=True)
    with open(other / "alpha-2" / "eval.jsonl", "a") as f:
        f.write('{"system": "mo-odpo", "w_help')
    assert len(load_fronts(other, ["alpha-2"]).table) == 5



def test_scores_figure_groups_two_sides():
    fig = scores_figure(OBJECTIVES, {"A": {"helpfulness": 0.2, "harmlessness": 0.9}, "B": None})
    assert [t.name for t in fig.data] == ["A", "B"]
    assert list(fig.data[0].x) == ["Helpfulness", "Harmlessness"] and list(fig.data[0].y) == [0.2, 0.9]
    assert list(fig.data[1].y) == [None, None]


def test_scores_table_and_weights_text():
    table = scores_table(OBJECTIVES, [0.75, 0.25], {"helpfulness": 0.41234, "harmlessness": 0.9})
    assert table.to_dict("list") == {"objective": ["Helpfulness", "Harmlessness"], "weight": [0.75, 0.25],
                                     "score": [0.412, 0.9]}
    assert scores_table(OBJECTIVES, [0.5, 0.5], None)["score"].isna().all()
    assert weights_text(OBJECTIVES, [0.7, 0.3]) == "Helpfulness **0.70** · Harmlessness **0.30**"
    assert "above zero" in weights_text(OBJECTIVES, None)


def test_progress_html_escapes_and_clamps():
    out = progress_html(12, 10, "<script>x</script>")
    assert 'value="10" max="10"' in out and "<script>" not in out and "&lt;script&gt;" in out


@pytest.mark.parametrize("values,k,moved,expected", [
    ([0.8, 0.5], 2, 0, [0.8, 0.2]),
    ([0.5, 0.5, 0.0], 3, 2, [0.5, 0.5, 0.0]),
    ([0.6, 0.3, 0.1], 3, 0, [0.6, 0.3, 0.1]),
    ([0.2, 0.6, 0.2], 3, 0, [0.2, 0.6, 0.2]),
    ([1.0, 0.0, 0.0], 3, 0, [1.0, 0.0, 0.0]),
    ([0.4, 0.0, 0.0], 3, 0, [0.4, 0.3, 0.3]),
    ([0.5, 0.9, 0.3], 3, 0, [0.5, 0.375, 0.125]),
    ([0.3], 1, 0, [1.0]),
])
def test_rebalance_keeps_the_weights_on_the_simplex(values, k, moved, expected):
    out = rebalance(values, k, moved)
    assert out == pytest.approx(expected, abs=1e-3) and sum(out) == pytest.approx(1.0, abs=2e-3)



@pytest.fixture
def trainer(config, tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "quick.yaml").write_text("alpha: 0.3\nmax_steps: 5\nobjectives: [helpfulness, conciseness]\n")
    (configs / "broken.yaml").write_text("alpha: [\n")
    (configs / "experiments").mkdir()
    (configs / "experiments" / "tried.yaml").write_text("# Tried: alpha 9; happened: nothing\nalpha: 9\n")
    runs = tmp_path / "runs"
    shutil.copytree(config.runs_dir, runs, symlinks=True)
    return TrainingManager(AppConfig(runs_dir=runs, configs_dir=configs, model=config.model))


def test_config_choices_and_values(trainer, tmp_path):
    assert list(trainer.config_files()) == ["broken", "quick", "experiments/tried"]
    assert trainer.default_config() == "broken" and trainer.load("experiments/tried").alpha == 9
    assert trainer.suggest_name("experiments/tried", 9).startswith("tried-a9-")
    (tmp_path / "configs" / "default.yaml").write_text("alpha: 0.3\n")
    assert list(trainer.config_files()) == ["default", "broken", "quick", "experiments/tried"]  # working first
    assert trainer.default_config() == "default"
    (tmp_path / "configs" / "default.yaml").unlink()
    empty = TrainingManager(AppConfig(configs_dir=trainer.config.configs_dir / "none"))
    assert list(empty.config_files()) == ["defaults"] and empty.load("defaults").max_steps == 100
    quick = trainer.load("quick")
    assert quick.alpha == 0.3 and quick.max_steps == 5 and quick.model_name_or_path == trainer.config.model
    assert trainer.objective_choices("quick")[:3] == ["helpfulness", "harmlessness", "conciseness"]
    with pytest.raises(MoodpoError, match="not valid YAML"):
        trainer.load("broken")
    with pytest.raises(MoodpoError, match="unknown config"):
        trainer.load("../../etc/passwd")


@pytest.mark.parametrize("kwargs,match", [
    (dict(run_name="../escape"), "run name"),
    (dict(run_name="a/b"), "run name"),
    (dict(run_name=""), "run name"),
    (dict(run_name="alpha-0.5"), "already exists"),
    (dict(objectives=[]), "at least one objective"),
    (dict(objectives=["python:os:system"]), "not offered"),
    (dict(alpha="0"), "alpha"),
    (dict(alpha="nan"), "alpha"),
    (dict(alpha="1, 2, 3"), "alpha needs 1 or 2 values"),
    (dict(max_steps=0), "steps"),
    (dict(max_steps=2.5), "steps"),
    (dict(config_name="nope"), "unknown config"),
])
def test_start_refuses_bad_input_and_writes_nothing(trainer, kwargs, match):
    args = dict(config_name="quick", run_name="new-run", alpha="0.3", max_steps=2,
                objectives=["helpfulness", "conciseness"]) | kwargs
    before = snapshot(trainer.config.runs_dir)
    with pytest.raises(MoodpoError, match=match):
        trainer.start(**args)
    assert snapshot(trainer.config.runs_dir) == before and trainer.active_runs() == []


def test_parse_alpha():
    assert parse_alpha("0.3") == 0.3 and parse_alpha("0.3, 1") == [0.3, 1.0] and parse_alpha(2) == 2.0


def test_status_of_existing_runs(trainer):
    assert trainer.status("alpha-0.5").state == "finished"
    stopped = trainer.status("alpha-2")
    assert stopped.state == "stopped" and "resume" in stopped.message
    assert trainer.status("sweep/alpha-1").state == "not started"
    table = trainer.runs_table()
    assert set(table["run"]) == {"alpha-0.5", "alpha-2", "sweep/alpha-1"}
    assert table.set_index("run").loc["alpha-0.5", "eval data"] == "yes"
    with pytest.raises(MoodpoError, match="is not training"):
        trainer.stop("alpha-2")
    with pytest.raises(MoodpoError, match="not under the runs folder"):
        trainer.stop("../..")


def test_a_run_started_elsewhere_counts_as_training_while_its_metrics_move(trainer):
    run = trainer.config.runs_dir / "sweep" / "alpha-1"
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.69, "time/step": 2.0}\n')
    assert trainer.active_runs() == ["sweep/alpha-1"]
    status = trainer.status("sweep/alpha-1")
    assert status.state == "training" and "outside this app" in status.message and status.step == 1
    old = os.stat(run / "metrics.jsonl").st_mtime - 3600
    os.utime(run / "metrics.jsonl", (old, old))
    assert trainer.active_runs() == []


def test_baseline_runs_are_named_in_the_policy_list_and_ric_has_no_alpha(tmp_path, tiny_model_dir):
    import yaml

    from ui.fronts import EvalSource, _alpha

    for name, method in (("ric", "ric"), ("rl", "rl")):
        (tmp_path / name / "adapter").mkdir(parents=True)
        (tmp_path / name / "adapter" / "adapter_config.json").write_text("{}")
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(
            {"method": method, "objectives": OBJECTIVES, "alpha": 0.3 if method == "rl" else 1.0}))
    config = AppConfig(runs_dir=tmp_path, model=tiny_model_dir, configs_dir=tmp_path / "configs")
    labels = {c.value: c.label for c in list_policies(config)}
    assert "Rewards-in-Context" in labels["ric"] and "α" not in labels["ric"]
    assert "conditioned RL · α=0.3" in labels["rl"]
    table = pd.DataFrame({"system": ["x"]})  # an evaluation table without an alpha column
    assert _alpha(EvalSource("ric", tmp_path / "ric" / "eval.csv", None, False), table, tmp_path) is None
    assert _alpha(EvalSource("rl", tmp_path / "rl" / "eval.csv", None, False), table, tmp_path) == 0.3
