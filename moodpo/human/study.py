"""Human preference studies: which systems to compare on which prompts, and the pre-generated pairs.

    spec = load_study_config("configs/studies/demo.yaml", {"num_prompts": 4})
    study = make_study(spec, "data")          # generates, scores, stores; annotators never wait

A system is a policy (any spec `moodpo.policy.load_policy` takes: a run folder, a checkpoint, a
soups set, `base:<model>`) at one weight vector. Each comparison {a: system, b: system} becomes
one pair per prompt, e.g. MO-ODPO at w vs the prompted base model at w, MO-ODPO vs Rewarded
Soups at w, or one policy at two weight vectors (does steering change what people prefer?).
Every response is scored by every objective on the prompt *without* the conditioning prefix, as
in training and evaluation, so the votes can be checked against the reward models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moodpo.config import option, read_yaml
from moodpo.data import SPLITS, Prompt, filter_categories, load_prompts
from moodpo.errors import MoodpoError
from moodpo.sampling_settings import MAX_NEW_TOKENS, TEMPERATURE, TOP_P
from moodpo.human.votes import MAX_INSTRUCTIONS_CHARS, MAX_NAME_CHARS, OVERALL, Study, VoteError, VoteStore
from moodpo.weights import split_values, validate_weights


@dataclass
class StudyConfig:
    name: str = option("demo", f"study name, unique in the data folder (1 to {MAX_NAME_CHARS} characters)")
    objectives: list[str] = option(["helpfulness", "harmlessness"],
                               "objectives the systems are steered on and scored with; one question each")
    overall: bool = option(True, "also ask which response is better overall")
    overlap: int = option(1, "annotators per pair; 2 or more gives inter-annotator agreement")
    instructions: str = option("", "what annotators read above each pair (Markdown): who asks, what to weigh, "
                               f"when to skip; up to {MAX_INSTRUCTIONS_CHARS:,} characters")
    reveal_systems: bool = option(True, "show annotators which systems wrote A and B after each vote; false keeps "
                                    "them hidden, so what was revealed cannot sway later votes")
    prompts: str = option("builtin", "prompt source: builtin, hh-rlhf[:path], tldr[:path] or a .jsonl file")
    prompt_split: str = option("eval", "split of the prompt source (eval: prompts no policy trained on)")
    num_prompts: int = option(8, "prompts per comparison (one pair each)")
    prompt_seed: int = option(0, "seed of the prompt shuffle that picks the prompts")
    categories: list[str] | None = option(None, "only prompts of these categories, e.g. everyday borderline")
    comparisons: list[dict] = option([], "list of {a: SYSTEM, b: SYSTEM}, SYSTEM = {policy: SPEC, weights: [...], "
                                     "name: LABEL (optional, default SPEC)}; YAML only")
    max_new_tokens: int = option(MAX_NEW_TOKENS, "longest response in tokens")
    temperature: float = option(TEMPERATURE, "sampling temperature")
    top_p: float = option(TOP_P, "nucleus sampling threshold")
    greedy: bool = option(False, "greedy decoding instead of sampling")
    seed: int = option(0, "generation seed (every policy gets the same draws)")
    batch_size: int = option(16, "responses per generate call")

    def __post_init__(self):
        def bad(msg):
            raise MoodpoError(msg)

        if not isinstance(self.name, str) or not 1 <= len(self.name.strip()) <= MAX_NAME_CHARS:
            bad(f"name must be 1 to {MAX_NAME_CHARS} characters")
        self.name = self.name.strip()
        if not self.objectives:
            bad("objectives must name at least one objective")
        if len(set(self.objectives)) != len(self.objectives):
            bad(f"objectives has duplicates: {self.objectives}")
        if len(self.instructions.strip()) > MAX_INSTRUCTIONS_CHARS:
            bad(f"instructions are {len(self.instructions.strip()):,} characters; shorten them to "
                f"{MAX_INSTRUCTIONS_CHARS:,}")
        self.instructions = self.instructions.strip()
        if OVERALL in self.objectives:
            bad(f"{OVERALL!r} is the overall question, not an objective; set overall: true instead")
        if self.prompt_split not in SPLITS:
            bad(f"prompt_split must be one of {', '.join(SPLITS)}, got {self.prompt_split!r}")
        for name in ("overlap", "num_prompts", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            bad(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            bad(f"top_p must be in (0, 1], got {self.top_p}")
        if self.categories is not None and not self.categories:
            bad("categories must name at least one category, or be left out for all")
        if not isinstance(self.comparisons, list) or not self.comparisons:
            bad("comparisons must list at least one {a: {policy: ..., weights: [...]}, b: {...}}")
        self.comparisons = [self._comparison(c, n) for n, c in enumerate(self.comparisons, 1)]
        policies: dict[str, str] = {}
        for c in self.comparisons:
            for side in (c["a"], c["b"]):
                if policies.setdefault(side["name"], side["policy"]) != side["policy"]:
                    bad(f"system name {side['name']!r} is used for two policies ({policies[side['name']]} and "
                        f"{side['policy']}); give each policy its own name")

    def _comparison(self, comparison, n: int) -> dict:
        where = f"comparison {n}"
        if not isinstance(comparison, dict) or set(comparison) != {"a", "b"}:
            raise MoodpoError(f"{where} must have exactly the keys a and b, each {{policy: ..., weights: [...]}}")
        sides = {}
        for key, side in comparison.items():
            if not isinstance(side, dict) or not set(side) >= {"policy", "weights"} or \
                    not set(side) <= {"policy", "weights", "name"}:
                raise MoodpoError(f"{where}, {key}: give policy, weights and optionally name")
            policy = side["policy"]
            if not isinstance(policy, str) or not policy.strip():
                raise MoodpoError(f"{where}, {key}: policy must be a run folder, checkpoint, soups set or base:MODEL")
            weights = side["weights"]
            if isinstance(weights, str):
                weights = split_values(weights)
            if not isinstance(weights, (list, tuple)):
                raise MoodpoError(f"{where}, {key}: weights must be a list, e.g. [0.7, 0.3]")
            try:
                weights = validate_weights(weights, len(self.objectives)).tolist()
            except MoodpoError as e:
                raise MoodpoError(f"{where}, {key}: {e}") from None
            name = side.get("name", policy)
            if not isinstance(name, str) or not name.strip() or "@" in name:
                raise MoodpoError(f"{where}, {key}: name must be non-empty text without '@'")
            sides[key] = {"policy": policy.strip(), "weights": weights, "name": name.strip()}
        if (sides["a"]["policy"], sides["a"]["weights"]) == (sides["b"]["policy"], sides["b"]["weights"]):
            raise MoodpoError(f"{where} compares a system with itself; change the policy or the weights of one side")
        return sides

    @property
    def questions(self) -> list[str]:
        return [*self.objectives, OVERALL] if self.overall else list(self.objectives)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


STUDY_FIELDS = {f.name: f for f in dataclasses.fields(StudyConfig)}


def _as_bool(v) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return v.lower() in ("true", "yes", "1", "on")
    raise ValueError(v)


def _as_names(v) -> list[str]:
    items = v.replace(",", " ").split() if isinstance(v, str) else v
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
        raise ValueError(v)
    return list(items)


def _as_int(v) -> int:
    if isinstance(v, (bool, float)):
        raise ValueError(v)
    return int(v)


def _as_float(v) -> float:
    if isinstance(v, bool):
        raise ValueError(v)
    return float(v)


def _as_text(v) -> str:
    if not isinstance(v, str):
        raise ValueError(v)
    return v


def _as_comparisons(v) -> list:
    if not isinstance(v, list):
        raise ValueError(v)
    return v


_PARSERS = {"name": _as_text, "objectives": _as_names, "overall": _as_bool, "overlap": _as_int,
            "instructions": _as_text, "reveal_systems": _as_bool, "prompts": _as_text,
            "prompt_split": _as_text, "num_prompts": _as_int, "prompt_seed": _as_int, "categories": _as_names,
            "comparisons": _as_comparisons, "max_new_tokens": _as_int, "temperature": _as_float,
            "top_p": _as_float, "greedy": _as_bool, "seed": _as_int, "batch_size": _as_int}


_KINDS = {_as_text: "text", _as_names: "a list of names", _as_bool: "a boolean (true or false)", _as_int: "an integer",
          _as_float: "a number", _as_comparisons: "a list of {a: ..., b: ...}"}


def coerce_study_field(name: str, value: Any) -> Any:
    """A YAML or command-line value as the field's type, with a one-line error if it is not one."""
    if name not in STUDY_FIELDS:
        raise MoodpoError(f"unknown study config field {name!r}; see `python -m moodpo make-study --help`")
    if name == "categories" and value in (None, "none", ["none"]):
        return None
    if isinstance(value, list) and len(value) == 1 and name not in ("objectives", "categories", "comparisons"):
        value = value[0]  # argparse hands every override over as a list
    try:
        return _PARSERS[name](value)
    except (ValueError, TypeError):
        kind = _KINDS[_PARSERS[name]]
        raise MoodpoError(f"study config field {name!r} must be {kind}, got {value!r}") from None


