"""Study configs, make_study end to end on a tiny Llama with toy objectives, and the study commands."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pandas as pd
import pytest
import yaml

from moodpo.cli import main
from moodpo.errors import MoodpoError
from moodpo.objectives import score_all
from moodpo.policy import load_policy
from moodpo.human.study import StudyConfig, generate_pairs, load_study_config, make_study
from moodpo.human.votes import VoteStore

OBJECTIVES = ["python:toy_objectives:distinct_chars", "python:toy_objectives:shortness"]


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return f"base:{tiny_model_dir}"


def study_yaml(path, base, **fields):
    config = {"name": "tiny", "objectives": OBJECTIVES, "overlap": 2, "num_prompts": 2, "max_new_tokens": 4,
              "comparisons": [
                  {"a": {"policy": base, "weights": [1, 0], "name": "tiny"},
                   "b": {"policy": base, "weights": [0, 1], "name": "tiny"}},
                  {"a": {"policy": base, "weights": [1, 0], "name": "tiny"},
                   "b": {"policy": base, "weights": "1,1", "name": "tiny"}}]} | fields
    path.write_text(yaml.safe_dump(config))
    return path


def side(policy="base:x", weights=(1, 0), **kw):
    return {"policy": policy, "weights": list(weights), **kw}


@pytest.mark.parametrize("fields, message", [
    (dict(comparisons=[]), "at least one"),
    (dict(comparisons=[{"a": side()}]), "exactly the keys a and b"),
    (dict(comparisons=[{"a": side(), "b": side(weights=(1,))}]), "comparison 1, b: expected 2 weights"),
    (dict(comparisons=[{"a": side(), "b": side(weights=(-1, 2))}]), "non-negative"),
    (dict(comparisons=[{"a": side(), "b": side(weights=(2, 0))}]), "with itself"),
    (dict(comparisons=[{"a": side(name="x"), "b": side("runs/y", name="x")}]), "two policies"),
    (dict(comparisons=[{"a": side(seed=1), "b": side(weights=(0, 1))}]), "policy, weights and optionally name"),
    (dict(objectives=["helpfulness", "overall"]), "overall question"),
    (dict(overlap=0), "overlap must be >= 1"),
    (dict(prompt_split="test"), "prompt_split"),
    (dict(temperature=0.0), "temperature"),
    (dict(instructions="x" * 4001), "shorten them to 4,000"),
])
def test_study_config_validation(fields, message):
    values = {"comparisons": [{"a": side(), "b": side(weights=(0, 1))}]} | fields
    with pytest.raises(MoodpoError, match=message):
        StudyConfig(**values)


def test_study_config_yaml_and_overrides(tmp_path, base):
    path = study_yaml(tmp_path / "s.yaml", base)
    spec = load_study_config(path, {"num_prompts": "3", "overall": "false", "categories": ["everyday"]})
    assert (spec.num_prompts, spec.overall, spec.categories) == (3, False, ["everyday"])
    assert spec.questions == OBJECTIVES
    assert spec.comparisons[1]["b"]["weights"] == [0.5, 0.5]  # normalised
    with pytest.raises(MoodpoError, match="must be an integer"):
        load_study_config(path, {"num_prompts": "many"})
    with pytest.raises(MoodpoError, match="boolean"):
        load_study_config(path, {"overall": "maybe"})
    spec = load_study_config(path, {"instructions": ["  Judge as a teacher would.  "], "reveal_systems": ["false"]})
    assert (spec.instructions, spec.reveal_systems) == ("Judge as a teacher would.", False)
    assert (load_study_config(path).instructions, load_study_config(path).reveal_systems) == ("", True)
    path.write_text(path.read_text() + "colour: blue\n")
    with pytest.raises(MoodpoError, match="unknown study config field 'colour'"):
        load_study_config(path)
    for name in ("demo", "base_steering", "shipped"):
        assert load_study_config(f"configs/studies/{name}.yaml").comparisons


def test_make_study_generates_each_policy_once_and_scores_without_prefix(tmp_path, base, monkeypatch):
    loads = []

    def counting_load(spec, **kw):
        loads.append(spec)
        return load_policy(spec, **kw)

    monkeypatch.setattr("moodpo.policy.load_policy", counting_load)
    spec = load_study_config(study_yaml(tmp_path / "s.yaml", base, instructions="Judge **both**.",
                                        reveal_systems=False))
    study = make_study(spec, tmp_path / "data", progress=False)
    assert loads == [base]  # one policy at three weight vectors: loaded once
    assert (study.name, study.n_pairs, study.overlap) == ("tiny", 4, 2)
    assert (study.instructions, study.reveal_systems) == ("Judge **both**.", False)
    assert study.questions == (*OBJECTIVES, "overall")
    pairs = VoteStore(tmp_path / "data").pairs(study.id)
    assert [(p.weights_a, p.weights_b) for p in pairs] == [((1, 0), (0, 1))] * 2 + [((1, 0), (0.5, 0.5))] * 2
    assert pairs[0].response_a == pairs[2].response_a  # the shared system was generated once
    assert not pairs[0].prompt.startswith("[Begin")
    texts = [p.response_a for p in pairs] + [p.response_b for p in pairs]
    expected = score_all(OBJECTIVES, [p.prompt for p in pairs] * 2, texts)
    got = np.array([[p.scores_a[o] for o in OBJECTIVES] for p in pairs] + [[p.scores_b[o] for o in OBJECTIVES]
                                                                          for p in pairs])
    assert got == pytest.approx(expected)
    with pytest.raises(MoodpoError, match="exists already"):
        make_study(spec, tmp_path / "data", progress=False)
    assert loads == [base]  # refused before loading anything


def test_generate_pairs_for_a_live_demo(tiny_model_dir, tmp_path):
    from moodpo.sampling_settings import GenerationSettings

    policy = load_policy(f"base:{tiny_model_dir}", objectives=OBJECTIVES)
    pairs = generate_pairs(policy, [3, 1], policy, [0, 1], ["Say hi.", "Name a colour."], OBJECTIVES,
                           settings=GenerationSettings(max_new_tokens=3), name_a="base", name_b="base")
    assert len(pairs) == 2 and pairs[0]["weights_a"] == (0.75, 0.25) and pairs[0]["prompt_id"].startswith("live-")
    assert set(pairs[0]["scores_a"]) == set(OBJECTIVES)
    store = VoteStore(tmp_path)
    study = store.create_study("live", [], questions=["overall"], objectives=OBJECTIVES)
    assert store.add_pairs(study.id, pairs) == 2
    with pytest.raises(MoodpoError, match="empty"):
        generate_pairs(policy, [1, 0], policy, [0, 1], ["  "], OBJECTIVES)
    with pytest.raises(MoodpoError, match="objectives"):
        generate_pairs(policy, [1, 0], policy, [0, 1], ["hi"], OBJECTIVES[:1])


def test_study_commands(tmp_path, base, capsys):
    data, out = tmp_path / "data", tmp_path / "report"
    config = study_yaml(tmp_path / "s.yaml", base)
    assert main(["make-study", "--config", str(config), "--data", str(data), "--name", "cli",
                 "--num_prompts", "1"]) == 0
    assert "study 'cli'" in capsys.readouterr().out
    store = VoteStore(data)
    study = store.find_study("cli")
    for k, choice in enumerate(("left", "right")):  # two annotators on both pairs
        token = store.register_annotator(f"annotator {k}")
        while (shown := store.next_pair(study.id, token)) is not None:
            store.record_vote(shown.vote_id, dict.fromkeys(study.questions, choice))

    assert main(["studies", "--data", str(data)]) == 0
    listing = capsys.readouterr().out
    assert "cli" in listing and study.id in listing

    assert main(["votes-report", "--data", str(data), "--study", "cli", "--out", str(out), "--n_boot", "50"]) == 0
    printed = capsys.readouterr().out
    assert "4 votes by 2 annotators on 2 pairs" in printed
    assert "Human vs reward model agreement" in printed and "Inter-annotator agreement" in printed
    for name in ("summary", "win_rates", "bradley_terry", "human_model", "inter_annotator"):
        assert not pd.read_csv(out / f"{name}.csv").empty
    assert (out / "report.html").read_text().startswith("<!doctype html>")

    for fmt, path in (("csv", tmp_path / "v.csv"), ("jsonl", tmp_path / "v.jsonl"), ("trl", tmp_path / "trl")):
        assert main(["votes-export", "--data", str(data), "--study", study.id, "--format", fmt,
                     "--out", str(path)]) == 0
    assert len(pd.read_csv(tmp_path / "v.csv")) == 4 * len(study.questions)
    assert json.loads((tmp_path / "v.jsonl").read_text().splitlines()[0])["study"] == "cli"
    assert len(datasets.load_from_disk(str(tmp_path / "trl"))) == 4

    assert main(["close-study", "--data", str(data), "--study", "cli"]) == 0
    assert store.study(study.id).status == "closed"
    assert main(["open-study", "--data", str(data), "--study", "cli"]) == 0
    assert store.study(study.id).status == "open"
    capsys.readouterr()


@pytest.mark.parametrize("argv, message", [
    (["votes-report", "--study", "nope"], "no study with id or name 'nope'"),
    (["votes-export", "--format", "csv", "--out", "x.csv"], "has no votes yet"),
    (["close-study", "--study", "nope"], "no study"),
])
def test_study_command_user_errors_exit_2_in_one_line(tmp_path, capsys, argv, message):
    assert main([*argv, "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_make_study_user_error_exits_2(tmp_path, base, capsys):
    config = study_yaml(tmp_path / "s.yaml", base, categories=["poetry"])
    assert main(["make-study", "--config", str(config), "--data", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "categories ['poetry']" in err and err.count("\n") == 1
