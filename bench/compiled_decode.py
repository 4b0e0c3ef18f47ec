"""The fast sampler's decode step three ways, on the embedded model.

    python bench/compiled_decode.py [--tokens 64] [--batches 1 2 16] [--repeats 3] [--precision auto]

Greedy, exactly --tokens new tokens from the app's prefix and prompt, in the dtype --precision gives
(auto, the app's setting: bf16 where the CPU has native bf16, float32 otherwise):
- plain: `FastSampler(pack=False)`, eager, `x @ w` on (in, out) weights (torch's default matmul);
- packed: `FastSampler()`, eager, oneDNN linears on packed weights where the sampler takes them
  (float32 on a CPU; elsewhere it is the same as plain);
- compiled: `FastSampler(compile=True)`, each decode step one inductor graph, packed where packed is.
Prints the first call of the compiled sampler (compilation included), then the median of --repeats
alternating rounds per batch size, tokens/s, whether the greedy tokens agree with plain's, and
`ratio=` (compiled over plain tokens/s at the first batch size, the Steer tab's case).
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, median, ratio_line

from moodpo.conditioning import build_prefix
from moodpo.fastgen import FastSampler
from moodpo.models import autocast_dtype, load_model, load_tokenizer
from moodpo.sampling import encode_prompts, eos_token_ids

PROMPT = "Give me three tips for staying focused while studying."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 16])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    args = ap.parse_args()
    print(machine())
    model, tok = load_model("smollm2-135m"), load_tokenizer("smollm2-135m")
    prefix = build_prefix(["helpfulness", "harmlessness"], [0.5, 0.5])
    eos = eos_token_ids(model, tok)
    dtype = autocast_dtype(args.precision) or torch.float32
    samplers = {"plain": FastSampler(model, dtype, pack=False), "packed": FastSampler(model, dtype),
                "compiled": FastSampler(model, dtype, compile=True)}
    print(f"dtype: {dtype}; packed sampler's layout: {samplers['packed'].layout}")

    def run(sampler, b):
        ids, mask = encode_prompts(tok, [PROMPT] * b, [prefix] * b)
        start = time.perf_counter()
        out = sampler.generate(ids, mask, max_new_tokens=args.tokens,
                               min_new_tokens=args.tokens, eos_token_ids=eos, pad_token_id=tok.pad_token_id,
                               do_sample=False)
        return time.perf_counter() - start, out

    with torch.no_grad():
        first, _ = run(samplers["compiled"], args.batches[0])
        print(f"compiled, first call (compilation included): {first:.1f} s; "
              f"still compiled: {samplers['compiled'].compiled}")
        ratio = None
        for b in args.batches:
            for sampler in samplers.values():  # a warm-up each (a new batch size recompiles)
                run(sampler, b)
            times = {name: [] for name in samplers}
            same = {name: True for name in samplers}
            for _ in range(args.repeats):
                tokens = {}
                for name, sampler in samplers.items():
                    seconds, tokens[name] = run(sampler, b)
                    times[name].append(seconds)
                    same[name] &= torch.equal(tokens[name], tokens["plain"])
            rates = {name: b * args.tokens / median(v) for name, v in times.items()}
            print(f"batch {b:3d}: " + "; ".join(
                f"{name} {median(times[name]):6.2f} s ({rates[name]:6.1f} tok/s, {rates[name] / rates['plain']:.2f}x"
                f"{'' if same[name] else ', greedy tokens differ'})" for name in samplers), flush=True)
            if ratio is None:
                ratio = rates["compiled"] / rates["plain"]
    print(ratio_line(ratio))


if __name__ == "__main__":
    main()
