"""Pareto sweep speed: an 11-point weight grid on 32 held-out prompts, batched across weights
against a loop of one weight at a time, in the same run.

    python bench/eval_sweep.py [--prompts 32] [--grid 11] [--tokens 64]

Both go through `moodpo.eval.evaluate.evaluate_policy` on the embedded base policy with the same
generation settings and scorers (helpfulness, harmlessness); the loop calls it once per weight
vector (each call batches that weight's prompts), the sweep once for the whole grid (rows of all
weights share batches of --batch). The last line is `ratio=<loop seconds over sweep seconds>`.
"""

from __future__ import annotations

import argparse
import time

from common import machine, ratio_line

TARGET = 3.0  # issue 18: an 11-point sweep at least 3x a loop of one weight at a time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--grid", type=int, default=11)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--batch", type=int, default=None, help="sweep batch size (default: evaluate's default)")
    args = p.parse_args()

    from moodpo.data import load_prompts
    from moodpo.eval.evaluate import DEFAULT_BATCH_SIZE, evaluate_policy
    from moodpo.objectives import get_objective
    from moodpo.policy import load_policy
    from moodpo.sampling_settings import GenerationSettings
    from moodpo.weights import simplex_grid

    print(f"machine: {machine()}", flush=True)
    objectives = ["helpfulness", "harmlessness"]
    policy = load_policy("base:smollm2-135m", objectives=objectives)
    scorers = [get_objective(o) for o in objectives]
    prompts = load_prompts("builtin", "eval", limit=args.prompts, seed=0)
    grid = simplex_grid(2, args.grid)
    settings = GenerationSettings(max_new_tokens=args.tokens)
    batch = args.batch or DEFAULT_BATCH_SIZE
    evaluate_policy(policy, scorers, prompts[:4], grid[:1], settings=settings, progress=False)  # warm-up

    def sweep():
        evaluate_policy(policy, scorers, prompts, grid, settings=settings, batch_size=batch, progress=False)

    def loop():
        for w in grid:
            evaluate_policy(policy, scorers, prompts, [w], settings=settings, batch_size=len(prompts),
                            progress=False)

    times = {}
    for name, fn in (("sweep", sweep), ("loop", loop)):
        start = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - start
        print(f"{name}: {times[name]:.1f} s", flush=True)
    rows = len(prompts) * len(grid)
    print(f"\n{rows} responses of up to {args.tokens} tokens")
    print(f"batched sweep (batches of {batch}): {times['sweep']:.1f} s, {rows / times['sweep']:.2f} responses/s")
    print(f"one weight at a time (batches of {len(prompts)}): {times['loop']:.1f} s, {rows / times['loop']:.2f} responses/s")
    print(ratio_line(times["loop"] / times["sweep"], TARGET))


if __name__ == "__main__":
    main()
