"""Pareto sweep speed: an 11-point weight grid on 32 held-out prompts, batched across weights
against a loop of one weight at a time, in the same run.

    python bench/eval_sweep.py [--prompts 32] [--grid 11] [--tokens 64]

Both go through `moodpo.eval.evaluate.evaluate_policy` on the embedded base policy with the same
generation settings and scorers (helpfulness, harmlessness); the loop calls it once per weight
vector (each call batches that weight's prompts), the sweep once for the whole grid (rows of all
weights share batches of --batch). The last line is `ratio=<loop seconds over sweep seconds>`.

    python bench/eval_sweep.py --scan 32 64 128 176

instead times the generation of the sweep's first batch at each of these sizes (responses/s, the
same rows and settings the sweep would give that batch) and ends with the size that is fastest.
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
    p.add_argument("--scan", type=int, nargs="+", default=None, metavar="B",
                   help="time one batch of the sweep at each size instead")
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
    if args.scan:
        scan(policy, prompts, grid, settings, args.scan)
        return

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


def scan(policy, prompts, grid, settings, sizes) -> None:
    """Responses/s of the sweep's first batch at each size, generation only (no scoring)."""
    from moodpo.eval.evaluate import eval_batches

    rates = {}
    for size in sizes:
        rows = eval_batches(len(prompts), len(grid), 1, size)[0]
        start = time.perf_counter()
        policy.generate([prompts[p].text for p, _ in rows], grid[[g for _, g in rows]], settings=settings, seed=0)
        seconds = time.perf_counter() - start
        rates[size] = len(rows) / seconds
        print(f"batch of {len(rows)}: {seconds:.1f} s, {rates[size]:.2f} responses/s", flush=True)
    print(f"fastest: batches of {max(rates, key=rates.get)}")


if __name__ == "__main__":
    main()
