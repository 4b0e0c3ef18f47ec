"""What version 1 and version 2 of the built-in objectives give each kind of response.

    python bench/objectives_by_flag.py FILE [FILE ...]

Reads evaluations' generations.jsonl files, sorts every response by its audit flag
(`moodpo.eval.audit`: degenerate, echo, declined, else answered; a response with several flags goes
to the first of these) and by prompt category, and prints the mean of each built-in objective
under v1 and v2 for each group. A hack is a group the audit calls bad (echo, degenerate, a
declined everyday request) that v1 scores close to or above the answered group.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from moodpo.eval.audit import audit_flags
from moodpo.objectives import score_all

NAMES = ("helpfulness", "conciseness", "harmlessness")
ORDER = ("degenerate", "echo", "declined")


def kind_of(flags: dict[str, np.ndarray]) -> np.ndarray:
    """(N,) str: the first flag of ORDER a response has, else "answered"."""
    n = len(next(iter(flags.values())))
    kinds = np.full(n, "answered", dtype=object)
    for flag in reversed(ORDER):
        kinds[flags[flag]] = flag
    return kinds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="generations.jsonl files")
    args = p.parse_args()
    rows = [json.loads(line) for f in args.files for line in open(f, encoding="utf-8") if line.strip()]
    prompts, responses = [r["prompt"] for r in rows], [r["response"] for r in rows]
    categories = np.array([r.get("category", "") for r in rows], dtype=object)
    kinds = kind_of(audit_flags(prompts, responses))
    v1 = score_all([f"{n}@v1" for n in NAMES], prompts, responses)
    v2 = score_all(list(NAMES), prompts, responses)
    print(f"{len(rows)} responses from {len(args.files)} files; mean score, v1 -> v2")
    print(f"{'category':11} {'kind':11} {'n':>5}  " + "  ".join(f"{n:>18}" for n in NAMES))
    for category in sorted(set(categories)):
        for kind in ("answered", *ORDER):
            mask = (categories == category) & (kinds == kind)
            if mask.any():
                cells = "  ".join(f"{a:8.3f} -> {b:5.3f}" for a, b in zip(v1[mask].mean(0), v2[mask].mean(0)))
                print(f"{category:11} {kind:11} {mask.sum():5d}  {cells}")


if __name__ == "__main__":
    main()
