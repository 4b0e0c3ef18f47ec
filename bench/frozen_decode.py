"""The fast sampler's packed eager decode step against one compiled with frozen weights, batch 1.

    python bench/frozen_decode.py [--mode mkl|cpp_wrapper|cpp_gemm] [--tokens 64] [--repeats 3]

The question this answers: is the Steer tab's remaining cost per token per-op dispatch that a fused
graph would remove? `compiled_decode.py` cannot answer it, because its compiled graph takes the
weights as inputs and inductor calls oneDNN's linear on them through a Python custom op. Here the
decode step is an `nn.Module` whose float32 weights are parameters, compiled with inductor's
`freezing` (weights become constants, so inductor prepacks the linears itself and fuses everything
else into C++ kernels), for inference only:
- mkl: inductor's default on x86 float32, MKL's packed sgemm (`mkl::_mkl_linear`);
- cpp_wrapper: the same with inductor's C++ wrapper (no Python between kernels);
- cpp_gemm: max-autotune with inductor's own C++ GEMM template against ATen.
Greedy, exactly --tokens new tokens from the app's prefix and prompt, float32; the contenders share
one prefill and differ only in the decode steps: the sampler's eager step (Steer's path: attention
over the slots written so far), the same computation with the static cache that compiled graphs
need (attention over every slot, unwritten ones masked), and the frozen graph (static cache). Prints
compilation time, the medians of alternating rounds (ms a token), whether the greedy tokens agree,
and `ratio=` (frozen over Steer's eager step, tokens/s).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
from common import machine, median, ratio_line

from moodpo.conditioning import build_prefix
from moodpo.fastgen import FastSampler, _decode_step
from moodpo.models import load_model, load_tokenizer
from moodpo.sampling import encode_prompts

PROMPT = "Give me three tips for staying focused while studying."


class FrozenStep(nn.Module):
    """The sampler's decode step (`fastgen._decode_step`, what `compile=True` compiles) with an
    unpacked float32 snapshot's weights as parameters, so that freezing makes them constants."""

    def __init__(self, sampler: FastSampler):
        super().__init__()

        def param(t: torch.Tensor) -> nn.Parameter:
            return nn.Parameter(t, requires_grad=False)

        self.embed, self.norm, self.head = param(sampler.embed), param(sampler.norm), param(sampler.lm_head)
        self.layers = nn.ModuleList(nn.ParameterList(param(w) for w in layer) for layer in sampler.layers)
        self.register_buffer("inv_freq", sampler.inv_freq.clone())
        self.options = dict(heads=sampler.num_heads, kv_heads=sampler.num_kv_heads, head_dim=sampler.head_dim,
                            eps=sampler.eps, dtype=torch.float32)

    def forward(self, cache, token, position, slot, keys_mask):
        weights = (self.embed, [tuple(layer) for layer in self.layers], self.norm, self.head)
        return _decode_step(weights, cache, token, position, slot, keys_mask, self.inv_freq, **self.options)


def configure(mode: str) -> None:
    import torch._inductor.config as inductor

    inductor.freezing = True
    inductor.cpp_wrapper = mode == "cpp_wrapper"
    if mode == "cpp_gemm":
        inductor.max_autotune, inductor.max_autotune_gemm_backends = True, "CPP,ATEN"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["mkl", "cpp_wrapper", "cpp_gemm"], default="mkl")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(machine())
    configure(args.mode)
    model, tok = load_model("smollm2-135m").float(), load_tokenizer("smollm2-135m")
    sampler = FastSampler(model, torch.float32)
    frozen = torch.compile(FrozenStep(FastSampler(model, torch.float32, pack=False)).eval(), dynamic=False)
    ids, mask = encode_prompts(tok, [PROMPT], [build_prefix(["helpfulness", "harmlessness"], [0.5, 0.5])])
    p, n = ids.shape[1], args.tokens
    length = -(-(p + n) // 64) * 64
    print(f"mode {args.mode}; eager weights' layout: {sampler.layout}")

    def decode(step) -> tuple[float, torch.Tensor]:
        hidden, cache = sampler._prefill(ids, mask.bool(), length)
        logits, keys = sampler._logits(hidden), torch.zeros(1, length, dtype=torch.bool)
        keys[:, :p] = mask.bool()
        position, out = mask.long().sum(-1, keepdim=True), []
        start = time.perf_counter()
        for t in range(n):
            out.append(logits.argmax(-1))
            keys[:, p + t] = True
            logits = step(cache, out[-1][:, None], position + t, torch.tensor([p + t]), keys)
        return time.perf_counter() - start, torch.stack(out, 1)

    def static(cache, token, position, slot, keys):   # the graph compile=True compiles, run eagerly
        return sampler._step(token, position, int(slot), keys, cache)

    def eager(cache, token, position, slot, keys):    # Steer's step before float16 weights: attends written slots only
        return sampler._logits(sampler._forward(token, position, int(slot), keys, cache)[:, -1])

    with torch.no_grad():
        decode(eager)
        seconds, _ = decode(frozen)
        print(f"frozen, first call (compilation included): {seconds:.1f} s", flush=True)
        steps = {"eager": eager, "static": static, "frozen": frozen}
        times, same = {name: [] for name in steps}, True
        for _ in range(args.repeats):
            tokens = {}
            for name, step in steps.items():
                seconds, tokens[name] = decode(step)
                times[name].append(seconds)
            same &= all(torch.equal(tokens["eager"], t) for t in tokens.values())
    ms = {k: 1000 * median(v) / n for k, v in times.items()}
    print(f"batch 1, {n} tokens, ms a token: packed eager (Steer's path before float16 weights) {ms['eager']:.1f}; "
          f"packed eager, static cache (compile=True's graph) {ms['static']:.1f}; frozen ({args.mode}) {ms['frozen']:.1f}; "
          f"greedy tokens {'agree' if same else 'differ'}")
    print(ratio_line(ms["eager"] / ms["frozen"]))


if __name__ == "__main__":
    main()
