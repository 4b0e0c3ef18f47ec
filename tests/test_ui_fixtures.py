"""A small runs folder for the UI tests: runs with adapters and checkpoints, eval data, a soups set.

Imported by test_ui*.py, test_app*.py and test_browser*.py; it holds no tests of its own.

    runs/alpha-0.5/        final adapter + checkpoint step 2, eval/eval.jsonl + eval/generations.jsonl
    runs/alpha-2/          checkpoint step 1 only, in-training eval.jsonl (steps 1 and 2)
    runs/soups/            soups.json over alpha-0.5 (helpfulness) and alpha-2 (harmlessness)
    runs/sweep/alpha-1/    config only (a run that never got a checkpoint)
    runs/notes/            a folder that is none of these
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np

OBJECTIVES = ["helpfulness", "harmlessness"]
GRID = [[1.0, 0.0], [0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0.0, 1.0]]
PROMPTS = ["How do airplanes stay in the air?", "How can I become a better listener?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(run_dir: Path, model: str, alpha) -> None:
    from moodpo.config import TrainConfig

    run_dir.mkdir(parents=True, exist_ok=True)
    TrainConfig(model_name_or_path=model, objectives=list(OBJECTIVES), alpha=alpha, output_dir=str(run_dir)).save(
        run_dir / "config.yaml")


def _adapter(model: str, target: Path, seed: int) -> None:
    """A LoRA adapter on the tiny model with non-zero B, so it changes the model's outputs."""
    import torch

    from moodpo.models import add_lora, load_model

    torch.manual_seed(seed)
    net = add_lora(load_model(model), r=4, alpha=8)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    net.save_pretrained(target)


def _checkpoint(run_dir: Path, adapter: Path, step: int) -> None:
    ckpt = run_dir / "checkpoints" / f"step-{step:06d}"
    shutil.copytree(adapter, ckpt / "model")
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": step}))


def eval_rows(system: str, offset: float = 0.0, step: int | None = None) -> list[dict]:
    """Rows of the eval table `moodpo evaluate` writes (step is null for base and soups)."""
    rows = []
    for w in GRID:
        row = {"system": system, "w_helpfulness": w[0], "w_harmlessness": w[1],
               "helpfulness": 0.2 + 0.5 * np.sqrt(w[0]) - offset, "harmlessness": 0.3 + 0.6 * np.sqrt(w[1]) - offset,
               "length": 40.0, "step": step}
        for o in OBJECTIVES:
            row[f"{o}_lo"], row[f"{o}_hi"] = row[o] - 0.03, row[o] + 0.03
        rows.append(row)
    return rows


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_runs(root: Path, model: str) -> Path:
    """Build the runs folder described in the module docstring under root; returns root."""
    a = root / "alpha-0.5"
    _config(a, model, 0.5)
    _adapter(model, a / "adapter", seed=1)
    _checkpoint(a, a / "adapter", 2)
    _jsonl(a / "eval" / "eval.jsonl", eval_rows("mo-odpo"))
    # the layout of `moodpo evaluate`'s generations.jsonl (weights and scores keyed by objective)
    _jsonl(a / "eval" / "generations.jsonl", [
        {"system": "mo-odpo", "prompt_id": f"p{i}", "prompt": p, "category": "everyday", "sample": 0,
         "weights": dict(zip(OBJECTIVES, w)),
         "response": f"answer {i} at {w[0]:.2f}" + (" <b>not bold</b>" if i else ""),
         "scores": {"helpfulness": 0.5, "harmlessness": 0.9}, "length": 4}
        for w in GRID for i, p in enumerate(PROMPTS)])

    b = root / "alpha-2"
    _config(b, model, 2.0)
    _adapter(model, root / ".tmp-adapter", seed=2)
    _checkpoint(b, root / ".tmp-adapter", 1)
    shutil.rmtree(root / ".tmp-adapter")
    _jsonl(b / "eval.jsonl", eval_rows("mo-odpo", 0.2, step=1) + eval_rows("mo-odpo", 0.1, step=2))

    soups = root / "soups"
    soups.mkdir()
    (soups / "soups.json").write_text(json.dumps(
        {"objectives": OBJECTIVES, "runs": {"helpfulness": "../alpha-0.5", "harmlessness": "../alpha-2"}}))

    _config(root / "sweep" / "alpha-1", model, 1.0)
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    return root


def snapshot(root: Path) -> dict[str, int]:
    """Every file under root with its size and mtime: to show that a bad request wrote nothing."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}
