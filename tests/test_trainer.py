"""The training loop on a tiny model: updates, checkpoints, resume, skipping, distribution, CLI errors."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from moodpo.cli import main
from moodpo.config import load_config, load_run_config
from moodpo.errors import MoodpoError
from moodpo.runs import checkpoints
from moodpo.train.trainer import PairBatch, Trainer

TESTS = Path(__file__).parent
ROOT = TESTS.parent
TOY = ["python:toy_objectives:distinct_chars", "python:toy_objectives:shortness"]


def tiny_config(model, run_dir, **overrides):
    values = dict(model_name_or_path=model, objectives=TOY, output_dir=str(run_dir), max_steps=2,
                  per_device_train_batch_size=3, num_generations=2, max_new_tokens=8, max_prompts=12, save_steps=1,
                  warmup_steps=0, learning_rate=5e-3, tie_margin=0.0, precision="fp32")
    values.update(overrides)
    return load_config(overrides=values)


def read_metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_steps_change_adapter_not_base(tiny_model_dir, tmp_path):
    trainer = Trainer(tiny_config(tiny_model_dir, tmp_path / "run"), show_progress=False)
    model = trainer._unwrapped()
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    result = trainer.train()
    assert result.status == "finished" and result.step == 2
    base_after = {n: p for n, p in model.named_parameters() if "lora_" not in n}
    assert all(torch.equal(base_before[n], base_after[n]) for n in base_before)
    changed = [n for n, p in model.named_parameters() if "lora_" in n and not torch.equal(lora_before[n], p)]
    assert changed, "no LoRA parameter moved"

    run = tmp_path / "run"
    metrics = read_metrics(run)
    assert [m["step"] for m in metrics] == [1, 2]
    for key in ("loss", "rewards/margins", "rewards/accuracies", "objective/kl", "response/length",
                "pairs_per_second", "time/step", "lr", "pairs/weight_dependent",
                "objectives/python:toy_objectives:shortness/chosen", "weights/python:toy_objectives:shortness/mean"):
        assert key in metrics[0]
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert load_config(run / "config.yaml").objectives == TOY
    # a run folder without its checkpoints (as shipped) still knows the step of its adapter
    import shutil

    from moodpo.policy import load_policy
    shipped = tmp_path / "shipped"
    shutil.copytree(run, shipped, ignore=shutil.ignore_patterns("checkpoints"))
    assert load_policy(str(shipped)).step == 2
    assert [c.name for c in checkpoints(run)] == ["step-000001", "step-000002"]
    state = json.loads((checkpoints(run)[-1] / "trainer_state.json").read_text())
    assert state["step"] == 2 and state["data"]["position"] == 6


def test_chosen_beats_rejected_on_weighted_score(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, tmp_path / "run", weight_mode="fixed", fixed_weights=[0, 1], num_generations=4,
                         max_steps=1)
    result = Trainer(config, show_progress=False).train()
    m = result.metrics[0]
    # with all weight on shortness, the chosen response is never longer than the rejected one
    assert m["objectives/python:toy_objectives:shortness/chosen"] >= m["objectives/python:toy_objectives:shortness/rejected"]
    assert m["weights/python:toy_objectives:shortness/mean"] == 1.0


def test_resume_continues_the_same_run(tiny_model_dir, tmp_path):
    straight = Trainer(tiny_config(tiny_model_dir, tmp_path / "a", max_steps=4, save_steps=2),
                       show_progress=False).train()
    # The same run stopped after step 2 (as Ctrl-C or the UI's stop button would), then resumed.
    seen = []
    stopped = Trainer(tiny_config(tiny_model_dir, tmp_path / "b", max_steps=4, save_steps=2),
                      callbacks=[seen.append], should_stop=lambda: len(seen) >= 2, show_progress=False).train()
    assert stopped.status == "stopped" and stopped.step == 2
    resumed = Trainer(tiny_config(tiny_model_dir, tmp_path / "b", max_steps=4, save_steps=2, resume=True),
                      show_progress=False).train()
    assert [m["step"] for m in resumed.metrics] == [3, 4]
    for a, b in zip(straight.metrics[2:], resumed.metrics):
        for key in ("loss", "rewards/margins", "logps/chosen", "response/length", "lr",
                    "weights/python:toy_objectives:shortness/mean"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    assert [m["step"] for m in read_metrics(tmp_path / "b")] == [1, 2, 3, 4]
    from safetensors.torch import load_file
    wa = load_file(tmp_path / "a" / "adapter" / "adapter_model.safetensors")
    wb = load_file(tmp_path / "b" / "adapter" / "adapter_model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_a_moved_run_folder_resumes_where_it_is(tiny_model_dir, tmp_path):
    seen = []
    Trainer(tiny_config(tiny_model_dir, tmp_path / "old", max_steps=2, save_steps=1), callbacks=[seen.append],
            should_stop=lambda: len(seen) >= 1, show_progress=False).train()
    (tmp_path / "old").rename(tmp_path / "new")
    resumed = Trainer(tiny_config(tiny_model_dir, tmp_path / "new", max_steps=2, save_steps=1, resume=True),
                      show_progress=False).train()
    assert resumed.status == "finished" and [m["step"] for m in resumed.metrics] == [2]
    assert load_run_config(tmp_path / "new").output_dir == str(tmp_path / "new")
    with pytest.raises(MoodpoError, match="beta"):
        Trainer(tiny_config(tiny_model_dir, tmp_path / "new", max_steps=3, beta=0.5, resume=True), show_progress=False)


def test_stop_saves_a_checkpoint(tiny_model_dir, tmp_path):
    calls = []
    trainer = Trainer(tiny_config(tiny_model_dir, tmp_path / "run", max_steps=5, save_steps=0),
                      should_stop=lambda: len(calls) >= 1, callbacks=[calls.append], show_progress=False)
    result = trainer.train()
    assert result.status == "stopped" and result.step == 1
    assert [c.name for c in checkpoints(tmp_path / "run")] == ["step-000001"]
    assert not (tmp_path / "run" / "adapter").exists()


def test_nonfinite_loss_is_skipped_and_logged(tiny_model_dir, tmp_path, monkeypatch):
    import moodpo.train.trainer as trainer_module

    def nan_loss(*args, **kwargs):
        losses, chosen, rejected = real(*args, **kwargs)
        return losses * float("nan"), chosen, rejected

    real = trainer_module.dpo_loss
    monkeypatch.setattr(trainer_module, "dpo_loss", nan_loss)
    trainer = Trainer(tiny_config(tiny_model_dir, tmp_path / "run", max_steps=1), show_progress=False)
    before = {n: p.detach().clone() for n, p in trainer._unwrapped().named_parameters()}
    result = trainer.train()
    assert result.metrics[0]["skipped_nonfinite"] is True
    assert all(torch.equal(before[n], p) for n, p in trainer._unwrapped().named_parameters())
    assert read_metrics(tmp_path / "run")[0]["loss"] is None  # NaN is written as null, never as NaN


def test_full_finetuning_option(tiny_model_dir, tmp_path):
    trainer = Trainer(tiny_config(tiny_model_dir, tmp_path / "run", lora=False, max_steps=1), show_progress=False)
    before = {n: p.detach().clone() for n, p in trainer.ref_model.named_parameters()}
    trainer.train()
    assert all(torch.equal(before[n], p) for n, p in trainer.ref_model.named_parameters())
    assert any(not torch.equal(before[n], p) for n, p in trainer._unwrapped().named_parameters())


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err.strip()


@pytest.mark.parametrize("extra,message", [
    (["--objectives", "helpfulness", "nonsense"], "unknown objective 'nonsense'"),
    (["--alpha", "0"], "alpha must be finite and > 0"),
    (["--alpha", "1", "2", "3"], "alpha needs 1 or 2 values"),
    (["--weight_mode", "fixed", "--fixed_weights", "1", "0", "0"], "expected 2 weights"),
    (["--model_name_or_path", "/no/such/model"], "model path /no/such/model does not exist"),
    (["--max_steps", "many"], "'max_steps' must be a int"),
    (["--num_generations", "1"], "num_generations must be >= 2"),
    (["--objectives", "python:toy_objectives:missing"], "has no attribute 'missing'"),
])
def test_cli_bad_input_is_one_line_exit_2(extra, message, tmp_path, capsys, tiny_model_dir):
    args = ["train", "--model_name_or_path", tiny_model_dir, "--output_dir", str(tmp_path / "run"), *extra]
    code, err = run_cli(args, capsys)
    assert code == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_cli_unknown_field_and_bad_yaml(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(SystemExit) as e:
        main(["train", "--no_such_field", "3"])
    assert e.value.code == 2
    assert "unrecognized arguments: --no_such_field" in capsys.readouterr().err
    code, err = run_cli(["train", "--config", str(bad)], capsys)
    assert code == 2 and "is not valid YAML (line" in err
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("alphaa: 3\n")
    code, err = run_cli(["train", "--config", str(unknown)], capsys)
    assert code == 2 and "unknown config field 'alphaa'" in err
    code, err = run_cli(["train", "--config", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "does not exist" in err


def test_cli_never_writes_over_an_existing_run(tiny_model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    code, err = run_cli(["train", "--model_name_or_path", tiny_model_dir, "--output_dir", str(run)], capsys)
    assert code == 2 and "already holds a run" in err
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'
    code, err = run_cli(["train", "--model_name_or_path", tiny_model_dir, "--output_dir", str(run), "--resume"], capsys)
    assert code == 2 and "no checkpoint" in err


def test_cli_trains_from_yaml_with_overrides(tiny_model_dir, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(dict(model_name_or_path=tiny_model_dir, objectives=TOY, max_steps=5,
                                          per_device_train_batch_size=2,
                                          max_new_tokens=6, max_prompts=8, precision="fp32")))
    code = main(["train", "--config", str(config), "--max_steps", "1", "--alpha", "0.5",
                 "--output_dir", str(tmp_path / "run")])
    assert code == 0
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.max_steps == 1 and saved.alpha == 0.5 and saved.per_device_train_batch_size == 2
    assert "finished at step 1" in capsys.readouterr().out


def test_two_process_accelerate_replicas_stay_identical(tiny_model_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
           "HF_HUB_OFFLINE": "1"}
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "moodpo", "train", "--model_name_or_path", tiny_model_dir, "--objectives", *TOY,
           "--output_dir", str(run),
           "--max_steps", "2", "--per_device_train_batch_size", "2", "--max_new_tokens", "6", "--max_prompts", "8",
           "--learning_rate", "0.005", "--warmup_steps", "0", "--save_steps", "2", "--precision", "fp32",
           "--tie_margin", "0"]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((checkpoints(run)[-1] / "trainer_state.json").read_text())
    assert state["num_processes"] == 2
    a, b = state["replica_checksums"]
    assert a == b
    metrics = read_metrics(run)
    assert len(metrics) == 2 and metrics[0]["ties"] + metrics[0]["pairs"] == 4  # 2 processes x 2 prompts


def test_mirror_weights_repeat_each_prompt_with_the_weights_reversed(tiny_model_dir, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_dir, tmp_path / "run", mirror_weights=True, per_device_train_batch_size=4,
                         max_steps=2, alpha=0.5)
    trainer = Trainer(config, show_progress=False)
    seen = []
    real = trainer.train_step

    def spy(prompts, categories=None):
        seen.append(list(prompts))
        return real(prompts, categories)

    import moodpo.train.trainer as trainer_module
    prefixes = []
    real_sample = trainer_module.sample_responses
    monkeypatch.setattr(trainer_module, "sample_responses",
                        lambda *a, **k: prefixes.append(a[3]) or real_sample(*a, **k))
    trainer.train_step = spy
    paired = []
    real_pair = trainer_module.Rollout.pair
    # Rollout.select(rows) is pair(rows, rows): the update's micro-batches, not the pairing under test.
    monkeypatch.setattr(trainer_module.Rollout, "pair",
                        lambda self, prompt_rows, completion_rows: (
                            prompt_rows is not completion_rows
                            and paired.append((list(prompt_rows), list(completion_rows))))
                        or real_pair(self, prompt_rows, completion_rows))
    assert trainer.train().status == "finished"
    assert paired
    n, h = config.num_generations, 2
    for prompt_rows, completion_rows in paired:   # chosen rows, then rejected rows
        assert prompt_rows == [0, n, 2 * n, 3 * n] * 2
        for i, row in enumerate(completion_rows):
            # copy i and copy i + h choose among the samples of both copies of the prompt
            j = i % 4 % h
            assert row in [*range(j * n, j * n + n), *range((j + h) * n, (j + h) * n + n)]
    for prompts, pre in zip(seen, prefixes):
        assert len(prompts) == 4 and prompts[:2] == prompts[2:]
        for first, second in zip(pre[:2], pre[2:]):     # "A: 0.70, B: 0.30" then "A: 0.30, B: 0.70"
            a, b = ([float(v) for v in re.findall(r"\d+\.\d+", text)] for text in (first, second))
            assert len(a) == 2 and a == b[::-1]
    state = json.loads((checkpoints(tmp_path / "run")[-1] / "trainer_state.json").read_text())
    assert state["data"]["position"] == 4          # 2 distinct prompts a step


@pytest.mark.parametrize("overrides, msg", [
    (dict(mirror_weights=True, per_device_train_batch_size=3), "even per_device_train_batch_size"),
    (dict(mirror_weights=True, alpha=[0.5, 1.0]), "one alpha for every objective"),
    (dict(mirror_weights=True, weight_mode="fixed", fixed_weights=[1.0, 0.0]), "weight_mode dirichlet"),
])
def test_mirror_weights_config_errors(tmp_path, overrides, msg):
    from moodpo.errors import MoodpoError
    with pytest.raises(MoodpoError, match=msg):
        tiny_config("unused", tmp_path / "run", **overrides)


def test_updates_per_step_reuses_one_rollout_for_several_updates(tiny_model_dir, tmp_path, monkeypatch):
    import moodpo.train.trainer as trainer_module
    config = tiny_config(tiny_model_dir, tmp_path / "run", updates_per_step=3, max_steps=1, learning_rate=5e-3,
                         lr_scheduler_type="constant", warmup_steps=0)
    trainer = Trainer(config, show_progress=False)
    samples, steps = [], []
    real_sample = trainer_module.sample_responses
    monkeypatch.setattr(trainer_module, "sample_responses", lambda *a, **k: samples.append(1) or real_sample(*a, **k))
    real_step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: steps.append(1) or real_step(*a, **k)
    metrics = trainer.train().metrics[0]
    assert len(samples) == 1 and len(steps) == 3
    # the same pairs, three updates: the loss on them falls from the on-policy value
    assert metrics["loss"] == pytest.approx(math.log(2), abs=0.02)
    assert metrics["loss_last"] < metrics["loss"] - 1e-3


def test_updates_per_step_must_be_positive(tmp_path):
    from moodpo.errors import MoodpoError
    with pytest.raises(MoodpoError, match="updates_per_step must be >= 1"):
        tiny_config("unused", tmp_path / "run", updates_per_step=0)


def test_replay_updates_draw_past_steps_pairs(tiny_model_dir, tmp_path):
    import collections
    config = tiny_config(tiny_model_dir, tmp_path / "run", updates_per_step=4, replay_steps=2, max_steps=4)
    trainer = Trainer(config, show_progress=False)
    used, new_pairs = [], []
    real = trainer.update
    trainer.update = lambda step: used.append(step.pairs) or real(step)   # an update's pairs, all micro-batches

    class Replay(collections.deque):
        def append(self, item):
            new_pairs.append(item.pairs)
            super().append(item)

    trainer.replay = Replay(maxlen=trainer.replay.maxlen)
    assert trainer.train().status == "finished"
    assert len(used) == 4 * 4 and len(trainer.replay) == 2

    def same(update, pairs):  # the same responses, in any order
        return sorted(update.texts) == sorted(pairs.texts)

    for step in range(4):
        updates = used[4 * step: 4 * step + 4]
        assert same(updates[0], new_pairs[step])                  # the first update: the step's new pairs
        window = new_pairs[max(0, step - 1): step + 1]            # the replay: the last two steps' pairs
        assert all(any(same(u, w) for w in window) for u in updates[1:])
    # later updates do draw the previous step's pairs again
    assert any(same(u, new_pairs[step - 1]) and not same(u, new_pairs[step])
               for step in range(1, 4) for u in used[4 * step + 1: 4 * step + 4])


@pytest.mark.parametrize("overrides, msg", [
    (dict(replay_steps=-1, updates_per_step=2), "replay_steps must be >= 0"),
    (dict(replay_steps=4), "replay_steps 4 has no effect with updates_per_step 1"),
])
def test_replay_config_errors(tmp_path, overrides, msg):
    from moodpo.errors import MoodpoError
    with pytest.raises(MoodpoError, match=msg):
        tiny_config("unused", tmp_path / "run", **overrides)


def test_extra_responses_join_each_prompts_candidates_by_category(tiny_model_dir, tmp_path):
    from moodpo.sampling import add_extra_responses, sample_responses

    config = tiny_config(tiny_model_dir, tmp_path / "run", extra_responses=["harmful=ok", "everyday=Sure."])
    trainer = Trainer(config, show_progress=False)
    n = 2
    rollout = sample_responses(trainer._unwrapped(), trainer.tokenizer, ["a", "b", "c"], ["p"] * 3, num_samples=n,
                               max_new_tokens=4)
    out, extra_row = add_extra_responses(rollout, trainer.extra_responses, ["harmful", "summarize", "everyday"], n,
                                         pad_token_id=trainer.tokenizer.pad_token_id)
    assert extra_row.tolist() == [6, -1, 7]
    assert out.texts == rollout.texts + ["ok", "Sure."]
    for row, text in ((6, "ok"), (7, "Sure.")):
        ids = out.completion_ids[row][out.completion_mask[row].bool()]
        assert trainer.tokenizer.decode(ids, skip_special_tokens=True) == text
        assert ids[-1].item() == trainer.tokenizer.eos_token_id
    # an extra row carries its prompt (prefix included); the samples' rows are unchanged
    assert torch.equal(out.prompt_ids[6], rollout.prompt_ids[0]) and torch.equal(out.prompt_ids[7], rollout.prompt_ids[4])
    c = rollout.completion_ids.shape[1]
    assert torch.equal(out.completion_ids[:6, :c], rollout.completion_ids)
    assert not out.completion_mask[:6, c:].any()


@pytest.mark.parametrize("weights, chosen_share, rejected_share", [([0, 1], 1.0, 0.0), ([1, 0], 0.0, 1.0)])
def test_extra_response_is_chosen_or_rejected_by_the_weighted_score(tiny_model_dir, tmp_path, weights, chosen_share,
                                                                     rejected_share):
    # "ok" is shorter than any 8-token sample (shortness: chosen) and has fewer distinct characters (rejected)
    config = tiny_config(tiny_model_dir, tmp_path / "run", weight_mode="fixed", fixed_weights=weights, max_steps=2,
                         extra_responses=["*=ok"])
    result = Trainer(config, show_progress=False).train()
    for m in result.metrics:
        assert m["pairs"] == 3
        assert m["pairs/extra_chosen"] == chosen_share and m["pairs/extra_rejected"] == rejected_share
        # The same, counted per prompt category.
        kept = {k.split("/")[1]: v for k, v in m.items() if k.startswith("pairs/") and k.endswith("/kept")}
        assert kept and sum(kept.values()) == 3
        for cat, n in kept.items():
            assert m[f"pairs/{cat}/extra_chosen"] == chosen_share * n
            assert m[f"pairs/{cat}/extra_rejected"] == rejected_share * n


def test_extra_responses_errors(tiny_model_dir, tmp_path):
    from moodpo.errors import MoodpoError

    with pytest.raises(MoodpoError, match="must be category=text"):
        tiny_config(tiny_model_dir, tmp_path / "run", extra_responses=["harmful"])
    with pytest.raises(MoodpoError, match="names 'harmful' twice"):
        tiny_config(tiny_model_dir, tmp_path / "run", extra_responses=["harmful=no", "harmful=never"])
    config = tiny_config(tiny_model_dir, tmp_path / "run", extra_responses=["*=" + "no " * 20])
    with pytest.raises(MoodpoError, match="longer than max_new_tokens 8"):
        Trainer(config, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_gradient_accumulation_gives_the_full_batchs_gradient(tiny_model_dir, tmp_path):
    """Two micro-batches of one prompt: the same pairs and, summed, the same gradient as one batch of two."""
    grads, passes, metrics = {}, {}, {}
    for name, batch, accumulate in (("one batch", 2, 1), ("two micro-batches", 1, 2)):
        config = tiny_config(tiny_model_dir, tmp_path / name.replace(" ", "-"), per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accumulate, num_generations=4, max_steps=1, save_steps=0)
        trainer = Trainer(config, show_progress=False)
        passes[name] = []
        real_logps, real_step = trainer.policy_logps, trainer.optimizer.step
        trainer.policy_logps = lambda pairs, seen=passes[name], f=real_logps: seen.append(len(pairs.texts)) or f(pairs)

        def step(*args, name=name, trainer=trainer, real=real_step, **kwargs):
            grads[name] = [p.grad.detach().clone() for p in trainer.params]
            return real(*args, **kwargs)

        trainer.optimizer.step = step
        metrics[name] = trainer.train().metrics[0]
    # chosen + rejected rows per pass; one batch may still split by length (micro_batches)
    assert passes["two micro-batches"] == [2, 2] and sum(passes["one batch"]) == 4
    one, two = metrics["one batch"], metrics["two micro-batches"]
    assert one["pairs"] == two["pairs"] > 0 and one["loss"] == pytest.approx(two["loss"], abs=1e-6)
    assert any(g.abs().sum() > 0 for g in grads["one batch"])
    for a, b in zip(grads["one batch"], grads["two micro-batches"], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def test_micro_batches_sort_by_length_and_respect_both_bounds():
    from moodpo.train.trainer import micro_batches

    lengths = np.array([50, 10, 40, 20, 30, 60, 5])
    batches = micro_batches(lengths, min_batches=1, max_size=3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(7)) and max(len(b) for b in batches) <= 3
    assert [x for b in batches for x in lengths[b].tolist()] == sorted(lengths.tolist())   # shortest first
    assert len(micro_batches(lengths, min_batches=5, max_size=16)) == 5
    assert sorted(np.concatenate(micro_batches(lengths, min_batches=4, max_size=2)).tolist()) == list(range(7))
    assert [b.tolist() for b in micro_batches(np.array([3, 3]), min_batches=4, max_size=16)] == [[0], [1]]
    # Data-parallel processes need the same count whatever their lengths: equal sizes, as few as allowed.
    equal = micro_batches(lengths, min_batches=1, max_size=3, by_padding=False)
    assert [lengths[b].tolist() for b in equal] == [[5, 10, 20], [30, 40], [50, 60]]
    assert len(micro_batches(np.array([60, 60, 60, 180]), min_batches=1, max_size=16, by_padding=False)) == 1


def test_length_groups_split_where_padding_costs_more_than_a_batch():
    from moodpo.sampling import length_groups

    # A step's prompts as they come: most short, a few long (token counts with the prefix).
    lengths = np.array([54, 62, 174, 171, 54, 167, 181, 58])
    groups = length_groups(lengths, overhead=32)
    assert [lengths[g].tolist() for g in groups] == [[54, 54, 58, 62], [167, 171, 174, 181]]
    padded = sum(len(g) * lengths[g].max() for g in groups)
    assert padded + 32 * len(groups) < len(lengths) * lengths.max() + 32        # cheaper than one batch
    assert len(length_groups(np.full(8, 60), overhead=16)) == 1                 # equal lengths: never split
    assert len(length_groups(lengths, overhead=10_000)) == 1                    # a costly batch: never split
    assert [len(g) for g in length_groups(np.full(8, 60), max_size=3)] == [2, 3, 3]
    assert length_groups(np.array([], dtype=int)) == []


def ragged_pairs(tokenizer, m: int = 5):
    """m hand-made pairs (chosen rows 0..m-1, rejected rows m..2m-1) of different prompt and response
    lengths, left- and right-padded to the longest of all."""
    from moodpo.sampling import Rollout, encode_prompts, pad_rows

    prompts = ["Hi", "Write a long poem about the sea, its tides, its storms and its quiet mornings at dawn.",
               "How do airplanes fly?", "Tell me a story about a dragon who could not breathe fire, please.",
               "Why?"][:m]
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, [None] * m)
    texts = [f"{'word ' * (1 + 3 * i)}end" for i in range(m)] + [f"{'no ' * (8 - i)}." for i in range(m)]
    rows = [torch.tensor(tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
            for t in texts]
    completion_ids, completion_mask = pad_rows(rows, tokenizer.pad_token_id, side="right")
    return Rollout(torch.cat([prompt_ids, prompt_ids]), torch.cat([prompt_mask, prompt_mask]), completion_ids,
                   completion_mask, texts)


def test_trimmed_drops_only_padding_columns(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from moodpo.sampling import sequence_logps

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    pairs = ragged_pairs(tokenizer)
    short = pairs.select([0, 2, 5, 7])                       # two short prompts, none of the longest responses
    trimmed = short.trimmed()
    assert trimmed.prompt_ids.shape[1] == short.prompt_mask.sum(-1).max() < short.prompt_ids.shape[1]
    assert trimmed.completion_ids.shape[1] == short.completion_mask.sum(-1).max() < short.completion_ids.shape[1]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        full = sequence_logps(model, short.prompt_ids, short.prompt_mask, short.completion_ids, short.completion_mask)
        cut = sequence_logps(model, trimmed.prompt_ids, trimmed.prompt_mask, trimmed.completion_ids,
                             trimmed.completion_mask)
    torch.testing.assert_close(cut, full, rtol=1e-5, atol=1e-4)


def test_length_sorted_trimmed_micro_batches_give_the_full_padding_gradient(tiny_model_dir, tmp_path):
    """The update in micro-batches of 2 pairs, sorted by length and trimmed, against one plain pass over
    all pairs padded to the longest, in the pairs' own order: the same losses and the same gradient."""
    from moodpo.sampling import sequence_logps
    from moodpo.train.loss import dpo_loss

    trainer = Trainer(tiny_config(tiny_model_dir, tmp_path / "run", max_pairs_per_micro_batch=2,
                                  max_grad_norm=1e6), show_progress=False)
    model = trainer._unwrapped()
    with torch.no_grad():  # a non-zero adapter, so every LoRA matrix gets a gradient
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    trainer.sampler.refresh()
    pairs = ragged_pairs(trainer.tokenizer)
    m = len(pairs.texts) // 2
    ref_logps = trainer.ref_logps(pairs)
    pair_weight = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0])       # one tie, weight 0
    num_pairs = pair_weight.sum()

    logps = sequence_logps(model, pairs.prompt_ids, pairs.prompt_mask, pairs.completion_ids, pairs.completion_mask)
    losses, _, _ = dpo_loss(logps[:m], logps[m:], ref_logps[:m], ref_logps[m:], beta=trainer.config.beta)
    ((losses * pair_weight).sum() / num_pairs).backward()
    expected = [p.grad.detach().clone() for p in trainer.params]
    trainer.optimizer.zero_grad(set_to_none=True)

    widths, grads = [], []
    real_logps, real_step = trainer.policy_logps, trainer.optimizer.step
    trainer.policy_logps = lambda batch: widths.append(
        (len(batch.texts), batch.prompt_ids.shape[1] + batch.completion_ids.shape[1])) or real_logps(batch)
    trainer.optimizer.step = lambda *a, **k: grads.extend(p.grad.detach().clone() for p in trainer.params) or \
        real_step(*a, **k)
    update = trainer.update(PairBatch(pairs, ref_logps, pair_weight, num_pairs))

    full_width = pairs.prompt_ids.shape[1] + pairs.completion_ids.shape[1]
    rows = [rows for rows, _ in widths]                              # chosen + rejected of at most 2 pairs each
    assert sum(rows) == 2 * m and len(rows) >= 3 and max(rows) <= 4
    assert widths[0][1] < widths[-1][1] <= full_width               # shortest first, each trimmed
    assert sum(rows * width for rows, width in widths) < 2 * m * full_width
    torch.testing.assert_close(update.losses, losses.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(update.policy_logps, logps.detach(), rtol=1e-5, atol=1e-4)
    assert any(g.abs().sum() > 0 for g in expected)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_logging_steps_and_report_to_tensorboard(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = Trainer(tiny_config(tiny_model_dir, run, max_steps=3, logging_steps=2, save_steps=0,
                                 report_to="tensorboard"), show_progress=False).train()
    assert [m["step"] for m in read_metrics(run)] == [2, 3]  # every 2nd step, and the last
    assert [m["step"] for m in result.metrics] == [1, 2, 3]
    losses = {}
    for events in (run / "runs").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events.parent))
        accumulator.Reload()
        if "loss" in accumulator.Tags()["scalars"]:
            losses = {e.step: e.value for e in accumulator.Scalars("loss")}
    assert losses.keys() == {2, 3}
    assert losses[3] == pytest.approx(result.metrics[2]["loss"], rel=1e-5)


