"""Baselines for MO-ODPO, trained and loaded through the same code paths as MO-ODPO itself.

- Base model: `load_policy("base:<model>", objectives=...)`, the untrained model with the same
  conditioning prefix.
- Rewarded Soups (Rame et al., 2023): one LoRA adapter per objective, each trained by the same
  `Trainer` with one-hot weights (`weight_mode=fixed`), combined at inference as
  theta(w) = theta_0 + sum_k w_k * Delta_k (`moodpo.policy`, peft's "cat" combination).
  `train_soups(config, out_dir)` writes

      out_dir/<objective>/            one ordinary run folder per objective (config.yaml, adapter/, ...)
      out_dir/soups.json              {"objectives": [...], "runs": {objective: "<objective>"},
                                       "base_model": "<model>"}

  which `load_policy(out_dir)` reads. The single-objective corner policies are these member runs:
  `load_policy(out_dir/<objective>)`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from moodpo.cards import write_card
from moodpo.config import TrainConfig
from moodpo.errors import MoodpoError
from moodpo.eval.evaluate import sanitize
from moodpo.runs import SOUPS_FILE, checkpoints, has_final_adapter, latest_adapter
from moodpo.weights import one_hot

log = logging.getLogger(__name__)


def soup_run_dirs(objectives: list[str]) -> dict[str, str]:
    """Objective -> member folder name, unique even when two objectives sanitise alike."""
    names: dict[str, str] = {}
    for obj in objectives:
        name, i = sanitize(obj), 2
        while name in names.values():
            name, i = f"{sanitize(obj)}-{i}", i + 1
        names[obj] = name
    return names


def member_configs(config: TrainConfig, out_dir: str | Path) -> dict[str, TrainConfig]:
    """One config per objective: the given config with one-hot fixed weights and its own output_dir.

    A member trains one objective and is mixed by weight afterwards, so it has no gate (`lora_gate`
    off): a gate at one-hot weights would train one rank group at twice the scale. Nor does it
    mirror its weights or pool several (`pool_weights`): both would put other weights than its
    one-hot vector into its pairs. The pair budget is the caller's to match (docs/baselines.md).
    """
    out = Path(out_dir)
    folders = soup_run_dirs(config.objectives)
    return {obj: dataclasses.replace(config, method="moodpo", weight_mode="fixed", lora_gate=False,
                                     mirror_weights=False, pool_weights=1,
                                     fixed_weights=one_hot(k, config.num_objectives).tolist(),
                                     output_dir=str(out / folders[obj]))
            for k, obj in enumerate(config.objectives)}


def _member_state(config: TrainConfig) -> str:
    """'finished' (its final adapter is at max_steps: step.json, else its last checkpoint's step),
    'started' (has a checkpoint) or 'new'. A member copied without its checkpoints (git keeps
    adapters, not checkpoints) still counts as finished."""
    run = Path(config.output_dir)
    found = checkpoints(run)
    if has_final_adapter(run):
        _, step = latest_adapter(run)
        if step is not None and step >= config.max_steps:
            return "finished"
    return "started" if found else "new"


def train_soups(config: TrainConfig, out_dir: str | Path | None = None, **trainer_kwargs) -> dict:
    """Train one adapter per objective and write out_dir/soups.json; returns the soups.json dict
    plus "status" ("finished", or the first member's non-finished status).

    out_dir defaults to config.output_dir. With config.resume, finished members are kept, started
    ones resume from their last checkpoint and missing ones start fresh; with config.overwrite
    every member starts over. soups.json is written only when every member finished.
    """
    from moodpo.train.trainer import Trainer

    out = Path(out_dir or config.output_dir)
    if out.exists() and not out.is_dir():
        raise MoodpoError(f"soups folder {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (config.resume or config.overwrite):
        raise MoodpoError(f"soups folder {out} is not empty; pass --resume to continue it, --overwrite to "
                          "replace it, or choose another --output_dir")
    if len(config.objectives) < 2:
        raise MoodpoError("Rewarded Soups needs at least two objectives")
    members = member_configs(config, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SOUPS_FILE).unlink(missing_ok=True)
    status = "finished"
    for k, (obj, member) in enumerate(members.items()):
        if member.resume:
            state = _member_state(member)
            if state == "finished":
                log.info("soups member %s already finished: %s", obj, member.output_dir)
                continue
            if state == "new":
                member = dataclasses.replace(member, resume=False)
        log.info("soups member %d/%d: %s -> %s", k + 1, len(members), obj, member.output_dir)
        result = Trainer(member, **trainer_kwargs).train()
        if result.status != "finished":
            status = result.status
            break
    meta = {"objectives": list(config.objectives),
            "runs": {obj: Path(m.output_dir).name for obj, m in members.items()},
            "base_model": config.model_name_or_path}
    if status == "finished":
        (out / SOUPS_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        for member in members.values():  # their cards now say they are members of this set
            write_card(member.output_dir)
    return {**meta, "status": status}
