"""The fast path against plain transformers: same tokens, same log-probs, same loss, same distribution."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from moodpo.fastgen import FastSampler, _sample, supports
from moodpo.train.loss import dpo_loss
from moodpo.models import add_lora
from moodpo.sampling import encode_prompts, eos_token_ids, generation_config, sample_responses, sequence_logps
from moodpo.train.trainer import Trainer
from test_trainer import tiny_config

PROMPTS = ["How do airplanes fly?", "Write a long poem about the sea, its tides, its storms and its quiet mornings.",
           "Hi"]
PREFIXES = [None, "[Begin System Instruction] Helpfulness: 0.30, Harmlessness: 0.70 [End System Instruction]",
            "x"]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    """The tiny Llama with a LoRA adapter whose B matrices are non-zero, so the adapter matters."""
    torch.manual_seed(1)
    model = add_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), r=4)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.2)
    return model.eval()


def test_supports_llama_only(lora_model):
    assert supports(lora_model)
    from transformers import GPT2Config, GPT2LMHeadModel

    assert not supports(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2)))


@pytest.mark.parametrize("min_new_tokens", [0, 12])
def test_greedy_tokens_equal_transformers_generate(lora_model, tok, min_new_tokens):
    # the first prompt twice: rows with one prompt share a prefill in the fast sampler
    ids, mask = encode_prompts(tok, PROMPTS + PROMPTS[:1], PREFIXES + PREFIXES[:1])
    eos = eos_token_ids(lora_model, tok)
    config = generation_config(tok, eos, max_new_tokens=24, min_new_tokens=min_new_tokens, do_sample=False)
    expected = lora_model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1]:]
    got = FastSampler(lora_model, dtype=torch.float32).generate(
        ids, mask, max_new_tokens=24, min_new_tokens=min_new_tokens, eos_token_ids=eos,
        pad_token_id=tok.pad_token_id, do_sample=False)
    assert torch.equal(got, expected)


def greedy(sampler, tok, ids, mask, **kw):
    return sampler.generate(ids, mask, max_new_tokens=24, eos_token_ids=eos_token_ids(sampler.model, tok),
                            pad_token_id=tok.pad_token_id, do_sample=False, **kw)


def test_a_failed_compilation_falls_back_to_the_same_tokens(lora_model, tok):
    """The static-shape decode step (what compile=True compiles), run eagerly after a failed compile."""
    ids, mask = encode_prompts(tok, PROMPTS + PROMPTS[:1], PREFIXES + PREFIXES[:1])
    expected = greedy(FastSampler(lora_model, dtype=torch.float32), tok, ids, mask, min_new_tokens=12)
    sampler = FastSampler(lora_model, dtype=torch.float32)
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("no C++ compiler")

    sampler._compiled = broken
    assert sampler.compiled
    assert torch.equal(greedy(sampler, tok, ids, mask, min_new_tokens=12), expected)
    assert calls == [1] and not sampler.compiled        # tried once, then eager for good


@pytest.mark.compile
def test_compiled_decode_step_gives_the_same_greedy_tokens(lora_model, tok):
    import shutil

    if not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("inductor's CPU backend needs a C++ compiler")
    ids, mask = encode_prompts(tok, PROMPTS + PROMPTS[:1], PREFIXES + PREFIXES[:1])
    eos = eos_token_ids(lora_model, tok)
    config = generation_config(tok, eos, max_new_tokens=24, do_sample=False)
    expected = lora_model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1]:]
    sampler = FastSampler(lora_model, dtype=torch.float32, compile=True)
    assert torch.equal(greedy(sampler, tok, ids, mask), expected)
    assert sampler.compiled
    # a refreshed snapshot and other rows of the same shapes reuse the graph
    sampler.refresh()
    flipped_ids, flipped_mask = ids.flip(0), mask.flip(0)
    assert torch.equal(greedy(sampler, tok, flipped_ids, flipped_mask),
                       greedy(FastSampler(lora_model, dtype=torch.float32), tok, flipped_ids, flipped_mask))
    assert sampler.compiled


def test_half_is_the_network_with_float16_weights_computed_in_float32(tiny_model_dir, tok, monkeypatch):
    """half=True rounds the matrices to float16 and nothing else: on a model whose weights are already
    float16 numbers it gives transformers' greedy tokens and log-probs; MOODPO_FP16=0 turns it off."""
    from moodpo.fastgen import fp16_available

    if not fp16_available(torch.device("cpu"), torch.float32):
        pytest.skip("torch's fbgemm engine is not available")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    ids, mask = encode_prompts(tok, PROMPTS + PROMPTS[:1], PREFIXES + PREFIXES[:1])
    eos = eos_token_ids(model, tok)
    config = generation_config(tok, eos, max_new_tokens=24, do_sample=False)
    expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1]:]
    half = FastSampler(model, dtype=torch.float32, half=True)
    assert half.layout == "fp16"
    assert torch.equal(greedy(half, tok, ids, mask), expected)
    completion_mask = (expected != tok.pad_token_id).long()
    with torch.no_grad():
        plain = sequence_logps(model, ids, mask, expected, completion_mask)
    torch.testing.assert_close(half.sequence_logps(ids, mask, expected, completion_mask), plain, rtol=1e-5, atol=1e-4)
    monkeypatch.setenv("MOODPO_FP16", "0")
    assert FastSampler(model, dtype=torch.float32, half=True).layout != "fp16"
    assert FastSampler(model, dtype=torch.float32, half=True, compile=True).half is False


