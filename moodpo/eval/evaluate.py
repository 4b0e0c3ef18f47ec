"""Pareto evaluation of a steerable policy: sweep a simplex grid of weights, generate, score.

    policy = load_policy("runs/default")
    result = evaluate_policy(policy, objectives, prompts, simplex_grid(2, 11), settings=..., seed=0)
    write_eval(result, "runs/default/eval")
    compare_results([load_eval("runs/a/eval"), load_eval("runs/b/eval")])

Every (prompt, weight, sample) row goes through `Policy.generate` in batches of `batch_size`
responses, weight-major (all prompts of weight 0, then weight 1, ...), each batch with its own
seed derived from (seed, batch index). Identical prompts, grid, seed, batch size and generation
settings therefore give every system the same draw, and two evaluations with the same inputs
give identical files. Objectives score the prompt *without* the conditioning prefix, as in training.

Files written by `write_eval` into the output folder:

eval.csv, eval.jsonl   one row per weight point, the eval table of `moodpo.plots`:
    system            str    the policy's name (run folder name, "soups (...)", "base (...)")
    w_<objective>     float  weight on each objective, rows on the simplex
    <objective>       float  mean raw score over prompts (and samples)
    <objective>_lo/hi float  95% percentile bootstrap interval over prompts (seed 0, 1000 draws)
    length            float  mean response length in policy tokens (special tokens excluded)
    step              int    training step of the evaluated adapter (null for base and soups)
    alpha             float  the run's Dirichlet alpha (null for base, soups, per-objective alpha)
    decline_rate, echo_rate, degenerate_rate
                      float  share of the responses at this weight that decline, restate the prompt
                             or are degenerate (`moodpo.eval.audit`; never used in training)
generations.jsonl      one line per response:
    system, prompt_id, prompt, category, sample (0..S-1), weights {objective: w},
    response, scores {objective: raw score}, length (tokens),
    audit {declined, echo, degenerate: bool}
summary.json           system, kind, source, objectives, objective_versions {objective: version or
    null}, policy_objectives, grid,
    num_weights, prompts {source, split, count}, seed, samples_per_prompt, batch_size,
    settings (GenerationSettings), sampling (`Policy.numerics()`: the sampler and its weights'
    dtype), step, alpha, wall_seconds and the measures:
    hypervolume {value, reference_point, reference}: the mean points' hypervolume against the
        reference point of `fixed_reference` (the objectives' floors when every one has a floor,
        so evaluations on the same objectives are comparable; else the worst mean minus 10% of
        the span of this evaluation's own points, comparable across systems only in `compare`);
        reference says which, in one line.
    steerability {objective: {spearman, monotone_fraction, n_steps}}  (moodpo.eval.pareto.steerability)
    interior_share {objective: {share, lo, hi, corner_gap, n_edges}}: the share of the
        corner-to-corner change of the objective's mean score made between weights 0.25 and 0.75
        on it (0.5 a straight trade-off, about 0 a switch at a corner; NaN when the objective
        barely moves between the corners or the grid has fewer than 4 points per edge), with a
        95% bootstrap interval over prompts  (moodpo.eval.pareto.interior_share)
    adherence_spread {mean_scalarised_var, per_weight: [{weights, scalarised_mean,
        scalarised_var, objective_std {objective: std}}]}  (variance across prompts at fixed w)
    length {mean, per_weight: [{weights, length}]}
    length_controlled {hypervolume, raw_hypervolume, reference_point, slope_per_token}: the
        front recomputed with each objective's linear dependence on length removed (fit over
        all responses), both hypervolumes against one reference point covering both fronts.
    audit {rules, per_weight: [{weights, category ("all" first), n, decline_rate, echo_rate,
        degenerate_rate, answered_rate, mean_tokens}], decline_phrasings {declines, distinct,
        top}: how many ways the declines over the grid begin}  (moodpo.eval.audit)
front.html             interactive plotly front (2 objectives) or pairwise projections (3+).

`append_training_eval` appends the eval-table rows (with `step`) of a small grid to
`<output_dir>/eval.jsonl` during training, for the app's live front.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from moodpo.eval.audit import FLAGS as AUDIT_FLAGS, rate_column
from moodpo.data import Prompt
from moodpo.errors import MoodpoError
from moodpo.eval.pareto import (adherence_spread, bootstrap_ci, front_dominance, hypervolume, interior_share,
                           length_controlled, paired_bootstrap, reference_point, steerability)
from moodpo.policy import Policy
from moodpo.runs import (EVAL_DIR, EVAL_LOG, FRONT_FILE, GENERATIONS_FILE, SUMMARY_FILE, TABLE_CSV, TABLE_JSONL,
                         atomic_write, jsonable, jsonl_text, rewrite_jsonl_before)
from moodpo.sampling_settings import GenerationSettings

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64


@dataclass
class EvalResult:
    """Everything one evaluation produced; shapes P prompts, G weights, S samples, K objectives."""

    system: str
    objectives: list[str]          # K scoring objectives, the table's column names
    weights: np.ndarray            # (G, K) grid, rows on the simplex
    prompts: list[Prompt]          # P
    sample_scores: np.ndarray      # (P, G, S, K) raw objective scores
    sample_lengths: np.ndarray     # (P, G, S) response lengths in tokens
    responses: list                # [P][G][S] response texts
    meta: dict = field(default_factory=dict)

    @property
    def scores(self) -> np.ndarray:
        """Per-prompt per-weight scores, mean over samples: (P, G, K)."""
        return self.sample_scores.mean(axis=2)

    @property
    def lengths(self) -> np.ndarray:
        """Per-prompt per-weight mean length: (P, G)."""
        return self.sample_lengths.mean(axis=2)

    @property
    def points(self) -> np.ndarray:
        """Mean score per weight, the front's points: (G, K)."""
        return self.scores.mean(axis=0)

    def flat_texts(self) -> tuple[list[str], list[str]]:
        """(prompts, responses), one entry per response in (prompt, weight, sample) order."""
        per_prompt = len(self.weights) * self.sample_scores.shape[2]
        prompts = [p.text for p in self.prompts for _ in range(per_prompt)]
        return prompts, [x for per_p in self.responses for per_g in per_p for x in per_g]

    @cached_property
    def audit(self) -> dict[str, np.ndarray]:
        """The audit flags of every response (`moodpo.eval.audit`): {flag: bool (P, G, S)}."""
        from moodpo.eval.audit import audit_flags

        prompts, responses = self.flat_texts()
        return {k: v.reshape(self.sample_lengths.shape) for k, v in audit_flags(prompts, responses).items()}

    def audit_rows(self) -> list[dict]:
        """Audit rates per weight point and prompt category ("all" first), `moodpo.eval.audit.audit_table`."""
        from moodpo.eval.audit import audit_table

        p_n, g_n, s_n = self.sample_lengths.shape
        weight_index = np.broadcast_to(np.arange(g_n)[None, :, None], (p_n, g_n, s_n)).ravel()
        categories = np.broadcast_to(np.array([p.category for p in self.prompts], dtype=object)[:, None, None],
                                     (p_n, g_n, s_n)).ravel()
        rows = audit_table({k: v.ravel() for k, v in self.audit.items()}, self.sample_lengths.ravel(),
                           weight_index, categories)
        return [{"weights": self.weight_dict(r.pop("weight")), **r} for r in rows]

    def decline_phrasings(self) -> dict:
        """Distinct openings of the declined responses over the whole grid (`moodpo.eval.audit`)."""
        from moodpo.eval.audit import decline_phrasings

        return decline_phrasings(self.flat_texts()[1], self.audit["declined"].ravel())

    def weight_dict(self, g: int) -> dict:
        return {o: float(w) for o, w in zip(self.objectives, self.weights[g])}

    def table(self, *, n_boot: int = 1000) -> pd.DataFrame:
        """The eval table (schema in the module docstring), one row per weight point."""
        scores, points, lengths = self.scores, self.points, self.lengths
        rows = []
        for g in range(len(self.weights)):
            lo, hi = bootstrap_ci(scores[:, g, :], n_boot=n_boot, seed=0)
            row = {"system": self.system}
            row.update({f"w_{o}": float(w) for o, w in zip(self.objectives, self.weights[g])})
            for k, o in enumerate(self.objectives):
                row.update({o: float(points[g, k]), f"{o}_lo": float(lo[k]), f"{o}_hi": float(hi[k])})
            row.update(length=float(lengths[:, g].mean()), step=self.meta.get("step"),
                       alpha=_scalar_alpha(self.meta.get("alpha")))
            row.update({rate_column(flag): float(self.audit[flag][:, g].mean()) for flag in AUDIT_FLAGS})
            rows.append(row)
        return pd.DataFrame(rows)

    def generations(self) -> list[dict]:
        out = []
        for g in range(len(self.weights)):
            weights = self.weight_dict(g)
            for p, prompt in enumerate(self.prompts):
                for s in range(self.sample_scores.shape[2]):
                    out.append({
                        "system": self.system, "prompt_id": prompt.id, "prompt": prompt.text,
                        "category": prompt.category, "sample": s, "weights": weights,
                        "response": self.responses[p][g][s],
                        "scores": {o: float(v) for o, v in zip(self.objectives, self.sample_scores[p, g, s])},
                        "length": int(self.sample_lengths[p, g, s]),
                        "audit": {flag: bool(self.audit[flag][p, g, s]) for flag in AUDIT_FLAGS},
                    })
        return out

    def summary(self) -> dict:
        """The measures of this evaluation (see the module docstring), JSON-ready."""
        points, objs = self.points, self.objectives
        ref, ref_source = fixed_reference(objs, [points])
        spread = adherence_spread(self.scores, self.weights)
        lc = length_controlled_points([self])[0]
        lc_ref = reference_point(points, lc)
        slopes = {o: _length_slope(self.sample_scores[..., k].ravel(), self.sample_lengths.ravel())
                  for k, o in enumerate(objs)}
        return jsonable({
            "system": self.system, "objectives": objs, "num_weights": len(self.weights),
            "num_prompts": len(self.prompts), **self.meta,
            "hypervolume": {"value": hypervolume(points, ref), "reference_point": ref, "reference": ref_source},
            "steerability": steerability(self.weights, points, objs),
            "interior_share": interior_share(self.weights, self.scores, objs),
            "adherence_spread": {
                "mean_scalarised_var": float(spread["scalarised_var"].mean()),
                "per_weight": [{"weights": self.weight_dict(g),
                                "scalarised_mean": spread["scalarised_mean"][g],
                                "scalarised_var": spread["scalarised_var"][g],
                                "objective_std": dict(zip(objs, spread["objective_std"][g]))}
                               for g in range(len(self.weights))],
            },
            "length": {"mean": float(self.lengths.mean()),
                       "per_weight": [{"weights": self.weight_dict(g), "length": float(self.lengths[:, g].mean())}
                                      for g in range(len(self.weights))]},
            "length_controlled": {"hypervolume": hypervolume(lc, lc_ref), "raw_hypervolume": hypervolume(points, lc_ref),
                                  "reference_point": lc_ref, "slope_per_token": slopes},
            "audit": {"rules": "moodpo.audit: declined, echo (restates the prompt), degenerate (empty, loop, "
                               "gibberish, markup, leaked tokens); rates over the samples, never used in training",
                      "per_weight": self.audit_rows(), "decline_phrasings": self.decline_phrasings()},
        })


