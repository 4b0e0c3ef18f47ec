"""Can DPO teach a policy to read the weight prefix? One fixed pair, shown under two prefixes with
opposite labels (what `mirror_weights` gives when both weight vectors pick the same two responses).

    python bench/prefix_learnability.py [--steps 100] [--share-prompts] [--attention eager]

A tiny Llama (2 layers, 64 wide, SmolLM2's tokenizer, random weights) with a fresh LoRA adapter
learns, with `moodpo.sampling.sequence_logps` and `moodpo.train.loss.dpo_loss`, to prefer response a
under prefix (1, 0) and response b under prefix (0, 1). Printed: the prefix gap
[lp(a|p1) - lp(a|p2)] - [lp(b|p1) - lp(b|p2)] in nats, which is 0 for a policy that ignores the
prefix. It says the loss and the log-prob code can carry the signal; not how many on-policy pairs
a real policy needs.
"""

from __future__ import annotations

import argparse
import copy

import common  # noqa: F401  (puts the repository on sys.path)
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--share-prompts", action="store_true", help="the trainer's shared prompt pass")
    p.add_argument("--attention", default=None, help="eager or sdpa (default: the model's)")
    args = p.parse_args()

    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from moodpo.conditioning import build_prefix
    from moodpo.train.loss import dpo_loss
    from moodpo.models import add_lora, resolve_model
    from moodpo.sampling import encode_prompts, sequence_logps

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    if args.attention:
        model.set_attn_implementation(args.attention)
    ref = copy.deepcopy(model).eval()
    model = add_lora(model, r=16, alpha=32)
    objectives = ["upper", "lower"]
    p1, p2 = build_prefix(objectives, [1.0, 0.0]), build_prefix(objectives, [0.0, 1.0])
    a, b = "THE CAT SAT ON", "the cat sat on"
    # rows: chosen a|p1, chosen b|p2, rejected b|p1, rejected a|p2
    ids, mask = encode_prompts(tok, ["Say something."] * 4, [p1, p2, p1, p2])
    tok.padding_side = "right"
    enc = tok([a, b, b, a], padding=True, add_special_tokens=False, return_tensors="pt")
    optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=3e-3)

    def gap() -> float:
        with torch.no_grad():
            lp = sequence_logps(model, ids, mask, enc["input_ids"], enc["attention_mask"])
        return float((lp[0] - lp[3]) - (lp[2] - lp[1]))

    with torch.no_grad():
        ref_lp = sequence_logps(ref, ids, mask, enc["input_ids"], enc["attention_mask"])
    print(f"step 0: prefix gap {gap():+.3f} nats")
    for step in range(1, args.steps + 1):
        lp = sequence_logps(model, ids, mask, enc["input_ids"], enc["attention_mask"], share_prompts=args.share_prompts)
        loss, _, _ = dpo_loss(lp[:2], lp[2:], ref_lp[:2], ref_lp[2:], beta=0.1, loss_type="sigmoid")
        loss.mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 20 == 0 or step == args.steps:
            print(f"step {step}: loss {loss.mean().item():.4f}, prefix gap {gap():+.3f} nats")


if __name__ == "__main__":
    main()
