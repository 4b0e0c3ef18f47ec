"""The training configuration: one dataclass with help text, loaded from YAML, overridden from the CLI.

Validation happens once, in `__post_init__`, so a config built from YAML, the command line, the
UI or Python is checked the same way. The resolved config is written to `<output_dir>/config.yaml`.

Where TRL has the same concept, a field takes TRL's name (`output_dir`, `per_device_train_batch_size`,
`save_steps`, ...). A user-written config or command line that uses a name from before the rename
gets a one-line error naming the new one; a saved run's config.yaml (`load_run_config`) is read
with the old names renamed, so run folders written before the rename still load.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from moodpo.conditioning import SCORE_ITEM, SCORE_MAPPINGS, SCORE_TEMPLATE, build_score_prefix
from moodpo.errors import MoodpoError
from moodpo.train.loss import LOSS_TYPES
from moodpo.models import DEFAULT_MODEL
from moodpo.runs import CONFIG_FILE
from moodpo.weights import resolve_alpha, validate_weights


REPORT_TO = ("none", "tensorboard", "wandb", "trackio")
METHODS = ("moodpo", "soups", "ric", "rl")
# Field names from before moodpo took TRL's names for the same concepts -> today's names.
RENAMED = {"model": "model_name_or_path", "run_dir": "output_dir", "batch_size": "per_device_train_batch_size",
           "num_samples": "num_generations", "save_every": "save_steps", "keep_checkpoints": "save_total_limit",
           "lr_schedule": "lr_scheduler_type"}


def option(default, help: str, **kw):
    """A dataclass field with its help text (the CLI's --help and the configuration reference read it)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # what to train
    method: str = option("moodpo", "what `python -m moodpo train` trains: moodpo (MO-ODPO), soups (Rewarded Soups), "
                         "ric (Rewards-in-Context) or rl (prompt-conditioned GRPO); train-soups, train-ric and "
                         "train-rl set it")
    model_name_or_path: str = option(DEFAULT_MODEL, "policy: 'smollm2-135m' (embedded, offline), a .gguf file, a local "
                                                "folder or a hub id")
    objectives: list[str] = option(["helpfulness", "harmlessness"],
                               "objective names: built-ins (helpfulness, harmlessness, conciseness), "
                               "hf:<reward model id or path>, python:module:function")
    prompts: str = option("builtin", "prompt source: builtin, hh-rlhf[:path], tldr[:path] or a .jsonl file")
    prompt_split: str = option("train", "split of the prompt source to train on")
    max_prompts: int | None = option(None, "use at most this many prompts (None: all)")
    max_prompt_tokens: int = option(256, "prompts longer than this many tokens are cut")
    category_repeats: list[str] = option([], "times each prompt of a category appears per epoch, e.g. borderline=3 "
                                         "harmful=3 (unnamed categories 1; 0 leaves a category out)")
    # weights and conditioning (the paper's knobs)
    weight_mode: str = option("dirichlet", "dirichlet: w ~ Dir(alpha) per prompt; fixed: always fixed_weights")
    alpha: float | list[float] = option(1.0, "Dirichlet concentration: a scalar or one value per objective (> 0)")
    mirror_weights: bool = option(False, "each step's prompts twice, with w and with w reversed, both picking pairs "
                                     "from the samples of both, so what ignores the prefix tends to cancel (even "
                                     "per_device_train_batch_size)")
    fixed_weights: list[float] | None = option(None, "weights for weight_mode=fixed, e.g. 1 0 for a single-objective run")
    prefix_template: str = option("[Begin System Instruction] {weights} [End System Instruction]",
                              "system message; {weights} is replaced by the weight items")
    prefix_item: str = option("{Name}: {weight:.2f}", "one weight item; {Name}, {name} and {weight} are available")
    normalization: str = option("running", "per-objective reward normalisation: running (mean/std), fixed or none")
    norm_mean: list[float] | None = option(None, "means for normalization=fixed, one per objective")
    norm_std: list[float] | None = option(None, "standard deviations for normalization=fixed, one per objective")
    # on-policy sampling
    num_generations: int = option(2, "responses sampled per prompt (n >= 2); chosen = best, rejected = worst (ric: "
                                  "the base model's pool; rl: the GRPO group)")
    max_new_tokens: int = option(64, "longest response in tokens")
    min_new_tokens: int = option(0, "shortest response in tokens (benchmarks force a length with it)")
    temperature: float = option(1.0, "sampling temperature")
    top_p: float = option(1.0, "nucleus sampling threshold")
    top_k: int = option(0, "top-k sampling (0: off)")
    extra_responses: list[str] = option([], "category=text: a fixed response added to the candidates of every prompt of "
                                        "that category ('*': any category), scored like the samples; off-policy, it "
                                        "lets a pair hold what the policy never samples, e.g. harmful=I'm sorry, but "
                                        "I can't help with that.")
    guide_openers: list[str] = option([], "category=opener: each step, one more candidate per prompt of that category "
                                      "('*': any): the policy's own response forced to begin with the opener, e.g. "
                                      "\"harmful=I can't help with that\"; several per category, one drawn per prompt")
    guide_instructions: list[str] = option([], "category=instruction: each step, one more candidate per prompt of that "
                                           "category ('*': any): the policy's own response sampled with the instruction "
                                           "after the request, e.g. \"everyday=Answer briefly, in one sentence.\", "
                                           "then paired under the request without it; several per category, one drawn "
                                           "per prompt")
    pool_weights: int = option(1, "weight vectors per candidate pool: each prompt's scored candidates also make pairs "
                               "under this many - 1 more weights, spread over the simplex, each with its own prefix")
    scalarisation: str = option("linear", "linear (sum_k w_k r_k, the paper's) or tchebycheff (smooth, mu = "
                                "tchebycheff_mu): ranks by the weighted distance to the prompt's best candidate")
    tchebycheff_mu: float = option(0.1, "smoothing of the Tchebycheff scalarisation (smaller: closer to the max)")
    tie_margin: float = option(0.01, "skip a prompt when its best and worst weighted (normalised) scores differ by less")
    # loss
    loss_type: str = option("sigmoid", "sigmoid (DPO), ipo, or soft: DPO toward sigmoid(weighted score gap / soft_tau) "
                            "instead of 1, so near-ties teach small steps")
    soft_tau: float = option(0.5, "temperature of the soft loss' targets, in normalised reward units")
    beta: float = option(0.1, "KL strength of the DPO loss")
    nll_weight: float = option(0.0, "weight of a length-normalised negative log-likelihood of each chosen response "
                               "added to the preference loss (RPO, Pang et al. 2024; they use 1): raises what is chosen "
                               "instead of only widening the margin; 0: off")
    nll_min_target: float = option(0.0, "with nll_weight and loss_type soft: the NLL applies only to pairs whose soft "
                                   "target sigmoid(gap / soft_tau) is at least this (decisive pairs), so a near-tie "
                                   "does not lift its chosen response; 0: every pair")
    # the TRL baselines: Rewards-in-Context (method ric) and prompt-conditioned RL (method rl)
    ric_pool_prompts: int | None = option(None, "ric: training prompts the base model answers num_generations times "
                                          "for the offline pool (None: all)")
    ric_mapping: str = option("linf", "ric: weights -> desired scores at inference: linf (the paper's: the largest "
                              "weight asks for its best score, the others min(K w, 1) of their range), l2 or linear")
    ric_score_template: str = option(SCORE_TEMPLATE, "ric: the system message; {scores} is replaced by the score items")
    ric_score_item: str = option(SCORE_ITEM, "ric: one score item; {Name}, {name} and {score} (the pool-normalised "
                                 "score, rounded to 0.1) are available")
    ric_online_rounds: int = option(0, "ric: online augmentation rounds after the offline fine-tune: sample at "
                                    "desired scores, keep the responses above ric_online_quantile, fine-tune again")
    ric_online_samples: int = option(64, "ric: responses generated per online round")
    ric_online_steps: int = option(8, "ric: fine-tuning steps per online round (max_steps is the offline fine-tune)")
    ric_online_quantile: float = option(0.7, "ric: an online response is kept when one of its scores reaches this "
                                        "quantile of that objective's scores in the round (the authors' 0.7)")
    rl_beta: float = option(0.04, "rl: KL coefficient of GRPO against the base (TRL's frozen copy of the fresh "
                            "adapter); 0 skips the reference pass")
    # model update
    lora: bool = option(True, "train a LoRA adapter (false: full fine-tuning with a frozen copy as reference)")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA scaling numerator")
    lora_dropout: float = option(0.0, "LoRA dropout")
    lora_target_modules: list[str] = option(["q_proj", "k_proj", "v_proj", "o_proj"], "modules that get LoRA")
    lora_gate: bool = option(False, "condition the LoRA update on the weights as well as the prefix: its rank "
                             "splits into one group per objective, group k scaled by K * w_k in each row "
                             "(moodpo.gating); lora_r must be a multiple of the number of objectives")
    learning_rate: float = option(2e-4, "peak learning rate")
    lr_scheduler_type: str = option("cosine", "constant or cosine, both after a linear warm-up (TRL's constant_with_warmup "
                                          "and cosine)")
    warmup_steps: int = option(5, "linear warm-up steps")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    updates_per_step: int = option(1, "optimizer updates a step: the first on the step's new pairs, the others on "
                                   "pairs drawn again from the replay (semi-online DPO)")
    replay_steps: int = option(0, "the replay: the pairs of the last N steps, one step's pairs an update "
                               "(0: the current step's only); not saved in checkpoints")
    per_device_train_batch_size: int = option(8, "prompts per micro-batch per process")
    gradient_accumulation_steps: int = option(1, "micro-batches whose gradients add up to one optimizer update: a step "
                                             "takes per_device_train_batch_size x this many prompts per process")
    max_pairs_per_micro_batch: int = option(16, "most pairs through the policy at once: a step's pairs are sorted by "
                                            "length into at least gradient_accumulation_steps micro-batches of at "
                                            "most this many, each padded only to its own longest prompt and response")
    max_steps: int = option(100, "optimizer steps")
    precision: str = option("auto", "auto (bf16 autocast where the hardware has bf16), bf16 or fp32")
    fast_path: bool = option(True, "Llama models: sample and score the reference with moodpo.fastgen, and keep the "
                               "frozen base in the autocast dtype (same computation, faster on CPU; on a float32 "
                               "CPU the rollouts' weights are rounded to float16); "
                               "false: transformers' generate and autocast casts")
    seed: int = option(0, "seed for data order, weights and sampling")
    # run folder
    output_dir: str = option("runs/default", "the run folder: config.yaml, metrics.jsonl, eval.jsonl, checkpoints and the "
                                          "adapter go there")
    save_steps: int = option(50, "checkpoint every N steps (0: only at the end)")
    save_total_limit: int = option(2, "how many recent checkpoints to keep")
    logging_steps: int = option(1, "write metrics (metrics.jsonl, callbacks, report_to) every N steps")
    report_to: str = option("none", "where else the logged metrics go, through accelerate's trackers: none, "
                                "tensorboard (under <output_dir>/runs), wandb or trackio")
    eval_every: int = option(0, "evaluate a small weight grid every N steps into <output_dir>/eval.jsonl, the live "
                            "front of the app's Train and Pareto tabs (0: off)")
    eval_grid: int = option(3, "points per simplex edge for the in-training eval; small because it runs every "
                           "eval_every steps (`moodpo eval` defaults to 11)")
    eval_prompts: int = option(8, "held-out prompts for the in-training eval (from the dev split, else the eval split)")
    resume: bool = option(False, "continue the run in output_dir from its last checkpoint")
    overwrite: bool = option(False, "delete an existing output_dir first")

    def __post_init__(self):
        def bad(msg):
            raise MoodpoError(msg)

        if not self.objectives:
            bad("objectives must name at least one objective")
        if len(set(self.objectives)) != len(self.objectives):
            bad(f"objectives has duplicates: {self.objectives}")
        k = len(self.objectives)
        alphas = resolve_alpha(self.alpha, k).tolist()
        if isinstance(self.alpha, list) and len(self.alpha) == 1:
            self.alpha = self.alpha[0]
        self._check_method(k)
        if self.weight_mode not in ("dirichlet", "fixed"):
            bad(f"weight_mode must be dirichlet or fixed, got {self.weight_mode!r}")
        if self.weight_mode == "fixed":
            if self.fixed_weights is None:
                bad("weight_mode fixed needs fixed_weights, e.g. --fixed_weights 1 0")
            self.fixed_weights = validate_weights(self.fixed_weights, k).tolist()
        if self.mirror_weights:
            if self.weight_mode != "dirichlet":
                bad("mirror_weights needs weight_mode dirichlet")
            if len(set(alphas)) != 1:
                bad(f"mirror_weights needs one alpha for every objective (a reversed w must be as likely), "
                    f"got {self.alpha}")
            if self.per_device_train_batch_size % 2:
                bad(f"mirror_weights needs an even per_device_train_batch_size (each prompt appears twice), "
                    f"got {self.per_device_train_batch_size}")
        if self.normalization not in ("running", "fixed", "none"):
            bad(f"normalization must be running, fixed or none, got {self.normalization!r}")
        if self.normalization == "fixed" and (
                self.norm_mean is None or self.norm_std is None or len(self.norm_mean) != k or len(self.norm_std) != k):
            bad(f"normalization fixed needs norm_mean and norm_std with {k} values each")
        if self.num_generations < 2:
            bad(f"num_generations must be >= 2 (a pair needs two responses), got {self.num_generations}")
        if self.loss_type not in LOSS_TYPES:
            bad(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {self.loss_type!r}")
        if self.lr_scheduler_type not in ("constant", "cosine"):
            bad(f"lr_scheduler_type must be constant or cosine, got {self.lr_scheduler_type!r}")
        if self.report_to not in REPORT_TO:
            bad(f"report_to must be one of {', '.join(REPORT_TO)}, got {self.report_to!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            bad(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.scalarisation not in ("linear", "tchebycheff"):
            bad(f"scalarisation must be linear or tchebycheff, got {self.scalarisation!r}")
        for name in ("beta", "learning_rate", "temperature", "top_p", "max_grad_norm", "soft_tau", "tchebycheff_mu"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                bad(f"{name} must be a positive number, got {value}")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "max_new_tokens",
                     "max_prompt_tokens", "lora_r", "eval_grid", "eval_prompts", "updates_per_step", "logging_steps",
                     "pool_weights", "max_pairs_per_micro_batch", "ric_online_samples", "ric_online_steps"):
            if getattr(self, name) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "save_steps", "eval_every", "min_new_tokens", "top_k", "save_total_limit",
                     "replay_steps", "ric_online_rounds"):
            if getattr(self, name) < 0:
                bad(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.replay_steps and self.updates_per_step < 2:
            bad(f"replay_steps {self.replay_steps} has no effect with updates_per_step {self.updates_per_step}; "
                "set updates_per_step to 2 or more (the first update is always on the step's new pairs)")
        if self.min_new_tokens > self.max_new_tokens:
            bad("min_new_tokens must not exceed max_new_tokens")
        if self.tie_margin < 0 or not math.isfinite(self.tie_margin):
            bad(f"tie_margin must be >= 0, got {self.tie_margin}")
        self._check_loss_extras(k)
        self.extra_responses = [f"{name}={text}" for name, text in parse_extra_responses(self.extra_responses).items()]
        parse_guide_openers(self.guide_openers)
        parse_guide_instructions(self.guide_instructions)
        self.category_repeats = [f"{name}={count}" for name, count in parse_category_repeats(self.category_repeats).items()]
        if self.resume and self.overwrite:
            bad("choose one of resume and overwrite")

    def _check_loss_extras(self, k: int) -> None:
        """The NLL term (nll_weight, nll_min_target) and the weight-gated LoRA (lora_gate)."""
        def bad(msg):
            raise MoodpoError(msg)

        if self.nll_weight < 0 or not math.isfinite(self.nll_weight):
            bad(f"nll_weight must be >= 0, got {self.nll_weight}")
        if not 0 <= self.nll_min_target < 1:
            bad(f"nll_min_target must be in [0, 1), got {self.nll_min_target}")
        if self.nll_min_target and not (self.nll_weight and self.loss_type == "soft"):
            bad("nll_min_target selects pairs by their soft target; it needs nll_weight > 0 and loss_type soft")
        if self.lora_gate and not (self.lora and self.method in ("moodpo", "soups")):
            bad("lora_gate gates an MO-ODPO LoRA adapter; set lora true and method moodpo, or lora_gate false")
        if self.lora_gate and self.lora_r % k:
            bad(f"lora_gate splits lora_r over the {k} objectives; make lora_r ({self.lora_r}) a multiple of {k}")

    def _check_method(self, k: int) -> None:
        """The method and the fields of the TRL baselines (ric_*, rl_*)."""
        def bad(msg):
            raise MoodpoError(msg)

        if self.method not in METHODS:
            bad(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method in ("ric", "rl") and not self.lora:
            bad(f"method {self.method} trains a LoRA adapter; set lora true")
        if self.method in ("ric", "rl") and self.resume:
            bad(f"method {self.method} cannot resume a run; start it again with --overwrite")
        if self.ric_mapping not in SCORE_MAPPINGS:
            bad(f"ric_mapping must be one of {', '.join(SCORE_MAPPINGS)}, got {self.ric_mapping!r}")
        build_score_prefix(self.objectives, [0.0] * k, template=self.ric_score_template, item=self.ric_score_item)
        if self.ric_pool_prompts is not None and self.ric_pool_prompts < 1:
            bad(f"ric_pool_prompts must be >= 1 (or None: all), got {self.ric_pool_prompts}")
        if not 0 < self.ric_online_quantile < 1:
            bad(f"ric_online_quantile must be between 0 and 1, got {self.ric_online_quantile}")
        if not math.isfinite(self.rl_beta) or self.rl_beta < 0:
            bad(f"rl_beta must be >= 0, got {self.rl_beta}")

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def training_alpha(method: str | None, alpha: Any) -> Any:
    """The Dirichlet alpha a run drew its training weights with; None for RiC, which trains on
    scores and draws no weights (its config's alpha is an unused default)."""
    return None if method == "ric" else alpha


def parse_category_repeats(items: list[str]) -> dict[str, int]:
    """{"borderline": 3, ...} from ["borderline=3", ...], with a one-line error for a malformed item."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, count = str(item).partition("=")
        name = name.strip()
        if not sep or not name or not count.strip().isdigit():
            raise MoodpoError(f"category_repeats item {item!r} must be category=count with a whole count >= 0, "
                              "e.g. harmful=3")
        if name in out:
            raise MoodpoError(f"category_repeats names {name!r} twice")
        out[name] = int(count)
    return out


def _category_items(items: list[str], field_name: str, example: str) -> list[tuple[str, str]]:
    """[(category, text), ...] from ["category=text", ...], with a one-line error for a malformed item."""
    out = []
    for item in items:
        name, sep, text = str(item).partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise MoodpoError(f"{field_name} item {item!r} must be {example} ('*' for any category)")
        out.append((name, text))
    return out


def parse_extra_responses(items: list[str]) -> dict[str, str]:
    """{"harmful": "I'm sorry, ..."} from ["harmful=I'm sorry, ..."]: one response a category."""
    out: dict[str, str] = {}
    for name, text in _category_items(items, "extra_responses",
                                      "category=text, e.g. \"harmful=I'm sorry, but I can't help with that.\""):
        if name in out:
            raise MoodpoError(f"extra_responses names {name!r} twice; give one response a category")
        out[name] = text
    return out


def parse_guide_openers(items: list[str]) -> dict[str, list[str]]:
    """{"harmful": ["I can't help with that", ...]} from ["harmful=I can't help with that", ...]; a category may
    appear more than once."""
    return _category_lists(items, "guide_openers", "category=opener, e.g. \"harmful=I can't help with that\"")


def parse_guide_instructions(items: list[str]) -> dict[str, list[str]]:
    """{"everyday": ["Answer briefly, in one sentence.", ...]} from ["everyday=Answer briefly, ...", ...]."""
    return _category_lists(items, "guide_instructions",
                           "category=instruction, e.g. \"everyday=Answer briefly, in one sentence.\"")


def _category_lists(items: list[str], field_name: str, example: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, text in _category_items(items, field_name, example):
        out.setdefault(name, []).append(text)
    return out


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def field_kind(name: str, schema: type | None = None) -> tuple[type, bool, bool]:
    """(scalar type, is_list, optional) for a field of a config dataclass (default TrainConfig),
    read from its annotation."""
    hint = typing.get_type_hints(schema or TrainConfig)[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        parts = [a for a in args if a is not type(None)]
    else:
        parts = [hint]
    is_list = any(typing.get_origin(p) is list for p in parts)
    scalar = next((typing.get_args(p)[0] for p in parts if typing.get_origin(p) is list), None) or parts[0]
    return scalar, is_list, optional


def coerce(name: str, value: Any) -> Any:
    """Turn a YAML or command-line value into the field's type, with a one-line error if it can't."""
    if name in RENAMED:
        raise MoodpoError(f"config field {name!r} is now {RENAMED[name]!r} (TRL's name); rename it")
    if name not in FIELDS:
        raise MoodpoError(f"unknown config field {name!r}; see `python -m moodpo train --help`")
    scalar, is_list, optional = field_kind(name)

    def one(v):
        if isinstance(v, str) and scalar is not str:
            if v.lower() in ("none", "null") and optional:
                return None
            if scalar is bool:
                if v.lower() in ("true", "yes", "1", "on"):
                    return True
                if v.lower() in ("false", "no", "0", "off"):
                    return False
                raise ValueError(v)
            return scalar(v)
        if scalar is float and isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        if v is None and optional:
            return None
        if not isinstance(v, scalar) or (scalar is not bool and isinstance(v, bool)):
            raise ValueError(v)
        return v

    try:
        if value is None:
            if not optional:
                raise ValueError(value)
            return None
        if is_list:
            items = value if isinstance(value, (list, tuple)) else [value]
            if isinstance(value, str) and scalar is not str:
                items = [p for p in value.replace(",", " ").split() if p]
            if name == "alpha" and len(items) == 1:
                return one(items[0])
            if len(items) == 1 and isinstance(items[0], str) and items[0].lower() in ("none", "null") and optional:
                return None
            return [one(v) for v in items]
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise ValueError(value)
            value = value[0]
        return one(value)
    except (ValueError, TypeError):
        kind = f"list of {scalar.__name__}" if is_list else scalar.__name__
        raise MoodpoError(f"config field {name!r} must be a {kind}, got {value!r}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MoodpoError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise MoodpoError(f"config file {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise MoodpoError(f"config file {path} must hold a mapping of field: value")
    return data


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """YAML file (optional) plus overrides -> a validated TrainConfig."""
    return _build(read_yaml(path) if path is not None else {}, overrides, path)


def load_run_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The config.yaml a run saved, as a TrainConfig. Runs saved before the rename to TRL's names
    hold the old names: here, and only here, those are read as the new ones."""
    path = Path(run_dir) / CONFIG_FILE
    values = read_yaml(path)
    for old, new in RENAMED.items():
        if old in values:
            if new in values:
                raise MoodpoError(f"{path} sets both {old!r} and its new name {new!r}")
            values[new] = values.pop(old)
    return _build(values, overrides, path)


def _build(values: dict[str, Any], overrides: dict[str, Any] | None, path) -> TrainConfig:
    coerced: dict[str, Any] = {}
    for key, value in values.items():
        if key not in FIELDS and key not in RENAMED:
            raise MoodpoError(f"unknown config field {key!r} in {path}")
        try:
            coerced[key] = coerce(key, value)
        except MoodpoError as e:
            raise MoodpoError(f"{path}: {e}") from None
    for key, value in (overrides or {}).items():
        coerced[key] = coerce(key, value)
    return TrainConfig(**coerced)
