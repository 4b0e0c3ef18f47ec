"""Prompt-conditioned RL fine-tuning, a baseline of MO-ODPO (Gupta et al., Sec. 5).

The same conditioning and reward as MO-ODPO, optimised by an on-policy RL trainer instead of DPO
pairs: each training prompt gets w ~ Dir(alpha) (or the fixed weights), written into the system
message by the same `build_prefix`; TRL's GRPOTrainer samples num_generations responses per
prompt, every objective scores them against the prompt *without* the prefix, the scores are
normalised as MO-ODPO normalises them (`RewardNormalizer`) and scalarised with the prompt's own
weights, `(rewards * weights).sum(-1)`. The weights travel as a dataset column, which TRL hands
to the reward function. LoRA on the policy; the KL reference (rl_beta > 0) is TRL's frozen "ref"
copy of the freshly initialised adapter, which computes the base model (LoRA starts at zero); it is
not saved with the run.

per_device_train_batch_size counts prompts, as in MO-ODPO, so a step generates
per_device_train_batch_size x gradient_accumulation_steps x num_generations responses; with
mirror_weights, half of those prompts are the other half's again under the reversed weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from moodpo.conditioning import Conditioning, build_messages, build_prefix
from moodpo.config import TrainConfig
from moodpo.errors import MoodpoError
from moodpo.models import add_lora_from_config, load_model, load_tokenizer, resolve_model
from moodpo.objectives import RewardNormalizer, get_objective, score_all
from moodpo.runs import stop_requested
from moodpo.train.trainer import TrainResult
from moodpo.train.trl_runs import RunCallback, require_trl, save_run, start_run, training_prompts, trl_args
from moodpo.weights import WeightSampler

log = logging.getLogger(__name__)


def weighted_reward(scorers: Sequence, names: Sequence[str], normalizer: RewardNormalizer):
    """A TRL reward function: MO-ODPO's scalarised reward under each completion's own prompt weights."""

    def weighted(prompts, completions, user_prompt, weights, log_metric=None, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        raw = score_all(scorers, list(user_prompt), texts)                  # (N, K), prompts without the prefix
        normalizer.update(raw)
        rewards = np.asarray(normalizer(raw))                                # (N, K)
        if log_metric is not None:
            for k, name in enumerate(names):
                log_metric(f"objectives/{name}/mean", float(raw[:, k].mean()))
        return (rewards * np.asarray(weights, dtype=float)).sum(-1).tolist()  # (N,)

    return weighted


def rl_rows(config: TrainConfig, prompts: Sequence[str], steps: int) -> list[dict]:
    """The rows of `steps` steps, prompts cycling in a seeded order, each with its drawn weights and prefix.

    A step is per_device_train_batch_size x gradient_accumulation_steps rows; with mirror_weights
    its second half repeats its first half's prompts under the reversed weights, as in MO-ODPO.
    """
    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps
    distinct = per_step // 2 if config.mirror_weights else per_step
    count = steps * distinct
    rng = np.random.default_rng(config.seed)
    order = np.concatenate([rng.permutation(len(prompts)) for _ in range(-(-count // len(prompts)))])[:count]
    sampler = WeightSampler(config.num_objectives, mode=config.weight_mode, alpha=config.alpha,
                            fixed=config.fixed_weights, seed=config.seed, mirror=config.mirror_weights)
    drawn = []
    for step in range(steps):
        picked = order[step * distinct:(step + 1) * distinct]
        picked = np.concatenate([picked, picked]) if config.mirror_weights else picked
        drawn += zip(picked, sampler.sample(per_step))                       # weights (per_step, K)
    return [{"prompt": build_messages(prompts[i], build_prefix(config.objectives, w, template=config.prefix_template,
                                                               item=config.prefix_item)),
             "user_prompt": prompts[i], "weights": w.tolist()}
            for i, w in drawn]


def train_rl(config: TrainConfig, objectives=None) -> TrainResult:
    """Train the prompt-conditioned RL baseline into config.output_dir; `objectives` replaces the scorers (tests)."""
    from datasets import Dataset

    trl = require_trl()
    if config.method != "rl":
        raise MoodpoError(f"train_rl needs method rl, got {config.method!r}")
    resolve_model(config.model_name_or_path)
    scorers = objectives or [get_objective(o) for o in config.objectives]
    prompts = [p.text for p in training_prompts(config)]
    run = start_run(config)
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(config.model_name_or_path)
    model = add_lora_from_config(load_model(config.model_name_or_path), config)
    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps
    rows = rl_rows(config, prompts, config.max_steps)
    normalizer = RewardNormalizer(num_objectives=config.num_objectives, mode=config.normalization,
                                  mean=config.norm_mean, std=config.norm_std)
    # TRL's batch counts completions; MO-ODPO's counts prompts.
    args = trl.GRPOConfig(**trl_args(config, run, per_device_train_batch_size=config.per_device_train_batch_size
                                     * config.num_generations),
                          num_generations=config.num_generations, max_completion_length=config.max_new_tokens,
                          temperature=config.temperature, top_p=config.top_p, top_k=config.top_k, beta=config.rl_beta,
                          shuffle_dataset=False, log_completions=False)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[weighted_reward(scorers, config.objectives, normalizer)],
                              args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                              callbacks=[RunCallback(run, stage="rl")])
    trainer.train()
    step = trainer.state.global_step
    save_run(run, model, step, Conditioning(template=config.prefix_template, item=config.prefix_item, method="rl"))
    status = "stopped" if stop_requested(run) else "finished"
    log.info("rl %s at step %d: %s (%d generated responses)", status, step, run, step * per_step * config.num_generations)
    return TrainResult(run_dir=run, step=step, status=status)