def test_report_to_a_missing_package_is_one_line(tmp_path, monkeypatch, capsys):
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    code, err = run_cli(["train", "--report_to", "wandb", "--output_dir", str(tmp_path / "run")], capsys)
    assert code == 2 and "report_to wandb needs the wandb package: pip install wandb" in err
    assert not (tmp_path / "run").exists()


def test_guided_candidates_begin_with_an_opener_and_join_the_pool(tiny_model_dir, tmp_path):
    from moodpo.sampling import sample_responses

    config = tiny_config(tiny_model_dir, tmp_path / "run", guide_openers=["harmful=No way", "harmful=I can't",
                                                                           "everyday=Sure"])
    trainer = Trainer(config, show_progress=False)
    n = 2
    rollout = sample_responses(trainer._unwrapped(), trainer.tokenizer, ["a", "b", "c"], ["p"] * 3, num_samples=n,
                               max_new_tokens=4)
    out, sources = trainer.add_candidates(rollout, ["harmful", "summarize", "everyday"], np.full((3, 2), 0.5),
                                          ["a", "b", "c"])
    assert [rows.tolist() for rows in sources] == [[6, -1, 7]]
    # the opener is drawn from the harmful list by the step's own generator, seeded [seed, step, process]
    drawn = ["No way", "I can't"][np.random.default_rng([config.seed, 0, 0]).integers(2)]
    assert out.texts[6].startswith(drawn)
    assert out.texts[:6] == rollout.texts
    assert out.texts[6].startswith(("No way", "I can't")) and out.texts[7].startswith("Sure")
    for row, src in ((6, 0), (7, 4)):       # a guided row carries its prompt's own prefix
        assert torch.equal(out.prompt_ids[row], rollout.prompt_ids[src])
        assert 2 < out.completion_mask[row].sum() <= config.max_new_tokens
    # a step trains on pools with the guided column: 3 candidates a prompt
    metrics = trainer.train_step(["a", "b", "c"], ["harmful", "summarize", "everyday"])
    assert metrics["pairs"] + metrics["ties"] == 3 and "pairs/extra_chosen" in metrics


