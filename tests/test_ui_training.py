"""The Train tab's backend with real background processes (`python -m moodpo train`) on the tiny model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from moodpo.errors import MoodpoError
from ui.policies import list_policies
from ui.settings import AppConfig
from ui.train_tab import run_view
from ui.training import TAB_EVAL_EVERY, TrainingManager

QUICK = """\
objectives: [conciseness]
per_device_train_batch_size: 2
max_new_tokens: 8
max_prompts: 8
warmup_steps: 0
save_steps: 0
"""
# Two objectives (a front needs two) that score instantly; the trainer process finds toy_objectives
# through PYTHONPATH.
LIVE = QUICK.replace("objectives: [conciseness]", "objectives: [conciseness, python:toy_objectives:shortness]") + """\
eval_grid: 3
eval_prompts: 2
"""


@pytest.fixture
def trainer(tmp_path, tiny_model_dir):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "quick.yaml").write_text(QUICK)
    (configs / "live.yaml").write_text(LIVE)
    manager = TrainingManager(AppConfig(runs_dir=tmp_path / "runs", configs_dir=configs, model=tiny_model_dir))
    yield manager
    manager.shutdown()


def wait_for(condition, timeout: float = 240, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError("timed out")


def test_a_soups_set_shows_its_members_progress(tmp_path):
    """A soups set's members write the metrics (<run>/<objective>/metrics.jsonl), one after another;
    the set's own folder has none. A stand-in for python sleeps while the test writes them."""
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "soups.yaml").write_text("method: soups\nobjectives: [helpfulness, conciseness]\n")
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    manager = TrainingManager(AppConfig(runs_dir=tmp_path / "runs", configs_dir=configs), python=str(fake))
    run = tmp_path / "runs" / "set"
    try:
        manager.start("soups", "set", "1", 3, ["helpfulness", "conciseness"])
        assert manager.status("set").state == "starting"
        for member, steps in (("helpfulness", 3), ("conciseness", 1)):
            (run / member).mkdir(parents=True)
            (run / member / "metrics.jsonl").write_text(
                "".join(json.dumps({"step": s, "loss": 0.7 - s / 10}) + "\n" for s in range(1, steps + 1)))
        status = manager.status("set")
        assert status.state == "training" and (status.step, status.max_steps) == (4, 6)
        assert "member 2 of 2 (conciseness) · step 1 / 3 · loss 0.600" in status.message
        assert list(manager.metrics("set")["member"]) == ["helpfulness"] * 3 + ["conciseness"]
        text, _, curves, _ = run_view(manager.config, manager, "set")
        assert "member 2 of 2" in text
        assert [t.name for t in curves.data if t.showlegend] == ["helpfulness", "conciseness"]
    finally:
        manager.shutdown()
    (run / "soups.json").write_text("{}")
    assert manager.status("set").state == "finished"


def test_a_run_trains_in_the_background_and_becomes_a_policy(trainer):
    name = trainer.start("quick", "two-steps", "0.5", 2, ["conciseness"])
    assert trainer.active_runs() == ["two-steps"]
    assert trainer.status(name).state in ("starting", "training")
    wait_for(lambda: not trainer.active_runs())
    status = trainer.status(name)
    assert status.state == "finished", (status, (trainer.log_dir / f"{name}.log").read_text()[-2000:])
    assert status.step == 2 and status.max_steps == 2
    run = trainer.config.runs_dir / name
    assert (run / "adapter" / "adapter_config.json").is_file()
    metrics = trainer.metrics(name)
    assert list(metrics["step"]) == [1, 2] and "loss" in metrics.columns
    choice = {c.value: c for c in list_policies(trainer.config)}[name]
    assert choice.kind == "run" and choice.objectives == ("conciseness",) and "α=0.5" in choice.label


def test_stop_saves_a_checkpoint_and_only_one_run_at_a_time(trainer):
    name = trainer.start("quick", "long", "1.0", 500, ["conciseness"])
    with pytest.raises(MoodpoError, match="long is training; stop it first"):
        trainer.start("quick", "second", "1.0", 5, ["conciseness"])
    assert not (trainer.config.runs_dir / "second").exists()
    wait_for(lambda: trainer.status(name).step >= 1)
    assert "saves a checkpoint" in trainer.stop(name)
    assert trainer.status(name).state in ("stopping", "stopped")
    wait_for(lambda: not trainer.active_runs())
    status = trainer.status(name)
    assert status.state == "stopped", (status, (trainer.log_dir / f"{name}.log").read_text()[-2000:])
    assert list((trainer.config.runs_dir / name / "checkpoints").iterdir())
    assert not (trainer.config.runs_dir / name / "adapter").exists()


def test_stop_while_still_loading_interrupts_the_process(trainer):
    name = trainer.start("quick", "early", "1.0", 500, ["conciseness"])
    assert trainer.status(name).state == "starting"
    assert "before its first step" in trainer.stop(name)
    wait_for(lambda: not trainer.active_runs(), timeout=60)
    assert trainer.status(name).state != "failed"


def test_a_run_started_with_the_tabs_defaults_shows_its_live_front(trainer, monkeypatch):
    """The Train tab's own handlers: its default eval interval, start, then the front figure it draws."""
    import gradio as gr

    from ui.train_tab import build_train_tab

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    with gr.Blocks():
        tab = build_train_tab(trainer.config, trainer)
    every = next(c for c in tab.inputs if c.elem_id == "train-eval-every").value
    assert every == trainer.eval_every("live") == TAB_EVAL_EVERY  # the config sets none: on by default
    name = trainer.start("live", "live-front", "1.0", every, ["conciseness", "python:toy_objectives:shortness"],
                         every)
    wait_for(lambda: not trainer.active_runs())
    assert trainer.status(name).state == "finished", (trainer.log_dir / f"{name}.log").read_text()[-2000:]
    shown = tab.describe(name)
    front = next(figure for component, figure in shown.items() if component.elem_id == "train-front")
    traces = [t for t in front.data if t.name == f"step {every}"]
    assert traces and len(traces[0].x) == 3  # eval_grid 3 on two objectives: three weight points