def load_study_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """YAML file (optional) plus overrides -> a validated StudyConfig."""
    values: dict[str, Any] = {}
    if path is not None:
        for key, value in read_yaml(path).items():
            if key not in STUDY_FIELDS:
                raise MoodpoError(f"unknown study config field {key!r} in {path}")
            values[key] = coerce_study_field(key, value)
    for key, value in (overrides or {}).items():
        values[key] = coerce_study_field(key, value)
    return StudyConfig(**values)


def select_prompts(spec: StudyConfig) -> list[Prompt]:
    """The study's prompts: the source's split, shuffled with prompt_seed, filtered by category,
    the first num_prompts."""
    prompts = load_prompts(spec.prompts, spec.prompt_split, seed=spec.prompt_seed)
    if spec.categories:
        prompts = filter_categories(prompts, spec.categories, f"{spec.prompts} ({spec.prompt_split})")
    return prompts[:spec.num_prompts]


def _generation_settings(spec: StudyConfig):
    from moodpo.sampling_settings import GenerationSettings

    return GenerationSettings(max_new_tokens=spec.max_new_tokens, temperature=spec.temperature, top_p=spec.top_p,
                              do_sample=not spec.greedy)


def _generate(policy, weights: Sequence[Sequence[float]], prompts: Sequence[Prompt], *, settings, seed: int,
              batch_size: int, bar=None) -> list[list[str]]:
    """Responses [G][P] of one policy to every prompt at every weight vector, in batched generate
    calls (weight-major), batch b seeded with batch_seed(seed, b) as in evaluation."""
    from moodpo.eval.evaluate import batch_seed

    rows = [(g, p) for g in range(len(weights)) for p in range(len(prompts))]
    out = [[""] * len(prompts) for _ in weights]
    for b, start in enumerate(range(0, len(rows), batch_size)):
        chunk = rows[start:start + batch_size]
        texts = policy.generate([prompts[p].text for _, p in chunk], [weights[g] for g, _ in chunk],
                                settings=settings, seed=batch_seed(seed, b))
        for (g, p), text in zip(chunk, texts):
            out[g][p] = text
        if bar is not None:
            bar.update(len(chunk))
    return out


