"""One shipped set of issue 19, stage by stage: MO-ODPO and its Rewarded Soups at the same pair
budget, each over several training seeds, the prompted base, their evaluations on the eval split
and a comparison that pools the seeds.

    python bench/ship.py help-harm --dry-run                  # print the commands and the pair budgets
    python bench/ship.py help-harm                            # train, evaluate, compare (hours on 2 cores)
    python bench/ship.py help-harm --only moodpo-seed1        # one system (train and evaluate it)
    python bench/ship.py help-harm --out runs/next/help-harm  # where the set goes (default)

Every stage is skipped when its output exists (a finished run, an evaluation's summary.json) and
resumed when a run has a checkpoint, so the set can be built over several sessions. Each stage's
wall and CPU time (user + system, the child's rusage) goes to <out>/cost.json and <out>/cost.md.

Pair budget: a MO-ODPO step makes pool_weights pairs from each prompt slot (mirrored copies count
as slots); a soups member has one-hot weights, so one pair a slot. The soups set trains its members
for max_steps / K steps (K objectives) with pool_weights times the prompts a step, so it makes as
many pairs, in updates of the same size, as the MO-ODPO run (docs/baselines.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT

PY = [sys.executable, "-m", "moodpo"]
SETS = {
    "help-harm": {"config": "configs/experiments/recipe_help_harm_gate_balanced.yaml",
                  "categories": ["everyday", "safety", "borderline", "harmful"], "max_new_tokens": 48},
    "help-concise": {"config": "configs/experiments/recipe_help_concise_instruct.yaml",
                     "categories": ["everyday"], "max_new_tokens": 64},
}
NAMES = {"moodpo": "MO-ODPO", "soups": "Rewarded Soups", "base": "Prompted base"}


def pair_budget(config: str) -> dict:
    """Pairs a MO-ODPO run makes and the soups overrides that make as many, from the config."""
    from moodpo.config import load_config

    c = load_config(ROOT / config)
    slots = c.per_device_train_batch_size * c.gradient_accumulation_steps
    k = c.num_objectives
    if c.max_steps % k:
        raise SystemExit(f"error: {config}: max_steps {c.max_steps} must divide by its {k} objectives "
                         "for a soups set at the same pair budget")
    overrides = {"max_steps": c.max_steps // k, "gradient_accumulation_steps": c.gradient_accumulation_steps * c.pool_weights}
    return {"moodpo_pairs": c.max_steps * slots * c.pool_weights,
            "soups_pairs": k * overrides["max_steps"] * c.per_device_train_batch_size
            * overrides["gradient_accumulation_steps"],
            "soups_overrides": overrides, "objectives": list(c.objectives)}


def system_dir(system: str, seed: int) -> str:
    return system if seed == 0 else f"{system}-seed{seed}"


def commands(name: str, system: str, seed: int, out: Path) -> dict[str, list[str]]:
    """{"train": argv, "eval": argv} of one system and seed (the base has no training)."""
    spec, run = SETS[name], out / system_dir(system, seed)
    cmds = {}
    if system == "moodpo":
        cmds["train"] = PY + ["train", "--config", spec["config"], "--seed", str(seed), "--output_dir", str(run)]
    elif system == "soups":
        extra = pair_budget(spec["config"])["soups_overrides"]
        cmds["train"] = PY + ["train-soups", "--config", spec["config"], "--seed", str(seed),
                              *[a for key, value in extra.items() for a in (f"--{key}", str(value))],
                              "--output_dir", str(run)]
    target = "base:smollm2-135m" if system == "base" else str(run)
    objectives = ["--objectives", *pair_budget(spec["config"])["objectives"]] if system == "base" else []
    cmds["eval"] = PY + ["eval", "--run", target, *objectives, "--prompts", "eval", "--categories", *spec["categories"],
                         "--grid", "11", "--samples", "1", "--seed", "0", "--max_new_tokens", str(spec["max_new_tokens"]),
                         "--name", NAMES[system] + ("" if seed == 0 else f" seed {seed}"),
                         "--out", str(out / ("base" if system == "base" else f"{system_dir(system, seed)}/eval"))]
    return cmds


def done(stage: str, argv: list[str]) -> str:
    """'done', 'started' or 'new' for a stage, read from its output folder."""
    folder = Path(argv[argv.index("--output_dir" if stage == "train" else "--out") + 1])
    folder = folder if folder.is_absolute() else ROOT / folder
    if stage == "eval":
        return "done" if (folder / "summary.json").is_file() else "new"
    if (folder / "soups.json").is_file() or (folder / "adapter").is_dir():
        return "done"
    return "started" if folder.is_dir() and any(folder.iterdir()) else "new"


def timed(argv: list[str]) -> dict:
    """Run a command; its wall seconds and CPU-hours (children's user + system time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(time.perf_counter() - start, 1), "cpu_h": round(cpu / 3600, 3)}


def write_cost(out: Path, cost: dict) -> None:
    """<out>/cost.json and its table <out>/cost.md; a resumed stage's time covers its last part only."""
    (out / "cost.json").write_text(json.dumps(cost, indent=1) + "\n")
    lines = ["| system | stage | wall | CPU-h | resumed |", "|---|---|---|---|---|"]
    lines += [f"| {system} | {stage} | {row['wall_s']} s | {row['cpu_h']} | {'yes' if row.get('resumed') else 'no'} |"
              for system, stages in cost.items() for stage, row in stages.items()]
    (out / "cost.md").write_text("\n".join(lines) + "\n")


def compare_command(out: Path, seeds: list[int]) -> list[str]:
    def pooled(system: str) -> str:
        return "+".join(str(out / system_dir(system, s) / "eval") for s in seeds)
    return PY + ["compare", str(out / "base"), pooled("soups"), pooled("moodpo"),
                 "--names", NAMES["base"], NAMES["soups"], NAMES["moodpo"], "--out", str(out / "compare")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=list(SETS), help="the objective pair")
    parser.add_argument("--out", default=None, help="folder of the set (default: runs/next/<set>)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="training seeds (default: 0 1)")
    parser.add_argument("--only", nargs="+", default=None, metavar="SYSTEM",
                        help="only these, e.g. moodpo-seed1 soups base (default: all, then the comparison)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and the pair budgets, run nothing")
    args = parser.parse_args()
    out = Path(args.out or f"runs/next/{args.set}")
    budget = pair_budget(SETS[args.set]["config"])
    jobs = [(s, seed) for s in ("moodpo", "soups") for seed in args.seeds] + [("base", 0)]
    if args.only:
        unknown = set(args.only) - {system_dir(s, seed) for s, seed in jobs}
        if unknown:
            parser.error(f"--only {' '.join(sorted(unknown))}: choose from "
                         f"{' '.join(system_dir(s, seed) for s, seed in jobs)}")
        jobs = [(s, seed) for s, seed in jobs if system_dir(s, seed) in args.only]
    print(f"# pairs: MO-ODPO {budget['moodpo_pairs']}, Rewarded Soups {budget['soups_pairs']} "
          f"(members: {budget['soups_overrides']})")
    cost_file = out / "cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.is_file() else {}
    for system, seed in jobs:
        for stage, argv in commands(args.set, system, seed, out).items():
            state = done(stage, argv)
            argv = argv + (["--resume"] if state == "started" else [])
            print(("# done: " if state == "done" else "+ ") + "python -m moodpo " + shlex.join(argv[len(PY):]),
                  flush=True)
            if args.dry_run or state == "done":
                continue
            out.mkdir(parents=True, exist_ok=True)
            row = timed(argv)
            cost.setdefault(system_dir(system, seed), {})[stage] = {**row, "resumed": state == "started"}
            write_cost(out, cost)  # after each stage, so a stopped set keeps what it measured
    compare = compare_command(out, args.seeds)
    print("+ python -m moodpo " + shlex.join(compare[len(PY):]), flush=True)
    ready = all((out / system_dir(s, seed) / "eval" / "summary.json").is_file() for s in ("moodpo", "soups")
                for seed in args.seeds) and (out / "base" / "summary.json").is_file()
    if not args.dry_run and not args.only and ready:
        subprocess.run(compare, cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
