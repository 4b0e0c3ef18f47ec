"""The public API: typed endpoints for scripts and `gradio_client`, over the same handlers as the UI.

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    client.predict(api_name="/policies")
    client.predict("How do airplanes fly?", [0.7, 0.3], api_name="/generate")
    client.predict("How do airplanes fly?", [1, 0], [0, 1], api_name="/compare")
    client.predict(["alpha-0.3"], api_name="/pareto")

Generation endpoints stream: `client.submit(...)` yields the growing response. Training and the
UI's own events are not part of this API.
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from moodpo.errors import MoodpoError
from moodpo.sampling_settings import TEMPERATURE
from ui.errors import user_errors
from ui.fronts import hypervolume_table, list_eval_sources, load_fronts, point_samples
from ui.generation import Side, compare, steer
from ui.policies import BASE, PolicyStore, list_policies
from ui.settings import AppConfig


def register_api(config: AppConfig, store: PolicyStore, generation_queue: str) -> None:
    """Add the public endpoints to the Blocks being built."""

    def policies() -> list[dict]:
        """Every policy the app can load: value (pass it as `policy`), label, kind and objectives."""
        return [{"value": c.value, "label": c.label, "kind": c.kind, "objectives": list(c.objectives)}
                for c in list_policies(config)]

    def generate(prompt: str, weights: list[float], policy: str = BASE, seed: int = 0,
                 max_new_tokens: int = config.max_new_tokens, temperature: float = TEMPERATURE) -> Iterator[dict]:
        """Stream one response at these objective weights (one per objective of the policy, normalised).

        Yields {policy, objectives, weights, prefix, response, scores, status}; the last has status
        "done" and the response's score on every objective.
        """
        yield from steer(store, config, policy, prompt, weights, seed=seed, max_new_tokens=max_new_tokens,
                         temperature=temperature)

    def compare_api(prompt: str, weights_a: list[float], weights_b: list[float] | None = None,
                    policy_a: str = BASE, policy_b: str | None = None, seed: int = 0,
                    max_new_tokens: int = config.max_new_tokens, temperature: float = TEMPERATURE) -> Iterator[dict]:
        """Two responses to one prompt with the same seed: two weight vectors, two policies, or both.

        weights_b defaults to weights_a and policy_b to policy_a. Yields {"a", "b", "objectives", "status"}.
        """
        a = Side(policy_a, weights_a)
        b = Side(policy_b or policy_a, weights_a if weights_b is None else weights_b)
        yield from compare(store, config, prompt, a, b, seed=seed, max_new_tokens=max_new_tokens,
                           temperature=temperature)

    def pareto(runs: list[str] | None = None) -> dict:
        """Eval points, hypervolumes (shared reference point) and warnings for runs under the runs folder.

        runs defaults to every run with evaluation data.
        """
        names = list(runs) if runs else list_eval_sources(config.runs_dir)
        fronts = load_fronts(config.runs_dir, names)
        table, reference = hypervolume_table(fronts)
        keep = [c for c in fronts.table.columns if c != "alpha_order"]
        points = fronts.table[keep].astype(object).where(fronts.table[keep].notna(), None)
        return {"objectives": fronts.objectives, "points": points.to_dict("records"),
                "hypervolume": table.astype(object).where(table.notna(), None).to_dict("records"),
                "reference_point": reference, "warnings": fronts.warnings()}

    def samples(run: str, weights: list[float], system: str = "", limit: int = 5) -> list[dict]:
        """Sample responses of one evaluated point of a run (from its generations.jsonl)."""
        fronts = load_fronts(config.runs_dir, [run])
        if fronts.empty:
            raise MoodpoError(f"{run} has no evaluation data")
        return point_samples(config.runs_dir, run, system or str(fronts.table["system"].iloc[0]), weights,
                             fronts.objectives, limit=max(1, min(int(limit), 50))).to_dict("records")

    gr.api(user_errors(policies), api_name="policies")
    gr.api(user_errors(generate), api_name="generate", concurrency_id=generation_queue, concurrency_limit=1)
    gr.api(user_errors(compare_api), api_name="compare", concurrency_id=generation_queue, concurrency_limit=1)
    gr.api(user_errors(pareto), api_name="pareto")
    gr.api(user_errors(samples), api_name="samples")
