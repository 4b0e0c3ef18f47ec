"""Rewards-in-Context (Yang et al., arXiv 2402.10207), a baseline of MO-ODPO.

RiC conditions on *scores* instead of weights: it fine-tunes (supervised) on responses with their
objective scores written into the prompt, "<helpfulness> 0.80 <harmlessness> -0.30", and at
inference asks for the scores a weight vector maps to (`moodpo.conditioning.desired_scores`).

    1. pool: the base model answers each training prompt num_generations times (no system message);
    2. every objective scores every response against the prompt (there is no prefix to strip);
       scores are z-scored per objective over the pool and rounded to 0.1, as the authors do;
    3. SFT of a LoRA adapter (TRL's SFTTrainer) on (score prompt, response), max_steps steps;
    4. optional online rounds (the paper's Sec. 3.3): sample ric_online_samples responses at desired
       scores drawn like the authors' `sample_goals` (one objective anywhere in its range, the others
       at their best), keep those with a score in the top (1 - ric_online_quantile) of its
       objective, add them with the scores they obtained, fine-tune ric_online_steps more steps.

The run folder (`moodpo.train.trl_runs`) holds conditioning.json with the score ranges that the
mapping needs, so `load_policy` serves the run like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from moodpo.conditioning import Conditioning, build_messages, build_score_prefix
from moodpo.config import TrainConfig
from moodpo.errors import MoodpoError
from moodpo.models import add_lora_from_config, autocast_dtype, load_model, load_tokenizer, resolve_model
from moodpo.objectives import get_objective, score_all
from moodpo.runs import stop_requested
from moodpo.sampling import sample_responses
from moodpo.train.trainer import TrainResult
from moodpo.train.trl_runs import RunCallback, log_row, require_trl, save_run, start_run, training_prompts, trl_args

log = logging.getLogger(__name__)
# A constant objective has no spread; its z-scores stay finite.
MIN_STD = 1e-6


def normalise(raw: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(N, K) raw scores -> z-scores over the pool, rounded to 0.1 as RiC's labels are."""
    return np.round((raw - mean) / std, 1)


