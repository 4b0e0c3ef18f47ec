"""The TRL baselines on a tiny model: Rewards-in-Context and prompt-conditioned RL train two steps,
change their adapter and not the base, and their run folders evaluate like any other run."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from moodpo.cards import example_weights, model_card
from moodpo.cli import main
from moodpo.conditioning import Conditioning, desired_scores
from moodpo.config import load_config
from moodpo.errors import MoodpoError

pytest.importorskip("trl")

TOY = ["python:toy_objectives:distinct_chars", "python:toy_objectives:shortness"]


def tiny_config(model, run_dir, method, **overrides):
    values = dict(method=method, model_name_or_path=model, objectives=TOY, output_dir=str(run_dir), max_steps=2,
                  per_device_train_batch_size=2, num_generations=2, max_new_tokens=6, max_prompts=4,
                  warmup_steps=0, learning_rate=5e-3, precision="fp32", logging_steps=1)
    values.update(overrides)
    return load_config(overrides=values)


@pytest.mark.parametrize("method, mapping, expected", [
    # the largest weight asks for its best score; the other min(K w, 1) of the way up its range
    ("linf", [0.7, 0.3], [2.0, 1.4]),
    ("linf", [0.2, 0.8], [-0.4, 3.0]),
    ("linf", [0.5, 0.5], [2.0, 3.0]),
    ("linear", [0.25, 0.75], [-1.0, 2.0]),
    ("l2", [1.0, 0.0], [2.0, -1.0]),
])
def test_desired_scores_by_hand(method, mapping, expected):
    assert desired_scores(mapping, [-2, -1], [2, 3], method).tolist() == pytest.approx(expected)


def test_score_conditioning_writes_desired_scores():
    c = Conditioning(kind="scores", template="{scores}", item="<{name}> {score:.2f}", low=[-2, -1], high=[2, 3])
    assert c.prefix(["helpfulness", "harmlessness"], [0.7, 0.3]) == "<helpfulness> 2.00 <harmlessness> 1.40"
    with pytest.raises(MoodpoError):
        Conditioning(kind="scores")


def _capture_models(monkeypatch, module):
    """Record the base models a baseline loads, to check afterwards that training left them alone."""
    loaded = []
    original = module.load_model

    def load(spec):
        model = original(spec)
        loaded.append((model, {n: p.detach().clone() for n, p in model.named_parameters()}))
        return model

    monkeypatch.setattr(module, "load_model", load)
    return loaded


def _check_trained(loaded, run):
    model, before = loaded[0]
    base = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
            for n, p in model.named_parameters() if "lora_" not in n}
    assert base.keys() == before.keys()
    assert all(torch.equal(before[n], base[n]) for n in before), "a base weight moved"
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "no LoRA B matrix moved from its zero start"
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert json.loads((run / "adapter" / "step.json").read_text())["step"] >= 2


def _evaluates(run, tmp_path):
    from moodpo.commands import run_eval
    from moodpo.sampling_settings import GenerationSettings

    result, out = run_eval(str(run), grid=2, limit=2, settings=GenerationSettings(max_new_tokens=4),
                           out=tmp_path / "eval")
    assert (out / "summary.json").is_file() and (out / "generations.jsonl").is_file()
    return result


def test_ric_trains_and_evaluates(tiny_model_dir, tmp_path, monkeypatch):
    from moodpo.policy import load_policy
    from moodpo.train import ric

    loaded = _capture_models(monkeypatch, ric)
    run = tmp_path / "ric"
    result = ric.train_ric(tiny_config(tiny_model_dir, run, "ric", ric_online_rounds=1, ric_online_samples=4,
                                       ric_online_steps=1))
    assert result.status == "finished" and result.step == 3
    _check_trained(loaded, run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows if "samples/generated" in r] == ["pool", "online-1"]
    assert rows[-1]["step"] == 3 and "loss" in rows[-1]
    assert [r["samples/generated"] for r in rows if "samples/generated" in r] == [8, 12]
    conditioning = Conditioning.load(run)
    assert conditioning.kind == "scores" and conditioning.method == "ric"
    policy = load_policy(str(run))
    assert policy.prefix([1, 0]).startswith(f"<{TOY[0]}> {conditioning.high[0]:.2f} <{TOY[1]}>")
    assert policy.alpha is None  # RiC draws no weights in training: no alpha in its evaluations or the Pareto legend
    _evaluates(run, tmp_path)
    card = model_card(run)
    assert "\n# Rewards-in-Context baseline" in card
    assert "SFTTrainer" in card and policy.prefix(example_weights(2)) in card and "applies the DPO loss" not in card


def test_rl_trains_and_evaluates(tiny_model_dir, tmp_path, monkeypatch):
    from moodpo.policy import load_policy
    from moodpo.train import rl

    loaded = _capture_models(monkeypatch, rl)
    run = tmp_path / "rl"
    result = rl.train_rl(tiny_config(tiny_model_dir, run, "rl"))
    assert result.status == "finished" and result.step == 2
    _check_trained(loaded, run)
    assert not (run / "adapter" / "ref").exists()  # GRPOTrainer's frozen KL copy is not part of the run
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert f"objectives/{TOY[1]}/mean" in rows[0] and "reward" in rows[0]
    policy = load_policy(str(run))
    assert policy.prefix([0.7, 0.3]).startswith("[Begin System Instruction] Distinct Chars: 0.70")
    _evaluates(run, tmp_path)
    card = model_card(run)
    assert "\n# Prompt-conditioned RL baseline" in card and "GRPOTrainer" in card and "applies the DPO loss" not in card


def test_rl_mirror_weights_repeat_each_steps_prompts_with_the_weights_reversed(tiny_model_dir, tmp_path, monkeypatch):
    import trl

    from moodpo.train import rl

    class Built(Exception):
        pass

    def spy(**kwargs):
        raise Built(kwargs)

    monkeypatch.setattr(trl, "GRPOTrainer", spy)
    config = tiny_config(tiny_model_dir, tmp_path / "rl", "rl", mirror_weights=True, per_device_train_batch_size=4,
                         alpha=0.5)
    with pytest.raises(Built) as built:
        rl.train_rl(config)
    kwargs = built.value.args[0]
    rows = kwargs["train_dataset"].to_list()
    assert kwargs["args"].per_device_train_batch_size == 4 * config.num_generations   # 4 prompt rows a step
    assert len(rows) == config.max_steps * 4                                          # TRL takes them in order
    for step in (rows[:4], rows[4:]):
        first, second = step[:2], step[2:]
        assert [r["user_prompt"] for r in first] == [r["user_prompt"] for r in second]
        for a, b in zip(first, second):
            assert b["weights"] == pytest.approx(a["weights"][::-1]) and a["weights"] != pytest.approx([0.5, 0.5])
            assert a["prompt"] != b["prompt"]                                        # the prefix says the weights
    assert {r["user_prompt"] for r in rows[:2]}.isdisjoint(r["user_prompt"] for r in rows[4:6])


def test_rl_reward_scalarises_with_each_prompts_weights():
    from moodpo.objectives import RewardNormalizer
    from moodpo.train.rl import weighted_reward

    class Length:
        name = "length"

        def __call__(self, prompts, responses):
            return np.array([len(r) for r in responses], dtype=float)

    class PromptLength:
        name = "prompt"

        def __call__(self, prompts, responses):
            return np.array([len(p) for p in prompts], dtype=float)

    reward = weighted_reward([Length(), PromptLength()], ["length", "prompt"], RewardNormalizer(2, mode="none"))
    out = reward(prompts=["<prefix> ab", "<prefix> ab"], completions=["xyz", "x"], user_prompt=["ab", "abcd"],
                 weights=[[1.0, 0.0], [0.5, 0.5]])
    # scored on the prompt without its prefix, each row with its own weights
    assert out == pytest.approx([3.0, 0.5 * 1 + 0.5 * 4])


@pytest.mark.parametrize("command", ["train-ric", "train-rl"])
def test_cli_user_errors_are_one_line(command, tmp_path, capsys):
    assert main([command, "--ric_mapping", "cubic", "--output_dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ric_mapping" in err and "Traceback" not in err


def test_missing_trl_says_how_to_install(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "trl", None)
    assert main(["train-rl", "--model_name_or_path", tiny_model_dir, "--output_dir", str(tmp_path / "r")]) == 2
    assert "pip install trl==1.16.0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_moodpo_trainer_refuses_another_method(tmp_path):
    from moodpo.train.trainer import Trainer

    with pytest.raises(MoodpoError, match="train"):
        Trainer(load_config(overrides={"method": "ric", "output_dir": str(tmp_path / "r")}))
    assert not (tmp_path / "r").exists()


def test_soups_configs_say_soups():
    from pathlib import Path

    root = Path(__file__).parent.parent / "configs"
    assert load_config(root / "soups.yaml").method == "soups"
    assert load_config(root / "baselines" / "ric.yaml").method == "ric"
    assert load_config(root / "baselines" / "rl.yaml").method == "rl"
