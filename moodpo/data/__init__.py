"""Prompt sets: the built-in prompts, Anthropic HH-RLHF, Reddit TL;DR, and the user's own files.

Every loader returns `Prompt`s; the trainer and evaluator only ever see those. Sources:

- ``builtin``: ``prompts.jsonl`` next to this file: everyday requests, summarisation requests,
  borderline/harmful requests where helpfulness and harmlessness pull apart, and benign safety
  questions (``safety``: protective questions about doses, poisons, fire, first aid, scams and the
  like, some of which sound alarming, that deserve a helpful answer). The train/dev/eval split is
  written in the file, so it never changes between runs. In the first four categories the dev
  prompts were train prompts until the dev split was added: every 7th train prompt of each
  category, in file order (about 15%); their eval prompts did not change, because shipped
  evaluations were made on them. The safety prompts, added with the dev split, are split by
  position in the file: the 7th, 14th, ... is dev, the 4th, 11th, ... eval, the rest train.
- ``hh-rlhf`` or ``hh-rlhf:<folder or hub id>``: the first human turn of each ``chosen``
  conversation (Anthropic/hh-rlhf by default).
- ``tldr`` or ``tldr:<folder or hub id>``: the Reddit post in each ``prompt`` (the
  "SUBREDDIT: ... TITLE: ... POST: ... TL;DR:" layout of trl-lib/tldr, the default, and of
  CarperAI/openai_summarize_tldr), wrapped into a summarisation request.
- ``<file>.jsonl`` / ``<file>.json``: objects with a ``prompt`` field and optional ``id``,
  ``category`` (default "custom") and ``split`` fields.

Splits: ``train`` is trained on; ``dev`` is for choosing recipes and hyperparameters (the
in-training eval and ``moodpo sweep`` use it, see `tuning_split`); ``eval`` is for reported
numbers only, so nothing is tuned on it. A dataset's own split names map onto these: ``dev`` onto
its validation split, ``eval`` onto its test split (see `_split_names`).

A folder is one written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``. A source
without splits (a single saved ``Dataset``, a file without ``split`` fields) serves every split.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from moodpo.errors import MoodpoError

SPLITS = ("train", "dev", "eval", "all")
BUILTIN_CATEGORIES = ("everyday", "summarize", "borderline", "harmful", "safety")
HUB_DEFAULTS = {"hh-rlhf": "Anthropic/hh-rlhf", "tldr": "trl-lib/tldr"}
# A dataset's own split names for each of ours, in order of preference. eval prefers a test split
# and falls back to a validation one, so on a dataset without a test split dev and eval are the
# same prompts.
DATASET_SPLIT_NAMES = {
    "train": ("train",),
    "dev": ("validation", "valid", "dev"),
    "eval": ("test", "validation", "valid", "eval"),
}
TLDR_REQUEST = "Summarize this Reddit post in one or two sentences:\n\n"

_HUMAN, _ASSISTANT = "\n\nHuman: ", "\n\nAssistant:"
# Non-greedy up to the first TITLE: and POST:, so the post body may contain those words itself;
# separators between fields vary ("\n\n" in trl-lib/tldr, "\n" or " " elsewhere).
_TLDR_FIELDS = re.compile(r"\s*SUBREDDIT:.*?TITLE:(?P<title>.*?)POST:(?P<post>.*)", re.DOTALL)


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    category: str


def load_prompts(
    source: str = "builtin", split: str = "train", limit: int | None = None, seed: int | None = 0
) -> list[Prompt]:
    """Load, strip, dedupe and drop empty prompts; shuffle with `seed` (None keeps source order),
    then keep the first `limit`. The result for a smaller `limit` is a prefix of a larger one."""
    if split not in SPLITS:
        raise MoodpoError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise MoodpoError(f"limit must be a positive integer or None, got {limit!r}")

    kind, sep, ref = source.partition(":")
    if source == "builtin":
        prompts = _builtin(split)
    elif kind in HUB_DEFAULTS and (sep == "" or ref):
        prompts = _from_dataset(kind, ref or HUB_DEFAULTS[kind], split)
    elif source.endswith((".jsonl", ".json")):
        prompts = _from_records(_read_records(Path(source)), split, str(source), "custom")
    else:
        raise MoodpoError(
            f"unknown prompt source {source!r}; use builtin, hh-rlhf[:<folder or hub id>], "
            "tldr[:<folder or hub id>], or a path to a .jsonl/.json file"
        )

    prompts = _clean(prompts)
    if not prompts:
        raise MoodpoError(f"prompt source {source!r} has no non-empty prompts in split {split!r}")
    if seed is not None:
        random.Random(seed).shuffle(prompts)
    return prompts[:limit]


def tuning_split(source: str) -> str:
    """The split to choose recipes and hyperparameters on: "dev" where `source` has dev prompts,
    else "eval" (a hub dataset without a validation split, a file with only train and eval records)."""
    try:
        load_prompts(source, "dev", seed=None)
    except MoodpoError:
        return "eval"
    return "dev"


def filter_categories(prompts: Sequence[Prompt], categories: Iterable[str], where: str) -> list[Prompt]:
    """Only the prompts of these categories; naming a category that `where` lacks is an error."""
    wanted = set(categories)
    found = prompt_categories(prompts)
    unknown = [c for c in dict.fromkeys(categories) if c not in found]
    if unknown:
        raise MoodpoError(f"no such category in {where}: no prompts in categories {unknown}; "
                          f"it has {', '.join(sorted(found))}")
    return [p for p in prompts if p.category in wanted]


def prompt_categories(prompts: Iterable[Prompt]) -> dict[str, int]:
    """How many prompts fall in each category, e.g. {"everyday": 144, "harmful": 44}."""
    return dict(Counter(p.category for p in prompts))


def _clean(prompts: Iterable[Prompt]) -> list[Prompt]:
    seen: set[str] = set()
    out = []
    for p in prompts:
        text = p.text.strip()
        if text and text not in seen:
            seen.add(text)
            out.append(Prompt(p.id, text, p.category))
    return out


def _builtin(split: str) -> list[Prompt]:
    path = resources.files(__name__).joinpath("prompts.jsonl")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return _from_records(records, split, "builtin prompts.jsonl", default_category=None)


def _read_records(path: Path) -> list[dict]:
    """Objects from a JSON Lines file, or from a .json file holding one list of objects."""
    if not path.is_file():
        raise MoodpoError(f"prompt file {path} does not exist; check the path")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise MoodpoError(f"{path} is not valid JSON ({e}); fix the file") from None
    else:
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise MoodpoError(f"{path} line {lineno} is not valid JSON ({e}); fix that line") from None
    for i, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str):
            raise MoodpoError(f"{path} record {i} has no string 'prompt' field; every record needs one")
    return records


def _from_records(records: list[dict], split: str, where: str, default_category: str | None) -> list[Prompt]:
    prompts = []
    for i, rec in enumerate(records):
        # A record without a split belongs to every split (see the module docstring).
        if split != "all" and rec.get("split", split) != split:
            continue
        category = rec.get("category", default_category)
        if category is None:
            raise MoodpoError(f"{where} record {i + 1} has no 'category' field")
        prompts.append(Prompt(str(rec.get("id", f"custom-{i:05d}")), rec["prompt"], str(category)))
    return prompts


def _from_dataset(kind: str, ref: str, split: str) -> list[Prompt]:
    """Rows of a saved folder or hub dataset turned into Prompts for `kind` (hh-rlhf or tldr)."""
    import datasets  # heavy import, only needed for these sources

    column, extract, category = {
        "hh-rlhf": ("chosen", first_human_turn, "hh-rlhf"),
        "tldr": ("prompt", tldr_request, "summarize"),
    }[kind]
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise MoodpoError(f"{ref} is a file; {kind}:<path> needs a folder written by save_to_disk")
        try:
            loaded = datasets.load_from_disk(str(path))
        except FileNotFoundError:
            raise MoodpoError(f"{ref} is not a dataset folder; write it with Dataset.save_to_disk") from None
        names = list(loaded) if isinstance(loaded, datasets.DatasetDict) else None
        parts = [(n, loaded[n]) for n in _split_names(names, split, ref)] if names else [(None, loaded)]
    elif ref.startswith((".", "/", "~")) or ref.count("/") != 1:
        raise MoodpoError(f"dataset folder {ref} does not exist; check the path or pass a hub id like owner/name")
    else:
        try:
            names = datasets.get_dataset_split_names(ref)
            parts = [(n, datasets.load_dataset(ref, split=n)) for n in _split_names(names, split, ref)]
        except MoodpoError:
            raise
        except Exception as e:  # network, auth, or a wrong id: all fixed by the user
            raise MoodpoError(
                f"could not load {ref!r} from the Hugging Face hub ({type(e).__name__}); check the id "
                "and network, or pass a local folder written by save_to_disk"
            ) from e

    prompts = []
    for name, ds in parts:
        if column not in ds.column_names:
            raise MoodpoError(
                f"{ref} has no {column!r} column (columns: {', '.join(ds.column_names)}); "
                f"{kind} needs a {column!r} column"
            )
        for i, value in enumerate(ds[column]):
            prompts.append(Prompt(f"{kind}/{name or 'data'}/{i}", extract(value or ""), category))
    return prompts


def _split_names(available: list[str], split: str, ref: str) -> list[str]:
    """Map our train/dev/eval/all onto a dataset's own split names."""
    if split == "all":
        return list(available)
    wanted = DATASET_SPLIT_NAMES[split]
    for name in wanted:
        if name in available:
            return [name]
    raise MoodpoError(
        f"{ref} has splits {', '.join(available)} but none for {split!r} "
        f"(looked for {', '.join(wanted)}); use split='all' or add that split"
    )


def first_human_turn(conversation: str) -> str:
    """The text between the first "\\n\\nHuman: " and the next "\\n\\nAssistant:"; "" if none."""
    start = conversation.find(_HUMAN)
    if start < 0:
        return ""
    start += len(_HUMAN)
    end = conversation.find(_ASSISTANT, start)
    return conversation[start : end if end >= 0 else None].strip()


def tldr_request(prompt: str) -> str:
    """Turn a "SUBREDDIT: ... TITLE: ... POST: ... TL;DR:" prompt into a summarisation request.

    The title is kept above the post body because it often carries the context the post assumes.
    """
    text = prompt.strip()
    if text.endswith("TL;DR:"):
        text = text[: -len("TL;DR:")].strip()
    fields = _TLDR_FIELDS.match(text)
    if fields is None:
        post = text
    else:
        title, body = fields["title"].strip(), fields["post"].strip()
        post = f"{title}\n\n{body}" if title else body
    return TLDR_REQUEST + post if post else ""
