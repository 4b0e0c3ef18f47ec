"""A steerable policy ready for generation: the base model, an MO-ODPO run, a checkpoint, or a
Rewarded Soups set, behind one interface that evaluation and the app share.

    policy = load_policy("runs/default")            # a run folder: its final adapter (or last checkpoint)
    policy = load_policy("runs/default/checkpoints/step-000050")
    policy = load_policy("runs/soups")              # a Rewarded Soups set (soups.json)
    policy = load_policy("base:smollm2-135m", objectives=["helpfulness", "harmlessness"])

MO-ODPO and the base model condition on the weights through the system prefix, so one batched
`generate` serves any mix of weight vectors. The TRL baselines (Rewards-in-Context, conditioned
RL) are run folders too; a `conditioning.json` there says how weights become their system
message (`moodpo.conditioning.Conditioning`), and `Policy.prefix` applies it. Rewarded Soups conditions through the parameters
(Rame et al., 2023): theta(w) = theta_0 + sum_k w_k * B_k A_k, i.e. peft's "cat" combination of
the per-objective LoRA adapters, so it generates one weight vector at a time.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from moodpo.conditioning import Conditioning, build_prefix
from moodpo.config import TrainConfig, load_run_config, training_alpha
from moodpo.errors import MoodpoError
from moodpo.gating import attach_gate, gate_rows
from moodpo.models import DEFAULT_MODEL, autocast_dtype, load_adapter, load_model, load_tokenizer
from moodpo.runs import MODEL_DIR, SOUPS_FILE, describe_source, is_run, latest_adapter, read_state, run_of_checkpoint
from moodpo.sampling import eos_token_ids, generation_config, sample_responses
from moodpo.sampling_settings import GenerationSettings
from moodpo.weights import WEIGHT_STEP, validate_weights

DEFAULT_OBJECTIVES = ("helpfulness", "harmlessness")
# Mixed Rewarded Soups adapters a policy keeps: a few weight vectors in use at once, not every one ever asked for.
SOUP_CACHE = 8


@dataclass
class Policy:
    name: str
    kind: str  # "base", "moodpo" or "soups"
    objectives: list[str]
    model: torch.nn.Module
    tokenizer: object
    base_model: str = DEFAULT_MODEL
    source: str = ""
    prefix_template: str = TrainConfig.prefix_template
    prefix_item: str = TrainConfig.prefix_item
    # From the run's conditioning.json; None: the weight prefix of prefix_template and prefix_item.
    conditioning: Conditioning | None = None
    step: int | None = None
    alpha: float | list[float] | None = None
    soup_adapters: list[str] = field(default_factory=list)
    precision: str = "auto"
    # Sample with moodpo.fastgen where the architecture allows (faster; the same distribution, up to
    # float16 weights on a float32 CPU: docs/training.md).
    fast: bool = True
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # Mixed soups adapters kept in memory (see _use_weights).
    soup_cache: int = SOUP_CACHE
    _soup_mixes: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _sampler: object = field(default=None, repr=False)
    _sampler_key: str | None = field(default=None, repr=False)

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    def check_weights(self, weights: Sequence[float]) -> np.ndarray:
        return validate_weights(weights, self.num_objectives)

    def prefix(self, weights: Sequence[float]) -> str:
        """The exact system message the model sees for these weights (validated and normalised)."""
        w = self.check_weights(weights)
        if self.conditioning is not None:
            return self.conditioning.prefix(self.objectives, w)
        return build_prefix(self.objectives, w, template=self.prefix_template, item=self.prefix_item)

    def _use_weights(self, weights: np.ndarray) -> None:
        """Soups: activate the adapter mix for these weights, rounded to WEIGHT_STEP.

        Each mix is a new peft adapter (a copy of every LoRA matrix), so only the `soup_cache`
        most recently used are kept and older ones are deleted: a public app takes any floats.
        """
        if self.kind != "soups":
            return
        steps = np.rint(np.asarray(weights) / WEIGHT_STEP).astype(int)
        if not steps.any():  # many objectives, each below half a step: keep the largest
            steps[np.argmax(weights)] = 1
        name = "soup_" + "_".join(map(str, steps))
        if name in self._soup_mixes:
            self._soup_mixes.move_to_end(name)
        else:
            self.model.add_weighted_adapter(self.soup_adapters, (steps / steps.sum()).tolist(), name,
                                            combination_type="cat")
            self._soup_mixes[name] = None
        self.model.set_adapter(name)
        while len(self._soup_mixes) > max(1, self.soup_cache):
            self.model.delete_adapter(self._soup_mixes.popitem(last=False)[0])  # never the one just set

    def sampler(self):
        """The fast sampler over the current adapter (soups: after `_use_weights`), or None."""
        from moodpo.fastgen import FastSampler, supports

        if not self.fast or not supports(self.model):
            return None
        key = next(reversed(self._soup_mixes), None) if self.kind == "soups" else None
        if self._sampler is None:
            self._sampler = FastSampler(self.model, dtype=autocast_dtype(self.precision) or torch.float32, half=True)
        elif key != self._sampler_key:
            self._sampler.refresh()
        self._sampler_key = key
        return self._sampler

    def numerics(self) -> str:
        """How this policy's responses are computed, for an evaluation's record: the sampler, and the
        dtype its weights and matmuls use ("fast sampler, float16 weights, float32 matmuls")."""
        sampler = self.sampler()
        if sampler is not None:
            return f"fast sampler, {sampler.numerics}"
        return "transformers generate, " + str(autocast_dtype(self.precision) or torch.float32).removeprefix("torch.")

    def generate(self, prompts: Sequence[str], weights: np.ndarray | Sequence[Sequence[float]], *,
                 settings: GenerationSettings | None = None, seed: int | None = 0,
                 num_samples: int = 1) -> list[str]:
        """One response per (prompt, weight row) pair; weights is (N, K) aligned with prompts.

        Prefix-conditioned policies take all rows in one batched generate; soups group rows by
        weight vector. A fixed seed makes the draw repeatable for the same batch.
        """
        settings = settings or GenerationSettings()
        weights = np.asarray([self.check_weights(w) for w in weights])
        if len(weights) != len(prompts):
            raise MoodpoError(f"{len(prompts)} prompts but {len(weights)} weight vectors")
        with self.lock:
            if seed is not None:
                torch.manual_seed(seed)
            if self.kind != "soups":
                return self._generate(prompts, weights, settings, num_samples)
            out: list[str | None] = [None] * (len(prompts) * num_samples)
            for w in np.unique(weights, axis=0):
                rows = np.flatnonzero(np.all(weights == w, axis=1))
                self._use_weights(w)
                texts = self._generate([prompts[i] for i in rows], weights[rows], settings, num_samples)
                for j, i in enumerate(rows):
                    out[i * num_samples:(i + 1) * num_samples] = texts[j * num_samples:(j + 1) * num_samples]
            return out

    def _generate(self, prompts, weights, settings, num_samples) -> list[str]:
        """Sample for rows that share one adapter state (soups: one weight vector, already in use)."""
        prefixes = [self.prefix(w) for w in weights]
        with gate_rows(self.model, np.repeat(weights, num_samples, axis=0)):
            rollout = sample_responses(self.model, self.tokenizer, prompts, prefixes, num_samples=num_samples,
                                       max_new_tokens=settings.max_new_tokens, min_new_tokens=settings.min_new_tokens,
                                       temperature=settings.temperature,
                                       top_p=settings.top_p, top_k=settings.top_k, do_sample=settings.do_sample,
                                       max_prompt_tokens=settings.max_prompt_tokens,
                                       autocast=autocast_dtype(self.precision), sampler=self.sampler())
        return rollout.texts

    def stream(self, prompt: str, weights: Sequence[float], *, settings: GenerationSettings | None = None,
               seed: int | None = 0) -> Iterator[str]:
        """Yield the growing response text as tokens arrive (TextIteratorStreamer in a thread).

        The generation thread holds the policy lock from seeding to the last token, so concurrent
        callers queue rather than interleave. The lock never spans a yield: a consumer may be
        advanced from different threads (gradio does this) or walk away mid-stream, and the
        generation still finishes and releases the lock on the thread that took it.
        """
        from transformers import TextIteratorStreamer

        from moodpo.sampling import encode_prompts

        settings = settings or GenerationSettings()
        w = self.check_weights(weights)
        prefix = self.prefix(w)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def run():
            try:
                with self.lock:
                    if seed is not None:
                        torch.manual_seed(seed)
                    self._use_weights(w)
                    ids, mask = encode_prompts(self.tokenizer, [prompt], [prefix], settings.max_prompt_tokens)
                    config = generation_config(self.tokenizer, eos_token_ids(self.model, self.tokenizer),
                                               max_new_tokens=settings.max_new_tokens,
                                               min_new_tokens=settings.min_new_tokens,
                                               temperature=settings.temperature, top_p=settings.top_p,
                                               top_k=settings.top_k, do_sample=settings.do_sample)
                    sampler = self.sampler()
                    if sampler is not None:
                        with gate_rows(self.model, w):
                            sampler.generate(ids, mask, max_new_tokens=config.max_new_tokens,
                                             min_new_tokens=settings.min_new_tokens,
                                             eos_token_ids=config.eos_token_id, pad_token_id=config.pad_token_id,
                                             do_sample=settings.do_sample, temperature=settings.temperature,
                                             top_k=settings.top_k, top_p=settings.top_p, streamer=streamer,
                                             generators=_generators([seed]) if seed is not None else None)
                        return
                    dtype = autocast_dtype(self.precision)
                    with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.float32,
                                                         enabled=dtype is not None), gate_rows(self.model, w):
                        self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                            streamer=streamer)
            except BaseException as e:  # surfaced to the consumer below
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True, name="policy-stream")
        thread.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text
        thread.join()
        if errors:
            raise errors[0]


    def stream_many(self, prompt: str, weights: Sequence[Sequence[float]], *,
                    settings: GenerationSettings | None = None, seed: int | None = 0) -> Iterator[list[str]]:
        """Stream one response per weight vector, all growing together; yields the list of texts.

        Prefix-conditioned policies with the fast sampler run every row in one batch, each row
        with its own generator seeded `seed`, so row i draws the same random numbers `stream`
        would for that weight vector (batched arithmetic may differ in the last bits). Otherwise
        the rows stream one after another.
        """
        settings = settings or GenerationSettings()
        ws = [self.check_weights(w) for w in weights]
        if self.kind == "soups" or self.sampler() is None:
            texts = [""] * len(ws)
            for i, w in enumerate(ws):
                for texts[i] in self.stream(prompt, w, settings=settings, seed=seed):
                    yield list(texts)
            return
        from moodpo.sampling import encode_prompts

        rows = _RowStreamer(self.tokenizer, len(ws))
        errors: list[BaseException] = []

        def run():
            try:
                with self.lock:
                    ids, mask = encode_prompts(self.tokenizer, [prompt] * len(ws), [self.prefix(w) for w in ws],
                                               settings.max_prompt_tokens)
                    eos = eos_token_ids(self.model, self.tokenizer)
                    with gate_rows(self.model, ws):
                        self.sampler().generate(ids, mask, max_new_tokens=settings.max_new_tokens,
                                                min_new_tokens=settings.min_new_tokens, eos_token_ids=eos,
                                                pad_token_id=self.tokenizer.pad_token_id, do_sample=settings.do_sample,
                                                temperature=settings.temperature, top_k=settings.top_k,
                                                top_p=settings.top_p, streamer=rows,
                                                generators=_generators([seed] * len(ws)) if seed is not None else None)
            except BaseException as e:  # surfaced to the consumer below
                errors.append(e)
                rows.end()

        thread = threading.Thread(target=run, daemon=True, name="policy-stream-many")
        thread.start()
        for texts in rows:
            yield texts
        thread.join()
        if errors:
            raise errors[0]


def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


class _RowStreamer:
    """A streamer for a batch: iterating yields every row's decoded text after each step."""

    def __init__(self, tokenizer, rows: int):
        import queue

        self.tokenizer, self.queue = tokenizer, queue.Queue()
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        # Finished rows get padding, which decoding drops with the other special tokens.
        for row, token in zip(self.tokens, value.reshape(-1).tolist()):
            row.append(token)
        self.queue.put([self.tokenizer.decode(t, skip_special_tokens=True) for t in self.tokens])

    def end(self) -> None:
        self.queue.put(None)

    def __iter__(self):
        while (texts := self.queue.get()) is not None:
            yield texts


