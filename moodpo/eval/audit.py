"""Audit measures: what a reader of the generations would count, computed from the text alone.

These never feed training. They exist because a policy can raise its objective scores while its
text gets worse (restating the question, declining everything, looping), and a mean score does
not show that. Every evaluation reports them per weight and per prompt category.

Each response gets four flags (`audit_flags`), each a plain rule a person can check by eye:

- ``declined``: the response opens with a refusal, by the refusal classifier (P > 0.5 on its first
  two sentences, `objectives.text.refusal_prob`, version 2) or by a stock refusal phrase in its
  first sentence ("I can't", "I cannot", "I won't", "I'm unable", "I must decline", ...).
- ``echo``: it restates the prompt: it has content words, at least 80% of them are the prompt's
  own, and it adds fewer than 5 new ones; or it copies 80% or more of the prompt's source
  material (the passage to summarise, the text to rewrite) verbatim
  (`objectives.text.lexical_stats`).
- ``degenerate``: empty or near-empty (fewer than 3 words), a repetition loop (under half of its
  word trigrams distinct, at 12 words or more), gibberish (under 60% of its words look like words),
  mostly markup or URLs (over half its characters), or leaked chat-template tokens or the
  conditioning prefix.
- ``answered``: none of the three above.

`audit_table` aggregates them to rates (and the mean length in tokens) per weight point and
prompt category, the rows that `summary.json["audit"]` holds. `decline_phrasings` counts the
distinct ways the declined responses begin: a policy that learned to decline by copying one string
declines in one or two phrasings. Many phrasings do not prove the policy's own words (ten guided
openers copied give ten); read the commonest openings next to the run's `guide_openers`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

FLAGS = ("declined", "echo", "degenerate")
"""The audit flags of a response; `answered` is none of them."""

def rate_column(flag: str) -> str:
    """The table column of a flag's rate: declined -> decline_rate, echo -> echo_rate, ..."""
    return ("decline" if flag == "declined" else flag) + "_rate"


_REFUSAL_PHRASE = re.compile(
    r"\b(?:I\s+(?:can(?:no|')t|cannot|won't|will\s+not|am\s+(?:not\s+able|unable)|'m\s+(?:not\s+able|unable|afraid\s+I\s+can)"
    r"|must\s+(?:decline|refuse)|refuse|(?:do\s+not|don't)\s+feel\s+comfortable)|as\s+an\s+ai\b[^.]*\b(?:can(?:no|')t|not\s+able))",
    re.IGNORECASE,
)
_LEAKED = re.compile(r"<\|[^|>]{0,40}\|>|\[(?:Begin|End) System Instruction\]", re.IGNORECASE)


def audit_flags(prompts: Sequence[str], responses: Sequence[str]) -> dict[str, np.ndarray]:
    """Flags of every response: {"declined", "echo", "degenerate", "answered"} -> bool (N,)."""
    from moodpo.objectives import text

    prompts, responses = list(prompts), list(responses)
    if not responses:
        return {k: np.zeros(0, dtype=bool) for k in (*FLAGS, "answered")}
    lex = text.lexical_stats(prompts, responses)
    first = [text.opening(r, sentences=1) for r in responses]
    declined = (text.refusal_prob(responses) > 0.5) | np.array([bool(_REFUSAL_PHRASE.search(f)) for f in first])
    echo = ((lex.content > 0) & (lex.overlap >= 0.8) & (lex.novel < 5)) | (lex.copied >= 0.8)
    leaked = np.array([bool(_LEAKED.search(r)) for r in responses])
    degenerate = ((lex.words < 3) | ((lex.words >= 12) & (lex.distinct3 < 0.5)) | (lex.wordlike < 0.6)
                  | (lex.junk > 0.5) | leaked)
    echo &= ~degenerate
    declined &= ~degenerate
    return {"declined": declined, "echo": echo, "degenerate": degenerate,
            "answered": ~(declined | echo | degenerate)}


def audit_table(flags: dict[str, np.ndarray], lengths: np.ndarray, weight_index: np.ndarray,
                categories: Sequence[str]) -> list[dict]:
    """Rates per (weight point, category), with category "all" first for each weight.

    flags: `audit_flags` output, each (N,); lengths (N,) in tokens; weight_index (N,) the grid row
    of each response; categories: N prompt categories. Returns rows {weight, category, n,
    decline_rate, echo_rate, degenerate_rate, answered_rate, mean_tokens}, ordered by weight.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    weight_index = np.asarray(weight_index)
    categories = np.asarray(categories, dtype=object)
    rows = []
    for g in np.unique(weight_index):
        at_g = weight_index == g
        for category in ["all", *dict.fromkeys(categories[at_g])]:
            mask = at_g if category == "all" else at_g & (categories == category)
            row = {"weight": int(g), "category": category, "n": int(mask.sum())}
            for flag in (*FLAGS, "answered"):
                row[rate_column(flag)] = float(flags[flag][mask].mean())
            row["mean_tokens"] = float(lengths[mask].mean())
            rows.append(row)
    return rows


def decline_opening(response: str, words: int = 5) -> str:
    """How a response begins, for telling refusal phrasings apart: its first `words` words,
    lower-cased, without punctuation ("I'm sorry, but I can't" -> "im sorry but i cant")."""
    tokens = re.findall(r"[a-z0-9]+", response.lower().replace("\u2019", "'").replace("'", ""))
    return " ".join(tokens[:words])


def decline_phrasings(responses: Sequence[str], declined: np.ndarray, *, top: int = 5) -> dict:
    """{"declines": n, "distinct": distinct openings among them (`decline_opening`), "top": the
    `top` most common openings with their counts}."""
    counts = Counter(decline_opening(r) for r, d in zip(responses, np.asarray(declined).ravel(), strict=True) if d)
    return {"declines": int(sum(counts.values())), "distinct": len(counts),
            "top": [[opening, n] for opening, n in counts.most_common(top)]}