def _scalar_alpha(alpha) -> float | None:
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        return float(alpha)
    return None


def _length_slope(scores: np.ndarray, lengths: np.ndarray) -> float:
    xc = lengths - lengths.mean()
    denom = (xc ** 2).sum()
    return float((xc * (scores - scores.mean())).sum() / denom) if denom > 0 else 0.0


def batch_seed(seed: int, index: int) -> int:
    """The seed of batch `index` of an evaluation seeded with `seed` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def eval_batches(num_prompts: int, num_weights: int, samples_per_prompt: int, batch_size: int
                 ) -> list[list[tuple[int, int]]]:
    """The (prompt, weight) rows of each generation batch of an evaluation: weight-major, about
    `batch_size` responses a batch; batch b is seeded with `batch_seed(seed, b)`."""
    rows = [(p, g) for g in range(num_weights) for p in range(num_prompts)]
    per_batch = max(1, batch_size // samples_per_prompt)
    return [rows[start:start + per_batch] for start in range(0, len(rows), per_batch)]


def evaluate_policy(policy: Policy, objectives: Sequence, prompts: Sequence[Prompt], grid_weights, *,
                    settings: GenerationSettings, seed: int = 0, samples_per_prompt: int = 1,
                    batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True, system: str | None = None,
                    meta: dict | None = None) -> EvalResult:
    """Generate for every (prompt, weight row) pair and score every objective.

    objectives: K callables `obj(prompts, responses) -> (N,)` with `.name`, position k standing
    for the policy's k-th objective (the weight it is conditioned on); grid_weights: (G, K).
    Rows go weight-major through `policy.generate` in batches of about `batch_size` responses
    (`samples_per_prompt` per row), batch b seeded with `batch_seed(seed, b)`.
    """
    from tqdm.auto import tqdm

    from moodpo.objectives import get_objective, score_all

    objectives = [get_objective(o) if isinstance(o, str) else o for o in objectives]
    weights = np.asarray(grid_weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != policy.num_objectives:
        raise MoodpoError(f"grid weights must have shape (G, {policy.num_objectives}), got {weights.shape}")
    weights = np.stack([policy.check_weights(w) for w in weights])
    if len(objectives) != policy.num_objectives:
        raise MoodpoError(f"{len(objectives)} scoring objectives for a policy conditioned on "
                          f"{policy.num_objectives} ({', '.join(policy.objectives)})")
    if not prompts:
        raise MoodpoError("no prompts to evaluate on")
    if samples_per_prompt < 1 or batch_size < 1:
        raise MoodpoError("samples_per_prompt and batch_size must be >= 1")
    p_n, g_n, s_n, k_n = len(prompts), len(weights), samples_per_prompt, len(objectives)
    sample_scores = np.zeros((p_n, g_n, s_n, k_n))
    sample_lengths = np.zeros((p_n, g_n, s_n), dtype=np.int64)
    responses = [[[""] * s_n for _ in range(g_n)] for _ in range(p_n)]
    t0 = time.perf_counter()
    bar = tqdm(total=p_n * g_n * s_n, desc=f"eval {system or policy.name}", unit="resp", disable=not progress)
    try:
        for b, chunk in enumerate(eval_batches(p_n, g_n, s_n, batch_size)):
            texts = policy.generate([prompts[p].text for p, _ in chunk], weights[[g for _, g in chunk]],
                                    settings=settings, seed=batch_seed(seed, b), num_samples=s_n)
            # Rewards see the prompt without the prefix, as in training.
            scored = score_all(objectives, [prompts[p].text for p, _ in chunk for _ in range(s_n)], texts)
            lengths = [len(ids) for ids in policy.tokenizer(texts, add_special_tokens=False)["input_ids"]]
            for i, (p, g) in enumerate(chunk):
                for s in range(s_n):
                    j = i * s_n + s
                    sample_scores[p, g, s] = scored[j]
                    sample_lengths[p, g, s] = lengths[j]
                    responses[p][g][s] = texts[j]
            bar.update(len(texts))
    finally:
        bar.close()
    info = {"kind": policy.kind, "source": policy.source, "policy_objectives": list(policy.objectives),
            "objective_versions": {o.name: getattr(o, "version", None) for o in objectives},
            "step": policy.step, "alpha": policy.alpha, "seed": seed, "samples_per_prompt": s_n,
            "batch_size": batch_size, "settings": dataclasses.asdict(settings), "sampling": policy.numerics(),
            "wall_seconds": round(time.perf_counter() - t0, 2), **(meta or {})}
    return EvalResult(system=system or policy.name, objectives=[o.name for o in objectives], weights=weights,
                      prompts=list(prompts), sample_scores=sample_scores, sample_lengths=sample_lengths,
                      responses=responses, meta=info)


def _floor(name: str) -> float | None:
    """The objective's floor (`Objective.floor`), None when it has none or cannot be loaded here."""
    from moodpo.objectives import get_objective

    try:
        floor = getattr(get_objective(name), "floor", None)
    except MoodpoError:
        return None
    return None if floor is None else float(floor)


