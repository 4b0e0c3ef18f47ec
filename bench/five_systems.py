"""The paper's comparison on one objective pair: MO-ODPO, Rewarded Soups, Rewards-in-Context,
prompt-conditioned RL and the prompted base, each trained at the same budget of generated
responses, evaluated the same way, and compared with paired intervals (docs/baselines.md).

    python bench/five_systems.py --dry-run                 # print the commands
    python bench/five_systems.py                           # train, evaluate, compare (hours on 2 cores)
    python bench/five_systems.py --systems ric rl          # only these (compare runs when all five exist)
    python bench/five_systems.py --systems ric rl --reuse moodpo=runs/archive/2026-11/help-harm/moodpo/eval \
        soups=runs/archive/2026-11/help-harm/soups/eval base=runs/archive/2026-11/help-harm/base
                                                           # compare against evaluations that exist

Each command runs as a child process; its wall time and CPU time (user + system, from the
children's rusage) go to <out>/cost.json and <out>/cost.md, with the responses each system
generated in training.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT

PY = [sys.executable, "-m", "moodpo"]
HELP_HARM = "configs/experiments/shipped_2026_11_help_harm.yaml"
# The evaluation of docs/results-2026-11.md (helpfulness vs harmlessness): 71 eval prompts x 11 weights x 2 samples.
EVAL_ARGS = ["--grid", "11", "--prompts", "eval", "--categories", "everyday", "safety", "borderline", "harmful",
             "--max_new_tokens", "48", "--samples", "2", "--seed", "0"]
NAMES = {"moodpo": "MO-ODPO", "soups": "Rewarded Soups", "ric": "Rewards-in-Context", "rl": "Conditioned RL",
         "base": "Prompted base"}
# In-training evaluation is off for every system: it is not part of the training budget.
TRAIN = {
    "moodpo": (["train", "--config", HELP_HARM, "--eval_every", "0"], {}),
    "soups": (["train-soups", "--config", HELP_HARM, "--mirror_weights", "false", "--max_steps", "12",
               "--eval_every", "0"], {"method": "soups", "mirror_weights": False, "max_steps": 12}),
    "ric": (["train-ric", "--config", "configs/baselines/ric.yaml"], {}),
    "rl": (["train-rl", "--config", "configs/baselines/rl.yaml"], {}),
}
CONFIGS = {"moodpo": HELP_HARM, "soups": HELP_HARM, "ric": "configs/baselines/ric.yaml",
           "rl": "configs/baselines/rl.yaml"}


def generated_responses(system: str) -> int:
    """Responses a system generates in training (fixed extra candidates are not generated)."""
    from moodpo.config import load_config
    from moodpo.train.trl_runs import training_prompts

    if system == "base":
        return 0
    c = load_config(ROOT / CONFIGS[system], TRAIN[system][1])
    per_step = c.per_device_train_batch_size * c.gradient_accumulation_steps * c.num_generations
    if system == "moodpo":
        return c.max_steps * per_step
    if system == "soups":
        return c.num_objectives * c.max_steps * per_step
    if system == "rl":
        return c.max_steps * per_step
    pool = min(len(training_prompts(c)), c.ric_pool_prompts or math.inf)
    return pool * c.num_generations + c.ric_online_rounds * c.ric_online_samples


def commands(system: str, out: Path) -> dict[str, list[str]]:
    """{"train": argv, "eval": argv} of one system (the base has no training)."""
    run = out / system
    cmds = {}
    if system != "base":
        args, _ = TRAIN[system]
        cmds["train"] = PY + args + ["--output_dir", str(run)]
    spec = "base:smollm2-135m" if system == "base" else str(run)
    extra = ["--objectives", "helpfulness", "harmlessness"] if system == "base" else []
    cmds["eval"] = PY + ["eval", "--run", spec, *EVAL_ARGS, *extra, "--name", NAMES[system],
                         "--out", str(run / "eval")]
    return cmds


def shown(argv: list[str]) -> str:
    """The command as a person would type it."""
    return "python -m moodpo " + shlex.join(argv[len(PY):])


def timed(argv: list[str]) -> dict:
    """Run a command; its wall seconds and CPU-hours (children's user + system time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(time.perf_counter() - start, 1), "cpu_h": round(cpu / 3600, 3)}


def cost_markdown(cost: dict) -> str:
    lines = ["| system | generated responses | train wall | train CPU-h | eval wall | eval CPU-h | measured |",
             "|---|---|---|---|---|---|---|"]
    for system, row in cost.items():
        train, ev = row.get("train", {}), row.get("eval", {})
        lines.append(f"| {NAMES[system]} | {row['generated']} | {train.get('wall_s', '-')} s | "
                     f"{train.get('cpu_h', '-')} | {ev.get('wall_s', '-')} s | {ev.get('cpu_h', '-')} | "
                     f"{row.get('measured', 'here, by this script')} |")
    return "\n".join(lines) + "\n"


def write_cost(out: Path, cost: dict) -> None:
    """<out>/cost.json and its table <out>/cost.md."""
    (out / "cost.json").write_text(json.dumps(cost, indent=1) + "\n")
    (out / "cost.md").write_text(cost_markdown(cost))


def eval_flags(summary: dict) -> list[str]:
    """The evaluation flags an existing summary.json was made with, in EVAL_ARGS' order."""
    prompts = summary.get("prompts", {})
    return ["--grid", str(summary.get("grid")), "--prompts", str(prompts.get("split")),
            "--categories", *prompts.get("categories", []),
            "--max_new_tokens", str(summary.get("settings", {}).get("max_new_tokens")),
            "--samples", str(summary.get("samples_per_prompt")), "--seed", str(summary.get("seed"))]


def recorded_train_seconds(run: Path) -> float | None:
    """Training wall time a run recorded (its metrics' time/step, summed; soups over its members)."""
    files = [run / "metrics.jsonl"] if (run / "metrics.jsonl").is_file() else sorted(run.glob("*/metrics.jsonl"))
    if not files:
        return None
    return sum(json.loads(line).get("time/step", 0.0) for f in files for line in f.read_text().splitlines()
               if line.strip())


def reused(system: str, folder: Path) -> dict:
    """The cost row of an evaluation this script did not make; SystemExit when it was not made the same way.

    The evaluation must use EVAL_ARGS and the two objectives; the training cost comes from the run's own
    record (wall time only: CPU time was not recorded, and the machine may differ).
    """
    summary_file = folder / "summary.json"
    if not summary_file.is_file():
        raise SystemExit(f"error: --reuse {system}={folder}: no summary.json there; give an evaluation folder")
    summary = json.loads(summary_file.read_text())
    if eval_flags(summary) != EVAL_ARGS or summary.get("objectives") != ["helpfulness", "harmlessness"]:
        raise SystemExit(f"error: --reuse {system}={folder} was evaluated with {shlex.join(eval_flags(summary))} "
                         f"on {summary.get('objectives')}; this comparison needs {shlex.join(EVAL_ARGS)} "
                         "on helpfulness and harmlessness")
    kind = {"moodpo": "moodpo", "soups": "soups", "ric": "moodpo", "rl": "moodpo", "base": "base"}[system]
    if summary.get("kind") != kind:
        raise SystemExit(f"error: --reuse {system}={folder} is a {summary.get('kind')!r} evaluation, not {kind!r}")
    source = summary.get("source", "")
    row = {"generated": generated_responses(system), "eval_dir": str(folder), "measured": f"reused: {source}"}
    seconds = None if system == "base" else recorded_train_seconds(ROOT / source)
    if seconds is not None:
        row["train"] = {"wall_s": round(seconds, 1)}
        row["measured"] += " (its recorded wall time; CPU time not recorded)"
    if summary.get("wall_seconds") is not None:
        row["eval"] = {"wall_s": round(summary["wall_seconds"], 1)}
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/five-systems/help-harm", help="folder for the runs and the comparison")
    parser.add_argument("--systems", nargs="+", choices=list(NAMES), default=list(NAMES))
    parser.add_argument("--reuse", nargs="+", default=[], metavar="SYSTEM=EVAL_DIR",
                        help="use an existing evaluation for a system instead of training it (made with the same "
                             "evaluation flags; its training cost is the run's recorded wall time)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and budgets, run nothing")
    args = parser.parse_args()
    out = Path(args.out)
    reuse = {}
    for item in args.reuse:
        system, sep, folder = item.partition("=")
        if not sep or system not in NAMES:
            parser.error(f"--reuse {item!r}: write SYSTEM=EVAL_DIR with SYSTEM one of {', '.join(NAMES)}")
        reuse[system] = Path(folder)
    reused_rows = {system: reused(system, folder) for system, folder in reuse.items()}  # checked before anything runs
    systems = [s for s in args.systems if s not in reuse]
    eval_dirs = {s: reuse.get(s, out / s / "eval") for s in NAMES}
    compare = PY + ["compare", *[str(eval_dirs[s]) for s in NAMES], "--out", str(out / "compare")]
    if args.dry_run:
        for system, row in reused_rows.items():
            print(f"# {NAMES[system]}: reused from {row['eval_dir']} ({row['measured']})")
        for system in systems:
            print(f"# {NAMES[system]}: {generated_responses(system)} generated responses in training")
            for argv in commands(system, out).values():
                print(shown(argv))
        print(shown(compare))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    cost_file = out / "cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.is_file() else {}  # other systems' rows stay
    cost.update(reused_rows)
    for system in systems:
        row = {"generated": generated_responses(system)}
        for stage, argv in commands(system, out).items():
            print("+", shown(argv), flush=True)
            row[stage] = timed(argv)
        cost[system] = row
        write_cost(out, cost)  # after each system, so a stopped run keeps what it measured
    write_cost(out, cost)
    if all(d.is_dir() for d in eval_dirs.values()):
        subprocess.run(compare, cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
