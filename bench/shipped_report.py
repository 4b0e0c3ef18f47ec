"""Print the README's result tables for a set of evaluated systems, from their eval folders.

    python bench/shipped_report.py runs/shipped/help-harm/compare \
        MO-ODPO=runs/shipped/help-harm/moodpo/eval "Rewarded Soups=runs/shipped/help-harm/soups/eval" \
        "base (prompted)=runs/shipped/help-harm/base"

Reads `compare.csv` (from `python -m moodpo compare`) and each system's `eval.csv` and
`generations.jsonl`; prints markdown: hypervolume with its interval and steerability per system,
the means per weight point (scores and length), and, for the first borderline, harmful and
everyday prompt of the evaluation order, the first system's responses at the two corners and
the centre. Nothing is recomputed: it formats what the evaluation wrote.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def _num(row: dict, key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", "nan", None) else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("compare", help="folder holding compare.csv")
    p.add_argument("systems", nargs="+", help="NAME=EVAL_FOLDER, the first is the one whose responses are shown")
    p.add_argument("--chars", type=int, default=300, help="cut each shown response to this many characters")
    args = p.parse_args()

    systems = dict(s.split("=", 1) for s in args.systems)
    tables = {n: list(csv.DictReader(open(Path(d) / "eval.csv"))) for n, d in systems.items()}
    first = next(iter(tables.values()))
    objectives = [k[2:] for k in first[0] if k.startswith("w_")]
    a, b = objectives[:2]

    print(f"| system | hypervolume [95% CI] | Spearman w vs {a} / {b} | monotone steps {a} / {b} | mean length |")
    print("|---|---|---|---|---|")
    for row in csv.DictReader(open(Path(args.compare) / "compare.csv")):
        print(f"| {row['system']} | {_num(row, 'hypervolume'):.5f} [{_num(row, 'hv_lo'):.5f}, {_num(row, 'hv_hi'):.5f}] "
              f"| {_num(row, f'steer_{a}'):+.2f} / {_num(row, f'steer_{b}'):+.2f} "
              f"| {_num(row, f'mono_{a}'):.1f} / {_num(row, f'mono_{b}'):.1f} | {_num(row, 'length'):.1f} |")
    print()

    print(f"| w ({a}, {b}) | " + " | ".join(f"{n}: {a} / {b} / tokens" for n in tables) + " |")
    print("|---|" + "---|" * len(tables))
    for i, w in enumerate(first):
        cells = []
        for n, t in tables.items():
            r = t[i]
            if r[f"w_{a}"] != w[f"w_{a}"]:
                raise SystemExit(f"{n}: weight grid differs from the first system's at row {i}")
            cells.append(f"{_num(r, a):.3f} / {_num(r, b):.3f} / {_num(r, 'length'):.0f}")
        print(f"| ({_num(w, f'w_{a}'):.1f}, {_num(w, f'w_{b}'):.1f}) | " + " | ".join(cells) + " |")
    print()

    name, folder = next(iter(systems.items()))
    gens = [json.loads(line) for line in open(Path(folder) / "generations.jsonl")]
    order: dict[str, str] = {}
    for g in gens:
        order.setdefault(g["prompt_id"], g.get("category", ""))
    for category in ("borderline", "harmful", "everyday"):
        pid = next((p for p, c in order.items() if c == category), None)
        if pid is None:
            continue
        rows = {round(g["weights"][a], 2): g for g in gens if g["prompt_id"] == pid and g["sample"] == 0}
        print(f"**{category}** ({pid}): {rows[1.0]['prompt']!r}\n")
        print(f"| w ({a}, {b}) | {name}'s response | {a} | {b} |")
        print("|---|---|---|---|")
        for wa in (1.0, 0.5, 0.0):
            g = rows[wa]
            text = " ".join(g["response"].split())
            text = (text[:args.chars] + " ...") if len(text) > args.chars else text
            text = text.replace("|", "\\|")
            print(f"| ({wa:.1f}, {1 - wa:.1f}) | {text} | {g['scores'][a]:.2f} | {g['scores'][b]:.2f} |")
        print()


if __name__ == "__main__":
    main()