def test_instructed_candidates_are_sampled_with_the_instruction_and_paired_without(tiny_model_dir, tmp_path,
                                                                                   monkeypatch):
    import moodpo.train.trainer as trainer_module
    from moodpo.sampling import sample_responses

    config = tiny_config(tiny_model_dir, tmp_path / "run", guide_openers=["harmful=No way"],
                         guide_instructions=["*=Answer in one sentence.", "everyday=Be brief."])
    trainer = Trainer(config, show_progress=False)
    n = 2
    rollout = sample_responses(trainer._unwrapped(), trainer.tokenizer, ["a", "b", "c"], ["p"] * 3, num_samples=n,
                               max_new_tokens=4)
    seen = []
    real = trainer_module.generate_ids

    def spy(model, tokenizer, prompt_ids, prompt_mask, **kw):
        seen.extend(tokenizer.batch_decode(prompt_ids, skip_special_tokens=True))
        return real(model, tokenizer, prompt_ids, prompt_mask, **kw)

    monkeypatch.setattr(trainer_module, "generate_ids", spy)
    out, sources = trainer.add_candidates(rollout, ["harmful", "summarize", "everyday"], np.full((3, 2), 0.5),
                                          ["a", "b", "c"])
    # openers first (harmful only), then one instructed sample a prompt: '*' for those without their own
    assert [rows.tolist() for rows in sources] == [[6, -1, -1], [7, 8, 9]]
    assert len(seen) == 3 and "Answer in one sentence." in seen[0] and "Answer in one sentence." in seen[1]
    assert "Be brief." in seen[2]
    for row, src in ((7, 0), (8, 2), (9, 4)):  # the instructed response sits under the request without it
        assert torch.equal(out.prompt_ids[row], rollout.prompt_ids[src])
        assert 0 < out.completion_mask[row].sum() <= config.max_new_tokens
    # a request longer than max_prompt_tokens is cut before the instruction, never the instruction
    seen.clear()
    trainer.config.max_prompt_tokens = 3
    trainer.add_candidates(rollout, ["harmful"], np.full((1, 2), 0.5), ["one two three four five six seven"])
    assert "one two three\n\nAnswer in one sentence." in seen[0] and "seven" not in seen[0]
    trainer.config.max_prompt_tokens = config.max_prompt_tokens
    # mirrored copies: prompt i + B/2 gets its instructed response under its own (mirrored) prompt row
    mirrored = sample_responses(trainer._unwrapped(), trainer.tokenizer, ["a", "a"], ["p", "q"], num_samples=n,
                                max_new_tokens=4)
    out, sources = trainer.add_candidates(mirrored, ["everyday"] * 2, np.array([[0.2, 0.8], [0.8, 0.2]]), ["a", "a"])
    assert sources[-1].tolist() == [4, 5] and torch.equal(out.prompt_ids[5], mirrored.prompt_ids[2])
    metrics = trainer.train_step(["a", "b", "c"], ["harmful", "summarize", "everyday"])
    assert metrics["pairs"] + metrics["ties"] == 3 and "pairs/everyday/extra_chosen" in metrics


