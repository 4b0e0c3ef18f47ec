"""The trained demo policies shipped in runs/shipped/: each loads, and its eval table reproduces.

A fresh evaluation of the first weight point on the first prompts uses the shipped run's seed,
settings and batch size, so its first batch is the same draw as the shipped one; the check is
that each objective's mean lies within the sampling interval of the shipped mean (three standard
errors of the difference), which an exact reproduction passes with a difference of zero.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moodpo.evaluate import evaluate_policy, load_eval
from moodpo.policy import GenerationSettings, load_policy

SHIPPED = Path(__file__).resolve().parent.parent / "runs" / "shipped"
EVALS = sorted(p.parent for p in SHIPPED.glob("**/summary.json"))

pytestmark = pytest.mark.slow


def _policy_spec(eval_dir: Path) -> str:
    summary = json.loads((eval_dir / "summary.json").read_text())
    if summary["kind"] == "base":
        return summary["source"]
    return str(eval_dir.parent if eval_dir.name == "eval" else eval_dir)


def test_the_shipped_systems_are_there():
    names = {p.relative_to(SHIPPED).as_posix() for p in EVALS}
    assert {"help-harm/moodpo/eval", "help-harm/soups/eval", "help-harm/base"} <= names


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
