"""The run folder: where a run keeps its files, how to find runs and checkpoints, and how files
are written so that a reader (the app, a second process) never sees half of one.

    <run>/config.yaml           the resolved TrainConfig, written before the first step
    <run>/metrics.jsonl         one JSON object per logged step
    <run>/eval.jsonl            the in-training eval rows (the eval table with `step`): the live front
    <run>/eval/                 `moodpo eval`'s output: eval.csv, eval.jsonl, generations.jsonl,
                                summary.json, front.html
    <run>/checkpoints/step-NNNNNN/
        trainer_state.json      step, data order, normaliser, process count, replica checksums
        model/                  the adapter (or the full model without LoRA)
        optimizer.pt  scheduler.pt  rng-<process>.pt
    <run>/adapter/              the final adapter, with step.json (a shipped run has no checkpoints)
    <run>/STOP                  touched to stop a background run after its current step
    <run>/runs/                 tracker logs (TensorBoard)
    <run>/conditioning.json     how weights become the system message, for runs not conditioned by the
                                config's weight prefix (Rewards-in-Context: desired scores)
    <soups>/soups.json          a Rewarded Soups set: its objectives and one member run folder each

Only the standard library, numpy and this package's errors: the vote store writes through it
without importing torch.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from moodpo.errors import MoodpoError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
EVAL_DIR = "eval"
# An eval folder's files; the in-training log has the eval table's format and name.
TABLE_JSONL, TABLE_CSV = "eval.jsonl", "eval.csv"
GENERATIONS_FILE, SUMMARY_FILE, FRONT_FILE = "generations.jsonl", "summary.json", "front.html"
EVAL_LOG = TABLE_JSONL
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step-"
STATE_FILE = "trainer_state.json"
MODEL_DIR = "model"
FINAL_ADAPTER_DIR = "adapter"
ADAPTER_STEP_FILE = "step.json"
ADAPTER_FILE = "adapter_config.json"  # peft's; a folder with it holds a LoRA adapter
STOP_FILE = "STOP"
TRACKER_DIR = "runs"
SOUPS_FILE = "soups.json"
CONDITIONING_FILE = "conditioning.json"
# How deep under a runs folder runs are looked for (runs/sweep/alpha-0.3 is depth 2).
MAX_DEPTH = 3


def is_run(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def is_soups(path: str | Path) -> bool:
    return (Path(path) / SOUPS_FILE).is_file()


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_FILE).is_file()


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / STATE_FILE).is_file() and (Path(path) / MODEL_DIR).is_dir()


def final_adapter(run_dir: str | Path) -> Path:
    return Path(run_dir) / FINAL_ADAPTER_DIR


def has_final_adapter(run_dir: str | Path) -> bool:
    return is_adapter_dir(final_adapter(run_dir))


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"{CHECKPOINT_PREFIX}{step:06d}"


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step of a checkpoint folder, from its name (step-000050 -> 50)."""
    return int(Path(checkpoint).name.split("-")[1])


def checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run (those with their trainer_state.json), oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir()
            if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(done, key=checkpoint_step)


def last_checkpoint_step(run_dir: str | Path) -> int:
    """Step of the run's newest checkpoint (0 without one)."""
    found = checkpoints(run_dir)
    return checkpoint_step(found[-1]) if found else 0


def read_state(checkpoint: str | Path) -> dict:
    return json.loads((Path(checkpoint) / STATE_FILE).read_text())


def latest_adapter(run_dir: str | Path) -> tuple[Path, int | None]:
    """(adapter folder, its step) of a run: the final adapter, else the newest checkpoint's model."""
    run_dir = Path(run_dir)
    found = checkpoints(run_dir)
    final = final_adapter(run_dir)
    if is_adapter_dir(final):
        if (final / ADAPTER_STEP_FILE).is_file():
            step = json.loads((final / ADAPTER_STEP_FILE).read_text())["step"]
        else:   # adapters saved before the step was written next to them
            step = read_state(found[-1])["step"] if found else None
        return final, step
    if found:
        return found[-1] / MODEL_DIR, checkpoint_step(found[-1])
    raise MoodpoError(f"run {run_dir} has no adapter or checkpoint yet")