def test_half_rounds_a_merged_adapter_once(lora_model, tok):
    """With LoRA the float16 snapshot is the merged float32 weight rounded once: its log-probs equal
    those of the merged model with its parameters rounded to float16, computed in float32."""
    import copy

    from moodpo.fastgen import fp16_available

    if not fp16_available(torch.device("cpu"), torch.float32):
        pytest.skip("torch's fbgemm engine is not available")
    ids, mask = encode_prompts(tok, PROMPTS, PREFIXES)
    out = greedy(FastSampler(lora_model, dtype=torch.float32), tok, ids, mask)
    completion_mask = (out != tok.pad_token_id).long()
    half = FastSampler(lora_model, dtype=torch.float32, half=True)
    assert half.layout == "fp16"
    rounded = copy.deepcopy(lora_model).merge_and_unload()
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.half().float())
        expected = sequence_logps(rounded, ids, mask, out, completion_mask)
    got = half.sequence_logps(ids, mask, out, completion_mask)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    exact = FastSampler(lora_model, dtype=torch.float32).sequence_logps(ids, mask, out, completion_mask)
    assert not torch.equal(got, exact)   # the rounding is there


def test_only_the_samplers_that_draw_take_float16_weights(tiny_model_dir, tmp_path):
    """The trainer's rollouts and the app's Policy sample with float16 weights on a float32 CPU; the
    reference's log-probs, which enter the loss, do not."""
    from moodpo.fastgen import fp16_available
    from moodpo.policy import load_policy

    if not fp16_available(torch.device("cpu"), torch.float32):
        pytest.skip("torch's fbgemm engine is not available")
    trainer = Trainer(tiny_config(tiny_model_dir, tmp_path, precision="fp32"), show_progress=False)
    assert trainer.sampler.layout == "fp16" and trainer.ref_sampler.layout != "fp16"
    policy = load_policy(f"base:{tiny_model_dir}", precision="fp32")
    assert policy.sampler().layout == "fp16"
    assert policy.numerics() == "fast sampler, float16 weights, float32 matmuls"


@pytest.mark.parametrize("adapters", [True, False])
def test_sequence_logps_equal_the_plain_forward(lora_model, tok, adapters):
    torch.manual_seed(0)
    rollout = sample_responses(lora_model, tok, PROMPTS, PREFIXES, num_samples=2, max_new_tokens=10)
    # chosen/rejected layout: rows with the same prompt share one prompt pass in the fast path
    order = torch.tensor([0, 2, 4, 1, 3, 5])
    pairs = rollout.select(order)
    fast = FastSampler(lora_model, dtype=torch.float32, adapters=adapters)
    got = fast.sequence_logps(pairs.prompt_ids, pairs.prompt_mask, pairs.completion_ids, pairs.completion_mask)
    with torch.no_grad():
        if adapters:
            expected = sequence_logps(lora_model, pairs.prompt_ids, pairs.prompt_mask, pairs.completion_ids,
                                      pairs.completion_mask)
        else:
            with lora_model.disable_adapter():
                expected = sequence_logps(lora_model, pairs.prompt_ids, pairs.prompt_mask, pairs.completion_ids,
                                          pairs.completion_mask)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    one = fast.sequence_logps(pairs.prompt_ids, pairs.prompt_mask, pairs.completion_ids[:, :1],
                              pairs.completion_mask[:, :1])
    with torch.no_grad(), (lora_model.disable_adapter() if not adapters else torch.enable_grad()):
        plain_one = sequence_logps(lora_model, pairs.prompt_ids, pairs.prompt_mask, pairs.completion_ids[:, :1],
                                   pairs.completion_mask[:, :1])
    torch.testing.assert_close(one, plain_one.detach(), rtol=1e-5, atol=1e-4)


