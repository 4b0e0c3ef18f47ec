"""The policies shipped in runs/shipped/ (issue 19, built by bench/ship.py): each loads, and its eval table reproduces.

The first and the last batch of each shipped evaluation (its first weight point and its other
corner) are generated again with the evaluation's rows, seed and settings, so each is the same
draw as the shipped one; the check is that each objective's mean lies within the sampling
interval of the shipped mean (three standard errors of the difference), which an exact
reproduction passes with a difference of zero and another machine's floating-point rounding
passes too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from moodpo.eval.evaluate import batch_seed, compare_results, eval_batches, load_eval
from moodpo.objectives import get_objective, objective_versions, score_all
from moodpo.policy import load_policy
from moodpo.sampling_settings import GenerationSettings
from ui.settings import SHIPPED_POLICY

RUNS = Path(__file__).resolve().parent.parent / "runs"
SHIPPED = RUNS / "shipped"
EVALS = sorted(p.parent for p in SHIPPED.glob("**/summary.json"))
SETS = sorted(p for p in SHIPPED.iterdir() if p.is_dir()) if SHIPPED.is_dir() else []

pytestmark = pytest.mark.slow


def _policy_spec(eval_dir: Path) -> str:
    summary = json.loads((eval_dir / "summary.json").read_text())
    if summary["kind"] == "base":
        return summary["source"]
    return str(eval_dir.parent if eval_dir.name == "eval" else eval_dir)


def test_the_app_opens_on_a_shipped_policy():
    assert (RUNS / SHIPPED_POLICY / "config.yaml").is_file() and (RUNS / SHIPPED_POLICY / "adapter").is_dir()


SYSTEM_FOLDER = re.compile(r"(moodpo|soups)(-seed\d+)?/eval|base")


@pytest.mark.parametrize("folder", SETS, ids=[p.name for p in SETS])
def test_each_shipped_set_compares_moodpo_soups_and_base(folder):
    """MO-ODPO and its Rewarded Soups over at least two training seeds each, and the prompted base,
    evaluated alike, and the two comparisons that pool the seeds (bench/ship.py)."""
    names = {p.relative_to(folder).as_posix() for p in EVALS if folder in p.parents}
    assert all(SYSTEM_FOLDER.fullmatch(n) for n in names), names
    assert {"moodpo/eval", "moodpo-seed1/eval", "soups/eval", "soups-seed1/eval", "base"} <= names
    compare = json.loads((folder / "compare" / "compare.json").read_text())
    assert [s["system"] for s in compare["systems"]] == ["Prompted base", "Rewarded Soups", "MO-ODPO"]
    versus = json.loads((folder / "compare-soups" / "compare.json").read_text())
    assert [s["system"] for s in versus["systems"]] == ["Rewarded Soups", "MO-ODPO"]
    summaries = [json.loads((folder / n / "summary.json").read_text()) for n in sorted(names)]
    # Same prompts, grid, seed, samples and generation settings for every system.
    same = ("prompts", "grid", "seed", "samples_per_prompt", "batch_size", "settings", "objectives")
    assert all(s[k] == summaries[0][k] for s in summaries for k in same)
    assert (folder / "cost.md").is_file()


def _versioned(shipped) -> list[str]:
    """The shipped evaluation's objective names pinned to the versions it was scored with
    (e.g. helpfulness@v2), so a later version of an objective does not fail the check."""
    versions = shipped.meta.get("objective_versions") or {}
    return [f"{o}@v{versions[o]}" if versions.get(o) else o for o in shipped.objectives]


def test_every_shipped_evaluation_uses_the_current_objectives():
    """The shipped numbers are the README's: each evaluation is scored with today's definitions."""
    current = objective_versions(sorted({o for p in EVALS for o in load_eval(p).objectives}))
    for eval_dir in EVALS:
        shipped = load_eval(eval_dir)
        assert shipped.meta.get("objective_versions") == {o: current[o] for o in shipped.objectives}, eval_dir


@pytest.mark.parametrize("eval_dir", EVALS, ids=[p.relative_to(SHIPPED).as_posix() for p in EVALS])
def test_shipped_eval_matches_a_fresh_evaluation(eval_dir):
    """The first batch (first weight point) and the last (the other corner) are generated again."""
    shipped = load_eval(eval_dir)
    meta = shipped.meta
    policy = load_policy(_policy_spec(eval_dir), objectives=shipped.objectives)
    assert policy.kind == meta["kind"]
    s_n = meta["samples_per_prompt"]
    batches = eval_batches(len(shipped.prompts), len(shipped.weights), s_n, meta["batch_size"])
    for b in (0, len(batches) - 1):
        rows = batches[b]
        texts = policy.generate([shipped.prompts[p].text for p, _ in rows], shipped.weights[[g for _, g in rows]],
                                settings=GenerationSettings(**meta["settings"]), seed=batch_seed(meta["seed"], b),
                                num_samples=s_n)
        new = score_all([get_objective(o) for o in _versioned(shipped)],
                        [shipped.prompts[p].text for p, _ in rows for _ in range(s_n)], texts)    # (rows*S, K)
        old = np.concatenate([shipped.sample_scores[p, g] for p, g in rows])
        se = np.sqrt(old.var(axis=0, ddof=1) / len(old) + new.var(axis=0, ddof=1) / len(new))
        gap = np.abs(old.mean(axis=0) - new.mean(axis=0))
        assert np.all(gap <= 3 * se + 1e-9), (f"batch {b}: means {old.mean(0)} shipped vs {new.mean(0)} fresh "
                                              f"(se {se})")


@pytest.mark.parametrize("folder", SETS, ids=[p.name for p in SETS])
def test_the_target_table_counts_both_seeds(folder):
    """bench/result_tables.py --targets, the README's target table, reads the pooled seeds."""
    import sys

    sys.path.insert(0, str(RUNS.parent / "bench"))
    from result_tables import load_evals, target_rows

    compare = json.loads((folder / "compare" / "compare.json").read_text())
    evals = load_evals(folder, [s["system"] for s in compare["systems"]])
    rows = {target: (measured, met) for target, measured, met in target_rows(folder, compare, evals)}
    seeds = [load_eval(p) for p in sorted(folder.glob("moodpo*/eval"))]
    assert len(seeds) >= 2 and evals["MO-ODPO"].sample_scores.shape[2] == len(seeds)
    soups = sorted(folder.glob("soups*/eval"))
    assert evals["Rewarded Soups"].sample_scores.shape[2] == len(soups)  # every soups seed on disk is pooled
    pooled, _ = compare_results([evals["Rewarded Soups"], evals["MO-ODPO"]])
    committed = json.loads((folder / "compare-soups" / "compare.json").read_text())["systems"]
    assert [s["hypervolume"] for s in committed] == pytest.approx(list(pooled["hypervolume"]))
    versus = next(s for s in committed if s["system"] == "MO-ODPO")
    measured, met = rows["hypervolume minus Rewarded Soups, 95% interval above 0"]
    assert measured.startswith(f"{versus['hv_diff']:.3f} [") and (met == "met") == (versus["hv_diff_lo"] > 0)
    if "harmlessness" in compare["objectives"]:
        corner = [int(np.argmax(r.weights[:, 1])) for r in seeds]
        harmful = sum(int(r.audit["declined"][[p.category == "harmful" for p in r.prompts], g].sum())
                      for r, g in zip(seeds, corner))
        total = sum(sum(p.category == "harmful" for p in r.prompts) for r in seeds)
        assert rows["harmful declined >= 90% at (0, 1)"][0].startswith(f"{harmful}/{total} = ")
