"""Space mode: admin-only training and studies, the start-up preload, and a bounded soups cache."""

from __future__ import annotations

import numpy as np
import pytest

from test_ui_fixtures import make_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return make_runs(tmp_path_factory.mktemp("runs"), tiny_model_dir)


def test_soups_mix_adapters_live_in_a_small_lru_cache(runs):
    from moodpo.policy import GenerationSettings, load_policy

    policy = load_policy(str(runs / "soups"))
    policy.soup_cache = 3
    members = set(policy.soup_adapters)
    settings = GenerationSettings(max_new_tokens=2)

    def mixes():
        return [n for n in policy.model.peft_config if n not in members]

    for i in range(5):  # five weight vectors, three kept: the oldest two are deleted
        list(policy.stream("hi", [i / 10, 1 - i / 10], settings=settings))
    assert sorted(mixes()) == ["soup_20_80", "soup_30_70", "soup_40_60"]
    assert policy.model.active_adapter == "soup_40_60"
    # weights rounded to the slider step share a mix, and using one makes it the most recent
    list(policy.stream("hi", [0.2004, 0.7996], settings=settings))
    list(policy.stream("hi", [0.7, 0.3], settings=settings))
    assert sorted(mixes()) == ["soup_20_80", "soup_40_60", "soup_70_30"]
    before = policy.generate(["hi"], [[0.7, 0.3]], settings=settings, seed=3)
    list(policy.stream("hi", [0.9, 0.1], settings=settings))  # evicts soup_20_80, not the one in use
    assert policy.generate(["hi"], [[0.7, 0.3]], settings=settings, seed=3) == before
    assert len(mixes()) == 3 and set(policy.model.peft_config) >= members
    assert np.allclose(policy.check_weights([0.7, 0.3]), [0.7, 0.3])