def test_multi_weight_pool_pairs_carry_their_own_prefixes(tiny_model_dir, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_dir, tmp_path / "run", pool_weights=3, loss_type="soft",
                         scalarisation="tchebycheff", max_steps=1)
    trainer = Trainer(config, show_progress=False)
    built = []
    real = trainer.build_pairs
    monkeypatch.setattr(trainer, "build_pairs", lambda *a: built.append((a, real(*a))) or built[-1][1])
    result = trainer.train()
    assert result.status == "finished" and result.metrics[0]["pairs"] + result.metrics[0]["ties"] == 9
    (rollout, prompts, weights, pool, chosen, rejected), pairs = built[0]
    assert weights.shape == (9, 2) and len(pairs.texts) == 18
    for i in range(9):
        text = trainer.tokenizer.decode(pairs.prompt_ids[i][pairs.prompt_mask[i].bool()])
        assert f"{weights[i][0]:.2f}" in text and prompts[i % 3] in text
        assert torch.equal(pairs.prompt_ids[i], pairs.prompt_ids[9 + i])       # chosen and rejected: one prompt
        assert pairs.texts[i] == rollout.texts[pool[i, chosen[i]]]
    assert np.array_equal(pool[:3], pool[3:6]) and np.array_equal(pool[:3], pool[6:])


