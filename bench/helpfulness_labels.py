"""How well helpfulness tracks whether a response addresses the question, on hand-labelled responses.

    python bench/helpfulness_labels.py                 # both label files: correlations with 95% intervals
    python bench/helpfulness_labels.py --search        # also the graded-topicality search (dev file only)

docs/data/helpfulness-labels/{dev,eval}.jsonl hold 48 responses each of the help-concise evaluations
(dev: the alpha sweep; eval: the shipped set), labelled by one engineer reading the prompt and the
response (the embedding relevance was on screen; the scores were not, on the eval file): 2 = it
addresses the question (right or wrong: nothing here checks facts), 1 = it stays on the subject but
does not answer (no itinerary, a limerick that is not one, advice about something nearby), 0 = off
the subject. For each scorer the script prints Spearman's rho with the label and a 95% bootstrap
interval (2,000 resamples of the responses).

--search scores a family of candidate helpfulness definitions: v2 with its topicality factor
multiplied by (1 - g + g * clip((relevance - lo) / (hi - lo))) and its informative factor
1 - exp(-max(0, novel - a) / scale), over a grid of (g, lo, hi, a, scale). For each it prints how
many hack-suite checks fail (ORDERINGS, which v2 passes), how many of the LIMITS checks pass, and
rho on the dev file: the search behind docs/objectives.md's "Known limits".
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/helpfulness_labels.py` from anywhere
    sys.path.insert(0, str(ROOT))

LABELS = ROOT / "docs" / "data" / "helpfulness-labels"
PARAMS: dict[str, float] = {}  # the candidate being scored by `candidate_helpfulness`


def load(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["prompt"] for r in rows], [r["response"] for r in rows], np.array([r["label"] for r in rows])


def spearman_ci(x: np.ndarray, y: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            boot.append(spearmanr(x[i], y[i])[0])
    return float(spearmanr(x, y)[0]), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def scorers(prompts: list[str], responses: list[str]) -> dict[str, np.ndarray]:
    from moodpo.objectives import score_all, text

    scores = score_all(["helpfulness", "helpfulness@v1", "helpfulness@v3"], prompts, responses)
    return {"helpfulness (v2)": scores[:, 0], "helpfulness@v1": scores[:, 1], "helpfulness@v3": scores[:, 2],
            "relevance (MiniLM cosine)": text.relevance(prompts, responses),
            "new content words": text.lexical_stats(prompts, responses).novel,
            "characters": np.array([len(r) for r in responses], dtype=float)}


def report(path: Path) -> None:
    prompts, responses, labels = load(path)
    counts = ", ".join(f"{k}: {int((labels == k).sum())}" for k in (2, 1, 0))
    print(f"\n{path.relative_to(ROOT)}: {len(labels)} responses (label {counts})")
    for name, values in scorers(prompts, responses).items():
        rho, lo, hi = spearman_ci(values, labels)
        print(f"  {name:28s} rho {rho:+.2f} [{lo:+.2f}, {hi:+.2f}]")


def candidate_helpfulness(prompts, responses):
    """v2 helpfulness with graded topicality and a paraphrase allowance (module doc), by PARAMS."""
    from moodpo.objectives import text
    from moodpo.objectives.builtin import answer_quality

    q, p = answer_quality(prompts, responses), PARAMS
    relevance, novel = text.relevance(prompts, responses), text.lexical_stats(prompts, responses).novel
    graded = np.clip((relevance - p["lo"]) / (p["hi"] - p["lo"]), 0.0, 1.0)
    topical = q["topical"] * (1.0 - p["g"] + p["g"] * graded)
    informative = 1.0 - np.exp(-np.maximum(0.0, novel - p["a"]) / p["scale"])
    return (1.0 - q["declined"]) * topical * informative * q["fluent"] * q["varied"] * q["clean"] * q["original"]


def candidate_conciseness(prompts, responses):
    from moodpo.objectives.builtin import ANSWER_HELPFULNESS, BREVITY_CHARS

    brevity = 1.0 / (1.0 + np.array([len(r.strip()) for r in responses]) / BREVITY_CHARS)
    return brevity * np.minimum(1.0, candidate_helpfulness(prompts, responses) / ANSWER_HELPFULNESS)


def search() -> None:
    import helpfulness_labels as module  # the copy `python:` objectives resolve to
    from scipy.stats import spearmanr

    from moodpo.objectives.hacksuite import LIMITS, run_suite

    prompts, responses, labels = load(LABELS / "dev.jsonl")
    roles = {"helpfulness": "python:helpfulness_labels:candidate_helpfulness",
             "conciseness": "python:helpfulness_labels:candidate_conciseness"}
    grid = list(itertools.product([0.3, 0.5, 0.7, 1.0], [(0.25, 0.65), (0.3, 0.7), (0.35, 0.75)], [0, 3, 5], [8, 10, 15, 20]))
    print(f"\n{len(grid)} candidates: g, topicality range, paraphrase allowance a, scale -> hack-suite checks "
          "failing (of ORDERINGS), LIMITS checks passing, rho on the dev labels")
    for g, (lo, hi), a, scale in grid:
        module.PARAMS.update(g=g, lo=lo, hi=hi, a=a, scale=scale)
        fails = sum(not r.passed for r in run_suite(roles))
        limits = run_suite(roles, LIMITS)
        rho = spearmanr(module.candidate_helpfulness(prompts, responses), labels)[0]
        print(f"  g {g:.1f}  [{lo:.2f}, {hi:.2f}]  a {a}  scale {scale:>2}: fails {fails:>2}, "
              f"limits {sum(r.passed for r in limits)}/{len(limits)}, rho {rho:+.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="label files (default: dev and eval)")
    parser.add_argument("--search", action="store_true", help="also run the graded-topicality search on dev")
    args = parser.parse_args()
    for path in args.files or [LABELS / "dev.jsonl", LABELS / "eval.jsonl"]:
        report(path.resolve())
    if args.search:
        search()


if __name__ == "__main__":
    main()
