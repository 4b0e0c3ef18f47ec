"""How well the harmful-request classifier behind `harmlessness` separates requests, v1 against v2.

    python bench/harmful_classifier.py

Scores the held-out labelled set (`moodpo/objectives/heldout_requests.jsonl`: 40 harmful, 40 benign,
40 benign safety questions, never used to fit or tune anything) and the built-in prompts' eval split
by category, with version 1 of the classifier (fit without the safety exemplars) and version 2. Prints
ROC AUC of harmful against each other group, and the share of each group above 0.5 (where
harmlessness v2 starts to credit declining) and above 0.63 (where declining starts to beat a fluent
answer).
Then, for version 2: its exemplars cross-validated (5 folds, at three regularisation strengths; the
shipped fit uses C=100), and the built-in prompts of every split by category with the everyday prompts
it scores most harmful and the harmful prompts it scores least.
"""

from __future__ import annotations

import common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from moodpo.data import load_prompts
from moodpo.objectives import exemplars
from moodpo.objectives.exemplars import load_heldout_requests
from moodpo.objectives.text import embed, harmful_request_prob


def _report(title: str, groups: dict[str, list[str]], positive: str) -> None:
    print(f"\n{title}")
    print(f"{'version':8} {'group':11} {'n':>4} {'P>0.5':>7} {'P>0.63':>7} {'AUC vs ' + positive:>14}")
    for version in (1, 2):
        probs = {g: harmful_request_prob(texts, version=version) for g, texts in groups.items()}
        for g, p in probs.items():
            auc = ""
            if g != positive:
                y = np.r_[np.ones(len(probs[positive])), np.zeros(len(p))]
                auc = f"{roc_auc_score(y, np.r_[probs[positive], p]):.3f}"
            print(f"v{version:<7} {g:11} {len(p):4d} {np.mean(p > 0.5):7.2f} {np.mean(p > 0.63):7.2f} {auc:>14}")


def _cross_validate() -> None:
    """Out-of-fold AUC, log-loss and confident-harmful share of the v2 fit at three C."""
    positives = exemplars.HARMFUL_REQUESTS + exemplars.MORE_HARMFUL_REQUESTS
    negatives = exemplars.BENIGN_REQUESTS + exemplars.MORE_BENIGN_REQUESTS + exemplars.SAFETY_REQUESTS
    x = embed(positives + negatives)
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    print(f"\nv2 exemplars cross-validated ({len(positives)} harmful, {len(negatives)} benign, 5 stratified folds)")
    print(f"{'C':>6} {'AUC':>6} {'log-loss':>9} {'harmful P>0.9':>14} {'benign P>0.5':>13}")
    for c in (1.0, 10.0, 100.0):
        oof = np.zeros(len(y))
        for fit, held in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
            clf = LogisticRegression(C=c, max_iter=1000, class_weight="balanced").fit(x[fit], y[fit])
            oof[held] = clf.predict_proba(x[held])[:, 1]
        print(f"{c:6.0f} {roc_auc_score(y, oof):6.3f} {log_loss(y, oof):9.3f} {np.mean(oof[y == 1] > 0.9):14.2f} "
              f"{np.mean(oof[y == 0] > 0.5):13.2f}")


def _splits() -> None:
    """Every split of the built-in prompts by category, and the worst-scored examples."""
    print("\nv2 on the built-in prompts by split and category (share with P > 0.5 / P > 0.63)")
    extremes: dict[str, list[tuple[float, str, str]]] = {"everyday": [], "harmful": []}
    for split in ("train", "dev", "eval"):
        by_cat: dict[str, list[str]] = {}
        for p in load_prompts("builtin", split, seed=None):
            by_cat.setdefault(p.category, []).append(p.text)
        cells = []
        for cat, texts in sorted(by_cat.items()):
            probs = harmful_request_prob(texts)
            cells.append(f"{cat} {np.mean(probs > 0.5):.2f}/{np.mean(probs > 0.63):.2f} (n={len(texts)})")
            if cat in extremes:
                extremes[cat] += [(float(q), split, t) for q, t in zip(probs, texts)]
        print(f"{split:6} " + "; ".join(cells))
    print("\neveryday prompts scored most harmful:")
    for q, split, text in sorted(extremes["everyday"], reverse=True)[:5]:
        print(f"  {q:.2f} [{split}] {text[:90]}")
    print("harmful prompts scored least harmful:")
    for q, split, text in sorted(extremes["harmful"])[:5]:
        print(f"  {q:.2f} [{split}] {text[:90]}")


def main() -> None:
    heldout: dict[str, list[str]] = {}
    for text, label in load_heldout_requests():
        heldout.setdefault(label, []).append(text)
    _report("held-out labelled requests (never fit or tuned on)", heldout, "harmful")
    prompts: dict[str, list[str]] = {}
    for p in load_prompts("builtin", "eval", seed=None):
        prompts.setdefault(p.category, []).append(p.text)
    _report("built-in prompts, eval split (the classifier's exemplars were written after reading this file)",
            prompts, "harmful")
    _cross_validate()
    _splits()


if __name__ == "__main__":
    main()
