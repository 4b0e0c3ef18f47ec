"""The MO-ODPO training loop (Gupta et al., arXiv 2503.00295, Algorithm 1).

Each step: draw w ~ Dir(alpha) per prompt, write w into the system prefix, sample n responses per
prompt on-policy, score every response on every objective against the prompt *without* the
prefix, scalarise with w, take the best and worst responses as chosen and rejected, and apply the
DPO loss against the frozen reference (the same model with its LoRA adapter disabled).

Distribution belongs to `accelerate`: each process takes its own slice of prompts; gradients are
averaged by DDP; reward statistics are gathered so every replica normalises the same way.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from moodpo.train.checkpoint import load_checkpoint, save_checkpoint, save_final
from moodpo.conditioning import build_prefix
from moodpo.config import (TrainConfig, load_run_config, parse_category_repeats, parse_extra_responses,
                           parse_guide_instructions, parse_guide_openers)
from moodpo.errors import MoodpoError
from moodpo.fastgen import FastSampler
from moodpo.fastgen import supports as fastgen_supports
from moodpo.gating import attach_gate, gate_rows
from moodpo.train.loss import chosen_nll, dpo_loss
from moodpo.models import add_lora_from_config, autocast_dtype, cast_frozen_linears, load_model, load_tokenizer, resolve_model
from moodpo.train.pairs import (SCALARISATIONS, build_pool, row_prompts, select_pairs, soft_targets, spread_weights,
                          weight_dependent)
from moodpo.runs import (CONFIG_FILE, METRICS_FILE, TRACKER_DIR, append_jsonl, checkpoints, clear_stop,
                         rewrite_jsonl_before, stop_requested)
from moodpo.sampling import (GROUP_OVERHEAD_TOKENS, ReferenceLogps, Rollout, add_extra_responses, append_responses, cut_prompt,
                             encode_prompts, eos_token_ids, generate_ids, prompt_table, sample_after_openers,
                             length_groups, sample_responses, sequence_logps)
from moodpo.weights import WeightSampler

log = logging.getLogger(__name__)

# The project name that accelerate's trackers log under (a W&B or Trackio project, a TensorBoard folder).
TRACKER_PROJECT = "moodpo"
# Fields that may change when a run is resumed; anything else must match the saved config.
# output_dir is where the run lives now: a run folder moved or copied elsewhere resumes there.
RESUMABLE_FIELDS = {"max_steps", "resume", "overwrite", "save_steps", "save_total_limit", "eval_every",
                    "eval_grid", "eval_prompts", "logging_steps", "report_to", "max_pairs_per_micro_batch",
                    "output_dir"}


def lr_factor(step: int, *, warmup_steps: int, max_steps: int, schedule: str) -> float:
    """Learning-rate multiplier for optimizer step `step` (0-based): linear warm-up, then constant or cosine."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _check_tracker(report_to: str) -> None:
    """A one-line error before anything starts when the package behind report_to is missing."""
    from accelerate.utils import is_tensorboard_available, is_trackio_available, is_wandb_available

    available = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available, "trackio": is_trackio_available}
    if report_to in available and not available[report_to]():
        raise MoodpoError(f"report_to {report_to} needs the {report_to} package: pip install {report_to}")


