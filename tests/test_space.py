"""Space mode: admin-only training and studies, the start-up preload, and a bounded soups cache."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ui import serve
from moodpo.errors import MoodpoError
from moodpo.human.votes import VoteStore
from test_ui_fixtures import OBJECTIVES, make_runs
from ui import voting
from ui.generation import steer
from ui.layout import loading_text
from ui.policies import BASE, PolicyStore
from ui.settings import AppConfig
from ui.training import TrainingManager

PASSWORD = "s3cret"
STUDY = ("name: from-yaml\nobjectives: [helpfulness, harmlessness]\n"
         "comparisons:\n  - a: {policy: base, weights: [1, 0]}\n    b: {policy: base, weights: [0, 1]}\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return make_runs(tmp_path_factory.mktemp("runs"), tiny_model_dir)


def test_space_id_turns_on_space_mode_and_preload(monkeypatch, tmp_path):
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert not serve.parse_args([]).public and serve.parse_args(["--public"]).public
    monkeypatch.setenv("SPACE_ID", "someone/moodpo")
    monkeypatch.setenv("MOODPO_ADMIN_PASSWORD", PASSWORD)
    args = serve.parse_args([])
    assert args.public and args.admin_password == PASSWORD and args.preload is None
    seen = {}
    monkeypatch.setattr(serve, "launch", lambda demo, **kwargs: seen.update(demo=demo))
    monkeypatch.setattr(PolicyStore, "preload", lambda store, value: seen.update(preloaded=value))
    serve.main(["--runs", str(tmp_path)])
    assert seen["demo"].store.config.public and seen["preloaded"] == "base"
    seen.clear()
    serve.main(["--runs", str(tmp_path), "--no-preload"])
    assert "preloaded" not in seen


def trainer_for(tmp_path, **config) -> TrainingManager:
    configs = tmp_path / "configs"
    configs.mkdir(exist_ok=True)
    (configs / "quick.yaml").write_text("alpha: 0.3\nmax_steps: 5\nobjectives: [helpfulness, conciseness]\n")
    # /bin/true stands in for python: the run "starts" and exits at once, nothing trains.
    return TrainingManager(AppConfig(runs_dir=tmp_path / "runs", configs_dir=configs, **config), python="true")


def start(trainer, name="space-run", password=None):
    return trainer.start("quick", name, "0.3", 2, ["helpfulness"], password=password)


@pytest.mark.parametrize("password", [None, "", PASSWORD])
def test_space_mode_without_an_admin_password_refuses_training(tmp_path, password):
    trainer = trainer_for(tmp_path, public=True)
    with pytest.raises(MoodpoError, match=r"training .* off: this app has no admin password \(set MOODPO_ADMIN"):
        start(trainer, password=password)
    with pytest.raises(MoodpoError, match="no admin password"):
        trainer.stop("space-run", password=password)
    assert not (tmp_path / "runs").exists() and trainer.active_runs() == []


def test_space_mode_training_needs_the_admin_password(tmp_path):
    trainer = trainer_for(tmp_path, public=True, admin_password=PASSWORD)
    for wrong in (None, "", "wrong", PASSWORD + " "):
        with pytest.raises(MoodpoError, match="wrong admin password"):
            start(trainer, password=wrong)
    assert start(trainer, password=PASSWORD) == "space-run"
    assert (tmp_path / "runs" / ".logs" / "space-run.yaml").is_file()
    with pytest.raises(MoodpoError, match="wrong admin password"):
        trainer.stop("space-run", password="wrong")


def test_a_private_app_trains_without_a_password(tmp_path):
    assert start(trainer_for(tmp_path)) == "space-run"


def test_space_mode_study_creation(tmp_path, monkeypatch):
    import moodpo.human.study

    def fake_make_study(spec, data_dir, *, runs_dir=None, progress=True):
        from test_ui_votes import synthetic_pairs

        return VoteStore(data_dir).create_study(spec.name, synthetic_pairs(2), questions=spec.questions,
                                                objectives=spec.objectives)

    monkeypatch.setattr(moodpo.human.study, "make_study", fake_make_study)
    folder = tmp_path / "configs" / voting.STUDIES_FOLDER
    folder.mkdir(parents=True)
    (folder / "demo.yaml").write_text(STUDY)
    votes = VoteStore(tmp_path / "data")
    common = dict(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", configs_dir=tmp_path / "configs",
                  public=True)
    with pytest.raises(MoodpoError, match="admin actions are off: this app has no admin password"):
        voting.create_from_config(votes, AppConfig(**common), PASSWORD, "demo.yaml")
    with pytest.raises(MoodpoError, match="wrong admin password"):
        voting.create_from_config(votes, AppConfig(**common, admin_password=PASSWORD), "", "demo.yaml")
    assert votes.studies() == []
    made = voting.create_from_config(votes, AppConfig(**common, admin_password=PASSWORD), PASSWORD, "demo.yaml")
    assert made.name == "from-yaml" and made.n_pairs == 2


def test_the_train_tab_asks_for_the_admin_password_only_in_space_mode(tmp_path):
    from ui import build_demo

    demo = build_demo(AppConfig(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data",
                                configs_dir=tmp_path / "configs", public=True))
    blocks = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert blocks["train-admin-password"].type == "password"
    assert "training is off on this public app" in blocks["train-admin-password"].info
    assert "app-loading" in blocks


def test_generation_waits_for_the_preload_instead_of_loading_twice(runs, tiny_model_dir, monkeypatch):
    import moodpo.objectives
    from moodpo.policy import load_policy

    loads, release = [], threading.Event()

    def slow_loader(spec, **kwargs):
        loads.append(spec)
        release.wait(30)
        return load_policy(spec, **kwargs)

    warmed = []
    real_score_all = moodpo.objectives.score_all
    monkeypatch.setattr(moodpo.objectives, "score_all",
                        lambda objectives, *args: warmed.append(list(objectives)) or real_score_all(objectives, *args))
    store = PolicyStore(AppConfig(runs_dir=runs, model=tiny_model_dir, max_new_tokens=4), loader=slow_loader)
    assert not store.loading and loading_text(store) == ""
    thread = store.preload(BASE)
    assert store.loading and "Loading the model and scorers" in loading_text(store)
    messages, states = [], []
    waiter = threading.Thread(target=lambda: states.extend(
        steer(store, store.config, BASE, "hi", [1, 0], on_load=messages.append)))
    waiter.start()
    time.sleep(0.5)
    assert states == [] and "the app just started" in messages[0]
    release.set()
    thread.join(60)
    waiter.join(60)
    assert states[-1]["status"] == "done" and len(loads) == 1
    assert warmed[0] == OBJECTIVES and not store.loading and loading_text(store) == ""


def test_a_failed_preload_is_shown_and_the_first_request_tries_again(runs, tiny_model_dir):
    calls = []

    def failing(spec, **kwargs):
        calls.append(spec)
        raise OSError("disk on fire")

    store = PolicyStore(AppConfig(runs_dir=runs, model=tiny_model_dir), loader=failing)
    store.preload(BASE).join(30)
    assert loading_text(store) == "⚠️ preloading failed: could not load 'base': disk on fire"
    with pytest.raises(MoodpoError, match="disk on fire"):
        list(steer(store, store.config, BASE, "hi", [1, 0]))
    assert len(calls) == 2


def test_bad_weights_are_refused_without_waiting_for_the_preload(runs, tiny_model_dir):
    store = PolicyStore(AppConfig(runs_dir=runs, model=tiny_model_dir))
    store._ready.clear()  # a preload that never ends
    with pytest.raises(MoodpoError, match="weights must be finite"):
        next(steer(store, store.config, BASE, "hi", [float("nan"), 1]))


def test_soups_mix_adapters_live_in_a_small_lru_cache(runs):
    from moodpo.policy import load_policy
    from moodpo.sampling_settings import GenerationSettings

    policy = load_policy(str(runs / "soups"))
    policy.soup_cache = 3
    members = set(policy.soup_adapters)
    settings = GenerationSettings(max_new_tokens=2)

    def mixes():
        return [n for n in policy.model.peft_config if n not in members]

    for i in range(5):  # five weight vectors, three kept: the oldest two are deleted
        list(policy.stream("hi", [i / 10, 1 - i / 10], settings=settings))
    assert sorted(mixes()) == ["soup_20_80", "soup_30_70", "soup_40_60"]
    assert policy.model.active_adapter == "soup_40_60"
    # weights rounded to the slider step share a mix, and using one makes it the most recent
    list(policy.stream("hi", [0.2004, 0.7996], settings=settings))
    list(policy.stream("hi", [0.7, 0.3], settings=settings))
    assert sorted(mixes()) == ["soup_20_80", "soup_40_60", "soup_70_30"]
    before = policy.generate(["hi"], [[0.7, 0.3]], settings=settings, seed=3)
    list(policy.stream("hi", [0.9, 0.1], settings=settings))  # evicts soup_20_80, not the one in use
    assert policy.generate(["hi"], [[0.7, 0.3]], settings=settings, seed=3) == before
    assert len(mixes()) == 3 and set(policy.model.peft_config) >= members
    assert np.allclose(policy.check_weights([0.7, 0.3]), [0.7, 0.3])
