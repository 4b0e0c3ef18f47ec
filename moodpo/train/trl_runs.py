"""What the baselines trained with TRL share (Rewards-in-Context in `ric.py`, prompt-conditioned RL
in `rl.py`): the run folder, the training prompts, TRL's arguments from a `TrainConfig`, and
a callback that writes `metrics.jsonl` and obeys the STOP file.

A run folder of a TRL baseline is an ordinary run folder, so `moodpo eval`, `compare` and the app
load it like an MO-ODPO run:

    <run>/config.yaml         the resolved TrainConfig (method ric or rl), written before training
    <run>/metrics.jsonl       one JSON object per logged step (TRL's keys, plus step and stage)
    <run>/adapter/            the final LoRA adapter, with step.json
    <run>/conditioning.json   how weights become the system message (`moodpo.conditioning.Conditioning`)

TRL is a development dependency (requirements-dev.txt), imported only when a baseline trains.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from moodpo.conditioning import Conditioning
from moodpo.config import TrainConfig, parse_category_repeats
from moodpo.errors import MoodpoError
from moodpo.models import autocast_dtype
from moodpo.runs import ADAPTER_STEP_FILE, CONFIG_FILE, METRICS_FILE, append_jsonl, final_adapter, stop_requested

TRL_VERSION = "1.16.0"


def require_trl():
    """The trl module, or a one-line error saying how to install it."""
    try:
        import trl
    except ImportError:
        raise MoodpoError(f"this baseline is trained with TRL, which is not installed: pip install trl=={TRL_VERSION}"
                          ) from None
    return trl


def start_run(config: TrainConfig) -> Path:
    """Create the run folder (emptied with config.overwrite) and write config.yaml into it."""
    run = Path(config.output_dir)
    if run.exists() and not run.is_dir():
        raise MoodpoError(f"run folder {run} is a file, not a folder")
    if run.is_dir() and any(run.iterdir()):
        if not config.overwrite:
            raise MoodpoError(f"run folder {run} is not empty; pass --overwrite to replace it or choose another "
                              "--output_dir")
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    config.save(run / CONFIG_FILE)
    return run


def training_prompts(config: TrainConfig) -> list:
    """The training prompts as MO-ODPO sees them: the split, max_prompts, then category_repeats."""
    from moodpo.data import load_prompts
    from moodpo.train.trainer import repeat_categories

    prompts = load_prompts(config.prompts, config.prompt_split, limit=config.max_prompts, seed=config.seed)
    return repeat_categories(prompts, parse_category_repeats(config.category_repeats))


def trl_args(config: TrainConfig, run_dir: Path, **overrides) -> dict:
    """The TrainingArguments fields of TRL's configs, from a TrainConfig; `overrides` win.

    TRL 1.16 turns gradient checkpointing and bf16 on by default; here both are set: bf16 as the
    config's precision says, no checkpointing (the models are small and it slows a CPU step).
    transformers 5 calls it activation_checkpointing and takes the new name over TRL's default.
    """
    schedule = {"cosine": "cosine", "constant": "constant_with_warmup"}[config.lr_scheduler_type]
    args = dict(output_dir=str(run_dir), learning_rate=config.learning_rate, lr_scheduler_type=schedule,
                warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
                max_grad_norm=config.max_grad_norm, max_steps=config.max_steps,
                per_device_train_batch_size=config.per_device_train_batch_size,
                gradient_accumulation_steps=config.gradient_accumulation_steps, logging_steps=config.logging_steps,
                save_strategy="no", report_to=[] if config.report_to == "none" else [config.report_to],
                seed=config.seed, bf16=autocast_dtype(config.precision) == torch.bfloat16, fp16=False,
                activation_checkpointing=False, disable_tqdm=True, use_cpu=not torch.cuda.is_available())
    args.update(overrides)
    return args


class RunCallback(TrainerCallback):
    """Appends TRL's logs to <run>/metrics.jsonl (steps counted from `offset`, so several fine-tunes
    of one run make one curve) and stops after the current step when <run>/STOP appears."""

    def __init__(self, run_dir: Path, *, offset: int = 0, stage: str = "train"):
        self.run_dir, self.offset, self.stage = Path(run_dir), offset, stage
        self.start = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "train_runtime" in logs:  # the end-of-training summary repeats the last step
            return
        append_jsonl(self.run_dir / METRICS_FILE, {"step": self.offset + state.global_step, "stage": self.stage,
                                                   **logs, "time/elapsed": time.perf_counter() - self.start})

    def on_step_end(self, args, state, control, **kwargs):
        if stop_requested(self.run_dir):
            control.should_training_stop = True


def log_row(run_dir: Path, row: dict) -> None:
    """One line of metrics.jsonl written by the baseline itself (sampling and scoring stages)."""
    append_jsonl(Path(run_dir) / METRICS_FILE, row)


def save_run(run_dir: Path, model, step: int, conditioning: Conditioning) -> Path:
    """Write the final adapter (with its step) and conditioning.json; returns the adapter folder."""
    target = final_adapter(run_dir)
    shutil.rmtree(target, ignore_errors=True)
    # Only the trained adapter: GRPOTrainer adds a frozen "ref" copy for its KL term, which
    # save_pretrained would write as a second adapter in target/ref.
    model.save_pretrained(target, selected_adapters=["default"])
    (target / ADAPTER_STEP_FILE).write_text(json.dumps({"step": step}))
    conditioning.save(run_dir)
    return target