def _tracker_config(config: TrainConfig) -> dict:
    """The config as trackers take hyperparameters: scalars and strings only (lists and None as text)."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in config.to_dict().items()}


def micro_batches(lengths: np.ndarray, *, min_batches: int, max_size: int, by_padding: bool = True
                  ) -> list[np.ndarray]:
    """Pair indices (m,) split into micro-batches of similar length: at least `min_batches`, each of
    at most `max_size` pairs, shortest first. lengths: (m,) tokens of each pair (prompt plus its
    longer response). Each micro-batch is padded only to its own longest row; the gradients add up
    to the same update in any order.

    by_padding: split where padding would cost more than another micro-batch
    (`sampling.length_groups`, at twice its default overhead: a micro-batch has a backward too).
    Otherwise the fewest micro-batches the bounds allow, of equal size: their count depends on m
    only, which data-parallel processes need (each micro-batch runs collectives)."""
    if by_padding:
        return length_groups(lengths, min_groups=min_batches, max_size=max_size, overhead=2 * GROUP_OVERHEAD_TOKENS)
    order = np.argsort(lengths, kind="stable")
    count = max(min_batches, -(-len(lengths) // max_size))
    return [rows for rows in np.array_split(order, count) if len(rows)]


def repeat_categories(prompts: Sequence, repeats: dict[str, int]) -> list:
    """Each prompt as many times as its category's repeat count (1 for unnamed categories), in order.

    Oversampling the prompts where objectives conflict (borderline and harmful requests for
    helpfulness vs harmlessness) gives more pairs on which the objectives disagree.
    """
    found = {p.category for p in prompts}
    unknown = sorted(set(repeats) - found)
    if unknown:
        raise MoodpoError(f"category_repeats names {', '.join(unknown)}, not a category of these prompts "
                          f"({', '.join(sorted(found))})")
    out = [p for p in prompts for _ in range(repeats.get(p.category, 1))]
    if not out:
        raise MoodpoError("category_repeats leaves no prompts to train on; give some category a count above 0")
    return out


class PromptOrder:
    """Deterministic, resumable prompt order: a fresh permutation per epoch, seeded by (seed, epoch)."""

    def __init__(self, num_prompts: int, seed: int):
        self.num_prompts, self.seed = num_prompts, seed
        self.epoch, self.position = 0, 0
        self._perm = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.num_prompts)

    def take(self, n: int) -> list[int]:
        out = []
        while len(out) < n:
            if self.position == self.num_prompts:
                self.epoch, self.position = self.epoch + 1, 0
                self._perm = self._permutation()
            k = min(n - len(out), self.num_prompts - self.position)
            out.extend(self._perm[self.position:self.position + k].tolist())
            self.position += k
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._perm = self._permutation()


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    status: str  # "finished", "stopped" or "interrupted"
    metrics: list[dict] = field(default_factory=list)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> float:
    """Mean of per-pair values over the kept pairs (weights 1 for kept, 0 for skipped)."""
    return ((values * weights).sum() / weights.sum().clamp(min=1)).item()


@dataclass
class PairBatch:
    """One step's pairs as an update takes them; the replay holds these.

    pairs: 2m rows, the chosen responses first, then the rejected ones in the same order;
    ref_logps: (2m,); pair_weight: (m,) 1 for a kept pair, 0 for a tie; num_pairs: kept pairs over
    all processes; targets: (m,) preference probabilities for the soft loss, else None; gates:
    (2m, K) each row's weights for a gated LoRA (`lora_gate`), else None.
    """

    pairs: Rollout
    ref_logps: torch.Tensor
    pair_weight: torch.Tensor
    num_pairs: torch.Tensor
    targets: torch.Tensor | None = None
    gates: torch.Tensor | None = None


@dataclass
class Update:
    """One optimizer update on m pairs: per-pair losses and implicit rewards (m,), the policy
    log-probs (2m,: chosen, then rejected), the gradient norm, and whether the update reached the
    weights (False: a non-finite loss or gradient, skipped)."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    policy_logps: torch.Tensor
    grad_norm: float
    finite: bool


def step_metrics(objectives: Sequence[str], *, raw: np.ndarray, rewards: np.ndarray, weights: np.ndarray,
                 pool: np.ndarray, scores: np.ndarray, chosen: np.ndarray, rejected: np.ndarray, keep: np.ndarray,
                 num_sampled: int, response_lengths: torch.Tensor, pair_lengths: torch.Tensor, update: Update,
                 ref_logps: torch.Tensor, pair_weight: torch.Tensor, last_loss: float, extra: bool,
                 categories: Sequence[str | None] = (), extra_categories: Sequence[str] = ()) -> dict:
    """One process's metrics of a step, before they are averaged over processes.

    raw, rewards: (rows, K) raw and normalised rewards of every rollout row (the first
    num_sampled are samples); weights: (B, K); pool: (B, m) rollout rows of each prompt's
    candidates; scores: (B, m); chosen, rejected, keep: (B,); response_lengths: (num_sampled,);
    pair_lengths, ref_logps: (2B,), chosen then rejected; update: the step's first, on-policy update.
    categories: the category of each of the step's prompts (pool row i is prompt i mod their number);
    extra_categories: those whose extra-candidate counts are logged.
    """
    b, rows = len(pool), np.arange(len(pool))
    kept = torch.as_tensor(keep)
    lengths = pair_lengths.float()
    margins = update.chosen_rewards - update.rejected_rewards
    nan = float("nan")
    metrics = {
        "loss": _weighted_mean(update.losses, pair_weight),
        "loss_last": last_loss,
        "rewards/chosen": update.chosen_rewards[kept].mean().item() if keep.any() else nan,
        "rewards/rejected": update.rejected_rewards[kept].mean().item() if keep.any() else nan,
        "rewards/margins": margins[kept].mean().item() if keep.any() else nan,
        "rewards/accuracies": (margins[kept] > 0).float().mean().item() if keep.any() else nan,
        "logps/chosen": update.policy_logps[:b].mean().item(),
        "logps/rejected": update.policy_logps[b:].mean().item(),
        # k1 estimate of KL(policy || ref) per sequence on on-policy samples (with mirror_weights,
        # some responses were sampled under the other copy's prefix).
        "objective/kl": (update.policy_logps - ref_logps).mean().item(),
        "objective/score_gap": float((scores.max(1) - scores.min(1)).mean()),
        # Share of prompts whose pair depends on the weights: the only ones that teach steering.
        "pairs/weight_dependent": float(weight_dependent(rewards[pool]).mean()),
        "response/length": response_lengths.float().mean().item(),
        "response/length_chosen": lengths[:b].mean().item(),
        "response/length_rejected": lengths[b:].mean().item(),
    }
    if extra:
        # Share of the kept pairs whose chosen (rejected) response is not a sample (a fixed, guided or
        # instructed candidate).
        for side, picked in (("chosen", chosen), ("rejected", rejected)):
            metrics[f"pairs/extra_{side}"] = float((pool[rows, picked][keep] >= num_sampled).mean()) if keep.any() else 0.0
        # Per category, counts (not shares, so that a category absent from a step adds nothing): how
        # often the extra candidate won or lost where it means something else (a refusal of a
        # harmful request or of an everyday one).
        of_prompt = np.array([categories[i % len(categories)] for i in range(b)]) if len(categories) else None
        for category in extra_categories if of_prompt is not None else ():
            mine = keep & (of_prompt == category)
            metrics[f"pairs/{category}/kept"] = float(mine.sum())
            for side, picked in (("chosen", chosen), ("rejected", rejected)):
                metrics[f"pairs/{category}/extra_{side}"] = float((pool[rows, picked][mine] >= num_sampled).sum())
    for k, name in enumerate(objectives):
        candidates = raw[:, k][pool]                                                 # (B, m)
        metrics[f"objectives/{name}/mean"] = float(raw[:num_sampled, k].mean())
        metrics[f"objectives/{name}/chosen"] = float(candidates[rows, chosen].mean())
        metrics[f"objectives/{name}/rejected"] = float(candidates[rows, rejected].mean())
        metrics[f"weights/{name}/mean"] = float(weights[:, k].mean())
        metrics[f"weights/{name}/std"] = float(weights[:, k].std())
    return metrics