def fixed_reference(objectives: Sequence[str], point_sets: Sequence[np.ndarray] | None = None,
                    ref=None) -> tuple[np.ndarray, str]:
    """The hypervolume reference point (K,) for K objectives and one line saying where it came from.

    In this order: `ref` (K finite numbers) when given; the objectives' floors when every one has
    a floor (`Objective.floor`), fixed, so a system's hypervolume does not depend on which others
    it is compared with; else the worst mean score minus 10% of the span over `point_sets` (each
    system's mean points, (G, K); `moodpo.eval.pareto.reference_point`), which does, and the line
    says so.
    """
    k = len(objectives)
    if ref is not None:
        values = np.asarray(ref, dtype=float).reshape(-1)
        if len(values) != k:
            raise MoodpoError(f"the reference point needs {k} values, one per objective ({', '.join(objectives)}), "
                              f"got {len(values)}")
        if not np.isfinite(values).all():
            raise MoodpoError(f"the reference point must be finite numbers, got {values.tolist()}")
        return values, "given reference point (fixed)"
    floors = [_floor(o) for o in objectives]
    if all(f is not None for f in floors):
        values = np.asarray(floors, dtype=float)
        if not np.isfinite(values).all():
            raise MoodpoError(f"objective floors must be finite numbers, got {values.tolist()}")
        return values, "the objectives' floors, their worst possible scores (fixed)"
    if not point_sets:
        raise MoodpoError("no reference point: give one, or the points to derive it from")
    missing = ", ".join(o for o, f in zip(objectives, floors) if f is None)
    return reference_point(*point_sets), (
        f"data-derived: worst mean score minus 10% of the span over the {len(point_sets)} system(s) here ({missing}: "
        "no floor); "
        "it depends on the systems compared, so hypervolumes are comparable only within one comparison")


