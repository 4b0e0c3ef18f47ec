"""Checkpoints: what a run needs to continue exactly where it stopped, and its final adapter.

    <run>/checkpoints/step-NNNNNN/        (the layout is `moodpo.runs`')
        model/               the adapter (or the full model), peft's / transformers' save_pretrained
        optimizer.pt  scheduler.pt
        rng-<process>.pt     each process's torch RNG and the trainer's own generators' states
        trainer_state.json   step, the trainer's state, the process count and each replica's
                             checksum of its trainable weights (they must agree under DDP)

A checkpoint is written into step-NNNNNN.tmp and renamed when complete: `runs.checkpoints` lists
only complete ones, so a run killed while saving resumes from the one before.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from moodpo.cards import write_card
from moodpo.errors import MoodpoError
from moodpo.runs import (ADAPTER_STEP_FILE, MODEL_DIR, STATE_FILE, checkpoint_dir, checkpoints, final_adapter,
                         read_state)


def trainable_checksum(model) -> float:
    return float(sum(p.detach().double().sum().item() + p.detach().double().abs().sum().item()
                     for p in model.parameters() if p.requires_grad))


def save_checkpoint(run_dir: str | Path, step: int, *, accelerator, model, optimizer, scheduler, state: dict,
                    rng_state: dict, keep: int = 0) -> Path:
    """Write the checkpoint of `step` and drop all but the newest `keep` (0: keep all); every process calls it.

    model: the unwrapped policy; state: the trainer's JSON-able state (main process's is written);
    rng_state: this process's generator states, saved with its torch RNG.
    """
    acc = accelerator
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    torch.save({"torch": torch.get_rng_state(), **rng_state}, tmp / f"rng-{acc.process_index}.pt")
    checksums = acc.gather(torch.tensor([trainable_checksum(model)], dtype=torch.float64, device=acc.device)).tolist()
    if acc.is_main_process:
        model.save_pretrained(tmp / MODEL_DIR)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        full_state = {"step": step, **state, "num_processes": acc.num_processes, "replica_checksums": checksums}
        (tmp / STATE_FILE).write_text(json.dumps(full_state, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in checkpoints(run_dir)[:-keep or None]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def load_checkpoint(path: str | Path, *, accelerator, model, optimizer, scheduler, lora: bool) -> tuple[dict, dict]:
    """Load the weights, optimizer and scheduler of a checkpoint and set this process's torch RNG.

    Returns (the trainer state of trainer_state.json, this process's rng-<process>.pt).
    """
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(path)
    state = read_state(path)
    if state["num_processes"] != accelerator.num_processes:
        raise MoodpoError(f"{path} was saved by {state['num_processes']} processes; resume with the same number")
    if lora:
        set_peft_model_state_dict(model, load_file(path / MODEL_DIR / "adapter_model.safetensors"))
    else:
        model.load_state_dict(load_file(path / MODEL_DIR / "model.safetensors"), strict=False)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng = torch.load(path / f"rng-{accelerator.process_index}.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    return state, rng


def save_final(run_dir: str | Path, step: int, *, accelerator, model) -> Path:
    """Write the final adapter (or model) with its step into <run>/adapter, and its model card."""
    target = final_adapter(run_dir)
    if accelerator.is_main_process:
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        # The step travels with the adapter: a shipped run carries no checkpoints.
        (tmp / ADAPTER_STEP_FILE).write_text(json.dumps({"step": step}))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        write_card(run_dir)
    accelerator.wait_for_everyone()
    return target