def _pairs(prompts: Sequence[Prompt], system_a: tuple[str, Sequence[float]], system_b: tuple[str, Sequence[float]],
           responses_a: Sequence[str], responses_b: Sequence[str], scores_a: np.ndarray, scores_b: np.ndarray,
           objectives: Sequence[str]) -> list[dict]:
    """Pair dicts (VoteStore.create_study's input) for one comparison; scores are (P, K)."""
    return [{"prompt_id": p.id, "prompt": p.text,
             "system_a": system_a[0], "weights_a": tuple(system_a[1]), "response_a": responses_a[i],
             "system_b": system_b[0], "weights_b": tuple(system_b[1]), "response_b": responses_b[i],
             "scores_a": dict(zip(objectives, map(float, scores_a[i]))),
             "scores_b": dict(zip(objectives, map(float, scores_b[i])))}
            for i, p in enumerate(prompts)]


def _as_prompts(prompts: Sequence[Prompt | str]) -> list[Prompt]:
    """Prompt objects; a bare string gets a stable id from its text ("live-...")."""
    out = []
    for p in prompts:
        if isinstance(p, str):
            if not p.strip():
                raise MoodpoError("a prompt is empty; type a request")
            p = Prompt(f"live-{hashlib.sha1(p.strip().encode()).hexdigest()[:10]}", p.strip(), "live")
        out.append(p)
    return out


def generate_pairs(policy_a, weights_a: Sequence[float], policy_b, weights_b: Sequence[float],
                   prompts: Sequence[Prompt | str], objectives: Sequence, *, settings=None, seed: int = 0,
                   batch_size: int = 16, name_a: str | None = None, name_b: str | None = None) -> list[dict]:
    """Pairs of (policy_a at weights_a, policy_b at weights_b) responses to each prompt, scored by
    every objective on the prompt without the prefix: the input of VoteStore.add_pairs (the app's
    live pairs) and create_study. One policy at two weights takes one batched pass.

    policy_a, policy_b: loaded `moodpo.policy.Policy`s, steered on the K objectives; objectives:
    K names or Objective objects (the study's). Names default to the policies' names.
    """
    from moodpo.objectives import get_objective, score_all

    scorers = [get_objective(o) if isinstance(o, str) else o for o in objectives]
    for policy in (policy_a, policy_b):
        if policy.num_objectives != len(scorers):
            raise MoodpoError(f"policy {policy.name} is steered on {policy.num_objectives} objectives, "
                              f"the study has {len(scorers)}")
    prompts = _as_prompts(prompts)
    wa, wb = policy_a.check_weights(weights_a).tolist(), policy_b.check_weights(weights_b).tolist()
    if policy_a is policy_b:
        responses_a, responses_b = _generate(policy_a, [wa, wb], prompts, settings=settings, seed=seed,
                                             batch_size=batch_size)
    else:
        [responses_a] = _generate(policy_a, [wa], prompts, settings=settings, seed=seed, batch_size=batch_size)
        [responses_b] = _generate(policy_b, [wb], prompts, settings=settings, seed=seed, batch_size=batch_size)
    texts = [p.text for p in prompts]
    scores = score_all(scorers, texts + texts, responses_a + responses_b)
    return _pairs(prompts, (name_a or policy_a.name, wa), (name_b or policy_b.name, wb), responses_a, responses_b,
                  scores[:len(prompts)], scores[len(prompts):], [s.name for s in scorers])