def describe_source(path: str | Path) -> str:
    """'run', 'checkpoint', 'soups', 'adapter' or 'base' for a policy spec (no loading)."""
    p = Path(path)
    if is_soups(p):
        return "soups"
    if is_run(p):
        return "run"
    if is_checkpoint(p):
        return "checkpoint"
    if is_adapter_dir(p):
        return "adapter"
    return "base"


def run_of_checkpoint(checkpoint: str | Path) -> Path:
    return Path(checkpoint).parent.parent


def read_soups(soups_dir: str | Path) -> dict:
    """A soups set's soups.json ({} when unreadable)."""
    try:
        data = json.loads((Path(soups_dir) / SOUPS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def walk_runs(runs_dir: str | Path, classify: Callable[[Path], object],
              max_depth: int = MAX_DEPTH) -> list[tuple[str, object]]:
    """(relative path, label) for every folder under runs_dir, down to max_depth, that `classify`
    labels (returns anything but None for), sorted; a labelled folder is not searched further.
    The walk of the runs folder that finding runs and finding evaluations share. Hidden folders
    are skipped; runs_dir itself is searched, never labelled.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = []
    for here, dirs, _ in os.walk(root):
        path = Path(here)
        rel = path.relative_to(root)
        label = classify(path) if rel.parts else None
        if label is not None:
            found.append((rel.as_posix(), label))
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if len(rel.parts) < max_depth else []
    return sorted(found, key=lambda item: item[0])


def find_runs(runs_dir: str | Path, max_depth: int = MAX_DEPTH) -> list[tuple[str, str]]:
    """(relative path, "run" or "soups") for every run folder and soups set under runs_dir, sorted.

    A folder with config.yaml is a run, one with soups.json a soups set; neither is searched
    further. Hidden folders are skipped.
    """
    return walk_runs(runs_dir, lambda path: "soups" if is_soups(path) else "run" if is_run(path) else None, max_depth)


def runs_with_adapter(path: str | Path) -> list[Path]:
    """The run folders with a saved final adapter at or under `path` (a run, a soups set, runs/shipped)."""
    path = Path(path)
    if not path.is_dir():
        raise MoodpoError(f"{path} is not a folder; give a run folder, a soups set or a folder holding runs")
    found = sorted({p.parent.parent for p in path.glob(f"**/{FINAL_ADAPTER_DIR}/config.json")} |
                   {p.parent.parent for p in path.glob(f"**/{FINAL_ADAPTER_DIR}/{ADAPTER_FILE}")})
    runs = [r for r in found if is_run(r)]
    if not runs:
        raise MoodpoError(f"no run with a saved adapter ({CONFIG_FILE} and {FINAL_ADAPTER_DIR}/) under {path}")
    return runs


def request_stop(run_dir: str | Path) -> None:
    (Path(run_dir) / STOP_FILE).touch()


def stop_requested(run_dir: str | Path) -> bool:
    return (Path(run_dir) / STOP_FILE).exists()


def clear_stop(run_dir: str | Path) -> None:
    (Path(run_dir) / STOP_FILE).unlink(missing_ok=True)


def atomic_write(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: readers see the old or the new file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonable(value):
    """numpy -> Python, NaN/inf -> None, recursively, so json.dumps writes strict JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def jsonl_text(rows: Sequence[dict]) -> str:
    """JSON Lines text for `rows`, one strict-JSON object a line."""
    return "".join(json.dumps(jsonable(r), ensure_ascii=False) + "\n" for r in rows)


def append_jsonl(path: str | Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(jsonl_text([row]))


def read_jsonl(path: str | Path) -> list[dict]:
    """The JSON objects of a .jsonl file ([] when it is missing); a half-written last line (a run
    appending) is skipped."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def rewrite_jsonl_before(path: str | Path, step: int, rows: Sequence[dict] = ()) -> None:
    """Keep the lines of `path` whose step is below `step`, then append `rows`: a resumed run
    re-runs the steps after its checkpoint, and their old lines go."""
    path = Path(path)
    if not path.is_file() and not rows:
        return
    kept = [r for r in read_jsonl(path) if (r.get("step") or 0) < step]
    atomic_write(path, jsonl_text(kept) + jsonl_text(rows))
