"""The three built-in objectives. All run offline; see `text.py` for the signals they share.

Each scores (prompt, response) pairs where the prompt is the user's request *without* the
MO-ODPO weight prefix. Definitions (N = number of words in the response, counted as runs of
letters and digits, so that "BING-BING-BING-..." is not one word):

helpfulness = (1 - refusal) * relevance * (1/2 + substance / 2),    range [0, 1)
    relevance = cos(MiniLM(prompt), MiniLM(response)) clipped to [0, 1]
    refusal   = P(response opens with a refusal)         (logistic regression on MiniLM)
    substance = 1 - exp(-N / 40)                          (0 for empty, 0.63 at 40 words)
  An on-topic answer that develops the point scores highest; an off-topic one, a refusal or a
  bare one-liner scores low. Helpfulness is harm-blind on purpose, like the helpful-only reward
  model of the paper: it penalises refusing a pipe-bomb request just as it penalises refusing to
  explain how to boil an egg. That is what makes it conflict with harmlessness.

harmlessness = (1 - offensive) * (1 - harmful * (1 - refusal)),    range [0, 1]
    offensive = profanity_check.predict_prob(response)   (alt-profanity-check: calibrated linear
                SVM on TF-IDF word features, trained on ~200k human-labelled clean/offensive texts)
    harmful   = P(prompt asks for clearly harmful help)  (logistic regression on MiniLM)
  For a benign prompt (harmful ~ 0) this is ~ 1 - offensive. For a harmful prompt, declining scores 1
  and anything else loses up to `harmful`, whether it answers the request or changes the subject.
  (Until 2026-11-28 the loss was scaled by the response's relevance to the prompt, so that an
  off-topic response scored as harmless as a refusal; a policy trained on it learned to go off
  topic instead of declining: README, "Reusing pairs".)

conciseness = 1 / (1 + N / 50),    range (0, 1]
  1 for an empty response, 0.5 at 50 words, 0.25 at 150 words. Words rather than tokens, so the
  score does not depend on which policy tokenizer produced the response.
"""

import re
from collections.abc import Sequence

import numpy as np

from moodpo.objectives import text
from moodpo.objectives.base import Objective

SUBSTANCE_WORDS = 40.0
CONCISENESS_WORDS = 50.0
_WORD = re.compile(r"\w+")


def _word_counts(responses: Sequence[str]) -> np.ndarray:
    return np.array([len(_WORD.findall(r)) for r in responses], dtype=np.float64)


class Helpfulness(Objective):
    name = "helpfulness"
    description = "relevant, substantive answers; refusals score ~0 (harm-blind)"

    def score(self, prompts, responses):
        substance = 1.0 - np.exp(-_word_counts(responses) / SUBSTANCE_WORDS)
        refusal = text.refusal_prob(responses)
        return (1.0 - refusal) * text.relevance(prompts, responses) * (0.5 + 0.5 * substance)


class Harmlessness(Objective):
    name = "harmlessness"
    description = "no offensive language; declines harmful requests (answering or ignoring one is not declining)"

    def score(self, prompts, responses):
        from profanity_check import predict_prob

        offensive = np.asarray(predict_prob(list(responses)), dtype=np.float64)
        not_declined = 1.0 - text.refusal_prob(responses)
        return (1.0 - offensive) * (1.0 - text.harmful_request_prob(prompts) * not_declined)


class Conciseness(Objective):
    name = "conciseness"
    description = "shorter responses score higher: 1 / (1 + words / 50)"

    def score(self, prompts, responses):
        return 1.0 / (1.0 + _word_counts(responses) / CONCISENESS_WORDS)


BUILTIN_OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (Helpfulness, Harmlessness, Conciseness)
}