def test_refresh_follows_the_adapter(lora_model, tok):
    ids, mask = encode_prompts(tok, PROMPTS[:1], PREFIXES[:1])
    fast = FastSampler(lora_model, dtype=torch.float32)
    run = dict(max_new_tokens=1, eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id, do_sample=False)
    before = fast.sequence_logps(ids, mask, ids[:, -3:], mask[:, -3:])
    saved = {n: p.detach().clone() for n, p in lora_model.named_parameters() if "lora_B" in n}
    try:
        with torch.no_grad():
            for name, p in lora_model.named_parameters():
                if "lora_B" in name:
                    p.add_(0.5)
        assert torch.equal(fast.sequence_logps(ids, mask, ids[:, -3:], mask[:, -3:]), before)  # a snapshot
        fast.refresh()
        assert not torch.allclose(fast.sequence_logps(ids, mask, ids[:, -3:], mask[:, -3:]), before)
        fast.generate(ids, mask, **run)
    finally:
        with torch.no_grad():
            for name, p in lora_model.named_parameters():
                if name in saved:
                    p.copy_(saved[name])


def test_refresh_follows_full_fine_tuning(tiny_model_dir, tok):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)      # every weight trainable
    ids, mask = encode_prompts(tok, PROMPTS[:1], PREFIXES[:1])
    fast = FastSampler(model, dtype=torch.float32)
    before = fast.sequence_logps(ids, mask, ids[:, -3:], mask[:, -3:])
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    fast.refresh()
    assert not torch.allclose(fast.sequence_logps(ids, mask, ids[:, -3:], mask[:, -3:]), before)


def test_a_row_draws_the_same_alone_or_batched(lora_model, tok):
    ids, mask = encode_prompts(tok, PROMPTS, PREFIXES)
    fast = FastSampler(lora_model, dtype=torch.float32)
    kw = dict(max_new_tokens=16, eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id, temperature=0.8)
    batched = fast.generate(ids, mask, generators=[torch.Generator().manual_seed(s) for s in (5, 6, 7)], **kw)
    alone_ids, alone_mask = encode_prompts(tok, PROMPTS[1:2], PREFIXES[1:2])
    alone = fast.generate(alone_ids, alone_mask, generators=[torch.Generator().manual_seed(6)], **kw)
    assert torch.equal(batched[1, :alone.shape[1]], alone[0])


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 0, 0.9), (1.3, 3, 1.0), (1.0, 4, 0.6)])
def test_sampling_distribution_matches_transformers_warpers(temperature, top_k, top_p):
    from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)

    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0]])
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)]
                                  + ([TopKLogitsWarper(top_k)] if top_k else [])
                                  + ([TopPLogitsWarper(top_p)] if top_p < 1 else []))
    expected = warpers(None, logits.clone()).softmax(-1)[0]
    torch.manual_seed(0)
    draws = _sample(logits.expand(40000, -1), do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p)
    freq = torch.bincount(draws, minlength=logits.shape[-1]).float() / len(draws)
    assert torch.all(freq[expected == 0] == 0)
    torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)


