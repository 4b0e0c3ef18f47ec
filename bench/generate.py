"""App generation speed: time to first token and tokens per second, moodpo against plain `generate`.

    python bench/generate.py [--tokens 128] [--repeats 3]

On the embedded SmolLM2-135M-Instruct with the app's prefix, temperature 0.7 and top-p 0.95,
every response forced to exactly --tokens new tokens:
- Steer, one stream: `Policy.stream` (the fast sampler; on a float32 CPU its weights are float16,
  `bench/fp16_weights.py`) against `model.generate` with a
  `TextIteratorStreamer` on the model as loaded (float32), and against `generate` under bf16
  autocast for reference.
- Compare, two streams: `Policy.stream_many` (both panes in one batch, streaming together)
  against one `model.generate` call on a batch of two (which cannot stream two rows).
Runs alternate A B A B after a warm-up; medians are printed. The last line is
`ratio=<Steer tokens/s of moodpo over plain generate>` with the target (2, first token < 1 s).
"""

from __future__ import annotations

import argparse
import threading
import time

import torch
from common import machine, median, ratio_line

PROMPT = "How do airplanes stay in the air? Explain it to a curious twelve-year-old."
WEIGHTS = ([0.8, 0.2], [0.2, 0.8])
TARGET = 2.0               # issue 18: Steer at least twice plain `generate`'s tokens/s ...
FIRST_TOKEN_TARGET = 1.0   # ... with its first token within a second


def timed_stream(pieces) -> tuple[float, float, int]:
    """(seconds to the first non-empty piece, total seconds) of an iterator of growing texts."""
    start, first = time.perf_counter(), None
    for text in pieces:
        if first is None and text:
            first = time.perf_counter() - start
    return first, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    from transformers import TextIteratorStreamer

    from moodpo.policy import load_policy
    from moodpo.sampling import encode_prompts, eos_token_ids, generation_config
    from moodpo.sampling_settings import GenerationSettings

    print(f"machine: {machine()}", flush=True)
    policy = load_policy("base:smollm2-135m")
    model, tok = policy.model, policy.tokenizer
    settings = GenerationSettings(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    n = args.tokens
    eos = eos_token_ids(model, tok)
    config = generation_config(tok, eos, max_new_tokens=n, min_new_tokens=n, temperature=settings.temperature,
                               top_p=settings.top_p)

    def plain_stream(autocast: bool):
        ids, mask = encode_prompts(tok, [PROMPT], [policy.prefix(WEIGHTS[0])])
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)

        def run():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                model.generate(input_ids=ids, attention_mask=mask, generation_config=config, streamer=streamer)

        thread = threading.Thread(target=run)
        thread.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text
        thread.join()

    def plain_batch():
        ids, mask = encode_prompts(tok, [PROMPT] * 2, [policy.prefix(w) for w in WEIGHTS])
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        yield "done"

    def first_of(texts):
        for t in texts:
            yield t[0]

    contenders = {
        "steer: moodpo Policy.stream": lambda: policy.stream(PROMPT, WEIGHTS[0], settings=settings),
        "steer: plain generate (fp32)": lambda: plain_stream(False),
        "steer: generate, bf16 autocast": lambda: plain_stream(True),
        "compare: moodpo stream_many (2 rows)": lambda: first_of(policy.stream_many(PROMPT, WEIGHTS,
                                                                                  settings=settings)),
        "compare: plain generate, batch of 2": plain_batch,
    }
    streams = {"compare: moodpo stream_many (2 rows)": 2, "compare: plain generate, batch of 2": 2}
    for fn in contenders.values():  # warm-up
        timed_stream(fn())
    results = {name: [] for name in contenders}
    for r in range(args.repeats):
        for name, fn in contenders.items():
            results[name].append(timed_stream(fn()))
            print(f"round {r + 1} {name}: {results[name][-1][1]:.2f} s", flush=True)

    print(f"\n{'':<40}{'first token s':>14}{'total s':>9}{'tokens/s':>10}")
    rates, firsts = {}, {}
    for name, runs in results.items():
        total = median([t for _, t in runs])
        first = median([f for f, _ in runs]) if name != "compare: plain generate, batch of 2" else float("nan")
        rates[name] = streams.get(name, 1) * n / total
        firsts[name] = first
        first_text = "-" if first != first else f"{first:.3f}"
        print(f"{name:<40}{first_text:>14}{total:>9.2f}{rates[name]:>10.1f}")
    print(f"compare ratio={rates['compare: moodpo stream_many (2 rows)'] / rates['compare: plain generate, batch of 2']:.2f}")
    first = firsts["steer: moodpo Policy.stream"]
    print(f"Steer's first token {first:.2f} s (target < {FIRST_TOKEN_TARGET:g} s: "
          f"{'met' if first < FIRST_TOKEN_TARGET else 'not met'})")
    print(ratio_line(rates["steer: moodpo Policy.stream"] / rates["steer: plain generate (fp32)"], TARGET))


if __name__ == "__main__":
    main()
