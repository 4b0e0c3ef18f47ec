"""The training config: TRL's field names, the one-line error for the old ones, and old run folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from moodpo.cli import main
from moodpo.config import RENAMED, TrainConfig, load_config, load_run_config
from moodpo.errors import MoodpoError

ROOT = Path(__file__).parent.parent


def test_fields_take_trls_names():
    import dataclasses

    from transformers import TrainingArguments

    trl_names = {f.name for f in dataclasses.fields(TrainingArguments)}
    ours = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in ("output_dir", "per_device_train_batch_size", "gradient_accumulation_steps", "save_steps",
                 "save_total_limit", "lr_scheduler_type", "logging_steps", "report_to"):
        assert name in ours and name in trl_names
    assert not ours & set(RENAMED)


@pytest.mark.parametrize("old,new", sorted(RENAMED.items()))
def test_an_old_name_in_yaml_or_overrides_names_the_new_one(old, new, tmp_path):
    config = tmp_path / "old.yaml"
    config.write_text(yaml.safe_dump({old: 2}))
    with pytest.raises(MoodpoError, match=f"'{old}' is now '{new}'"):
        load_config(config)
    with pytest.raises(MoodpoError, match=f"'{old}' is now '{new}'"):
        load_config(overrides={old: 2})


@pytest.mark.parametrize("argv,new", [(["--batch_size", "2"], "per_device_train_batch_size"),
                                      (["--run_dir", "x"], "output_dir"), (["--model", "m"], "model_name_or_path"),
                                      (["--save_every", "3"], "save_steps")])
def test_an_old_name_on_the_command_line_is_one_line_exit_2(argv, new, capsys, tmp_path):
    code = main(["train", "--output_dir", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"is now '{new}'" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_run_saved_with_the_old_names_still_loads(tmp_path):
    old = {"model": "smollm2-135m", "objectives": ["helpfulness", "conciseness"], "run_dir": str(tmp_path),
           "batch_size": 4, "num_samples": 3, "save_every": 6, "keep_checkpoints": 1, "lr_schedule": "constant"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    config = load_run_config(tmp_path)
    assert (config.model_name_or_path, config.output_dir, config.per_device_train_batch_size, config.num_generations,
            config.save_steps, config.save_total_limit, config.lr_scheduler_type) == (
        "smollm2-135m", str(tmp_path), 4, 3, 6, 1, "constant")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**old, "output_dir": "elsewhere"}))
    with pytest.raises(MoodpoError, match="both 'run_dir' and its new name 'output_dir'"):
        load_run_config(tmp_path)


@pytest.mark.parametrize("run", sorted(p.parent for p in (ROOT / "runs" / "shipped").glob("**/config.yaml")),
                         ids=lambda p: str(p.relative_to(ROOT / "runs")))
def test_shipped_run_configs_use_the_new_names_and_load(run):
    assert not set(yaml.safe_load((run / "config.yaml").read_text())) & set(RENAMED)
    assert load_run_config(run).objectives


def test_every_config_file_loads():
    files = sorted((ROOT / "configs").glob("**/*.yaml"))
    for path in files:
        if "studies" not in path.parts:
            load_config(path)
    assert len(files) > 3


@pytest.mark.parametrize("values,match", [
    (dict(report_to="mlflow"), "report_to must be one of none, tensorboard, wandb, trackio"),
    (dict(gradient_accumulation_steps=0), "gradient_accumulation_steps must be >= 1"),
    (dict(logging_steps=0), "logging_steps must be >= 1"),
    (dict(max_pairs_per_micro_batch=0), "max_pairs_per_micro_batch must be >= 1"),
])
def test_new_fields_are_validated(values, match):
    with pytest.raises(MoodpoError, match=match):
        load_config(overrides=values)


def test_the_default_config_is_the_shipped_recipe():
    from ui.settings import SHIPPED_POLICY

    default = load_config(ROOT / "configs" / "default.yaml").to_dict()
    shipped = load_run_config(ROOT / "runs" / SHIPPED_POLICY).to_dict()
    # what may differ: where it writes and checkpoints, and the live front (the shipped runs were
    # trained without it)
    differ = {k for k in default if default[k] != shipped[k]}
    assert differ <= {"output_dir", "save_steps", "eval_every", "eval_grid", "eval_prompts"}
    assert default["eval_every"] > 0 and default["eval_grid"] == 3


def test_the_help_harm_and_soups_configs_are_the_shipped_recipes():
    from moodpo.train.baselines import member_configs

    help_harm = load_config(ROOT / "configs" / "help_harm.yaml").to_dict()
    shipped = load_run_config(ROOT / "runs" / "shipped" / "help-harm" / "moodpo").to_dict()
    assert {k for k in help_harm if help_harm[k] != shipped[k]} <= {"output_dir"}
    soups = ROOT / "runs" / "shipped" / "help-concise" / "soups"
    for objective, member in member_configs(load_config(ROOT / "configs" / "soups.yaml"), soups).items():
        member, trained = member.to_dict(), load_run_config(soups / objective).to_dict()
        assert {k for k in member if member[k] != trained[k]} <= {"output_dir"}, objective


def test_experiments_have_a_one_line_header_and_come_after_the_working_recipes():
    from ui.settings import AppConfig
    from ui.training import TrainingManager

    experiments = sorted((ROOT / "configs" / "experiments").glob("*.yaml"))
    assert experiments
    for path in experiments:
        first, second = path.read_text().splitlines()[:2]
        assert first.startswith("# Tried: ") and "; happened: " in first and not second.startswith("#"), path.name
    names = list(TrainingManager(AppConfig(configs_dir=ROOT / "configs")).config_files())
    assert names[0] == "default" and names[-len(experiments):] == [f"experiments/{p.stem}" for p in experiments]


def test_the_configuration_reference_is_current(tmp_path, capsys):
    from moodpo.config_docs import DOCS_FILE, render

    assert (ROOT / DOCS_FILE).read_text() == render(), "run `python -m moodpo config-docs` and commit the result"
    assert main(["config-docs", "--out", str(tmp_path / "c.md")]) == 0
    text = (tmp_path / "c.md").read_text()
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "report_to", "comparisons"):
        assert f"| `{name}` |" in text
