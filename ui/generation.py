"""Steer and Compare as plain generators: validate, load (once), stream, score.

Each yields plain dicts as the response grows, so the layout, the public API and the tests all
consume the same thing. Every input is checked before the model is touched; a bad one raises
MoodpoError and nothing is generated or written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from moodpo.errors import MoodpoError
from moodpo.sampling_settings import TEMPERATURE, GenerationSettings
from moodpo.weights import validate_weights
from ui.policies import PolicyStore
from ui.settings import AppConfig

MAX_SEED = 2**32 - 1
MAX_TEMPERATURE = 2.0


def check_prompt(prompt: str | None, limit: int) -> str:
    if prompt is None or not str(prompt).strip():
        raise MoodpoError("the prompt is empty; write a request first")
    prompt = str(prompt)
    if len(prompt) > limit:
        raise MoodpoError(f"the prompt has {len(prompt):,} characters; the limit is {limit:,}")
    return prompt


def check_sampling(config: AppConfig, max_new_tokens, temperature, seed) -> tuple[GenerationSettings, int]:
    """GenerationSettings and seed from UI/API values; temperature 0 means greedy decoding."""
    limit = config.max_new_tokens_limit
    try:
        tokens, temp, seed_value = float(max_new_tokens), float(temperature), float(seed)
    except (TypeError, ValueError):
        raise MoodpoError("max_new_tokens, temperature and seed must be numbers") from None
    if not math.isfinite(tokens) or tokens != int(tokens) or not 1 <= tokens <= limit:
        raise MoodpoError(f"max_new_tokens must be a whole number from 1 to {limit}, got {max_new_tokens}")
    if not math.isfinite(temp) or not 0 <= temp <= MAX_TEMPERATURE:
        raise MoodpoError(f"temperature must be between 0 and {MAX_TEMPERATURE:g}, got {temperature}")
    if not math.isfinite(seed_value) or seed_value != int(seed_value) or not 0 <= seed_value <= MAX_SEED:
        raise MoodpoError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed}")
    settings = GenerationSettings(max_new_tokens=int(tokens), temperature=temp if temp > 0 else 1.0,
                                  do_sample=temp > 0)
    return settings, int(seed_value)


def check_weights(weights: Sequence[float] | None, objectives: Sequence[str]) -> np.ndarray:
    """One weight per objective, finite, non-negative, not all zero; returned normalised to sum 1."""
    if weights is None:
        raise MoodpoError(f"give {len(objectives)} weights, one per objective ({', '.join(objectives)})")
    return validate_weights(weights, len(objectives))


def reorder(weights: Sequence[float], source: Sequence[str], target: Sequence[str]) -> list[float]:
    """Weights given for objectives `source`, listed in the order of `target` (the same set)."""
    if sorted(source) != sorted(target):
        raise MoodpoError(f"the two policies steer different objectives ({', '.join(source)} vs "
                          f"{', '.join(target)}); compare them at two weight vectors instead")
    by_name = dict(zip(source, weights))
    return [by_name[o] for o in target]


def score_responses(objectives: Sequence[str], prompt: str, responses: Sequence[str]) -> list[dict[str, float]]:
    """Every response's score on every objective (the prompt without the prefix, as in training)."""
    from moodpo.objectives import score_all

    scores = score_all(list(objectives), [prompt] * len(responses), list(responses))  # (N, K)
    return [{o: float(s) for o, s in zip(objectives, row)} for row in scores]


@dataclass(frozen=True)
class Side:
    policy: str
    weights: Sequence[float]


def _prepare(store: PolicyStore, side: Side) -> tuple[tuple[str, ...], np.ndarray]:
    objectives = store.objectives(side.policy)
    return objectives, check_weights(side.weights, objectives)


def _state(side: Side, objectives, weights: np.ndarray, prefix: str) -> dict:
    return {"policy": side.policy, "objectives": list(objectives), "weights": weights.tolist(),
            "prefix": prefix, "response": "", "scores": None}


