"""Cheap objectives for trainer tests, used as `python:toy_objectives:<name>` (tests/ is on sys.path)."""


def distinct_chars(prompts, responses):
    return [len(set(r)) / 10 for r in responses]


def shortness(prompts, responses):
    return [-len(r) / 100 for r in responses]


def not_a_function(prompts, responses):
    return [float("nan")] * len(responses)
