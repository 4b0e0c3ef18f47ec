"""The fast sampler with float16 weights (`FastSampler(half=True)`) against float32: what it costs in
fidelity and what it buys in speed, on the embedded model.

    python bench/fp16_weights.py [--prompts 24] [--tokens 48] [--batches 1 2 16 64] [--repeats 3]
    python bench/fp16_weights.py --kernels       # the matmuls alone, and the int8 alternative

Fidelity, on --prompts dev-split prompts at the weights (1, 0), (0.5, 0.5) and (0, 1) with the app's
prefix: the float32 sampler's greedy continuation of --tokens tokens, then both samplers' next-token
distributions along it (teacher forced): mean KL(float32 || float16) a token, how often the most
likely token agrees, the largest difference of a response's summed log-prob, and how many of the
greedy tokens the float16 sampler reproduces before its first different one.
Speed: greedy decoding of exactly 64 new tokens at each batch size, the two samplers alternating,
medians of --repeats rounds after a warm-up. The last line is `ratio=<float16 over float32 tokens/s
at the first --batches size>` (1 by default, the Steer tab's case).

--kernels times the kernels alone on the model's own fused shapes (q/k/v 960 x 576, o 576 x 576,
gate/up 3072 x 576, down 576 x 1536, 30 distinct copies each as in a decode step, and the 49152 x 576
head) at 1 to 2048 rows: torch's float32 `x @ w`, oneDNN's packed float32 linear, fbgemm's fp16 GEMM
fbgemm's dynamic int8 linear (int8 weights per output channel, activations quantised per call) and
torch's int8 weight-only kernel (`_weight_int8pack_mm`, activations float32);
then the fidelity of that int8 alternative, measured as above.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, median, ratio_line

from moodpo.conditioning import build_prefix
from moodpo.data import load_prompts
from moodpo import fastgen
from moodpo.fastgen import FastSampler
from moodpo.models import load_model, load_tokenizer
from moodpo.sampling import encode_prompts, eos_token_ids

WEIGHTS = ([1.0, 0.0], [0.5, 0.5], [0.0, 1.0])
plain_mm = fastgen._mm


def token_logps(sampler, ids, mask, completion) -> torch.Tensor:
    """Next-token log-probs (N, C, V) along `completion` (N, C) after left-padded prompts (N, P)."""
    return sampler.completion_logits(ids, mask, completion, torch.ones_like(completion)).log_softmax(-1)


def fidelity(exact, half, tok, texts, n) -> dict:
    """How far `half` is from `exact` along `exact`'s greedy continuations of n tokens of `texts` at each
    of WEIGHTS: mean and largest KL a token, top-1 agreement, the largest |difference| of a response's
    summed log-prob, the share of rows whose n greedy tokens are identical and the mean matching prefix."""
    eos = eos_token_ids(exact.model, tok)
    kl, agree, seq, prefix = [], [], [], []
    for w in WEIGHTS:
        ids, mask = encode_prompts(tok, texts, [build_prefix(["helpfulness", "harmlessness"], w)] * len(texts))
        mask = mask.bool()
        run = dict(max_new_tokens=n, min_new_tokens=n, eos_token_ids=eos, pad_token_id=tok.pad_token_id,
                   do_sample=False)
        greedy, greedy_half = exact.generate(ids, mask, **run), half.generate(ids, mask, **run)
        ref, got = token_logps(exact, ids, mask, greedy), token_logps(half, ids, mask, greedy)
        kl.append((ref.exp() * (ref - got)).sum(-1).flatten())
        agree.append((ref.argmax(-1) == got.argmax(-1)).float().flatten())
        picked = lambda lp: lp.gather(-1, greedy[..., None]).squeeze(-1).sum(-1)  # noqa: E731
        seq.append((picked(ref) - picked(got)).abs())
        prefix.append((greedy == greedy_half).long().cumprod(-1).sum(-1).float())
    kl, agree, seq, prefix = (torch.cat(x) for x in (kl, agree, seq, prefix))
    return {"kl": kl.mean().item(), "kl_max": kl.max().item(), "top1": agree.mean().item(),
            "seq_max": seq.max().item(), "greedy_same": (prefix == n).float().mean().item(),
            "prefix": prefix.mean().item(), "rows": len(prefix)}


def int8_scales(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel int8 scales (out,) of a weight (out, in): its largest |value| maps to 127."""
    return w.abs().amax(1).clamp(min=1e-8) / 127