def steer(store: PolicyStore, config: AppConfig, policy: str, prompt: str, weights: Sequence[float], *,
          seed=0, max_new_tokens=None, temperature=TEMPERATURE,
          on_load: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Stream one response; yields {policy, objectives, weights, prefix, response, scores, status}.

    `weights` has one entry per objective of the policy (normalised here). The last dict has
    status "done" and the response's score on every objective.
    """
    prompt = check_prompt(prompt, config.max_prompt_chars)
    settings, seed = check_sampling(config, config.max_new_tokens if max_new_tokens is None else max_new_tokens,
                                    temperature, seed)
    side = Side(policy, weights)
    objectives, w = _prepare(store, side)
    store.wait_until_ready(on_load)
    model = store.get(policy, on_load)
    state = _state(side, objectives, w, model.prefix(w))
    start = time.perf_counter()
    text = ""
    for text in model.stream(prompt, w, settings=settings, seed=seed):
        yield {**state, "response": text, "status": "generating"}
    yield {**state, "response": text, "status": "scoring"}
    scores = score_responses(objectives, prompt, [text])[0]
    yield {**state, "response": text, "scores": scores, "status": "done",
           "seconds": round(time.perf_counter() - start, 2)}


def _zip_streams(streams: Sequence[Iterator[str]]) -> Iterator[list[str]]:
    """Advance several text streams in parallel threads; yield all latest texts whenever one grows."""
    import queue
    import threading

    updates: queue.Queue = queue.Queue()

    def pump(i: int, stream: Iterator[str]) -> None:
        try:
            for text in stream:
                updates.put((i, text, None))
        except BaseException as e:  # re-raised in the consumer
            updates.put((i, None, e))
        updates.put((i, None, None))

    for i, s in enumerate(streams):
        threading.Thread(target=pump, args=(i, s), daemon=True, name=f"compare-{i}").start()
    texts, running = [""] * len(streams), len(streams)
    while running:
        i, text, error = updates.get()
        if error is not None:
            raise error
        if text is None:
            running -= 1
            continue
        texts[i] = text
        yield list(texts)


def compare(store: PolicyStore, config: AppConfig, prompt: str, a: Side, b: Side, *, seed=0,
            max_new_tokens=None, temperature=TEMPERATURE,
            on_load: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Stream two responses to one prompt with the same seed; yields {"a": state, "b": state, "objectives", "status"}.

    Both panes stream together: one policy at two weight vectors runs as one batch of two rows,
    two policies run side by side in two threads. Each side has its own random generator
    seeded `seed`, so a pane draws what Steer draws for its policy and weights. Both are scored
    on the union of their objectives.
    """
    prompt = check_prompt(prompt, config.max_prompt_chars)
    settings, seed = check_sampling(config, config.max_new_tokens if max_new_tokens is None else max_new_tokens,
                                    temperature, seed)
    prepared = [_prepare(store, side) for side in (a, b)]
    objectives = list(dict.fromkeys([*prepared[0][0], *prepared[1][0]]))
    store.wait_until_ready(on_load)
    models = [store.get(side.policy, on_load) for side in (a, b)]
    states = [_state(side, objs, w, m.prefix(w)) for side, (objs, w), m in zip((a, b), prepared, models)]
    start = time.perf_counter()
    if models[0] is models[1]:
        streams = models[0].stream_many(prompt, [prepared[0][1], prepared[1][1]], settings=settings, seed=seed)
    else:
        streams = _zip_streams([m.stream(prompt, w, settings=settings, seed=seed)
                                for m, (_, w) in zip(models, prepared)])
    for texts in streams:
        states = [{**s, "response": t} for s, t in zip(states, texts)]
        yield {"a": states[0], "b": states[1], "objectives": objectives, "status": "generating"}
    yield {"a": states[0], "b": states[1], "objectives": objectives, "status": "scoring"}
    scores = score_responses(objectives, prompt, [states[0]["response"], states[1]["response"]])
    states = [{**s, "scores": sc} for s, sc in zip(states, scores)]
    yield {"a": states[0], "b": states[1], "objectives": objectives, "status": "done",
           "seconds": round(time.perf_counter() - start, 2)}