def test_nll_weight_adds_the_chosen_responses_nll_to_the_loss(tiny_model_dir, tmp_path):
    losses = {}
    for w in (0.0, 2.0):
        config = tiny_config(tiny_model_dir, tmp_path / f"run{w}", nll_weight=w, max_steps=1)
        losses[w] = Trainer(config, show_progress=False).train().metrics[0]["loss"]
    # same seed, same pairs: the first update's loss differs by 2 x a positive per-token NLL
    assert losses[2.0] - losses[0.0] > 0.5 and math.isfinite(losses[2.0])


def test_nll_min_target_lifts_only_decisive_pairs(tiny_model_dir, tmp_path):
    def first_loss(name, **overrides):
        config = tiny_config(tiny_model_dir, tmp_path / name, loss_type="soft", soft_tau=100.0, max_steps=1,
                             **overrides)
        return Trainer(config, show_progress=False).train().metrics[0]["loss"]

    plain = first_loss("plain")
    # chosen scores at least as high as rejected: every target is >= 0.5, so every pair gets the NLL
    assert first_loss("every", nll_weight=2.0, nll_min_target=0.5) - plain > 0.5
    # soft_tau 100 puts every target near 0.5: no pair is decisive at 0.9, the loss is plain DPO's
    assert first_loss("none", nll_weight=2.0, nll_min_target=0.9) == pytest.approx(plain, rel=1e-5)


