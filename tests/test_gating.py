"""A LoRA update gated by the objective weights (lora_gate): the gate's arithmetic, its guards,
training with it, and a gated run loaded back as a policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moodpo.config import load_config
from moodpo.errors import MoodpoError
from moodpo.gating import attach_gate, gate_of, gate_rows
from moodpo.models import add_lora, load_model
from moodpo.sampling import sequence_logps

TOY = ["python:toy_objectives:distinct_chars", "python:toy_objectives:shortness"]


def lora_model(model_dir, r=4, seed=0):
    """A tiny LoRA model whose B matrices are random, so the update is not zero."""
    torch.manual_seed(seed)
    model = add_lora(load_model(str(model_dir)), r=r, alpha=r)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    return model.eval()


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_gate_scales_rank_groups_by_weights(tiny_model_dir):
    ids = torch.randint(0, 1000, (1, 7))
    model = lora_model(tiny_model_dir)
    plain = logits(model, ids)
    attach_gate(model, 2)
    # Uniform weights scale every group by K * 1/K = 1: the plain adapter.
    with gate_rows(model, [0.5, 0.5]):
        torch.testing.assert_close(logits(model, ids), plain)
    with gate_rows(model, [1.0, 0.0]):
        corner = logits(model, ids)
    assert not torch.allclose(corner, plain, atol=1e-4)

    # The same corner by hand: objective 1's half of each A doubled, objective 2's half zeroed.
    manual = lora_model(tiny_model_dir)
    for name, p in manual.named_parameters():
        if "lora_A" in name:
            p.data[:2] *= 2
            p.data[2:] = 0
    torch.testing.assert_close(corner, logits(manual, ids))


def test_rows_are_gated_independently(tiny_model_dir):
    model = lora_model(tiny_model_dir)
    attach_gate(model, 2)
    ids = torch.randint(0, 1000, (3, 6))
    weights = np.array([[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]])
    with gate_rows(model, weights):
        batched = logits(model, ids)
    for i, w in enumerate(weights):
        with gate_rows(model, w):
            torch.testing.assert_close(batched[i:i + 1], logits(model, ids[i:i + 1]), atol=1e-5, rtol=1e-5)


def test_shared_prompt_passes_respect_the_rows_weights(tiny_model_dir):
    """sequence_logps(share_prompts=True) under a gate: the same values and gradients as one pass per
    row, though rows of one prompt text carry different weights."""
    from transformers import AutoTokenizer

    from moodpo.sampling import encode_prompts

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = lora_model(tiny_model_dir)
    attach_gate(model, 2)
    ids, mask = encode_prompts(tok, PROMPTS, [None] * len(PROMPTS))
    completion = torch.randint(0, 1000, (len(PROMPTS), 5))
    out = {}
    for share in (False, True):
        model.zero_grad()
        with gate_rows(model, WEIGHTS):
            logps = sequence_logps(model, ids, mask, completion, torch.ones_like(completion), share_prompts=share)
        logps.sum().backward()
        grads = [p.grad.clone() for n, p in model.named_parameters() if "lora_" in n]
        out[share] = logps.detach(), grads
    torch.testing.assert_close(out[True][0], out[False][0], atol=1e-4, rtol=1e-4)
    for a, b in zip(out[True][1], out[False][1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out[False][0][0], out[False][0][1])  # same text, other weights


def test_gate_needs_weights_of_the_right_shape(tiny_model_dir):
    model = lora_model(tiny_model_dir)
    attach_gate(model, 2)
    ids = torch.randint(0, 1000, (2, 5))
    with pytest.raises(MoodpoError, match="gate_rows"):
        logits(model, ids)
    with pytest.raises(ValueError, match="3 weight rows for a batch of 2"), gate_rows(model, np.full((3, 2), 0.5)):
        logits(model, ids)
    with pytest.raises(ValueError, match="3 objectives"), gate_rows(model, [0.2, 0.3, 0.5]):
        pass
    with model.disable_adapter():  # the reference pass needs no weights
        logits(model, ids)
    # Weights that arrive as a tensor (the update's, on the model's device) are used as they are:
    # numpy cannot read a CUDA tensor, nor one that requires grad.
    with gate_rows(model, torch.full((2, 2), 0.5, requires_grad=True)):
        logits(model, ids)
    with pytest.raises(MoodpoError, match="already has a weight gate"):
        attach_gate(model, 2)
    with pytest.raises(MoodpoError, match="multiple of 3"):
        attach_gate(lora_model(tiny_model_dir), 3)
    with pytest.raises(MoodpoError, match="needs a LoRA adapter"):
        attach_gate(load_model(str(tiny_model_dir)), 2)


# Rows 0, 1 and 4 share a prompt text; 0 and 4 share their weights too.
PROMPTS = ["How do airplanes fly?", "How do airplanes fly?", "Write a poem about the sea.", "Hi",
           "How do airplanes fly?"]
WEIGHTS = np.array([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7], [0.5, 0.5], [1.0, 0.0]])


def test_fast_sampler_keeps_a_gated_adapter_unmerged(tiny_model_dir):
    """Same greedy tokens and log-probs as transformers under the gate, rows of one prompt text
    under different weights included (they must not share a prefill; rows with equal weights do)."""
    from transformers import AutoTokenizer

    from moodpo.fastgen import FastSampler
    from moodpo.sampling import encode_prompts, eos_token_ids, generation_config

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = lora_model(tiny_model_dir)
    attach_gate(model, 2)
    ids, mask = encode_prompts(tok, PROMPTS, [None] * len(PROMPTS))
    eos = eos_token_ids(model, tok)
    sampler = FastSampler(model, dtype=torch.float32)
    with gate_rows(model, WEIGHTS), torch.no_grad():
        config = generation_config(tok, eos, max_new_tokens=16, do_sample=False)
        expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1]:]
        got = sampler.generate(ids, mask, max_new_tokens=16, eos_token_ids=eos, pad_token_id=tok.pad_token_id,
                               do_sample=False)
        completion = expected[:, :6]
        plain = sequence_logps(model, ids, mask, completion, torch.ones_like(completion))
        fast = sampler.sequence_logps(ids, mask, completion, torch.ones_like(completion))
    assert torch.equal(got, expected)
    assert not torch.equal(got[0], got[1])  # one prompt, two corners: the gate changed the answer
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)
    with gate_rows(model, [1.0, 0.0]), torch.no_grad():  # one weight row for all: the prefill is shared
        one = sampler.sequence_logps(ids[:2], mask[:2], completion[:2], torch.ones_like(completion[:2]))
    torch.testing.assert_close(one[0], plain[0], atol=1e-4, rtol=1e-4)
    with pytest.raises(MoodpoError, match="gate_rows"):
        sampler.generate(ids, mask, max_new_tokens=2, eos_token_ids=eos, pad_token_id=tok.pad_token_id)
    with pytest.raises(ValueError, match="3 weight rows for a batch of 5"), gate_rows(model, WEIGHTS[:3]):
        sampler.generate(ids, mask, max_new_tokens=2, eos_token_ids=eos, pad_token_id=tok.pad_token_id)
    FastSampler(model, adapters=False).generate(ids, mask, max_new_tokens=2, eos_token_ids=eos,
                                                pad_token_id=tok.pad_token_id)  # the reference needs no weights


@pytest.mark.parametrize("overrides, message", [
    (dict(lora_r=5), "multiple of 2"),
    (dict(lora=False), "set lora true"),
])
def test_config_rejects_a_gate_it_cannot_build(tiny_model_dir, tmp_path, overrides, message):
    with pytest.raises(MoodpoError, match=message):
        load_config(overrides=dict(model_name_or_path=str(tiny_model_dir), objectives=TOY, lora_gate=True,
                                   output_dir=str(tmp_path), **overrides))


def test_gated_training_moves_both_groups_and_loads_back(tiny_model_dir, tmp_path):
    from moodpo.policy import load_policy
    from moodpo.train.trainer import Trainer

    config = load_config(overrides=dict(
        model_name_or_path=str(tiny_model_dir), objectives=TOY, output_dir=str(tmp_path / "run"), max_steps=2,
        per_device_train_batch_size=3, num_generations=2, max_new_tokens=8, max_prompts=12, save_steps=1,
        warmup_steps=0, learning_rate=5e-3, tie_margin=0.0, precision="fp32", lora_r=4, lora_gate=True,
        pool_weights=2, updates_per_step=2, guide_openers=["*=Sure"]))
    trainer = Trainer(config, show_progress=False)
    assert trainer.sampler.gate is not None and trainer.share_prompts
    model = trainer._unwrapped()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n}
    assert trainer.train().status == "finished"
    moved = [(p - before[n]).abs() for n, p in model.named_parameters() if "lora_A" in n]
    assert all(d[:2].sum() > 0 and d[2:].sum() > 0 for d in moved), "a rank group did not train"

    policy = load_policy(str(tmp_path / "run"))
    assert gate_of(policy.model) is not None and policy.sampler().gate is not None
    texts = policy.generate(["Name a colour.", "Say hi."], [[1.0, 0.0], [0.0, 1.0]], num_samples=2)
    assert len(texts) == 4
    # The weights reach the network beyond the prefix: the same text scores differently.
    ids = policy.tokenizer(["Name a colour."], return_tensors="pt")["input_ids"]
    completion = policy.tokenizer([" Blue"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    mask = torch.ones_like(ids)
    scores = []
    for w in ([1.0, 0.0], [0.0, 1.0]):
        with gate_rows(policy.model, w), torch.no_grad():
            scores.append(sequence_logps(policy.model, ids, mask, completion, torch.ones_like(completion)))
    assert not torch.allclose(scores[0], scores[1])
    chunks = list(policy.stream("Say hi.", [0.2, 0.8]))
    assert chunks and isinstance(chunks[-1], str)
    rows = list(policy.stream_many("Say hi.", [[1.0, 0.0], [0.0, 1.0]]))
    assert len(rows[-1]) == 2

    from moodpo.cards import write_cards

    card = "\n".join(path.read_text() for path in write_cards(tmp_path / "run"))
    assert "gated by the weights (`lora_gate`)" in card  # plain peft would run it ungated


def test_soups_members_of_a_gated_config_train_ungated(tmp_path):
    from moodpo.train.baselines import member_configs

    config = load_config(overrides=dict(objectives=TOY, lora_gate=True, method="soups", output_dir=str(tmp_path),
                                        mirror_weights=True, pool_weights=4))
    members = member_configs(config, tmp_path)
    assert [m.lora_gate for m in members.values()] == [False, False]
    # one-hot weights only: no mirrored copy, no pool of other weights
    assert [(m.mirror_weights, m.pool_weights) for m in members.values()] == [(False, 1), (False, 1)]
    assert [m.fixed_weights for m in members.values()] == [[1.0, 0.0], [0.0, 1.0]]


def test_lora_the_gate_or_the_fast_sampler_cannot_apply_is_refused(tiny_model_dir):
    """An embedding LoRA cannot be gated, and the fast sampler applies neither it nor a gated head's
    LoRA: the gate refuses the first, and the sampler steps aside for transformers on both."""
    from moodpo.fastgen import supports

    embedding = add_lora(load_model(str(tiny_model_dir)), r=4, target_modules=["embed_tokens", "q_proj"])
    with pytest.raises(MoodpoError, match="embedding"):
        attach_gate(embedding, 2)
    assert not supports(embedding)
    head = add_lora(load_model(str(tiny_model_dir)), r=4, target_modules=["lm_head", "q_proj"])
    assert supports(head)                     # ungated, the head's LoRA merges into the snapshot
    attach_gate(head, 2)
    assert not supports(head)
    assert supports(lora_model(tiny_model_dir))


def test_a_soup_refuses_a_gated_member(tmp_path):
    import json

    from moodpo.policy import load_policy
    from moodpo.runs import SOUPS_FILE

    for obj, gated in ((TOY[0], False), (TOY[1], True)):
        run = tmp_path / obj.rsplit(":", 1)[1]
        (run / "adapter").mkdir(parents=True)
        load_config(overrides=dict(objectives=TOY, lora_gate=gated, output_dir=str(run))).save(run / "config.yaml")
    (tmp_path / SOUPS_FILE).write_text(json.dumps({"objectives": TOY, "runs": {
        TOY[0]: "distinct_chars", TOY[1]: "shortness"}}))
    with pytest.raises(MoodpoError, match="shortness member was trained with lora_gate"):
        load_policy(str(tmp_path))
