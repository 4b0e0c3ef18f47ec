"""Cost curves of one MO-ODPO training step: seconds and peak memory against batch size, samples per
prompt and new tokens, generation and update apart.

    python bench/cost_curves.py                       # the three axes around 8 prompts x 2 samples x 64 tokens
    python bench/cost_curves.py --quick               # shorter axes (about a third of the time)
    python bench/cost_curves.py --out DIR             # where cost_curves.{json,html,png} go

One point is one configuration of moodpo's trainer on the embedded SmolLM2-135M-Instruct (LoRA r=16,
--precision: auto, the default, is bf16 on a CPU with native bf16 and float32 otherwise; the fast
sampler; exactly N new tokens: min = max), run in its own process so that its peak memory is its
own: one warm-up step, then --steps timed steps (median). The scorer and pair building are timed
apart from the update (time/score). Each axis varies one factor from the centre point.

The report says, per axis and stage, the exponent of a power-law fit (1 = linear, < 1 = sub-linear:
a batch that pays) and the first point where the cost per unit grows more than 25% above the
cheapest per unit seen so far (where it stops being linear or better).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from common import machine, median, peak_rss_gb

CENTRE = {"batch": 8, "samples": 2, "tokens": 64}
AXES = {"batch": [1, 2, 4, 8, 16], "samples": [2, 4, 8], "tokens": [16, 32, 64, 128]}
QUICK = {"batch": [2, 8, 16], "samples": [2, 4], "tokens": [16, 64, 128]}
STAGES = ("time/generate", "time/score", "time/update")
# what one unit of each axis is: cost per prompt, per sample, per new token
UNITS = {"batch": "prompt", "samples": "sample", "tokens": "new token"}
TITLES = {"batch": "prompts a step", "samples": "samples a prompt", "tokens": "new tokens a sample"}


def measure(point: dict, steps: int, precision: str, conn) -> None:
    """Child process: build the trainer for one point, warm up, time `steps` steps, send medians."""
    import logging
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    from moodpo.config import TrainConfig
    from moodpo.data import load_prompts
    from moodpo.train.trainer import Trainer

    try:
        config = TrainConfig(objectives=["helpfulness", "harmlessness"], weight_mode="fixed",
                             fixed_weights=[0.5, 0.5], per_device_train_batch_size=point["batch"],
                             num_generations=point["samples"], max_new_tokens=point["tokens"],
                             min_new_tokens=point["tokens"], temperature=1.0, beta=0.1, lora_r=16, lora_alpha=32,
                             learning_rate=2e-4, precision=precision, output_dir=tempfile.mkdtemp(prefix="bench-cost-"),
                             save_steps=0, max_steps=1000, overwrite=True,
                             # one pair a prompt: every point runs its step's pairs in one micro-batch
                             max_pairs_per_micro_batch=max(16, point["batch"] * point["samples"]))
        trainer = Trainer(config, show_progress=False)
        prompts = [x.text for x in load_prompts("builtin", "train", seed=0)]
        rows = []
        for i in range(steps + 1):
            batch = [prompts[(i * point["batch"] + j) % len(prompts)] for j in range(point["batch"])]
            start = time.perf_counter()
            metrics = trainer.train_step(batch)
            if i:  # the first step warms up
                rows.append({"time/step": time.perf_counter() - start, **{s: metrics.get(s, 0.0) for s in STAGES}})
        conn.send({**point, **{k: median([r[k] for r in rows]) for k in rows[0]}, "peak_gb": peak_rss_gb()})
    except Exception as e:  # noqa: BLE001 - the parent reports it and goes on to the next point
        conn.send({**point, "error": f"{type(e).__name__}: {e}"})
    finally:
        conn.close()


def run_point(point: dict, steps: int, precision: str = "auto") -> dict:
    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(target=measure, args=(point, steps, precision, child), daemon=True)
    process.start()
    child.close()
    try:
        return parent.recv()
    except EOFError:
        process.join(timeout=30)
        return {**point, "error": f"the worker died (exit code {process.exitcode})"}
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()


def growth(xs: list[float], ys: list[float]) -> dict:
    """Power-law exponent of y over x (least squares in log-log) and the first x where y per unit
    rises more than 25% above the cheapest per-unit cost at smaller x (None: it never does)."""
    pairs = [(x, y) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pairs) < 2:
        return {"exponent": None, "superlinear_from": None}
    lx, ly = [math.log(x) for x, _ in pairs], [math.log(y) for _, y in pairs]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)
    cheapest, knee = math.inf, None
    for x, y in pairs:
        if y / x > 1.25 * cheapest and knee is None:
            knee = x
        cheapest = min(cheapest, y / x)
    return {"exponent": round(slope, 2), "superlinear_from": knee}


def figure(points: list[dict], dtype: str = "bf16"):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    axes = list(AXES)
    fig = make_subplots(rows=2, cols=len(axes), shared_xaxes=False, vertical_spacing=0.14,
                        subplot_titles=[f"seconds a step vs {a}" for a in axes] + [f"peak GB vs {a}" for a in axes])
    colors = {"time/generate": "#1f77b4", "time/score": "#2ca02c", "time/update": "#d62728", "time/step": "#444"}
    for col, axis in enumerate(axes, start=1):
        rows = sorted([p for p in points if p["axis"] == axis and "error" not in p], key=lambda p: p[axis])
        xs = [p[axis] for p in rows]
        for stage in (*STAGES, "time/step"):
            fig.add_trace(go.Scatter(x=xs, y=[p[stage] for p in rows], mode="lines+markers",
                                     name=stage.split("/")[1], legendgroup=stage, showlegend=col == 1,
                                     line={"color": colors[stage], "dash": "dot" if stage == "time/step" else None}),
                          row=1, col=col)
        fig.add_trace(go.Scatter(x=xs, y=[p["peak_gb"] for p in rows], mode="lines+markers", name="peak GB",
                                 showlegend=col == 1, line={"color": "#9467bd"}), row=2, col=col)
        for row in (1, 2):
            fig.update_xaxes(type="log", tickvals=xs, title_text=TITLES[axis] if row == 2 else None,
                             row=row, col=col)
    fig.update_yaxes(rangemode="tozero")
    c = CENTRE
    fig.update_layout(title=f"One training step around {c['batch']} prompts x {c['samples']} samples x "
                            f"{c['tokens']} new tokens (SmolLM2-135M, LoRA, {dtype})", height=620, width=1100)
    return fig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps a point, after one warm-up step")
    parser.add_argument("--quick", action="store_true", help="shorter axes")
    parser.add_argument("--out", default="runs/bench", help="folder for cost_curves.json, .html and .png")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="the trainer's precision (auto: bf16 where the CPU has native bf16, float32 otherwise)")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    axes = QUICK if args.quick else AXES
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from moodpo.models import autocast_dtype

    dtype = "bf16" if autocast_dtype(args.precision) is not None else "fp32"
    print(f"machine: {machine()}; precision {args.precision}: {dtype}", flush=True)
    measured: dict[tuple, dict] = {}
    points = []
    todo = [(axis, {**CENTRE, axis: value}) for axis, values in axes.items() for value in values]
    for i, (axis, point) in enumerate(todo, start=1):
        key = tuple(point.values())
        if key not in measured:  # the centre point serves every axis
            started = time.perf_counter()
            measured[key] = run_point(point, args.steps, dtype)
            result = measured[key]
            took = time.perf_counter() - started
            if "error" in result:
                print(f"[{i}/{len(todo)}] {point}: {result['error']}", flush=True)
            else:
                print(f"[{i}/{len(todo)}] {point}: step {result['time/step']:.1f} s (generate "
                      f"{result['time/generate']:.1f}, score {result['time/score']:.1f}, update "
                      f"{result['time/update']:.1f}), peak {result['peak_gb']:.2f} GB ({took:.0f} s)", flush=True)
        points.append({"axis": axis, **measured[key]})
    summary = {}
    for axis in axes:
        rows = sorted([p for p in points if p["axis"] == axis and "error" not in p], key=lambda p: p[axis])
        xs = [p[axis] for p in rows]
        summary[axis] = {stage: growth(xs, [p[stage] for p in rows]) for stage in (*STAGES, "time/step", "peak_gb")}
        for stage, g in summary[axis].items():
            knee = f", per {UNITS[axis]} more than 25% dearer from {g['superlinear_from']}" if g["superlinear_from"] else ""
            print(f"{axis:>8} {stage:>14}: exponent {g['exponent']}{knee}")
    (out / "cost_curves.json").write_text(json.dumps({"machine": machine(), "centre": CENTRE, "steps": args.steps,
                                                      "precision": dtype, "points": points, "growth": summary}, indent=1) + "\n")
    from moodpo.plots import write_html

    write_html(figure(points, dtype), out / "cost_curves.html")
    try:
        from figure_png import save_png

        save_png(out / "cost_curves.html", out / "cost_curves.png", width=1120, height=640)
    except Exception as e:  # noqa: BLE001 - the PNG is a convenience; the HTML and JSON are the result
        print(f"no PNG ({type(e).__name__}: {e}); open {out / 'cost_curves.html'}")
    print(f"wrote {out / 'cost_curves.json'} and {out / 'cost_curves.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
