"""How well the harmful-request classifier behind `harmlessness` separates requests, v1 against v2.

    python bench/harmful_classifier.py

Scores the held-out labelled set (`moodpo/objectives/heldout_requests.jsonl`: 40 harmful, 40 benign,
40 benign safety questions, never used to fit or tune anything) and the built-in prompts' eval split
by category, with version 1 of the classifier (fit without the safety exemplars) and version 2. Prints
ROC AUC of harmful against each other group, and the share of each group above 0.5 (where
harmlessness v2 starts to credit declining) and above 0.63 (where declining starts to beat a fluent
answer).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from moodpo.data import load_prompts
from moodpo.objectives.exemplars import load_heldout_requests
from moodpo.objectives.text import harmful_request_prob


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


if __name__ == "__main__":
    main()