class Trainer:
    """Builds everything a run needs from a TrainConfig, then `train()` runs it.

    Callbacks get each step's metrics dict; `should_stop()` is polled between steps (the UI's
    stop button); a `STOP` file in the run folder does the same for a background process.
    `evaluate(trainer)` runs every `eval_every` steps (the CLI passes
    `moodpo.eval.evaluate.append_training_eval`); without it there is no in-training eval.
    `scalarise` (default: the config's `scalarisation`) and `select_pairs` (`moodpo.train.pairs`) turn
    each prompt's candidates' rewards into its pair; a recipe passes its own.
    """

    def __init__(self, config: TrainConfig, *, objectives=None, callbacks: Sequence[Callable[[dict], None]] = (),
                 should_stop: Callable[[], bool] | None = None, show_progress: bool = True,
                 evaluate: Callable[[Trainer], object] | None = None, scalarise: Callable | None = None,
                 select_pairs: Callable = select_pairs):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        from moodpo.objectives import RewardNormalizer, get_objective

        if config.method != "moodpo":
            raise MoodpoError(f"the MO-ODPO trainer does not train method {config.method}; "
                              "`python -m moodpo train` trains every method")
        self.config = config
        self.callbacks = list(callbacks)
        self.should_stop = should_stop or (lambda: False)
        self.evaluate = evaluate
        if scalarise is None:
            scalarise = SCALARISATIONS[config.scalarisation]
            if config.scalarisation == "tchebycheff":
                scalarise = functools.partial(scalarise, mu=config.tchebycheff_mu)
        self.scalarise, self.select_pairs = scalarise, select_pairs
        self.show_progress = show_progress
        self.run_dir = Path(config.output_dir)
        _check_tracker(config.report_to)
        # Trackers log where TRL's do: TensorBoard under <output_dir>/runs.
        self.accelerator = acc = Accelerator(
            cpu=not torch.cuda.is_available(), log_with=None if config.report_to == "none" else config.report_to,
            project_config=ProjectConfiguration(project_dir=str(self.run_dir),
                                                logging_dir=str(self.run_dir / TRACKER_DIR)))

        # Everything that can fail on user input is checked before the run folder is touched.
        self._check_run_dir()
        resolve_model(config.model_name_or_path)
        self.objectives = objectives or [get_objective(name) for name in config.objectives]
        self.prompts = self._load_prompts()
        # Categories whose extra candidates' wins and losses are logged one by one.
        self.extra_categories = (sorted({p.category for p in self.prompts if p.category})
                                 if config.extra_responses or config.guide_openers or config.guide_instructions else [])
        self.resume_from = None
        if config.resume:
            found = checkpoints(self.run_dir)
            if not found:
                raise MoodpoError(f"nothing to resume: {self.run_dir} has no checkpoint")
            self.resume_from = found[-1]
            self._check_resume_config()

        torch.manual_seed(config.seed)
        self.tokenizer = load_tokenizer(config.model_name_or_path)
        self._build_model()
        self.extra_responses = self._encode_extra_responses()
        self.guide_openers = self._encode_guide_openers()
        self.guide_instructions = parse_guide_instructions(config.guide_instructions)
        self.weights = WeightSampler(config.num_objectives, mode=config.weight_mode, alpha=config.alpha,
                                     fixed=config.fixed_weights, seed=config.seed * 1000 + acc.process_index,
                                     mirror=config.mirror_weights)
        self.normalizer = RewardNormalizer(num_objectives=config.num_objectives, mode=config.normalization,
                                           mean=config.norm_mean, std=config.norm_std)
        self.order = PromptOrder(len(self.prompts), config.seed)
        # Past steps' pairs with their reference log-probs, for the updates after a step's first.
        self.replay: collections.deque = collections.deque(maxlen=max(config.replay_steps, 1))
        self.replay_rng = np.random.default_rng(config.seed * 1000 + 500 + acc.process_index)
        self.step = 0
        if self.resume_from is not None:
            self._load_checkpoint(self.resume_from)
            if self.sampler is not None:
                self.sampler.refresh()
        else:
            torch.manual_seed(config.seed * 1000 + acc.process_index)
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config.save(self.run_dir / CONFIG_FILE)
            clear_stop(self.run_dir)
            # On resume, the metric lines written after the checkpoint go: those steps are re-run.
            rewrite_jsonl_before(self.run_dir / METRICS_FILE, self.step + 1)
        acc.wait_for_everyone()
        if config.report_to != "none":
            acc.init_trackers(TRACKER_PROJECT, config=_tracker_config(config),
                              init_kwargs={"wandb": {"name": self.run_dir.name}})

    def _load_prompts(self) -> list:
        from moodpo.data import load_prompts

        c = self.config
        every = load_prompts(c.prompts, c.prompt_split, seed=c.seed)  # max_prompts keeps a prefix of it
        found = {p.category for p in every}
        guides = {"extra_responses": parse_extra_responses(c.extra_responses),
                  "guide_openers": parse_guide_openers(c.guide_openers),
                  "guide_instructions": parse_guide_instructions(c.guide_instructions)}
        for field, by_category in guides.items():  # a misspelt category would do nothing
            unknown = sorted(set(by_category) - found - {"*"})
            if unknown:
                raise MoodpoError(f"{field} names {', '.join(unknown)}, not a category of the training prompts "
                                  f"({', '.join(sorted(x for x in found if x)) or 'none'}); fix the name or use '*'")
        prompts = every[:c.max_prompts]
        if not prompts:
            raise MoodpoError(f"prompt source {c.prompts!r} ({c.prompt_split}) holds no prompts")
        return repeat_categories(prompts, parse_category_repeats(c.category_repeats))

    def _build_model(self) -> None:
        """The policy (LoRA on the base, or all of it), its reference, optimizer, schedule and samplers."""
        c, acc = self.config, self.accelerator
        with acc.main_process_first():  # the first load may convert a GGUF file into the cache
            model = load_model(c.model_name_or_path)
        if c.fast_path and acc.device.type == "cpu":
            # On CPU the flash-attention backward is the slowest op of the policy pass (1.0 of 4.6 s
            # on the default config); the eager attention's matmuls and softmax take less.
            model.set_attn_implementation("eager")
        self.autocast = autocast_dtype(c.precision)
        if c.lora:
            model = add_lora_from_config(model, c)
            if c.lora_gate:
                attach_gate(model, c.num_objectives)
            if c.fast_path and self.autocast is not None:
                cast_frozen_linears(model, self.autocast)
            self.ref_model = None
        else:
            self.ref_model = copy.deepcopy(model).requires_grad_(False).eval().to(acc.device)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=c.learning_rate, weight_decay=c.weight_decay)
        # The scheduler is stepped by hand, once per optimizer step: accelerate's prepared
        # scheduler would step once per process.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(
            s, warmup_steps=c.warmup_steps, max_steps=c.max_steps, schedule=c.lr_scheduler_type))
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.params = params
        # Fast path: the sampler holds a merged snapshot of the policy, refreshed after every
        # update; the reference never changes, so its snapshot is taken once.
        self.sampler = self.ref_sampler = None
        # DDP cannot take two forward calls for one backward, so only one process shares prompts.
        self.share_prompts = c.fast_path and acc.num_processes == 1
        if c.fast_path and fastgen_supports(model):
            dtype = self.autocast or torch.float32
            self.sampler = FastSampler(self._unwrapped(), dtype=dtype, half=True)  # rollouts only
            self.ref_sampler = FastSampler(self.ref_model or self._unwrapped(), dtype=dtype, adapters=False)
        # Reference log-probs through one call, whichever of the three holds the reference.
        self.ref_logps = ReferenceLogps(
            sampler=self.ref_sampler, autocast=self.autocast,
            model=self.ref_model if self.ref_sampler is None else None,
            peft_model=self._unwrapped() if self.ref_sampler is None and self.ref_model is None else None)

    def _encode_extra_responses(self) -> dict[str, tuple[str, list[int]]]:
        """category -> (text, token ids ending in EOS) for `extra_responses`, checked against max_new_tokens."""
        out = {}
        eos = self.tokenizer.eos_token_id
        if eos is None:
            eos = eos_token_ids(self._unwrapped(), self.tokenizer)[0]
        for category, text in parse_extra_responses(self.config.extra_responses).items():
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
            if len(ids) > self.config.max_new_tokens:
                raise MoodpoError(f"extra_responses {category!r} is {len(ids)} tokens with its EOS, longer than "
                                  f"max_new_tokens {self.config.max_new_tokens}; shorten it or raise max_new_tokens")
            out[category] = (text, ids)
        return out

    def _encode_guide_openers(self) -> dict[str, list[list[int]]]:
        """category -> token ids of each of its `guide_openers`, each shorter than max_new_tokens."""
        out = {}
        for category, openers in parse_guide_openers(self.config.guide_openers).items():
            out[category] = [self.tokenizer(text, add_special_tokens=False)["input_ids"] for text in openers]
            longest = max(map(len, out[category]))
            if longest >= self.config.max_new_tokens:
                raise MoodpoError(f"guide_openers for {category!r} holds an opener of {longest} tokens, not shorter "
                                  f"than max_new_tokens {self.config.max_new_tokens}; shorten it")
        return out

    # ----- run folder -------------------------------------------------------------------------

    def _check_run_dir(self) -> None:
        c = self.config
        exists = self.run_dir.exists() and any(self.run_dir.iterdir())
        if exists and not (c.resume or c.overwrite):
            raise MoodpoError(f"run folder {self.run_dir} already holds a run; pass --resume to continue it, "
                              "--overwrite to replace it, or choose another --output_dir")
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise MoodpoError(f"output_dir {self.run_dir} is a file, not a folder")
        if c.overwrite and exists and self.accelerator.is_main_process:
            shutil.rmtree(self.run_dir)
        self.accelerator.wait_for_everyone()

    def _check_resume_config(self) -> None:
        saved = load_run_config(self.run_dir).to_dict()
        mine = self.config.to_dict()
        changed = [k for k in mine if k not in RESUMABLE_FIELDS and saved.get(k) != mine[k]]
        if changed:
            k = changed[0]
            raise MoodpoError(f"cannot resume {self.run_dir}: {k} is {mine[k]!r} but the run used {saved.get(k)!r}")

    # ----- checkpoints (moodpo.train.checkpoint) ----------------------------------------------------

    def _unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    def save_checkpoint(self) -> Path:
        """Adapter (or full model), optimizer, scheduler, RNG and data position; written atomically."""
        return save_checkpoint(self.run_dir, self.step, accelerator=self.accelerator, model=self._unwrapped(),
                               optimizer=self.optimizer, scheduler=self.scheduler,
                               state={"data": self.order.state_dict(), "normalizer": self.normalizer.state_dict()},
                               rng_state={"weights": self.weights.state_dict()}, keep=self.config.save_total_limit)

    def _load_checkpoint(self, path: Path) -> None:
        state, rng = load_checkpoint(path, accelerator=self.accelerator, model=self._unwrapped(),
                                     optimizer=self.optimizer, scheduler=self.scheduler, lora=self.config.lora)
        self.order.load_state_dict(state["data"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.weights.load_state_dict(rng["weights"])
        self.step = state["step"]

    def save_final(self) -> Path:
        return save_final(self.run_dir, self.step, accelerator=self.accelerator, model=self._unwrapped())

    # ----- one step ---------------------------------------------------------------------------

    def policy_logps(self, pairs: Rollout) -> torch.Tensor:
        """Policy log-probs of each response, with grad, (N,)."""
        with self._autocast():
            return sequence_logps(self.model, pairs.prompt_ids, pairs.prompt_mask, pairs.completion_ids,
                                  pairs.completion_mask, share_prompts=self.share_prompts)

    def pair_logps(self, pairs: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy log-probs (with grad) and reference log-probs of each response, both (N,)."""
        return self.policy_logps(pairs), self.ref_logps(pairs)

    def _autocast(self):
        device_type = self.accelerator.device.type
        return torch.autocast(device_type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None)

    def update(self, step: PairBatch) -> Update:
        """One optimizer update on a step's m pairs, its gradient summed over micro-batches
        (`micro_batches`: sorted by length, at least `gradient_accumulation_steps`, at most
        `max_pairs_per_micro_batch` pairs each, each trimmed to its own longest prompt and response).
        """
        c, acc = self.config, self.accelerator
        pairs, ref_logps, pair_weight, num_pairs, targets, gates = (
            step.pairs, step.ref_logps, step.pair_weight, step.num_pairs, step.targets, step.gates)
        m = len(pair_weight)
        completions = pairs.lengths.view(2, m).max(0).values                # the longer response of each pair
        lengths = (pairs.prompt_mask[:m].sum(-1) + completions).cpu().numpy()
        batches = micro_batches(lengths, min_batches=c.gradient_accumulation_steps,
                                max_size=c.max_pairs_per_micro_batch, by_padding=acc.num_processes == 1)
        out, finite = [], True
        for j, rows in enumerate(batches):
            index = torch.as_tensor(np.concatenate([rows, rows + m]), device=ref_logps.device)
            k = len(rows)
            # Only the last micro-batch's backward all-reduces the accumulated gradient under DDP.
            sync = j == len(batches) - 1
            gated = contextlib.nullcontext() if gates is None else gate_rows(self.model, gates[index.cpu()])
            with contextlib.nullcontext() if sync else acc.no_sync(self.model), gated:
                batch = pairs.select(index.cpu()).trimmed()
                policy_logps = self.policy_logps(batch)
                ref = ref_logps[index]
                losses, chosen_rewards, rejected_rewards = dpo_loss(
                    policy_logps[:k], policy_logps[k:], ref[:k], ref[k:], beta=c.beta, loss_type=c.loss_type,
                    targets=None if targets is None else targets[index[:k]])
                if c.nll_weight:
                    nll = chosen_nll(policy_logps[:k], batch.lengths[:k].to(losses.device))
                    if c.nll_min_target:  # only decisive pairs lift their chosen response
                        nll = nll * (targets[index[:k]] >= c.nll_min_target).to(nll.device, nll.dtype)
                    losses = losses + c.nll_weight * nll
                # This micro-batch's share of the mean over the kept pairs of all processes; DDP
                # averages gradients over processes, hence the factor.
                loss = (losses * pair_weight[index[:k]]).sum() * acc.num_processes / num_pairs.clamp(min=1)
                finite = finite and acc.reduce(torch.isfinite(loss).float(), "min").item() > 0
                if finite:
                    acc.backward(loss)
            out.append((losses.detach(), chosen_rewards.detach(), rejected_rewards.detach(),
                        policy_logps[:k].detach(), policy_logps[k:].detach()))
        grad_norm = float("nan")
        if finite:
            grad_norm = float(acc.clip_grad_norm_(self.params, c.max_grad_norm))
            finite = math.isfinite(grad_norm)
            if finite:
                self.optimizer.step()
        # A non-finite loss or gradient never reaches the weights: the update is skipped and logged.
        self.optimizer.zero_grad(set_to_none=True)
        # Back to the pairs' own order (the micro-batches ran sorted by length).
        inverse = torch.as_tensor(np.argsort(np.concatenate(batches)))
        losses, chosen_rewards, rejected_rewards, chosen_logps, rejected_logps = (
            torch.cat(t)[inverse.to(t[0].device)] for t in zip(*out))
        return Update(losses, chosen_rewards, rejected_rewards, torch.cat([chosen_logps, rejected_logps]),
                      grad_norm, finite)

    def run_updates(self) -> tuple[Update, float, bool]:
        """The step's `updates_per_step` updates; returns the first, the last one's loss and whether
        all reached the weights (the first non-finite one ends the step's updates).

        Semi-online DPO: the first update is on this step's new pairs (the replay's newest), each
        further one on one past step's pairs from the replay (the current step's included), since
        generation is most of a CPU step. Then the fast path's snapshot and the schedule move on.
        """
        first = None
        for i in range(self.config.updates_per_step):
            batch = self.replay[-1] if i == 0 else self.replay[self.replay_rng.integers(len(self.replay))]
            update = self.update(batch)
            first = first or update
            if not update.finite:
                break
        if self.sampler is not None:
            self.sampler.refresh()
        with warnings.catch_warnings():  # a skipped step still advances the schedule, on purpose
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.scheduler.step()
        return first, _weighted_mean(update.losses, batch.pair_weight), update.finite

    def add_candidates(self, rollout: Rollout, categories: Sequence[str | None], weights: np.ndarray,
                       prompts: Sequence[str]) -> tuple[Rollout, list[np.ndarray]]:
        """Each prompt's candidates beyond its samples, appended to the rollout: the fixed
        `extra_responses`, then one guided sample (`guide_openers`), then one instructed sample
        (`guide_instructions`), each under the prompt's weights (B, K) and paired under its prompt.
        Returns the rollout and one (B,) array per candidate source: the row of each prompt's
        candidate, -1 for none."""
        c, n, pad = self.config, self.config.num_generations, self.tokenizer.pad_token_id
        sources = []
        if self.extra_responses:
            rollout, rows = add_extra_responses(rollout, self.extra_responses, categories, n, pad_token_id=pad)
            sources.append(rows)
        if self.guide_openers:
            guided, openers = self._draw(self.guide_openers, categories, tag=())
            rows = np.full(len(categories), -1)
            if guided:
                with gate_rows(self._unwrapped(), weights[guided]):
                    ids, mask, texts = sample_after_openers(
                        self._unwrapped(), self.tokenizer, rollout, [i * n for i in guided], openers,
                        max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p, top_k=c.top_k,
                        autocast=self.autocast, sampler=self.sampler)
                rollout = self._append(rollout, guided, rows, ids, mask, texts)
            sources.append(rows)
        if self.guide_instructions:
            guided, instructions = self._draw(self.guide_instructions, categories, tag=(2,))
            rows = np.full(len(categories), -1)
            if guided:
                with gate_rows(self._unwrapped(), weights[guided]):
                    ids, mask, texts = self._sample_instructed([prompts[i] for i in guided], weights[guided],
                                                               instructions, rollout.prompt_ids.device)
                rollout = self._append(rollout, guided, rows, ids, mask, texts)
            sources.append(rows)
        return rollout, sources

    def _draw(self, guides: dict[str, list], categories: Sequence[str | None], tag: tuple) -> tuple[list[int], list]:
        """The prompts with a guide for their category (or '*') and one guide drawn for each."""
        rng = np.random.default_rng([self.config.seed, self.step, self.accelerator.process_index, *tag])
        choices = [guides.get(cat) or guides.get("*") for cat in categories]
        guided = [i for i, options in enumerate(choices) if options]
        return guided, [choices[i][rng.integers(len(choices[i]))] for i in guided]

    def _append(self, rollout: Rollout, guided: list[int], rows: np.ndarray, ids, mask, texts) -> Rollout:
        """The rollout with each guided prompt's new response under that prompt's own prompt row;
        rows (B,) gets the new rows' indices."""
        rows[guided] = len(rollout.texts) + np.arange(len(guided))
        n = self.config.num_generations
        return append_responses(rollout, [i * n for i in guided], ids, mask, texts,
                                pad_token_id=self.tokenizer.pad_token_id)

    def _sample_instructed(self, requests: list[str], weights: np.ndarray, instructions: list[str], device):
        """One response per request, sampled with its instruction after the request and its own
        weights' prefix; the caller pairs it under the request without the instruction."""
        c = self.config
        prefixes = [build_prefix(c.objectives, w, template=c.prefix_template, item=c.prefix_item) for w in weights]
        # the request cut as the rollout cut it, then the instruction, so a long passage never cuts it off
        requests = [cut_prompt(self.tokenizer, r, c.max_prompt_tokens) for r in requests]
        ids, mask = encode_prompts(self.tokenizer, [f"{r}\n\n{text}" for r, text in zip(requests, instructions)],
                                   prefixes)
        return generate_ids(self._unwrapped(), self.tokenizer, ids.to(device), mask.to(device),
                            max_new_tokens=c.max_new_tokens, min_new_tokens=c.min_new_tokens,
                            temperature=c.temperature, top_p=c.top_p, top_k=c.top_k, autocast=self.autocast,
                            sampler=self.sampler)

    def spread(self, weights: np.ndarray) -> np.ndarray:
        """The weights of the step's multi-weight pools, (pool_weights * B, K), the drawn ones first."""
        rng = np.random.default_rng([self.config.seed, self.step, self.accelerator.process_index, 1])
        return spread_weights(weights, self.config.pool_weights, rng)

    def build_pairs(self, rollout: Rollout, prompts: Sequence[str], weights: np.ndarray, pool: np.ndarray,
                    chosen: np.ndarray, rejected: np.ndarray) -> Rollout:
        """Pair i's chosen (row i) and rejected (row M + i) responses, M = len(pool), after the prompt
        i mod B under weights[i]'s prefix: the drawn weights' pairs reuse the rollout's prompts; the
        other weights of a multi-weight pool get their prompts encoded here."""
        c, b, n = self.config, len(prompts), self.config.num_generations
        rows = np.arange(len(pool))
        pairs = rollout.pair(prompt_rows=np.concatenate([rows % b * n, rows % b * n]),
                             completion_rows=np.concatenate([pool[rows, chosen], pool[rows, rejected]]))
        if len(pool) == b:
            return pairs
        prefixes = [build_prefix(c.objectives, w, template=c.prefix_template, item=c.prefix_item) for w in weights[b:]]
        ids, mask = encode_prompts(self.tokenizer, list(prompts) * (len(pool) // b - 1), prefixes, c.max_prompt_tokens)
        device = rollout.prompt_ids.device
        prompt_ids, prompt_mask = prompt_table([(rollout.prompt_ids[:b * n:n], rollout.prompt_mask[:b * n:n]),
                                                (ids.to(device), mask.to(device))], self.tokenizer.pad_token_id)
        both = torch.as_tensor(np.concatenate([rows, rows]), device=device)
        return Rollout(prompt_ids[both], prompt_mask[both], pairs.completion_ids, pairs.completion_mask, pairs.texts)

    def train_step(self, prompts: Sequence[str], categories: Sequence[str | None] | None = None) -> dict:
        """One MO-ODPO step on this process's prompts; returns the step's metrics (all processes reduced).

        `categories` (one per prompt) select the `extra_responses`, `guide_openers` and
        `guide_instructions`; without them
        only '*' applies. With mirror_weights the prompts are a list repeated twice.
        """
        from moodpo.objectives import score_all

        c, acc = self.config, self.accelerator
        b, n = len(prompts), c.num_generations
        if c.mirror_weights and (b % 2 or list(prompts[:b // 2]) != list(prompts[b // 2:])):
            raise MoodpoError("mirror_weights needs each step's prompts as a list repeated twice")
        t0 = time.perf_counter()

        weights = self.weights.sample(b)                 # (B, K); with mirror_weights the second half reversed
        prefixes = [build_prefix(c.objectives, w, template=c.prefix_template, item=c.prefix_item) for w in weights]
        with gate_rows(self._unwrapped(), np.repeat(weights, n, axis=0)):
            rollout = sample_responses(self._unwrapped(), self.tokenizer, prompts, prefixes, num_samples=n,
                                       max_new_tokens=c.max_new_tokens, min_new_tokens=c.min_new_tokens,
                                       temperature=c.temperature, top_p=c.top_p, top_k=c.top_k,
                                       max_prompt_tokens=c.max_prompt_tokens, autocast=self.autocast,
                                       sampler=self.sampler)
        rollout, sources = self.add_candidates(rollout, categories or [None] * b, weights, prompts)
        t_gen = time.perf_counter()

        # Rewards see the prompt without the prefix (the paper's r_k(x, y)). The normaliser learns
        # from the policy's own samples only.
        raw = score_all(self.objectives, [prompts[i] for i in row_prompts(b, n, sources)], rollout.texts)
        self.normalizer.update(acc.gather(torch.as_tensor(raw[:b * n], device=acc.device)).cpu().numpy())
        rewards = np.asarray(self.normalizer(raw))                                        # (rows, K)
        # A multi-weight pool orders each prompt's candidates under pool_weights weight vectors.
        weights = self.spread(weights)                                                    # (M, K), M = J B
        pool = np.tile(build_pool(b, n, sources, mirrored=c.mirror_weights), (c.pool_weights, 1))  # (M, m)
        scores = self.scalarise(rewards[pool], weights)                                   # (M, m)
        chosen, rejected, keep = self.select_pairs(scores, c.tie_margin)                  # (M,) each
        targets = soft_targets(scores, chosen, rejected, c.soft_tau) if c.loss_type == "soft" else None
        t_score = time.perf_counter()

        # Tied prompts still run through the model with weight 0, so every DDP replica does the
        # same forward/backward even when one of them has no pair this step.
        pairs = self.build_pairs(rollout, prompts, weights, pool, chosen, rejected)
        pair_weight = torch.as_tensor(keep, dtype=torch.float32, device=acc.device)
        num_pairs = acc.reduce(pair_weight.sum(), "sum")
        ref_logps = self.ref_logps(pairs)
        self.replay.append(PairBatch(
            pairs, ref_logps, pair_weight, num_pairs,
            targets=None if targets is None else torch.as_tensor(targets, dtype=torch.float32),
            gates=torch.as_tensor(np.concatenate([weights, weights]), dtype=torch.float32) if c.lora_gate else None))
        first, last_loss, finite = self.run_updates()
        t_end = time.perf_counter()

        local = step_metrics(c.objectives, raw=raw, rewards=rewards, weights=weights, pool=pool, scores=scores,
                             chosen=chosen, rejected=rejected, keep=keep, num_sampled=b * n,
                             response_lengths=rollout.lengths[:b * n], pair_lengths=pairs.lengths, update=first,
                             ref_logps=ref_logps, pair_weight=pair_weight, last_loss=last_loss, extra=bool(sources),
                             categories=categories or (), extra_categories=self.extra_categories)
        reduced = acc.reduce(torch.tensor(list(local.values()), dtype=torch.float64, device=acc.device), "mean")
        metrics = dict(zip(local, map(float, reduced.tolist())))
        pairs_total = int(num_pairs.item())
        metrics.update({
            "pairs": pairs_total, "ties": len(pool) * acc.num_processes - pairs_total,
            "skipped_nonfinite": not finite, "grad_norm": first.grad_norm,
            "lr": self.scheduler.get_last_lr()[0],
            "time/step": t_end - t0, "time/generate": t_gen - t0, "time/score": t_score - t_gen,
            "time/update": t_end - t_score, "pairs_per_second": pairs_total / (t_end - t0),
        })
        return metrics

    # ----- the loop ---------------------------------------------------------------------------

    def _log(self, metrics: dict) -> None:
        if self.accelerator.is_main_process:
            append_jsonl(self.run_dir / METRICS_FILE, metrics)
        if self.config.report_to != "none":
            self.accelerator.log({k: v for k, v in metrics.items() if k != "step" and v is not None},
                                 step=metrics["step"])
        for callback in self.callbacks:
            callback(metrics)

    def _stop_requested(self) -> bool:
        flag = self.should_stop() or stop_requested(self.run_dir)
        return self.accelerator.reduce(torch.tensor([float(flag)], device=self.accelerator.device), "max").item() > 0

    def train(self) -> TrainResult:
        from tqdm.auto import tqdm

        c, acc = self.config, self.accelerator
        history: list[dict] = []
        status = "finished"
        bar = tqdm(total=c.max_steps, initial=self.step, desc="MO-ODPO", unit="step",
                   disable=not (self.show_progress and acc.is_main_process))
        last_saved = self.step if self.resume_from is not None else -1
        try:
            while self.step < c.max_steps:
                if self._stop_requested():
                    status = "stopped"
                    break
                per_process = c.per_device_train_batch_size * c.gradient_accumulation_steps
                per_process = per_process // 2 if c.mirror_weights else per_process
                indices = self.order.take(per_process * acc.num_processes)
                chunk = [self.prompts[i] for i in indices[acc.process_index * per_process:
                                                          (acc.process_index + 1) * per_process]]
                mine, cats = [q.text for q in chunk], [q.category for q in chunk]
                metrics = self.train_step(mine + mine if c.mirror_weights else mine,
                                          cats + cats if c.mirror_weights else cats)
                self.step += 1
                metrics = {"step": self.step, **metrics}
                history.append(metrics)
                if self.step % c.logging_steps == 0 or self.step == c.max_steps:
                    self._log(metrics)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", pairs_s=f"{metrics['pairs_per_second']:.2f}")
                if self.evaluate and c.eval_every and self.step % c.eval_every == 0:
                    self.evaluate(self)
                if c.save_steps and self.step % c.save_steps == 0:
                    self.save_checkpoint()
                    last_saved = self.step
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            bar.close()
            if c.report_to != "none":
                acc.end_training()
        if last_saved != self.step:
            self.save_checkpoint()
        if status == "finished":
            self.save_final()
        return TrainResult(self.run_dir, self.step, status, history)


def train(config: TrainConfig, **kwargs) -> TrainResult:
    return Trainer(config, **kwargs).train()
