"""Online-DPO training throughput: moodpo's trainer against TRL's OnlineDPOTrainer, side by side.

    python bench/train_throughput.py [--steps 3] [--trl-gc-steps 1] [--precision bf16|fp32] [--baseline REV]

Both trainers get the embedded SmolLM2-135M-Instruct, LoRA r=16 (alpha 32) on q/k/v/o, 8 prompts
x 2 samples a step, exactly 64 new tokens (min = max = 64), temperature 1, the same reward (the
built-in helpfulness and harmlessness objectives at weights 0.5/0.5, on the prompt without the
prefix), the same system prefix in the prompt, the sigmoid DPO loss with beta 0.1, AdamW and
bf16 autocast (`--precision fp32`: both in float32, what `precision: auto` picks on a CPU without
native bf16, e.g. AVX2 only). Each trainer lives in its own process, so each reports its own peak
memory; the parent feeds both the same 8 prompts each round and alternates A B A B after one
warm-up step.

TRL is driven one `training_step` at a time (plus clipping and the optimizer step, what
`Trainer.train` does around it) under bf16 autocast, with gradient checkpointing off (its
fastest setting here) and, for --trl-gc-steps steps, on (TRL's default; these steps are slow
enough that the first is timed too, scorer loading included). The last line is
`ratio=<our pairs/s over TRL's (checkpointing off) pairs/s>`.

`--baseline REV` adds moodpo's trainer as of a git revision (its `moodpo/` exported to a temporary
folder and imported by that worker alone), so a change is timed against what it replaces in the
same run.

Each trainer also runs one step under torch's FlopCounterMode; achieved GFLOP/s of a step is
those FLOPs over the median step time, next to a measured bf16 matmul peak of this machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time

from common import ROOT, machine, matmul_peak_gflops, median, peak_rss_gb, ratio_line

PREFIX_WEIGHTS = (0.5, 0.5)
OBJECTIVES = ("helpfulness", "harmlessness")
TARGET = 2.0  # issue 18: pairs/s at least twice TRL's OnlineDPOTrainer's
BATCH, SAMPLES, TOKENS = 8, 2, 64


def _ours(fast: bool, precision: str = "bf16"):
    from moodpo.config import TrainConfig
    from moodpo.train.trainer import Trainer

    run_dir = tempfile.mkdtemp(prefix="bench-ours-")
    config = TrainConfig(objectives=list(OBJECTIVES), weight_mode="fixed", fixed_weights=list(PREFIX_WEIGHTS),
                         per_device_train_batch_size=BATCH, num_generations=SAMPLES, max_new_tokens=TOKENS,
                         min_new_tokens=TOKENS, temperature=1.0, beta=0.1, lora_r=16, lora_alpha=32, learning_rate=2e-4,
                         precision=precision, fast_path=fast, output_dir=run_dir, save_steps=0, max_steps=1000,
                         overwrite=True)
    trainer = Trainer(config, show_progress=False)
    return lambda prompts: trainer.train_step(prompts)


def _trl(gradient_checkpointing: bool, precision: str = "bf16"):
    import contextlib

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    from moodpo.conditioning import build_messages, build_prefix
    from moodpo.models import load_model, load_tokenizer
    from moodpo.objectives import get_objective

    def reward(name):
        objective = get_objective(name)

        def fn(prompts, completions, **_):
            users = [p[-1]["content"] for p in prompts]
            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            return objective(users, texts).tolist()

        fn.__name__ = name
        return fn

    prefix = build_prefix(OBJECTIVES, PREFIX_WEIGHTS)
    args = OnlineDPOConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), per_device_train_batch_size=BATCH,
                           max_new_tokens=TOKENS, generation_kwargs={"min_new_tokens": TOKENS}, temperature=1.0,
                           top_p=1.0, beta=0.1, loss_type="sigmoid", learning_rate=2e-4,
                           bf16=precision == "bf16", use_cpu=True,
                           gradient_checkpointing=gradient_checkpointing, reward_weights=list(PREFIX_WEIGHTS),
                           report_to="none", max_grad_norm=1.0)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM")
    dataset = Dataset.from_list([{"prompt": build_messages("hello", prefix)}])
    trainer = OnlineDPOTrainer(model=load_model(), reward_funcs=[reward(o) for o in OBJECTIVES], args=args,
                               train_dataset=dataset, processing_class=load_tokenizer(), peft_config=lora)
    trainer.create_optimizer_and_scheduler(num_training_steps=1000)
    params = [p for p in trainer.model.parameters() if p.requires_grad]

    def step(prompts):
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with cast:
            trainer.training_step(trainer.model, {"prompt": [build_messages(p, prefix) for p in prompts]})
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        return {}

    return step


def register_sampler_flops() -> None:
    """Count the fast sampler's matmuls, which are not in torch's FLOP table: oneDNN's linear on packed
    (out, in) weights and fbgemm's fp16 GEMM (its packed weight is opaque: out from the output's
    shape). Once a process: torch refuses a second registration."""
    import torch
    from torch.utils.flop_counter import flop_registry, register_flop_formula

    def linear(x_shape, out_shape) -> int:
        rows = 1
        for d in x_shape[:-1]:
            rows *= d
        return 2 * rows * x_shape[-1] * out_shape[-1]

    for op in (torch.ops.mkldnn._linear_pointwise, getattr(torch.ops.quantized, "linear_dynamic_fp16", None)):
        if op is not None and op not in flop_registry:
            register_flop_formula(op)(lambda x_shape, *args, out_shape=None, **kwargs: linear(x_shape, out_shape))


def serve(step, conn) -> None:
    """Answer the parent's commands until it sends None or goes away (a closed pipe ends the loop
    quietly: the parent may stop early, after an error or Ctrl-C)."""
    from torch.utils.flop_counter import FlopCounterMode

    register_sampler_flops()
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        command, prompts = msg
        if command == "flops":
            with FlopCounterMode(display=False) as counter:
                step(prompts)
            conn.send(counter.get_total_flops())
            continue
        start = time.perf_counter()
        metrics = step(prompts)
        conn.send((time.perf_counter() - start, metrics.get("time/generate"), peak_rss_gb()))


def worker(kind: str, precision: str, conn) -> None:
    import logging
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    if kind.startswith("ours@"):  # moodpo as of a revision, exported by the parent (`export_revision`)
        folder = kind.split("=", 1)[1]
        sys.path.insert(0, folder)
        import moodpo
        assert moodpo.__file__.startswith(folder), f"moodpo imported from {moodpo.__file__}, not {folder}"
    try:
        step = {"ours": lambda: _ours(True, precision), "ours-plain": lambda: _ours(False, precision),
                "trl": lambda: _trl(False, precision), "trl-gc": lambda: _trl(True, precision)}[
            "ours" if kind.startswith("ours@") else kind]()
        conn.send(("ready", peak_rss_gb()))
        serve(step, conn)
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the parent went away or was interrupted; it reports what it has
    finally:
        conn.close()


class Contender:
    def __init__(self, kind: str, precision: str = "bf16"):
        self.kind, self.times, self.generate, self.rss = kind, [], [], 0.0
        self.name = kind.split("=", 1)[0]  # ours@REV without its folder
        self.conn, child = mp.Pipe()
        self.process = mp.get_context("spawn").Process(target=worker, args=(kind, precision, child), daemon=True)
        self.process.start()
        child.close()  # the worker holds the other end; if it dies, recv() here raises instead of waiting
        _, self.rss = self.conn.recv()

    def step(self, prompts, record: bool = True) -> float:
        self.conn.send(("step", prompts))
        seconds, generate, self.rss = self.conn.recv()
        if record:
            self.times.append(seconds)
            if generate is not None:
                self.generate.append(generate)
        return seconds

    def flops(self, prompts) -> float:
        self.conn.send(("flops", prompts))
        return self.conn.recv()

    def close(self) -> None:
        """Ask the worker to stop and wait for it; a worker that does not stop within 30 s is ended."""
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)
        self.conn.close()

    @property
    def pairs_per_second(self) -> float:
        return BATCH / median(self.times)


def export_revision(rev: str) -> str:
    """`moodpo/` as of git revision `rev`, exported to a new temporary folder; returns the folder."""
    folder = tempfile.mkdtemp(prefix=f"bench-{rev}-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "moodpo"], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"train_throughput: error: cannot export revision {rev!r}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3, help="timed steps of each trainer after one warm-up step")
    p.add_argument("--trl-gc-steps", type=int, default=1, help="timed steps of TRL with gradient checkpointing (0: skip)")
    p.add_argument("--plain", action="store_true", help="also time moodpo with transformers' generate")
    p.add_argument("--baseline", metavar="REV", help="also time moodpo's trainer as of this git revision")
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                   help="both trainers: bf16 autocast (default) or float32 (what `precision: auto` picks on "
                        "a CPU without native bf16)")
    args = p.parse_args()

    import torch

    from moodpo.data import load_prompts

    prompts = [x.text for x in load_prompts("builtin", "train", seed=0)]
    batches = iter([prompts[i:i + BATCH] for i in range(0, len(prompts), BATCH)])
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = matmul_peak_gflops(dtype)  # bf16 on a CPU without native bf16 is slow: measure what runs
    print(f"machine: {machine()}; {args.precision} matmul peak {peak:.0f} GFLOP/s; both trainers in {args.precision}",
          flush=True)

    kinds = ["ours", "trl"] + (["ours-plain"] if args.plain else [])
    if args.baseline:
        kinds.append(f"ours@{args.baseline}={export_revision(args.baseline)}")
    contenders, gc = [], None
    try:  # the workers are closed on every way out, so a good run ends without their tracebacks
        for kind in kinds:
            contenders.append(Contender(kind, args.precision))
        warm = next(batches)
        for c in contenders:
            print(f"{c.name}: warm-up step {c.step(warm, record=False):.1f} s", flush=True)
        flops = {c.kind: c.flops(next(batches)) for c in contenders}
        for i in range(args.steps):
            batch = next(batches)
            for c in contenders:
                print(f"round {i + 1} {c.name}: {c.step(batch):.1f} s", flush=True)
        for c in contenders:
            c.close()
        if args.trl_gc_steps:
            gc = Contender("trl-gc", args.precision)  # no warm-up step: its first step also loads the scorers (a few s of ~160)
            for _ in range(args.trl_gc_steps):
                print(f"trl with gradient checkpointing: {gc.step(next(batches)):.1f} s", flush=True)
    finally:
        for c in contenders + ([gc] if gc is not None else []):
            c.close()

    print(f"\n{'trainer':<34}{'s/step':>8}{'generate s':>12}{'pairs/s':>9}{'GFLOP/s':>9}{'peak GB':>9}")
    for c in contenders:
        gen = f"{median(c.generate):.1f}" if c.generate else "-"
        print(f"{c.name:<34}{median(c.times):>8.1f}{gen:>12}{c.pairs_per_second:>9.3f}"
              f"{flops[c.kind] / median(c.times) / 1e9:>9.0f}{c.rss:>9.2f}")
    if gc is not None:
        print(f"{'trl (gradient checkpointing, default)':<34}{median(gc.times):>8.1f}{'-':>12}"
              f"{gc.pairs_per_second:>9.3f}{'-':>9}{gc.rss:>9.2f}")
    ours, trl = contenders[0], contenders[1]
    print(f"step FLOPs: ours {flops['ours'] / 1e12:.2f} T, trl {flops['trl'] / 1e12:.2f} T; "
          f"{args.precision} matmul peak {peak:.0f} GFLOP/s")
    print(f"peak memory: ours {ours.rss:.2f} GB, trl {trl.rss:.2f} GB")
    if gc is not None:
        print(f"vs TRL with gradient checkpointing: {ours.pairs_per_second / gc.pairs_per_second:.2f}x")
    for c in contenders[2:]:
        print(f"vs {c.name}: {ours.pairs_per_second / c.pairs_per_second:.2f}x")
    print(ratio_line(ours.pairs_per_second / trl.pairs_per_second, TARGET))


if __name__ == "__main__":
    main()