def _run_config(run_dir: Path) -> TrainConfig:
    return load_run_config(run_dir, {"resume": False, "overwrite": False})


def load_policy(spec: str, *, objectives: Sequence[str] | None = None, model: str | None = None,
                precision: str = "auto") -> Policy:
    """Load a policy from a run folder, a checkpoint, a soups set, or `base:<model>`.

    `objectives` is needed only for the base model (default: helpfulness, harmlessness); runs
    know theirs. `model` overrides the base model of a soups set or base policy.
    """
    if spec.startswith("base:") or spec == "base":
        base = spec.partition(":")[2] or model or DEFAULT_MODEL
        objs = list(objectives or DEFAULT_OBJECTIVES)
        return Policy(name=f"base ({base})", kind="base", objectives=objs, model=load_model(base),
                      tokenizer=load_tokenizer(base), base_model=base, source=spec, precision=precision)
    path = Path(spec)
    if not path.exists():
        raise MoodpoError(f"policy {spec} does not exist (give a run folder, a checkpoint, a soups set or base:<model>)")
    kind = describe_source(path)
    if kind == "soups":
        meta = json.loads((path / SOUPS_FILE).read_text())
        config = _run_config(path / meta["runs"][meta["objectives"][0]])
        gated = [obj for obj in meta["objectives"] if _run_config(path / meta["runs"][obj]).lora_gate]
        if gated:  # a soup mixes plain adapters; a gated one would run as if at uniform weights
            raise MoodpoError(f"soups set {path}: the {', '.join(gated)} member was trained with lora_gate; "
                              "retrain it without (train-soups does)")
        base = model or config.model_name_or_path
        net = load_model(base)
        names = []
        for obj in meta["objectives"]:
            adapter, _ = latest_adapter(path / meta["runs"][obj])
            name = f"soup_{len(names)}"
            net = load_adapter(net, adapter, adapter_name=name)
            names.append(name)
        return Policy(name=f"soups ({path.name})", kind="soups", objectives=list(meta["objectives"]), model=net,
                      tokenizer=load_tokenizer(base), base_model=base, source=str(path),
                      prefix_template=config.prefix_template, prefix_item=config.prefix_item,
                      soup_adapters=names, precision=precision)
    if kind == "run":
        run_dir = path
        adapter, step = latest_adapter(path)
    elif kind == "checkpoint":
        run_dir = run_of_checkpoint(path)
        adapter, step = path / MODEL_DIR, read_state(path)["step"]
    elif kind == "adapter" and is_run(path.parent):
        run_dir, adapter, step = path.parent, path, None
    else:
        raise MoodpoError(f"{spec} is not a run folder, checkpoint or soups set")
    config = _run_config(run_dir)
    base = model or config.model_name_or_path
    net = load_model(base)
    if config.lora:
        net = load_adapter(net, adapter)
        if config.lora_gate:
            attach_gate(net, len(config.objectives))
    else:
        net = load_model(str(adapter))
    net.eval()
    label = run_dir.name if kind == "run" else f"{run_dir.name}@{step}"
    return Policy(name=label, kind="moodpo", objectives=list(config.objectives), model=net,
                  tokenizer=load_tokenizer(base), base_model=base, source=str(path),
                  prefix_template=config.prefix_template, prefix_item=config.prefix_item,
                  conditioning=Conditioning.load(run_dir), step=step,
                  alpha=training_alpha(config.method, config.alpha),
                  precision=precision)
