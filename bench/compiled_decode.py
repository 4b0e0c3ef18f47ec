"""The compiled decode step against the eager fast path, on the embedded model.

    python bench/compiled_decode.py [--tokens 64] [--batches 1 16] [--repeats 3]

`FastSampler(compile=True)` against `FastSampler()`, greedy, exactly --tokens new tokens from the
app's prefix and prompt, in the sampler's default dtype (bf16). Prints the first call of the compiled
sampler (compilation included), then the median of --repeats alternating rounds per batch size,
tokens/s, whether the greedy tokens agree, and `ratio=` (compiled over eager tokens/s at the
largest batch).
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, median, ratio_line

from moodpo.conditioning import build_prefix
from moodpo.fastgen import FastSampler
from moodpo.models import load_model, load_tokenizer
from moodpo.sampling import encode_prompts, eos_token_ids

PROMPT = "Give me three tips for staying focused while studying."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(machine())
    model, tok = load_model("smollm2-135m"), load_tokenizer("smollm2-135m")
    prefix = build_prefix(["helpfulness", "harmlessness"], [0.5, 0.5])
    eos = eos_token_ids(model, tok)
    eager, compiled = FastSampler(model), FastSampler(model, compile=True)

    def run(sampler, b):
        ids, mask = encode_prompts(tok, [PROMPT] * b, [prefix] * b)
        start = time.perf_counter()
        out = sampler.generate(ids, mask, max_new_tokens=args.tokens,
                               min_new_tokens=args.tokens, eos_token_ids=eos, pad_token_id=tok.pad_token_id,
                               do_sample=False)
        return time.perf_counter() - start, out

    with torch.no_grad():
        first, _ = run(compiled, args.batches[0])
        print(f"compiled, first call (compilation included): {first:.1f} s; still compiled: {compiled.compiled}")
        ratio = None
        for b in args.batches:
            run(compiled, b), run(eager, b)  # a warm-up each (a new batch size may recompile)
            times = {"eager": [], "compiled": []}
            same = True
            for _ in range(args.repeats):
                seconds, eager_tokens = run(eager, b)
                times["eager"].append(seconds)
                seconds, compiled_tokens = run(compiled, b)
                times["compiled"].append(seconds)
                same &= torch.equal(eager_tokens, compiled_tokens)
            rates = {k: b * args.tokens / median(v) for k, v in times.items()}
            print(f"batch {b:3d}: eager {median(times['eager']):6.2f} s ({rates['eager']:6.1f} tok/s), compiled "
                  f"{median(times['compiled']):6.2f} s ({rates['compiled']:6.1f} tok/s); greedy tokens equal: {same}")
            ratio = rates["compiled"] / rates["eager"]
    print(ratio_line(ratio))


if __name__ == "__main__":
    main()
