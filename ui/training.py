"""The Train tab's backend: start `python -m moodpo train` in a background process, watch, stop.

The app never trains inside a UI event. It writes the resolved config next to a log file in
`<runs>/.logs/`, starts the CLI on it, and from then on reads only what the trainer writes:
`<run>/config.yaml`, `<run>/metrics.jsonl`, checkpoints and the final adapter (a Rewarded Soups
set: the same files in its member folders, `<run>/<objective>/`, one after another). Stopping writes
the trainer's STOP file, so the run saves a checkpoint after its current step; a run still
loading (no step yet) is interrupted instead, because the trainer clears STOP when it starts.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from moodpo.config import TrainConfig, load_config
from moodpo.errors import MoodpoError
from moodpo.runs import (METRICS_FILE, checkpoints, find_runs, has_final_adapter, is_run, is_soups, last_checkpoint_step,
                         read_jsonl, request_stop, stop_requested)
from moodpo.train.baselines import member_configs
from moodpo.weights import parse_alpha
from ui.admin import check_training
from ui.fronts import find_eval
from ui.policies import read_run_config, resolve_under
from ui.settings import AppConfig

DEFAULTS = "defaults"
# Configs of set-ups that did not work, listed after the working recipes as "experiments/<name>".
EXPERIMENTS = "experiments"
# The Train tab's in-training eval interval for a config without one: on the embedded model on 2
# CPU cores a step of the default recipe takes about 2 minutes and a 3-point eval on a few prompts
# about as long, so the first front shows about 5 minutes in, for about a sixth more time.
TAB_EVAL_EVERY = 3
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LOG_FOLDER = ".logs"
MAX_STEPS_LIMIT = 100_000
CURVE_KEYS = ("loss", "rewards/margins", "rewards/accuracies", "objective/kl")
# A run this app did not start counts as training while its metrics.jsonl changed this recently.
EXTERNAL_ACTIVE_SECONDS = 120
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunStatus:
    name: str
    state: str  # starting, training, stopping, finished, stopped, failed, not started
    step: int
    max_steps: int
    message: str

    @property
    def active(self) -> bool:
        return self.state in ("starting", "training", "stopping")


def _whole(value, what: str, low: int = 0) -> int:
    """A whole number from low to MAX_STEPS_LIMIT from a UI field, with a one-line error otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number != int(number) or not low <= number <= MAX_STEPS_LIMIT:
        raise MoodpoError(f"{what} must be a whole number from {low} to {MAX_STEPS_LIMIT:,}, got {value}")
    return int(number)


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def read_metrics(run_dir: Path, members: dict[str, TrainConfig]) -> pd.DataFrame:
    """The run's metrics.jsonl rows; a soups set's are its members' with a `member` column (the objective)."""
    if not members:
        return pd.DataFrame(read_jsonl(run_dir / METRICS_FILE))
    return pd.DataFrame([{**row, "member": objective} for objective, member in members.items()
                         for row in read_jsonl(Path(member.output_dir) / METRICS_FILE)])


def soups_progress(members: dict[str, TrainConfig], metrics: pd.DataFrame) -> tuple[int, int, str]:
    """(steps done, steps in all, "member k of K (objective) · step s / S") of a soups set whose
    members train one after another; `metrics` has the members' rows with a `member` column."""
    done = []
    for objective, member in members.items():
        rows = metrics[metrics["member"] == objective] if "member" in metrics.columns else metrics.iloc[:0]
        logged = int(rows["step"].iloc[-1]) if "step" in rows.columns and len(rows) else 0
        done.append(max(logged, last_checkpoint_step(member.output_dir)))
    objectives, per_member = list(members), [m.max_steps for m in members.values()]
    k = next((i for i, (d, n) in enumerate(zip(done, per_member)) if d < n), len(members) - 1)
    return (sum(done), sum(per_member),
            f"member {k + 1} of {len(members)} ({objectives[k]}) · step {done[k]} / {per_member[k]}")