def int8_pack(w: torch.Tensor):
    """A weight (out, in) as fbgemm's dynamic int8 linear takes it: int8 per output channel."""
    scale = int8_scales(w).double()
    q = torch.quantize_per_channel(w, scale, torch.zeros(len(scale), dtype=torch.long), 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(q, None)


def int8_matmuls(sampler) -> None:
    """Turn a float32 `plain` snapshot's matrices (in, out) into fbgemm's dynamic int8 linears
    (activations quantised per call to 7 bits, fbgemm's `reduce_range` on x86). Bench only."""
    def pack(w):
        return int8_pack(w.t().contiguous())

    sampler.layers = [tuple(pack(x) if x.dim() == 2 else x for x in layer) for layer in sampler.layers]
    sampler.lm_head, sampler.layout = pack(sampler.lm_head), "int8"


def int8_mm(x, w, layout):
    return torch.ops.quantized.linear_dynamic(x, w, True) if layout == "int8" else plain_mm(x, w, layout)


def kernels(repeats: int) -> None:
    """ms for the kernels of one decode step's matmuls, each shape's 30 copies (1 for the head)."""
    shapes = {"q/k/v 960x576": (960, 576, 30), "o 576x576": (576, 576, 30), "gate/up 3072x576": (3072, 576, 30),
              "down 576x1536": (576, 1536, 30), "head 49152x576": (49152, 576, 1)}
    for name, (out, inp, copies) in shapes.items():
        ws = [torch.randn(out, inp) * 0.02 for _ in range(copies)]
        ways = {"x @ w": [w.t().contiguous() for w in ws],
                "oneDNN": [torch.ops.mkldnn._reorder_linear_weight(w, 16) for w in ws],
                "fp16": [torch.ops.quantized.linear_prepack_fp16(w, None) for w in ws]}
        ways["int8"] = [int8_pack(w) for w in ws]
        ways["int8 weight-only"] = [((w / s[:, None]).round().to(torch.int8), s)
                                    for w, s in ((w, int8_scales(w)) for w in ws)]
        calls = {"int8 weight-only": lambda x, w: torch.ops.aten._weight_int8pack_mm(x, *w),
                 "x @ w": lambda x, w: x @ w, "oneDNN": lambda x, w: torch.ops.mkldnn._linear_pointwise(
            x, w, None, "none", [], ""), "fp16": torch.ops.quantized.linear_dynamic_fp16,
            "int8": lambda x, w: torch.ops.quantized.linear_dynamic(x, w, True)}
        for rows in (1, 2, 16, 64, 512, 2048):
            x = torch.randn(rows, inp)
            ms = {}
            for way, packed in ways.items():
                call = calls[way]
                times = []
                for _ in range(repeats + 1):                          # the first is a warm-up
                    start = time.perf_counter()
                    for w in packed:
                        call(x, w)
                    times.append((time.perf_counter() - start) * 1e3)
                ms[way] = median(times[1:])
            print(f"{name:17s} rows {rows:5d}: " + "; ".join(f"{k} {v:8.2f} ms" for k, v in ms.items())
                  + f"; oneDNN / fp16 {ms['oneDNN'] / ms['fp16']:.2f}x", flush=True)


def report(name: str, f: dict, n: int) -> None:
    print(f"fidelity over {f['rows']} rows x {n} tokens: KL(float32 || {name}) {f['kl']:.2e} a token "
          f"(max {f['kl_max']:.2e}); top-1 agrees {f['top1']:.4f}; largest |difference of a response's log-prob| "
          f"{f['seq_max']:.4f}; greedy continuation identical in {f['greedy_same']:.3f} of rows "
          f"({f['prefix']:.1f} of {n} tokens before the first difference, on average)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 16, 64])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kernels", action="store_true", help="time the kernels alone and the int8 alternative")
    args = ap.parse_args()
    print(f"machine: {machine()}", flush=True)
    torch.set_grad_enabled(False)
    model, tok = load_model("smollm2-135m"), load_tokenizer("smollm2-135m")
    start = time.perf_counter()
    half = FastSampler(model, torch.float32, half=True)
    snapshot = time.perf_counter() - start
    exact = FastSampler(model, torch.float32)
    print(f"layouts: {exact.layout} against {half.layout}; float16 snapshot {snapshot:.2f} s", flush=True)
    if half.layout != "fp16":
        raise SystemExit("float16 weights are not available here (torch without fbgemm, or MOODPO_FP16=0)")

    texts = [p.text for p in load_prompts("builtin", "dev", limit=args.prompts, seed=0)]
    if args.kernels:
        kernels(args.repeats)
        int8 = FastSampler(model, torch.float32, pack=False)
        int8_matmuls(int8)
        fastgen._mm = int8_mm
        report("int8 (fbgemm dynamic)", fidelity(exact, int8, tok, texts, args.tokens), args.tokens)
        return
    report("float16", fidelity(exact, half, tok, texts, args.tokens), args.tokens)

    prefix = build_prefix(["helpfulness", "harmlessness"], [0.5, 0.5])
    eos = eos_token_ids(model, tok)

    def run(sampler, b):
        ids, mask = encode_prompts(tok, texts[:1] * b, [prefix] * b)
        start = time.perf_counter()
        sampler.generate(ids, mask, max_new_tokens=64, min_new_tokens=64, eos_token_ids=eos,
                         pad_token_id=tok.pad_token_id, do_sample=False)
        return time.perf_counter() - start

    samplers = {"float32": exact, "float16": half}
    ratio = None
    for b in args.batches:
        for sampler in samplers.values():
            run(sampler, b)
        times = {name: [] for name in samplers}
        for _ in range(args.repeats):
            for name, sampler in samplers.items():
                times[name].append(run(sampler, b))
        rates = {name: b * 64 / median(v) for name, v in times.items()}
        print(f"batch {b:3d}: float32 ({exact.layout}) {median(times['float32']):6.2f} s ({rates['float32']:6.1f} "
              f"tok/s); float16 {median(times['float16']):6.2f} s ({rates['float16']:6.1f} tok/s, "
              f"{rates['float16'] / rates['float32']:.2f}x)", flush=True)
        ratio = ratio if ratio is not None else rates["float16"] / rates["float32"]
    print(ratio_line(ratio))


if __name__ == "__main__":
    main()
