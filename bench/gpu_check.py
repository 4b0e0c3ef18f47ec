"""GPU check: moodpo's fast sampler against transformers' static cache + torch.compile, on CUDA.

    python bench/gpu_check.py [--tokens 128] [--batch 1 16] [--repeats 3] [--dtype bf16]

The fast path (`moodpo.fastgen.FastSampler`) is also taken on CUDA for Llama models, but it was
written and measured on a CPU: on a GPU, transformers' own answer to per-op overhead, a static KV
cache with the forward compiled (`cache_implementation="static"`, which `generate` compiles on
CUDA), may be the better choice. This runs both, and plain `generate` for reference, on the
embedded SmolLM2-135M-Instruct (or --model) with greedy decoding forced to exactly --tokens new
tokens, and prints for each batch size the decode tokens/s (median of --repeats after a warm-up
that includes compilation, whose time is printed), whether the greedy tokens are the same as the
static-cache path's (rows equal, and the first differing position otherwise: in bf16 different
kernels may break a near-tie differently; --dtype fp32 should agree exactly), and last
`ratio=<fast path tokens/s over static cache + compile, at the first batch size>`.
Without CUDA it prints one line and exits with status 1. A few minutes on one GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from common import ratio_line

PROMPTS = ["How do airplanes stay in the air? Explain it to a curious twelve-year-old.",
           "Write a short poem about the sea.", "What is the capital of France, and why is it famous?",
           "Give me three tips for a job interview."]


def timed(fn, repeats: int) -> tuple[float, torch.Tensor, float]:
    """(median seconds, the last output, seconds of the first (warm-up) call) of a CUDA function."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    warm = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out, warm


def agreement(a: torch.Tensor, b: torch.Tensor) -> str:
    """'rows equal k/n' and, where a row differs, the first position at which any row does."""
    same = (a == b).all(-1)
    text = f"{int(same.sum())}/{len(same)} rows equal"
    if not bool(same.all()):
        text += f", first difference at token {int((a != b).any(0).nonzero()[0])}"
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="the embedded default, a local folder or a hub id")
    p.add_argument("--tokens", type=int, default=128, help="new tokens per row (EOS is masked until then)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16], help="batch sizes to time")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each contender after its warm-up")
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing measured, "
                 "run it on a machine with an NVIDIA GPU")

    from moodpo.fastgen import FastSampler
    from moodpo.models import load_model, load_tokenizer
    from moodpo.sampling import encode_prompts, eos_token_ids, generation_config

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, so --dtype fp32 can agree exactly
    torch.backends.cudnn.allow_tf32 = False
    tok = load_tokenizer(args.model)
    model = load_model(args.model, dtype=dtype).to("cuda")
    fast = FastSampler(model, dtype=dtype)
    eos = eos_token_ids(model, tok)
    n = args.tokens
    print(f"gpu: {torch.cuda.get_device_name()}; torch {torch.__version__}; {args.model} in {args.dtype}; "
          f"{n} new tokens, greedy", flush=True)

    def plain(ids, mask, static: bool):
        config = generation_config(tok, eos, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        if static:
            config.cache_implementation = "static"  # generate compiles the forward for it on CUDA
        with torch.no_grad():
            return model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1]:]

    def ours(ids, mask):
        return fast.generate(ids, mask, max_new_tokens=n, min_new_tokens=n, eos_token_ids=eos,
                             pad_token_id=tok.pad_token_id, do_sample=False)

    print(f"\n{'batch':>5} {'contender':<34}{'first call s':>13}{'tokens/s':>10}  greedy tokens vs static+compile")
    ratios = []
    for b in args.batch:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(b)]
        ids, mask = (t.to("cuda") for t in encode_prompts(tok, prompts, [None] * b))
        results = {
            "transformers, static cache + compile": timed(lambda: plain(ids, mask, True), args.repeats),
            "moodpo fast path": timed(lambda: ours(ids, mask), args.repeats),
            "transformers, plain generate": timed(lambda: plain(ids, mask, False), args.repeats),
        }
        reference = results["transformers, static cache + compile"][1]
        rates = {}
        for name, (seconds, out, warm) in results.items():
            rates[name] = b * n / seconds
            print(f"{b:>5} {name:<34}{warm:>13.1f}{rates[name]:>10.0f}  {agreement(out, reference)}", flush=True)
        ratios.append(rates["moodpo fast path"] / rates["transformers, static cache + compile"])
    print(", ".join(f"batch {b}: fast path {r:.2f}x static+compile" for b, r in zip(args.batch, ratios)))
    print(ratio_line(ratios[0]))


if __name__ == "__main__":
    main()