@pytest.mark.parametrize("overrides, msg", [
    (dict(guide_openers=["harmful"]), "must be category=opener"),
    (dict(guide_instructions=["everyday"]), "guide_instructions item 'everyday' must be category=instruction"),
    (dict(scalarisation="max"), "scalarisation must be linear or tchebycheff"),
    (dict(pool_weights=0), "pool_weights must be >= 1"),
    (dict(soft_tau=0), "soft_tau must be a positive number"),
    (dict(nll_weight=-1.0), "nll_weight must be >= 0"),
    (dict(nll_weight=1.0, nll_min_target=1.0), "nll_min_target must be in"),
    (dict(nll_weight=1.0, nll_min_target=0.9), "needs nll_weight > 0 and loss_type soft"),
])
def test_recipe_options_errors(tmp_path, overrides, msg):
    from moodpo.errors import MoodpoError

    with pytest.raises(MoodpoError, match=msg):
        tiny_config("unused", tmp_path / "run", **overrides)


def test_a_guide_for_a_category_the_prompts_lack_is_refused(tiny_model_dir, tmp_path):
    from moodpo.errors import MoodpoError

    config = tiny_config(tiny_model_dir, tmp_path / "run", guide_instructions=["everday=Be brief."])
    with pytest.raises(MoodpoError, match="guide_instructions names everday, not a category of the training prompts"):
        Trainer(config, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_guide_opener_longer_than_the_budget_is_refused(tiny_model_dir, tmp_path):
    from moodpo.errors import MoodpoError

    config = tiny_config(tiny_model_dir, tmp_path / "run", guide_openers=["*=" + "no " * 20])
    with pytest.raises(MoodpoError, match="not shorter than max_new_tokens 8"):
        Trainer(config, show_progress=False)
    assert not (tmp_path / "run").exists()