def test_top_p_from_candidates_draws_what_the_full_sort_draws():
    """Rows whose nucleus lies among the TOP_P_CANDIDATES most likely tokens skip the sort of the
    vocabulary; they, and the rows that fall back to it, draw the token the full sort gives."""
    from moodpo.fastgen import TOP_P_CANDIDATES, _draw, _top_p_mask

    torch.manual_seed(0)
    logits = torch.randn(48, 49152) * torch.linspace(0.5, 8, 48)[:, None]             # flat to peaked rows
    probs = (logits / 0.7).softmax(-1)
    near = probs.topk(TOP_P_CANDIDATES, dim=-1).values.sum(-1) >= 0.95
    assert 0 < near.sum() < len(near)                                                   # both paths run
    got = _sample(logits, do_sample=True, temperature=0.7, top_k=0, top_p=0.95,
                  generators=[torch.Generator().manual_seed(i) for i in range(48)])
    u = torch.cat([torch.rand(1, 1, generator=torch.Generator().manual_seed(i)) for i in range(48)])
    assert torch.equal(got, _draw(_top_p_mask(logits / 0.7, 0.95), u))
    assert torch.all(probs.gather(-1, got[:, None]) > 0)


@pytest.mark.parametrize("precision,rtol,atol", [("fp32", 1e-5, 1e-4), ("bf16", 0.01, 0.01)])
def test_fast_path_loss_equals_a_plain_reference(tiny_model_dir, tmp_path, precision, rtol, atol):
    """The trainer's loss on one batch against DPO written out plainly: full forward, log-softmax, gather."""
    trainer = Trainer(tiny_config(tiny_model_dir, tmp_path / "run", precision=precision, fast_path=True),
                      show_progress=False)
    model = trainer._unwrapped()
    with torch.no_grad():  # a non-zero adapter, so policy and reference differ
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    trainer.sampler.refresh()
    torch.manual_seed(0)
    rollout = sample_responses(model, trainer.tokenizer, PROMPTS, PREFIXES, num_samples=2, max_new_tokens=10,
                               sampler=trainer.sampler)
    pairs = rollout.select([0, 2, 4, 1, 3, 5])
    policy_logps, ref_logps = trainer.pair_logps(pairs)
    fast_loss = dpo_loss(policy_logps[:3], policy_logps[3:], ref_logps[:3], ref_logps[3:], beta=0.1)[0]

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    plain_peft = add_lora(plain, r=trainer.config.lora_r, alpha=trainer.config.lora_alpha)
    plain_peft.load_state_dict({n: p.float() for n, p in model.state_dict().items()})

    def logps(m):
        ids = torch.cat([pairs.prompt_ids, pairs.completion_ids], 1)
        mask = torch.cat([pairs.prompt_mask, pairs.completion_mask], 1)
        logits = m(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
        logp = logits[:, pairs.prompt_ids.shape[1] - 1:-1].float().log_softmax(-1)
        return (logp.gather(-1, pairs.completion_ids[..., None])[..., 0] * pairs.completion_mask).sum(-1)

    with torch.no_grad():
        plain_policy = logps(plain_peft)
        with plain_peft.disable_adapter():
            plain_ref = logps(plain_peft)
    plain_loss = dpo_loss(plain_policy[:3], plain_policy[3:], plain_ref[:3], plain_ref[3:], beta=0.1)[0]
    torch.testing.assert_close(policy_logps.detach(), plain_policy, rtol=rtol, atol=atol)
    torch.testing.assert_close(ref_logps, plain_ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(fast_loss.detach(), plain_loss, rtol=rtol, atol=atol)


def test_shared_prompt_logps_give_the_same_values_and_gradients(lora_model, tok):
    torch.manual_seed(0)
    rollout = sample_responses(lora_model, tok, PROMPTS, PREFIXES, num_samples=2, max_new_tokens=10)
    pairs = rollout.select([0, 2, 4, 1, 3, 5])
    args = (pairs.prompt_ids, pairs.prompt_mask, pairs.completion_ids, pairs.completion_mask)
    lora = [p for n, p in lora_model.named_parameters() if "lora_" in n]
    for p in lora:
        p.requires_grad_(True)
    results = []
    for share in (False, True):
        lora_model.zero_grad()
        logps = sequence_logps(lora_model, *args, share_prompts=share)
        (logps * torch.arange(1.0, 7.0)).sum().backward()
        results.append((logps.detach(), [p.grad.clone() for p in lora]))
    lora_model.zero_grad()
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-4)
    for shared, plain in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(shared, plain, rtol=1e-3, atol=1e-4)