class TrainingManager:
    """Background training runs started from this app process, plus read-only views of every run."""

    def __init__(self, config: AppConfig, python: str = sys.executable):
        self.config = config
        self.python = python
        self._procs: dict[str, subprocess.Popen] = {}
        self._max_steps: dict[str, int] = {}
        self._stop_requested: set[str] = set()
        self._lock = threading.Lock()

    @property
    def log_dir(self) -> Path:
        return self.config.runs_dir / LOG_FOLDER

    def config_files(self) -> dict[str, Path | None]:
        """The working recipes first (configs/*.yaml by stem, `default` leading), then the set-ups that
        did not work (configs/experiments/*.yaml as experiments/<stem>); just 'defaults' (TrainConfig's
        own) when there is none."""
        def yaml_files(folder: Path) -> list[Path]:
            return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []

        folder = self.config.configs_dir
        files: dict[str, Path | None] = {}
        for path in sorted(yaml_files(folder), key=lambda p: p.stem != "default"):
            files.setdefault(path.stem, path)
        for path in yaml_files(folder / EXPERIMENTS):
            files.setdefault(f"{EXPERIMENTS}/{path.stem}", path)
        return files or {DEFAULTS: None}

    def default_config(self) -> str:
        files = self.config_files()
        return "default" if "default" in files else next(iter(files))

    def load(self, name: str, overrides: dict | None = None) -> TrainConfig:
        files = self.config_files()
        if name not in files:
            raise MoodpoError(f"unknown config {name!r}; choose one of {', '.join(files)}")
        return load_config(files[name], {"model_name_or_path": self.config.model, **(overrides or {})})

    def objective_choices(self, name: str) -> list[str]:
        """What the Train tab offers: the built-in objectives and the config's own."""
        from moodpo.objectives import available_objectives

        return list(dict.fromkeys([*available_objectives(), *self.load(name).objectives]))

    def suggest_name(self, config_name: str, alpha) -> str:
        alpha_text = str(alpha).replace(",", "_").replace(" ", "")
        return f"{config_name.rsplit('/', 1)[-1]}-a{alpha_text}-{time.strftime('%m%d-%H%M%S')}"

    def eval_every(self, config_name: str) -> int:
        """The Train tab's eval interval for a config: its own, else TAB_EVAL_EVERY (the live front is on by default)."""
        return self.load(config_name).eval_every or TAB_EVAL_EVERY

    def start(self, config_name: str, run_name: str, alpha, max_steps, objectives,
              eval_every=TAB_EVAL_EVERY, *, password: str | None = None) -> str:
        """Validate everything, then start the trainer in the background; returns the run name.

        In Space mode `password` must be the admin password (ui/admin.py).
        """
        check_training(self.config, password)
        run_name = (run_name or "").strip()
        if not RUN_NAME.fullmatch(run_name):
            raise MoodpoError("run name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        objectives = list(objectives or [])
        if not objectives:
            raise MoodpoError("choose at least one objective")
        allowed = self.objective_choices(config_name)
        unknown = [o for o in objectives if o not in allowed]
        if unknown:
            raise MoodpoError(f"objective(s) {', '.join(map(str, unknown))} not offered; "
                              f"choose from {', '.join(allowed)}")
        steps = _whole(max_steps, "steps", low=1)
        every = _whole(eval_every, "evaluate every (0: off)")
        run_dir = self.config.runs_dir / run_name
        config = self.load(config_name, {"output_dir": str(run_dir.resolve()), "alpha": parse_alpha(alpha),
                                         "max_steps": steps, "objectives": objectives, "eval_every": every,
                                         "resume": False, "overwrite": False})
        with self._lock:
            active = self.active_runs()
            if len(active) >= self.config.max_runs:
                raise MoodpoError(f"{', '.join(active)} is training; stop it first (the app runs "
                                  f"{self.config.max_runs} at a time, see --max_runs)")
            if run_dir.exists() or run_name in self._procs:
                raise MoodpoError(f"run folder {run_name} already exists; choose another name")
            self.log_dir.mkdir(parents=True, exist_ok=True)
            config_path = self.log_dir / f"{run_name}.yaml"
            config.save(config_path)
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
            with open(self.log_dir / f"{run_name}.log", "w") as log:
                self._procs[run_name] = subprocess.Popen(
                    [self.python, "-m", "moodpo", "train", "--config", str(config_path)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            self._max_steps[run_name] = config.max_steps
        return run_name

    def stop(self, run_name: str, *, password: str | None = None) -> str:
        """Ask a training run to stop; returns what will happen, for the user (Space mode: admins only)."""
        check_training(self.config, password)
        run_dir = self.config.runs_dir / (run_name or "")
        proc = self._procs.get(run_name)
        if proc is None or proc.poll() is not None:
            run_dir = resolve_under(self.config.runs_dir, run_name, what="run")
            if run_name not in self.active_runs():
                raise MoodpoError(f"{run_name} is not training")
        self._stop_requested.add(run_name)
        if (run_dir / METRICS_FILE).is_file():
            request_stop(run_dir)
            return f"Stopping {run_name}: it saves a checkpoint after the current step, then exits."
        proc.send_signal(signal.SIGINT)
        return f"Stopped {run_name} before its first step."

    def shutdown(self, timeout: float = 60) -> None:
        """Interrupt every run this app started and wait for them (tests; the trainer checkpoints on SIGINT)."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self._procs.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _external_active(self, run_dir: Path) -> bool:
        metrics = run_dir / METRICS_FILE
        if not metrics.is_file() or has_final_adapter(run_dir):
            return False
        if time.time() - metrics.stat().st_mtime > EXTERNAL_ACTIVE_SECONDS:
            return False
        # A run stopped with the STOP file leaves it behind, next to a checkpoint of its last step.
        stopped = stop_requested(run_dir) and last_checkpoint_step(run_dir) >= self._last_step(run_dir)
        return not stopped

    def active_runs(self) -> list[str]:
        """Runs training now: those this app started and still running, and recently active others."""
        ours = [name for name, proc in self._procs.items() if proc.poll() is None]
        others = [rel for rel, kind in find_runs(self.config.runs_dir)
                  if kind == "run" and rel not in self._procs and self._external_active(self.config.runs_dir / rel)]
        return ours + others

    @staticmethod
    def _last_step(run_dir: Path) -> int:
        rows = read_jsonl(run_dir / METRICS_FILE)
        return int(rows[-1].get("step", len(rows))) if rows else 0

    def soups_members(self, run_name: str) -> dict[str, TrainConfig]:
        """Objective -> member config of a Rewarded Soups set this app started, in training order; {}
        for any other run. The set's own folder gets no config.yaml or metrics.jsonl, so the set is
        known by the config the app wrote for it."""
        run_dir = self.config.runs_dir / run_name
        if is_run(run_dir) or not (self.log_dir / f"{run_name}.yaml").is_file():
            return {}
        try:
            config = load_config(self.log_dir / f"{run_name}.yaml")
        except MoodpoError:
            return {}
        return member_configs(config, run_dir) if config.method == "soups" else {}

    def metrics(self, run_name: str) -> pd.DataFrame:
        run_dir = resolve_under(self.config.runs_dir, run_name, what="run")
        return read_metrics(run_dir, self.soups_members(run_name))

    def status(self, run_name: str) -> RunStatus:
        run_dir = self.config.runs_dir / run_name
        proc = self._procs.get(run_name)
        if proc is None:
            run_dir = resolve_under(self.config.runs_dir, run_name, what="run")
        members = self.soups_members(run_name)
        metrics = read_metrics(run_dir, members) if run_dir.exists() else pd.DataFrame()
        if members:
            step, max_steps, progress = soups_progress(members, metrics)
        else:
            # metrics.jsonl may be gone (a copied run); the newest checkpoint still says how far it got
            step = max(int(metrics["step"].iloc[-1]) if "step" in metrics.columns and len(metrics) else 0,
                       last_checkpoint_step(run_dir))
            max_steps = int(read_run_config(run_dir).get("max_steps") or self._max_steps.get(run_name) or 0)
            progress = f"step {step} / {max_steps}" if max_steps else f"step {step}"
        if "loss" in metrics.columns:
            loss = pd.to_numeric(metrics["loss"], errors="coerce").dropna()
            if len(loss):
                progress += f" · loss {loss.iloc[-1]:.3f}"
        finished = is_soups(run_dir) if members else has_final_adapter(run_dir)
        if proc is not None and proc.poll() is None:
            if step == 0:
                state, message = "starting", "loading the model and objectives…"
            elif stop_requested(run_dir):
                state, message = "stopping", f"{progress} · saving a checkpoint"
            else:
                state, message = "training", f"{progress}{self._eta(metrics, step, max_steps)}"
        elif proc is not None and proc.returncode != 0 and not finished and run_name not in self._stop_requested:
            error = _tail(self.log_dir / f"{run_name}.log")
            state, message = "failed", f"exit code {proc.returncode}: {error or 'see ' + str(self.log_dir)}"
        elif finished:
            state, message = "finished", progress
        elif proc is None and self._external_active(run_dir):
            state, message = "training", f"{progress} (started outside this app)"
        elif any(checkpoints(m.output_dir) for m in members.values()) or checkpoints(run_dir):
            state, message = "stopped", f"{progress} · resume with `python -m moodpo train --resume --output_dir ...`"
        elif run_name in self._stop_requested:
            state, message = "stopped", "stopped before its first step"
        else:
            state, message = "not started", progress
        return RunStatus(run_name, state, step, max_steps, message)

    @staticmethod
    def _eta(metrics: pd.DataFrame, step: int, max_steps: int) -> str:
        if "time/step" not in metrics.columns or not max_steps:
            return ""
        per_step = pd.to_numeric(metrics["time/step"], errors="coerce").dropna().tail(5).mean()
        if not per_step or not math.isfinite(per_step):
            return ""
        left = per_step * max(max_steps - step, 0)
        return f" · {per_step:.1f} s/step · about {left / 60:.0f} min left" if left >= 90 else \
            f" · {per_step:.1f} s/step · about {left:.0f} s left"

    def run_names(self) -> list[str]:
        """Every training run under the runs folder (and those starting), newest first."""
        names = {rel for rel, kind in find_runs(self.config.runs_dir) if kind == "run"} | set(self._procs)

        def mtime(name: str) -> float:
            try:
                return (self.config.runs_dir / name).stat().st_mtime
            except OSError:
                return time.time()  # starting: its folder does not exist yet
        return sorted(names, key=mtime, reverse=True)

    def runs_table(self) -> pd.DataFrame:
        rows = []
        for name in self.run_names():
            status = self.status(name)
            run = read_run_config(self.config.runs_dir / name)
            rows.append({"run": name, "state": status.state, "step": status.step, "steps": status.max_steps,
                         "alpha": str(run.get("alpha", "")), "objectives": ", ".join(run.get("objectives") or []),
                         "eval data": "yes" if find_eval(self.config.runs_dir / name, name) else "no"})
        return pd.DataFrame(rows, columns=["run", "state", "step", "steps", "alpha", "objectives", "eval data"])