def length_controlled_points(results: Sequence[EvalResult]) -> list[np.ndarray]:
    """Each result's front points (G, K) after removing the linear effect of length on every
    objective, with one slope fitted over all responses of all results (pooled, so the
    adjustment is the same for every system)."""
    k_n = len(results[0].objectives)
    flat = [r.sample_scores.reshape(-1, k_n) for r in results]
    sizes = np.cumsum([0] + [len(f) for f in flat])
    scores = np.concatenate(flat)
    lengths = np.concatenate([r.sample_lengths.ravel() for r in results]).astype(float)
    adjusted = np.stack([length_controlled(scores[:, k], lengths) for k in range(k_n)], axis=1)
    out = []
    for i, r in enumerate(results):
        per = adjusted[sizes[i]:sizes[i + 1]].reshape(r.sample_scores.shape)   # (P, G, S, K)
        out.append(per.mean(axis=(0, 2)))
    return out


def _table_records(table: pd.DataFrame) -> list[dict]:
    return [{k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()}
            for row in table.to_dict(orient="records")]


def front_figure(table: pd.DataFrame, title: str | None = None):
    """Pareto front (2 objectives) or pairwise projections (3+); None for a single objective."""
    from moodpo.plots import eval_objectives, pairwise_figures, pareto_figure

    objectives = eval_objectives(table)
    if len(objectives) < 2:
        return None
    if len(objectives) == 2:
        return pareto_figure(table, objectives[0], objectives[1], title=title)
    return pairwise_figures(table, objectives, title=title)


def write_eval(result: EvalResult, out_dir: str | Path) -> Path:
    """Write eval.csv, eval.jsonl, generations.jsonl, summary.json and front.html into out_dir."""
    from moodpo.plots import write_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = result.table()
    atomic_write(out / TABLE_CSV, table.to_csv(index=False))
    atomic_write(out / TABLE_JSONL, jsonl_text(_table_records(table)))
    atomic_write(out / GENERATIONS_FILE, jsonl_text(result.generations()))
    atomic_write(out / SUMMARY_FILE, json.dumps(result.summary(), indent=1, ensure_ascii=False) + "\n")
    fig = front_figure(table, title=f"{result.system}: mean score per weight ({len(result.prompts)} prompts)")
    if fig is not None:
        write_html(fig, out / FRONT_FILE)
    return out


def find_eval_dir(path: str | Path) -> Path:
    """An eval output folder, or a run folder holding one in `eval/`; MoodpoError otherwise."""
    p = Path(path)
    if not p.exists():
        raise MoodpoError(f"{p} does not exist")
    for candidate in (p, p / EVAL_DIR):
        if (candidate / SUMMARY_FILE).is_file() and (candidate / GENERATIONS_FILE).is_file():
            return candidate
    raise MoodpoError(f"{p} holds no eval data ({SUMMARY_FILE} and {GENERATIONS_FILE}, or an {EVAL_DIR}/ folder "
                      f"with them); run `python -m moodpo eval --run {p}` first")