def _resolve(policy: str, runs_dir: str | Path | None) -> str:
    """A policy spec as load_policy takes it: relative paths are under runs_dir when one is given."""
    if policy == "base" or policy.startswith("base:") or runs_dir is None or Path(policy).is_absolute():
        return policy
    return str(Path(runs_dir) / policy)


def _load_policy(spec: str, objectives: Sequence[str]):
    """A policy steered on the study's objectives, on the GPU when there is one."""
    import torch

    from moodpo.policy import load_policy

    policy = load_policy(spec, objectives=objectives)
    if list(policy.objectives) != list(objectives):
        raise MoodpoError(f"policy {spec} is steered on ({', '.join(policy.objectives)}), the study's objectives "
                          f"are ({', '.join(objectives)}); set objectives to match")
    if torch.cuda.is_available():
        policy.model.to("cuda")
    return policy


def make_study(spec: StudyConfig, data_dir: str | Path, *, runs_dir: str | Path | None = None,
               progress: bool = True) -> Study:
    """Generate every system's responses (each policy loaded once, all its weight vectors in
    batched calls), score them, and store the study with one pair per (comparison, prompt).

    Everything that can be checked without a model (the name is free, the objectives and prompts
    exist) is checked before the first policy loads.
    """
    from tqdm.auto import tqdm

    from moodpo.objectives import get_objective, score_all

    store = VoteStore(data_dir)
    if any(s.name == spec.name for s in store.studies()):
        raise VoteError(f"a study named {spec.name!r} exists already in {store.path}; choose another --name")
    scorers = [get_objective(o) for o in spec.objectives]
    prompts = select_prompts(spec)
    # A system appearing in several comparisons is generated once.
    systems = list(dict.fromkeys((side["name"], side["policy"], tuple(side["weights"]))
                                 for c in spec.comparisons for side in (c["a"], c["b"])))
    by_policy: dict[str, list[tuple[float, ...]]] = {}
    for _, policy, weights in systems:
        by_policy.setdefault(policy, []).append(weights)
    settings = _generation_settings(spec)
    responses: dict[tuple[str, tuple[float, ...]], list[str]] = {}
    with tqdm(total=len(systems) * len(prompts), desc=f"generate {spec.name}", unit="resp",
              disable=not progress) as bar:
        for policy_spec, weight_list in by_policy.items():
            policy = _load_policy(_resolve(policy_spec, runs_dir), spec.objectives)
            texts = _generate(policy, weight_list, prompts, settings=settings, seed=spec.seed,
                              batch_size=spec.batch_size, bar=bar)
            responses.update({(policy_spec, w): t for w, t in zip(weight_list, texts)})
            del policy  # one model in memory at a time
    texts = [p.text for p in prompts]
    keys = list(responses)
    # Rewards see the prompt without the prefix, as in training.
    scores = score_all(scorers, texts * len(keys), [r for k in keys for r in responses[k]])
    scored = {k: scores[n * len(prompts):(n + 1) * len(prompts)] for n, k in enumerate(keys)}
    pairs = []
    for c in spec.comparisons:
        a, b = c["a"], c["b"]
        ka, kb = (a["policy"], tuple(a["weights"])), (b["policy"], tuple(b["weights"]))
        pairs += _pairs(prompts, (a["name"], ka[1]), (b["name"], kb[1]), responses[ka], responses[kb],
                        scored[ka], scored[kb], spec.objectives)
    config = {**spec.to_dict(), "prompt_ids": [p.id for p in prompts],
              "runs_dir": str(runs_dir) if runs_dir is not None else None}
    return store.create_study(spec.name, pairs, questions=spec.questions, objectives=spec.objectives,
                              overlap=spec.overlap, config=config, instructions=spec.instructions,
                              reveal_systems=spec.reveal_systems)