def sample_goals(rng: np.random.Generator, n: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(n, K) desired scores for the online rounds: each row's lowest uniform draw stays, every
    other objective asks for its best score (the authors' `sample_goals`, ric/utils.py)."""
    goals = rng.uniform(low, high, size=(n, len(low)))
    keep = goals.argmin(axis=1)
    out = np.tile(np.asarray(high, dtype=float), (n, 1))
    out[np.arange(n), keep] = goals[np.arange(n), keep]
    return np.round(out, 1)


def sft_rows(prompts: Sequence[str], responses: Sequence[str], labels: np.ndarray, objectives: Sequence[str],
             conditioning: Conditioning) -> list[dict]:
    """TRL's conversational prompt-completion rows: the scores as the system message, then the prompt."""
    return [{"prompt": build_messages(p, build_score_prefix(objectives, s, template=conditioning.template,
                                                            item=conditioning.item)),
             "completion": [{"role": "assistant", "content": r}]}
            for p, r, s in zip(prompts, responses, labels)]


def generate(model, tokenizer, config: TrainConfig, prompts: Sequence[str], prefixes: Sequence[str | None],
             num_samples: int) -> list[str]:
    """num_samples responses per prompt (row i*n + j is sample j of prompt i), in batches."""
    from moodpo.fastgen import FastSampler, supports

    model.eval()
    dtype = autocast_dtype(config.precision)
    sampler = FastSampler(model, dtype=dtype or torch.float32, half=True) if config.fast_path and supports(model) else None
    size = config.per_device_train_batch_size
    texts: list[str] = []
    for i in range(0, len(prompts), size):
        rollout = sample_responses(model, tokenizer, prompts[i:i + size], prefixes[i:i + size],
                                   num_samples=num_samples, max_new_tokens=config.max_new_tokens,
                                   min_new_tokens=config.min_new_tokens, temperature=config.temperature,
                                   top_p=config.top_p, top_k=config.top_k, max_prompt_tokens=config.max_prompt_tokens,
                                   autocast=dtype, sampler=sampler)
        texts.extend(rollout.texts)
    return texts


def fine_tune(model, tokenizer, rows: list[dict], config: TrainConfig, run_dir, *, max_steps: int, offset: int,
              stage: str) -> int:
    """max_steps steps of TRL's SFTTrainer on rows (loss on the completion only); returns the steps done.

    Each call is a fresh TRL trainer (and optimizer); only the first fine-tune warms up, since
    transformers' warm-up starts at a learning rate of 0 and an online round's first step would do nothing.
    """
    from datasets import Dataset

    trl = require_trl()
    warmup = config.warmup_steps if offset == 0 else 0
    args = trl.SFTConfig(**trl_args(config, run_dir, max_steps=max_steps, warmup_steps=warmup),
                         completion_only_loss=True, packing=False,
                         max_length=config.max_prompt_tokens + config.max_new_tokens + 64)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                             callbacks=[RunCallback(run_dir, offset=offset, stage=stage)])
    trainer.train()
    return trainer.state.global_step


def _score_row(objectives: Sequence[str], raw: np.ndarray, **row) -> dict:
    return {**row, **{f"objectives/{o}/mean": float(raw[:, k].mean()) for k, o in enumerate(objectives)}}


def train_ric(config: TrainConfig, objectives=None) -> TrainResult:
    """Train Rewards-in-Context into config.output_dir; `objectives` replaces the scorers (tests)."""
    require_trl()
    if config.method != "ric":
        raise MoodpoError(f"train_ric needs method ric, got {config.method!r}")
    resolve_model(config.model_name_or_path)
    scorers = objectives or [get_objective(o) for o in config.objectives]
    rng = np.random.default_rng(config.seed)
    prompts = [p.text for p in training_prompts(config)]
    prompts = [prompts[i] for i in rng.permutation(len(prompts))[:config.ric_pool_prompts]]
    run = start_run(config)
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(config.model_name_or_path)
    model = load_model(config.model_name_or_path)

    t0 = time.perf_counter()
    n = config.num_generations
    responses = generate(model, tokenizer, config, prompts, [None] * len(prompts), n)
    pool_prompts = [p for p in prompts for _ in range(n)]
    raw = score_all(scorers, pool_prompts, responses)                        # (N, K), no prefix anywhere
    mean, std = raw.mean(0), np.maximum(raw.std(0), MIN_STD)
    labels = normalise(raw, mean, std)
    generated = len(responses)
    log_row(run, _score_row(config.objectives, raw, step=0, stage="pool", **{"samples/generated": generated,
                                                                            "time/generate": time.perf_counter() - t0}))

    def conditioning_for(all_labels: np.ndarray) -> Conditioning:
        return Conditioning(kind="scores", template=config.ric_score_template, item=config.ric_score_item,
                            mapping=config.ric_mapping, low=all_labels.min(0).tolist(),
                            high=all_labels.max(0).tolist(), mean=mean.tolist(), std=std.tolist(), method="ric")

    conditioning = conditioning_for(labels)
    rows = sft_rows(pool_prompts, responses, labels, config.objectives, conditioning)
    model = add_lora_from_config(model, config)
    step = fine_tune(model, tokenizer, rows, config, run, max_steps=config.max_steps, offset=0, stage="offline")
    for round_ in range(config.ric_online_rounds):
        if stop_requested(run):
            break
        t0 = time.perf_counter()
        picked = [prompts[i] for i in rng.integers(len(prompts), size=config.ric_online_samples)]
        goals = sample_goals(rng, len(picked), np.asarray(conditioning.low), np.asarray(conditioning.high))
        prefixes = [build_score_prefix(config.objectives, g, template=conditioning.template, item=conditioning.item)
                    for g in goals]
        new = generate(model, tokenizer, config, picked, prefixes, 1)
        new_raw = score_all(scorers, picked, new)
        new_labels = normalise(new_raw, mean, std)
        keep = (new_labels >= np.quantile(new_labels, config.ric_online_quantile, axis=0)).any(axis=1)
        generated += len(new)
        labels = np.concatenate([labels, new_labels[keep]])
        conditioning = conditioning_for(labels)
        rows += sft_rows([p for p, k in zip(picked, keep) if k], [r for r, k in zip(new, keep) if k],
                         new_labels[keep], config.objectives, conditioning)
        log_row(run, _score_row(config.objectives, new_raw, step=step, stage=f"online-{round_ + 1}",
                                **{"samples/generated": generated, "samples/kept": int(keep.sum()),
                                   "time/generate": time.perf_counter() - t0}))
        step += fine_tune(model, tokenizer, rows, config, run, max_steps=config.ric_online_steps, offset=step,
                          stage=f"online-{round_ + 1}")
    save_run(run, model, step, conditioning)
    status = "stopped" if stop_requested(run) else "finished"
    log.info("ric %s at step %d: %s (%d generated responses)", status, step, run, generated)
    return TrainResult(run_dir=run, step=step, status=status)
