"""One shipped set of issue 19, stage by stage: MO-ODPO and its Rewarded Soups at the same pair
budget, each over several training seeds, the prompted base, their evaluations on the eval split
and two comparisons that pool the seeds (against the base; MO-ODPO against Rewarded Soups).

    python bench/ship.py help-harm --dry-run                  # print the commands and the pair budgets
    python bench/ship.py help-harm                            # train, evaluate, compare (hours on 2 cores)
    python bench/ship.py help-harm --only moodpo-seed1        # one system (train and evaluate it)
    python bench/ship.py help-harm --out runs/shipped/help-harm  # where the set goes (default)

Every stage is skipped when its output exists (a finished run; an evaluation newer than its run's
end), a run with a checkpoint resumes from it (a soups set member by member) and a run folder with
nothing to resume starts over, so the set can be built over several sessions; a stage that does not
finish (Ctrl-C, a STOP file, an error) stops the script with a one-line error. Each stage's
wall and CPU time (user + system, the child's rusage) goes to <out>/cost.json and <out>/cost.md.

Pair budget: a MO-ODPO step makes pool_weights pairs from each prompt slot (mirrored copies count
as slots); a soups member has one-hot weights, so one pair a slot. The soups set trains its members
for max_steps / K steps (K objectives) with pool_weights times the prompts a step
(per_device_train_batch_size), so it makes as many pairs, in updates of the same size, as the
MO-ODPO run (docs/baselines.md). The budget is pairs, not generations: the soups set samples
pool_weights times as many responses.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/ship.py` from anywhere
    sys.path.insert(0, str(ROOT))

PY = [sys.executable, "-m", "moodpo"]
SETS = {
    "help-harm": {"config": "configs/experiments/recipe_help_harm_gate_balanced.yaml",
                  "categories": ["everyday", "safety", "borderline", "harmful"], "max_new_tokens": 48},
    "help-concise": {"config": "configs/experiments/recipe_help_concise_instruct.yaml",
                     "categories": ["everyday"], "max_new_tokens": 64},
}
NAMES = {"moodpo": "MO-ODPO", "soups": "Rewarded Soups", "base": "Prompted base"}


@functools.cache
def pair_budget(config: str) -> dict:
    """Pairs a MO-ODPO run makes and the soups overrides that make as many, from the config."""
    from moodpo.config import load_config

    c = load_config(ROOT / config)
    slots = c.per_device_train_batch_size * c.gradient_accumulation_steps
    k = c.num_objectives
    if c.max_steps % k:
        raise SystemExit(f"error: {config}: max_steps {c.max_steps} must divide by its {k} objectives "
                         "for a soups set at the same pair budget")
    overrides = {"max_steps": c.max_steps // k, "per_device_train_batch_size": c.per_device_train_batch_size * c.pool_weights}
    return {"moodpo_pairs": c.max_steps * slots * c.pool_weights, "soups_overrides": overrides,
            "objectives": list(c.objectives)}


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
    """A stage's state, read from its output folder. train: 'done' (a final adapter or a finished
    soups set), 'started' (something to resume), 'stale' (a folder with nothing to resume: start it
    over) or 'new'. eval: 'done' when it evaluated the run's final adapter (its step; a soups set is
    evaluable only once finished), else 'new'."""
    from moodpo.runs import SUMMARY_FILE, checkpoints, has_final_adapter, is_soups, latest_adapter

    def folder_after(flag: str) -> Path:
        path = Path(argv[argv.index(flag) + 1])
        return path if path.is_absolute() else ROOT / path

    if stage == "eval":
        summary, run = folder_after("--out") / SUMMARY_FILE, folder_after("--run")
        if not summary.is_file():
            return "new"
        if not run.is_dir() or is_soups(run):  # the base model has nothing to train
            return "done"
        final = latest_adapter(run)[1] if has_final_adapter(run) else None
        return "done" if final is not None and json.loads(summary.read_text()).get("step") == final else "new"
    run = folder_after("--output_dir")
    if is_soups(run) or has_final_adapter(run):
        return "done"
    if not run.is_dir() or not any(run.iterdir()):
        return "new"
    soups = "train-soups" in argv  # a soups set resumes member by member, a run from its last checkpoint
    return "started" if soups or checkpoints(run) else "stale"


def timed(argv: list[str]) -> dict:
    """Run a command; its wall seconds, CPU-hours (children's user + system time) and exit code.
    Ctrl-C reaches the child too; this waits for it to save and stop."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        code = proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(time.perf_counter() - start, 1), "cpu_h": round(cpu / 3600, 3), "exit": code}


def write_cost(out: Path, cost: dict) -> None:
    """<out>/cost.json and its table <out>/cost.md; a stage run in several parts (stopped, then
    resumed) adds its parts up."""
    (out / "cost.json").write_text(json.dumps(cost, indent=1) + "\n")
    lines = ["| system | stage | wall | CPU-h | parts | measured |", "|---|---|---|---|---|---|"]
    lines += [f"| {system} | {stage} | {row['wall_s']} s | {row.get('cpu_h') if row.get('cpu_h') is not None else '-'} | "
              f"{row['parts']} | {row.get('note', 'by bench/ship.py')} |"
              for system, stages in cost.items() for stage, row in stages.items()]
    (out / "cost.md").write_text("\n".join(lines) + "\n")


def add_cost(cost: dict, system: str, stage: str, row: dict) -> None:
    old = cost.setdefault(system, {}).get(stage, {"wall_s": 0.0, "cpu_h": 0.0, "parts": 0})
    cost[system][stage] = {"wall_s": round(old["wall_s"] + row["wall_s"], 1),
                           "cpu_h": round((old.get("cpu_h") or 0.0) + row["cpu_h"], 3), "parts": old["parts"] + 1}


def compare_commands(out: Path, seeds: dict[str, list[int]]) -> list[list[str]]:
    """Two comparisons pooling each system's seeds: compare/ against the prompted base (hypervolume
    differences and win rates over it) and compare-soups/, MO-ODPO against its Rewarded Soups."""
    def pooled(system: str) -> str:
        return "+".join(str(out / system_dir(system, s) / "eval") for s in seeds[system])
    return [PY + ["compare", str(out / "base"), pooled("soups"), pooled("moodpo"),
                  "--names", NAMES["base"], NAMES["soups"], NAMES["moodpo"], "--out", str(out / "compare")],
            PY + ["compare", pooled("soups"), pooled("moodpo"),
                  "--names", NAMES["soups"], NAMES["moodpo"], "--out", str(out / "compare-soups")]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=list(SETS), help="the objective pair")
    parser.add_argument("--out", default=None, help="folder of the set (default: runs/shipped/<set>)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="training seeds (default: 0 1)")
    parser.add_argument("--soups_seeds", nargs="+", type=int, default=None,
                        help="training seeds of Rewarded Soups, where fewer than MO-ODPO's fit (default: --seeds)")
    parser.add_argument("--only", nargs="+", default=None, metavar="SYSTEM",
                        help="only these, e.g. moodpo-seed1 soups base (default: all, then the comparison)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and the pair budgets, run nothing")
    args = parser.parse_args()
    out = Path(args.out).resolve() if args.out else ROOT / "runs" / "shipped" / args.set
    out = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out  # commands run in ROOT; paths stay portable
    budget = pair_budget(SETS[args.set]["config"])
    seeds = {"moodpo": args.seeds, "soups": args.soups_seeds or args.seeds, "base": [0]}
    jobs = [(s, seed) for s in ("moodpo", "soups", "base") for seed in seeds[s]]
    if args.only:
        unknown = set(args.only) - {system_dir(s, seed) for s, seed in jobs}
        if unknown:
            parser.error(f"--only {' '.join(sorted(unknown))}: choose from "
                         f"{' '.join(system_dir(s, seed) for s, seed in jobs)}")
        jobs = [(s, seed) for s, seed in jobs if system_dir(s, seed) in args.only]
    print(f"# pairs: {budget['moodpo_pairs']} for MO-ODPO and for Rewarded Soups (members: {budget['soups_overrides']})")
    cost_file = ROOT / out / "cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.is_file() else {}
    for system, seed in jobs:
        for stage, argv in commands(args.set, system, seed, out).items():
            state = done(stage, argv)
            argv = argv + {"started": ["--resume"], "stale": ["--overwrite"]}.get(state, [])
            print(("# done: " if state == "done" else "+ ") + "python -m moodpo " + shlex.join(argv[len(PY):]),
                  flush=True)
            if args.dry_run or state == "done":
                continue
            (ROOT / out).mkdir(parents=True, exist_ok=True)
            row = timed(argv)
            add_cost(cost, system_dir(system, seed), stage, row)
            write_cost(ROOT / out, cost)  # after each stage, so a stopped set keeps what it measured
            if row["exit"] or (stage == "train" and done(stage, argv) != "done"):
                print(f"error: {system_dir(system, seed)} {stage} did not finish (exit {row['exit']}); "
                      f"run this again to go on", file=sys.stderr)
                return row["exit"] or 1
    ready = all(done("eval", commands(args.set, s, seed, out)["eval"]) == "done" for s, seed in jobs)
    runs = ready and not args.dry_run and not args.only
    code = 0
    for compare in compare_commands(out, seeds):
        print(("+ " if runs else "# when every evaluation is done: ") + "python -m moodpo "
              + shlex.join(compare[len(PY):]), flush=True)
        code = code or (subprocess.run(compare, cwd=ROOT).returncode if runs else 0)
    return code


if __name__ == "__main__":
    sys.exit(main())
