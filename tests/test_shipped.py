"""The trained demo policies shipped in runs/shipped/: each loads, and its eval table reproduces.

A fresh evaluation of the first weight point on the first prompts uses the shipped evaluation's
seed, settings and batch size, so its first batch is the same draw as the shipped one; the check
is that each objective's mean lies within the sampling interval of the shipped mean (three
standard errors of the difference), which an exact reproduction passes with a difference of zero
and another machine's floating-point rounding passes too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moodpo.evaluate import evaluate_policy, load_eval
from moodpo.policy import GenerationSettings, load_policy
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


@pytest.mark.parametrize("folder", SETS, ids=[p.name for p in SETS])
def test_each_shipped_set_compares_moodpo_soups_and_base(folder):
    names = {p.relative_to(folder).as_posix() for p in EVALS if folder in p.parents}
    assert names == {"moodpo/eval", "soups/eval", "base"}
    compare = json.loads((folder / "compare" / "compare.json").read_text())
    assert [s["system"] for s in compare["systems"]] == ["MO-ODPO", "Rewarded Soups", "Prompted base"]
    summaries = [json.loads((folder / n / "summary.json").read_text()) for n in sorted(names)]
    # Same prompts, grid, seed, samples and generation settings for every system.
    same = ("prompts", "grid", "seed", "samples_per_prompt", "batch_size", "settings", "objectives")
    assert all(s[k] == summaries[0][k] for s in summaries for k in same)


@pytest.mark.parametrize("eval_dir", EVALS, ids=[p.relative_to(SHIPPED).as_posix() for p in EVALS])
def test_shipped_eval_matches_a_fresh_evaluation(eval_dir):
    shipped = load_eval(eval_dir)
    meta = shipped.meta
    policy = load_policy(_policy_spec(eval_dir), objectives=shipped.objectives)
    assert policy.kind == meta["kind"]
    n = min(len(shipped.prompts), meta["batch_size"] // meta["samples_per_prompt"])
    fresh = evaluate_policy(policy, shipped.objectives, shipped.prompts[:n], shipped.weights[:1],
                            settings=GenerationSettings(**meta["settings"]), seed=meta["seed"],
                            samples_per_prompt=meta["samples_per_prompt"], batch_size=meta["batch_size"],
                            progress=False)
    old = shipped.sample_scores[:n, 0].reshape(-1, len(shipped.objectives))    # (n*S, K)
    new = fresh.sample_scores[:, 0].reshape(-1, len(shipped.objectives))
    se = np.sqrt(old.var(axis=0, ddof=1) / len(old) + new.var(axis=0, ddof=1) / len(new))
    gap = np.abs(old.mean(axis=0) - new.mean(axis=0))
    assert np.all(gap <= 3 * se + 1e-9), f"means {old.mean(0)} shipped vs {new.mean(0)} fresh (se {se})"