def load_eval(path: str | Path) -> EvalResult:
    """Read an evaluation back from the folder `write_eval` wrote (or a run folder with eval/)."""
    folder = find_eval_dir(path)
    try:
        summary = json.loads((folder / SUMMARY_FILE).read_text())
        lines = [json.loads(ln) for ln in (folder / GENERATIONS_FILE).read_text().splitlines() if ln.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MoodpoError(f"eval data in {folder} is not valid JSON; rerun the evaluation") from None
    if not lines:
        raise MoodpoError(f"{folder / GENERATIONS_FILE} is empty; rerun the evaluation")
    objectives = list(summary.get("objectives") or lines[0]["scores"])
    prompt_index: dict[str, int] = {}
    weight_index: dict[tuple, int] = {}
    prompts, weights = [], []
    for row in lines:
        if row["prompt_id"] not in prompt_index:
            prompt_index[row["prompt_id"]] = len(prompts)
            prompts.append(Prompt(row["prompt_id"], row["prompt"], row.get("category", "")))
        key = tuple(round(row["weights"][o], 9) for o in objectives)
        if key not in weight_index:
            weight_index[key] = len(weights)
            weights.append([row["weights"][o] for o in objectives])
    s_n = max(row.get("sample", 0) for row in lines) + 1
    p_n, g_n, k_n = len(prompts), len(weights), len(objectives)
    scores = np.full((p_n, g_n, s_n, k_n), np.nan)
    lengths = np.zeros((p_n, g_n, s_n), dtype=np.int64)
    responses = [[[""] * s_n for _ in range(g_n)] for _ in range(p_n)]
    for row in lines:
        p = prompt_index[row["prompt_id"]]
        g = weight_index[tuple(round(row["weights"][o], 9) for o in objectives)]
        s = row.get("sample", 0)
        scores[p, g, s] = [row["scores"][o] for o in objectives]
        lengths[p, g, s] = row["length"]
        responses[p][g][s] = row["response"]
    if np.isnan(scores).any():
        raise MoodpoError(f"{folder / GENERATIONS_FILE} is incomplete: not every prompt has every weight")
    keep = ("kind", "source", "policy_objectives", "step", "alpha", "seed", "samples_per_prompt", "batch_size",
            "settings", "sampling", "wall_seconds", "grid", "prompts", "rescored", "objective_versions")
    meta = {k: summary[k] for k in keep if k in summary}
    return EvalResult(system=summary.get("system", folder.parent.name), objectives=objectives,
                      weights=np.asarray(weights, dtype=np.float64), prompts=prompts, sample_scores=scores,
                      sample_lengths=lengths, responses=responses, meta=meta)


def pool_seeds(results: Sequence[EvalResult], system: str | None = None) -> EvalResult:
    """One system from evaluations of several training seeds: their samples side by side, (P, G,
    sum S, K). Each must score the same prompts, weights and objectives with the same generation
    settings, so a prompt's mean is over every seed's samples and a paired bootstrap over prompts
    carries the seeds' spread with it. meta["pooled"] lists the systems pooled, in order."""
    if len(results) < 2:
        raise MoodpoError("pooling needs at least two evaluations")
    first = results[0]
    for r in results[1:]:
        what = next((name for name, same in (
            ("objectives", r.objectives == first.objectives),
            ("prompts", [p.id for p in r.prompts] == [p.id for p in first.prompts]),
            ("weights", r.weights.shape == first.weights.shape and np.allclose(r.weights, first.weights)),
            ("generation settings", r.meta.get("settings") == first.meta.get("settings")),
        ) if not same), None)
        if what:
            raise MoodpoError(f"cannot pool {r.system} with {first.system}: their {what} differ; "
                              "evaluate every seed with the same command")
    samples = [r.sample_scores.shape[2] for r in results]
    responses = [[sum((r.responses[p][g] for r in results), []) for g in range(len(first.weights))]
                 for p in range(len(first.prompts))]
    meta = {**first.meta, "samples_per_prompt": int(sum(samples)),
            "pooled": [r.system for r in results], "pooled_samples": samples}
    meta.pop("wall_seconds", None)
    return dataclasses.replace(first, system=system or first.system, responses=responses, meta=meta,
                               sample_scores=np.concatenate([r.sample_scores for r in results], axis=2),
                               sample_lengths=np.concatenate([r.sample_lengths for r in results], axis=2))


def rescore(result: EvalResult, objectives: Sequence[str] | None = None) -> EvalResult:
    """The same responses scored again (for when an objective changed): by the evaluation's
    objectives as they are defined now, or by `objectives`, one per column in order (e.g.
    "helpfulness@v1"). No generation, so the draw stays exactly the one evaluated.
    meta["rescored"] records the date, meta["objective_versions"] the versions now used."""
    from moodpo.objectives import objective_versions, score_all

    names = list(objectives) if objectives else list(result.objectives)
    if len(names) != len(result.objectives):
        raise MoodpoError(f"{len(names)} objectives for an evaluation of {len(result.objectives)} "
                          f"({', '.join(result.objectives)}); give one per column")
    prompts, responses = result.flat_texts()
    scores = score_all(names, prompts, responses).reshape(*result.sample_lengths.shape, -1)
    if not np.isfinite(scores).all():
        raise MoodpoError(f"rescoring {result.system}: an objective returned NaN or inf")
    return dataclasses.replace(result, objectives=names, sample_scores=scores,
                               meta={**result.meta, "rescored": time.strftime("%Y-%m-%d"),
                                     "objective_versions": objective_versions(names)})


def _weight_keys(weights: np.ndarray) -> list[tuple]:
    return [tuple(np.round(w, 9)) for w in weights]


def matched(*results: EvalResult) -> tuple[list[np.ndarray], np.ndarray]:
    """Scores of each result on the prompts and weights that every one of them evaluated, in the
    first's order: a list of (P', G', K) and the weights (G', K)."""
    prompt_rows = [{p.id: i for i, p in enumerate(r.prompts)} for r in results]
    weight_rows = [{key: i for i, key in enumerate(_weight_keys(r.weights))} for r in results]
    prompts = [p.id for p in results[0].prompts if all(p.id in rows for rows in prompt_rows)]
    keys = [key for key in _weight_keys(results[0].weights) if all(key in rows for rows in weight_rows)]
    scores = [r.scores[np.ix_([pr[pid] for pid in prompts], [wr[key] for key in keys])]
              for r, pr, wr in zip(results, prompt_rows, weight_rows)]
    return scores, results[0].weights[[weight_rows[0][key] for key in keys]]


def compare_results(results: Sequence[EvalResult], names: Sequence[str] | None = None, *, ref=None,
                    n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Compare systems against the first: (table, details).

    Every hypervolume is against one reference point from `fixed_reference(objectives, points,
    ref)`: `ref` when given, else the objectives' floors, else derived from the systems' mean
    points (then it depends on which systems are compared). Intervals are 95% percentile
    bootstrap intervals from `moodpo.eval.pareto.paired_bootstrap`: n_boot draws of prompts (seeded),
    each draw the same prompts for every system, on the prompts and weights all systems share.

    Table columns: system, points, hypervolume (of the system's mean points), hv_lo, hv_hi (its
    interval), hv_diff, hv_diff_lo, hv_diff_hi (hypervolume minus the first system's, paired
    interval; NaN for the first), hv_length_controlled (after the pooled length adjustment,
    against a reference point over all systems' adjusted points), vs_first (dominance verdict of
    this system's front against the first's), first_dominated (fraction of the first system's
    front this one strictly dominates), steer_<objective> (Spearman of weight and score),
    mono_<objective> (monotone fraction), interior_<objective> (interior share, see
    `moodpo.eval.pareto.interior_share`), win_rate, win_lo, win_hi (this system over the first on
    the weighted reward at matched prompts and weights, ties half, interval from the same
    draws; NaN for the first), length, and the audit rates over the whole grid and at the worst
    weight point (decline_rate, max_decline_rate, echo_rate, max_echo_rate, degenerate_rate,
    max_degenerate_rate; `moodpo.eval.audit`), declines (declined responses over the grid) and
    decline_phrasings (their distinct openings: it grows with declines, so compare it at similar
    counts). Objectives must have one definition version across
    the systems (MoodpoError otherwise). details: objectives, reference_point, reference (where
    it came from), length_controlled_reference_point, and paired {prompts, weights, n_boot,
    seed}: how many prompts and weights the paired draws used.
    """
    if not results:
        raise MoodpoError("nothing to compare")
    results = _aligned(results)
    objectives = results[0].objectives
    names = _unique_names(list(names) if names else [r.system for r in results])
    points = [r.points for r in results]
    ref, ref_source = fixed_reference(objectives, points, ref)
    paired, p_n, g_n = _paired_measures(results, names, ref, n_boot=n_boot, seed=seed)
    lc = length_controlled_points(results)
    lc_ref = reference_point(*lc)
    rows = []
    for i, (r, name) in enumerate(zip(results, names)):
        row = {"system": name, "points": len(r.weights), "hypervolume": hypervolume(points[i], ref),
               "hv_lo": float(paired["hv_lo"][i]), "hv_hi": float(paired["hv_hi"][i])}
        for key in ("hv_diff", "hv_diff_lo", "hv_diff_hi"):
            row[key] = float(paired[key][i]) if i else float("nan")
        row["hv_length_controlled"] = hypervolume(lc[i], lc_ref)
        row.update(_against_first(points[i], points[0]) if i else {"vs_first": "-", "first_dominated": float("nan")})
        row.update(_steering_columns(r, points[i], n_boot=n_boot, seed=seed))
        for key in ("win_rate", "win_lo", "win_hi"):
            row[key] = float(paired[key][i]) if i else float("nan")
        row["length"] = float(r.lengths.mean())
        row.update(_audit_columns(r))
        rows.append(row)
    details = {"objectives": objectives, "reference_point": ref, "reference": ref_source,
               "length_controlled_reference_point": lc_ref,
               "paired": {"prompts": p_n, "weights": g_n, "n_boot": n_boot, "seed": seed}}
    return pd.DataFrame(rows), jsonable(details)


def _aligned(results: Sequence[EvalResult]) -> list[EvalResult]:
    """The results with the first's objective order, after checking they share objectives and versions."""
    objectives = results[0].objectives
    for r in results[1:]:
        if sorted(r.objectives) != sorted(objectives):
            raise MoodpoError(f"cannot compare {r.system} (objectives {r.objectives}) with {results[0].system} "
                              f"(objectives {objectives}): evaluate both on the same objectives")
    results = [_reorder(r, objectives) for r in results]
    _check_versions(results)
    return results


def _paired_measures(results: Sequence[EvalResult], names: list[str], ref, *, n_boot: int,
                     seed: int) -> tuple[dict[str, np.ndarray], int, int]:
    """paired_bootstrap on the prompts and weights all systems share (NaN when they share none):
    (measures, each of shape (S,); shared prompts; shared weights)."""
    shared, shared_weights = matched(*results)
    p_n, g_n = shared[0].shape[:2]
    first_prompts, first_weights = [p.id for p in results[0].prompts], _weight_keys(results[0].weights)
    for r, name in zip(results[1:], names[1:]):
        if [p.id for p in r.prompts] != first_prompts or _weight_keys(r.weights) != first_weights:
            log.warning("%s was evaluated on other prompts or weights than %s: hypervolumes use each system's own, "
                        "intervals, differences and win rates only the %d prompts and %d weights all systems share",
                        name, names[0], p_n, g_n)
    if p_n and g_n:
        return paired_bootstrap(shared, shared_weights, ref, n_boot=n_boot, seed=seed), p_n, g_n
    log.warning("the systems share no prompt and weight: no intervals, differences or win rates")
    nan = np.full(len(results), np.nan)
    keys = ("hv_lo", "hv_hi", "hv_diff", "hv_diff_lo", "hv_diff_hi", "win_rate", "win_lo", "win_hi")
    return {key: nan for key in keys}, p_n, g_n


def _against_first(points: np.ndarray, first: np.ndarray) -> dict:
    dom = front_dominance(points, first)
    return {"vs_first": {"A dominates": "dominates", "B dominates": "dominated"}.get(dom["verdict"], "neither"),
            "first_dominated": dom["frac_b_dominated_by_a"]}


def _steering_columns(r: EvalResult, points: np.ndarray, *, n_boot: int, seed: int) -> dict:
    steer = steerability(r.weights, points, r.objectives)
    interior = interior_share(r.weights, r.scores, r.objectives, n_boot=n_boot, seed=seed)
    row = {}
    for o in r.objectives:
        row[f"steer_{o}"] = steer[o]["spearman"]
        row[f"mono_{o}"] = steer[o]["monotone_fraction"]
        row[f"interior_{o}"] = interior[o]["share"]
    return row


def _audit_columns(r: EvalResult) -> dict:
    row = {}
    for flag, values in r.audit.items():
        if flag in AUDIT_FLAGS:
            # The whole grid, and the worst weight point: a policy that degenerates at one corner.
            per_weight = values.mean(axis=(0, 2))
            row[rate_column(flag)] = float(values.mean())
            row[f"max_{rate_column(flag)}"] = float(per_weight.max())
    phrasings = r.decline_phrasings()
    row.update(declines=phrasings["declines"], decline_phrasings=phrasings["distinct"])
    return row


def _check_versions(results: Sequence[EvalResult]) -> None:
    """Refuse to compare scores of one objective name under two definitions (helpfulness v1 and
    v2); evaluations from before versions were recorded pass with a warning."""
    seen: dict[str, tuple[int, str]] = {}
    for r in results:
        versions = r.meta.get("objective_versions")
        if versions is None:
            log.warning("%s does not record its objectives' versions (an evaluation from before 2026-12-01); "
                        "rescore it (`python -m moodpo rescore`) to compare on the current definitions", r.system)
            continue
        for o in r.objectives:
            v = versions.get(o)
            if v is not None and seen.setdefault(o, (v, r.system))[0] != v:
                raise MoodpoError(f"{o} is version {seen[o][0]} in {seen[o][1]} but version {v} in {r.system}; "
                                  "rescore one of them (`python -m moodpo rescore`) so both use one definition")


def _reorder(r: EvalResult, objectives: Sequence[str]) -> EvalResult:
    if list(r.objectives) == list(objectives):
        return r
    idx = [r.objectives.index(o) for o in objectives]
    return dataclasses.replace(r, objectives=list(objectives), weights=r.weights[:, idx],
                               sample_scores=r.sample_scores[..., idx])


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


def write_compare(results: Sequence[EvalResult], out_dir: str | Path, names: Sequence[str] | None = None,
                  *, legend_title: str = "system", ref=None) -> tuple[pd.DataFrame, dict]:
    """Compare (see `compare_results`), write compare.csv, compare.json (the details and the
    table's rows as "systems") and the overlaid compare.html into out_dir; returns (table, details)."""
    from moodpo.plots import write_html

    table, details = compare_results(results, names, ref=ref)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "compare.csv", table.to_csv(index=False))
    atomic_write(out / "compare.json", json.dumps({**details, "systems": _table_records(table)}, indent=1,
                                                   ensure_ascii=False) + "\n")
    fronts = []
    for r, name in zip(results, table["system"]):
        t = _reorder(r, details["objectives"]).table()
        t["system"] = name
        fronts.append(t)
    fig = front_figure(pd.concat(fronts, ignore_index=True), title="Pareto fronts: mean score per weight")
    if fig is not None:
        fig.update_layout(legend_title_text=legend_title)
        write_html(fig, out / "compare.html")
    write_html(declines_figure(results, table["system"], details["objectives"]), out / "declines.html")
    return table, details


def declines_figure(results: Sequence[EvalResult], names: Sequence[str], objectives: Sequence[str]):
    """Decline rate per prompt category against the weight on the last objective, one line per
    system (`moodpo.plots.decline_figure`), from each evaluation's audit."""
    from moodpo.plots import decline_figure

    rows = [{"system": name, **{f"w_{o}": w for o, w in row.pop("weights").items()}, **row}
            for r, name in zip(results, names) for row in r.audit_rows()]
    last = objectives[-1]
    return decline_figure(pd.DataFrame(rows), last,
                          title=f"Declined, by prompt category, against the weight on {last}")


def format_table(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")


def format_compare(table: pd.DataFrame) -> str:
    """`compare_results`' table as a person reads it: each measure with its interval in one
    column, those against the first system named after it; compare.csv has every column."""
    first = table["system"].iloc[0]

    def interval(row, key, lo, hi, sign=""):
        if not np.isfinite(row[key]):
            return "-"
        return f"{row[key]:{sign}.3f} [{row[lo]:{sign}.3f}, {row[hi]:{sign}.3f}]"

    rows = []
    for _, r in table.iterrows():
        row = {"system": r["system"], "hypervolume [95% CI]": interval(r, "hypervolume", "hv_lo", "hv_hi"),
               f"minus {first}": interval(r, "hv_diff", "hv_diff_lo", "hv_diff_hi", "+"),
               f"wins over {first}": interval(r, "win_rate", "win_lo", "win_hi"),
               f"front vs {first}": r["vs_first"]}
        for key in [c for c in table.columns if c.startswith("interior_")]:
            row[f"interior {key.removeprefix('interior_')}"] = f"{r[key]:.2f}" if np.isfinite(r[key]) else "-"
        row["tokens"] = f"{r['length']:.0f}"
        row["declined/echo/degenerate (worst)"] = " ".join(
            f"{r[f'{k}_rate']:.2f}({r[f'max_{k}_rate']:.2f})" for k in ("decline", "echo", "degenerate"))
        rows.append(row)
    return pd.DataFrame(rows).to_string(index=False)


def sanitize(name: str) -> str:
    """A folder name for an objective or model spec: 'hf:org/model' -> 'hf_org_model'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.") or "objective"


@lru_cache(maxsize=4)
def _held_out(source: str, limit: int, seed: int) -> tuple[Prompt, ...]:
    from moodpo.data import load_prompts, tuning_split

    return tuple(load_prompts(source, tuning_split(source), limit=limit, seed=seed))


def append_training_eval(trainer, path: str | Path | None = None) -> list[dict]:
    """Evaluate the trainer's current policy on a small grid and append its rows to `path`
    (default: the run's eval.jsonl). The CLI gives this to the Trainer as its `evaluate` callback.

    Grid: `config.eval_grid` points per simplex edge; prompts: the first `config.eval_prompts`
    of the "dev" split of the training source, or of its "eval" split where it has no dev split
    (recipes are chosen on this eval, so it stays off the reported eval prompts where it can);
    sampling with GenerationSettings' temperature and the training max_new_tokens, seeded by
    config.seed (the same draw at every step). The model's train mode and the torch RNG are
    restored, so training after an eval proceeds as it would without it (resume equivalence).
    Rows of an earlier attempt at this step or later (a resumed run re-running steps) are
    replaced. Only the main process evaluates.
    """
    from moodpo.weights import simplex_grid

    c, acc = trainer.config, trainer.accelerator
    rows: list[dict] = []
    prompts: list[Prompt] = []
    if acc.is_main_process:
        try:
            prompts = list(_held_out(c.prompts, c.eval_prompts, c.seed))
        except MoodpoError as e:  # a source without held-out prompts must not stop the run
            log.warning("skipping the in-training eval: %s", e)
    if prompts:
        model = acc.unwrap_model(trainer.model)
        policy = Policy(name=Path(c.output_dir).name, kind="moodpo", objectives=list(c.objectives), model=model,
                        tokenizer=trainer.tokenizer, base_model=c.model_name_or_path, source=str(c.output_dir),
                        prefix_template=c.prefix_template, prefix_item=c.prefix_item, step=trainer.step,
                        alpha=c.alpha, precision=c.precision)
        settings = GenerationSettings(max_new_tokens=c.max_new_tokens, max_prompt_tokens=c.max_prompt_tokens)
        was_training = model.training
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            model.eval()
            result = evaluate_policy(policy, trainer.objectives, prompts, simplex_grid(c.num_objectives, c.eval_grid),
                                     settings=settings, seed=c.seed, progress=False)
        finally:
            model.train(was_training)
            torch.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
        rows = _table_records(result.table(n_boot=200))
        rewrite_jsonl_before(Path(path) if path else Path(c.output_dir) / EVAL_LOG, trainer.step, rows)
    acc.wait_for_everyone()
    return rows
