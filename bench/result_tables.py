"""Print the README's result tables (markdown) from a comparison and its eval folders.

    python bench/result_tables.py runs/shipped/help-concise --examples p0266 p0067 p0248

FOLDER holds compare/ (from `python -m moodpo compare ... --out FOLDER/compare`) and one eval
folder per system (moodpo/eval, soups/eval, base). Prints:
- per system: hypervolume with its 95% interval (common reference point), length-controlled
  hypervolume, steerability (Spearman of weight vs score, fraction of monotone grid steps) and
  the win rate over the first system;
- per weight and system: mean scores, mean length, and how many responses decline (refusal
  classifier > 0.5) or are off topic (MiniLM relevance < 0.2): what a score alone hides;
- with --examples: each prompt's first sample at the two corners and the centre, for the first
  system (or --system).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from moodpo.evaluate import load_eval  # noqa: E402
from moodpo.objectives import text  # noqa: E402


def _fmt_w(w) -> str:
    return "(" + ", ".join(f"{x:g}" for x in w) + ")"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--examples", nargs="*", default=[], help="prompt ids to show at the corners and centre")
    p.add_argument("--system", default=None, help="system whose responses --examples shows (default: the first)")
    args = p.parse_args()

    compare = json.loads((args.folder / "compare" / "compare.json").read_text())
    systems = compare["systems"]
    objectives = compare["objectives"]
    evals = {}
    for d in sorted(args.folder.glob("**/summary.json")):
        r = load_eval(d.parent)
        evals[r.system] = r
    names = [s["system"] for s in systems]
    missing = [n for n in names if n not in evals]
    if missing:
        raise SystemExit(f"no eval folder under {args.folder} for {missing}")

    short = [o[:4] for o in objectives]
    print("| system | hypervolume [95% CI] | length-controlled | Spearman " + " / ".join(short)
          + " | monotone steps " + " / ".join(short) + " | win rate over " + names[0] + " [95% CI] |")
    print("|---|---|---|---|---|---|")
    for s in systems:
        win = "-" if s["win_rate"] is None or s["win_rate"] != s["win_rate"] else \
            f"{s['win_rate']:.2f} [{s['win_lo']:.2f}, {s['win_hi']:.2f}]"
        print(f"| {s['system']} | {s['hypervolume']:.4f} [{s['hv_lo']:.4f}, {s['hv_hi']:.4f}] "
              f"| {s['hv_length_controlled']:.4f} | "
              + " / ".join(f"{s['steer_' + o]:.2f}" for o in objectives) + " | "
              + " / ".join(f"{s['mono_' + o]:.2f}" for o in objectives) + f" | {win} |")
    print(f"\nreference point {compare.get('reference_point')}: {compare.get('reference', '')}\n")

    print("| w (" + ", ".join(short) + ") | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    first = evals[names[0]]
    stats = {}
    for n in names:
        r = evals[n]
        flat_p, flat_r = r.flat_texts()
        declines = (text.refusal_prob(flat_r) > 0.5).reshape(r.sample_lengths.shape)
        off = (text.relevance(flat_p, flat_r) < 0.2).reshape(r.sample_lengths.shape)
        stats[n] = (declines, off)
    for g, w in enumerate(first.weights):
        cells = []
        for n in names:
            r = evals[n]
            gi = next(i for i, v in enumerate(r.weights) if np.allclose(v, w))
            pts = r.points[gi]
            declines, off = stats[n]
            total = declines[:, gi].size
            cells.append(" / ".join(f"{x:.3f}" for x in pts) + f" / {r.lengths[:, gi].mean():.1f} tok"
                         + f" / {int(declines[:, gi].sum())} & {int(off[:, gi].sum())} of {total}")
        print(f"| {_fmt_w(w)} | " + " | ".join(cells) + " |")
    print("\n(cells: " + " / ".join(objectives) + " / mean length / responses declining & off topic)\n")

    if args.examples:
        r = evals[args.system or names[0]]
        corners = [int(np.argmax(r.weights[:, 0])), int(np.argmin(np.abs(r.weights[:, 0] - 0.5))),
                   int(np.argmin(r.weights[:, 0]))]
        ids = [q.id for q in r.prompts]
        for pid in args.examples:
            if pid not in ids:
                raise SystemExit(f"prompt {pid} is not in {r.system}'s eval; choose from {', '.join(ids)}")
            i = ids.index(pid)
            print(f"**{r.prompts[i].text}** ({r.prompts[i].category})\n")
            print("| w (" + ", ".join(short) + ") | response (sample 0) |")
            print("|---|---|")
            for g in corners:
                resp = r.responses[i][g][0].replace("\n", " ").replace("|", "\\|").strip()
                print(f"| {_fmt_w(r.weights[g])} | {resp} |")
            print()


if __name__ == "__main__":
    main()
