"""What each factor of the version-2 objectives does: the hack suite with one factor switched off.

    python bench/objective_components.py [--generations FILE ...]

For each factor of `moodpo.objectives.builtin.answer_quality` (declined, topical, informative,
fluent, varied, clean, original, says), the factor is switched off everywhere (declined set to 0,
the others to 1, so it no longer lowers any score) and the hack suite
(`moodpo.objectives.hacksuite`) is run again: the checks that fail without it are what it buys.
With --generations (eval generations.jsonl files), it also prints how the mean helpfulness and
conciseness of those responses move without each factor, and how many responses it pulls down
by more than 0.1.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from contextlib import contextmanager

import numpy as np

from moodpo.objectives import builtin, score_all
from moodpo.objectives.hacksuite import run_suite

FACTORS = ("declined", "topical", "informative", "fluent", "varied", "clean", "original", "says")


@contextmanager
def without(factor: str | None):
    """The built-in objectives computed with `factor` switched off (None: unchanged)."""
    original = builtin.answer_quality

    def patched(prompts, responses):
        q = original(prompts, responses)
        if factor is not None:
            q[factor] = np.zeros_like(q[factor]) if factor == "declined" else np.ones_like(q[factor])
        return q

    builtin.answer_quality = patched
    try:
        yield
    finally:
        builtin.answer_quality = original


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generations", nargs="*", default=[], help="generations.jsonl files to rescore")
    args = p.parse_args()
    rows = [json.loads(line) for f in args.generations for line in open(f, encoding="utf-8") if line.strip()]
    prompts, responses = [r["prompt"] for r in rows], [r["response"] for r in rows]
    names = ["helpfulness", "conciseness", "harmlessness"]
    with without(None):
        base = score_all(names, prompts, responses) if rows else None
    print(f"{'without':12} {'hack-suite checks failing (of all)':36} {'by objective':40}" +
          ("  mean help / concise / harm; responses the factor holds down by > 0.1" if rows else ""))
    for factor in (None, *FACTORS):
        with without(factor):
            results = run_suite()
            failed = Counter(r.objective for r in results if not r.passed)
            line = (f"{factor or '(nothing)':12} {sum(failed.values()):4d} / {len(results):<30d} "
                    f"{', '.join(f'{k} {v}' for k, v in sorted(failed.items())) or '-':40}")
            if rows:
                s = score_all(names, prompts, responses)
                pulled = (s - base > 0.1).sum(axis=0)  # responses this factor holds down by more than 0.1
                line += "  " + " / ".join(f"{m:.3f}" for m in s.mean(axis=0)) + "   " + " / ".join(map(str, pulled))
            print(line)


if __name__ == "__main__":
    main()
