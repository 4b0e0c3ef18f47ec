"""The launched app driven over HTTP with gradio_client: the public API, bad input, what is not exposed."""

from __future__ import annotations

import math
import shutil

import pytest

from test_ui_fixtures import OBJECTIVES, free_port, make_runs, snapshot

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return make_runs(tmp_path_factory.mktemp("runs"), tiny_model_dir)


@pytest.fixture(scope="module")
def app(runs, tiny_model_dir):
    from ui import AppConfig, build_demo, launch

    config = AppConfig(runs_dir=runs, model=tiny_model_dir, max_new_tokens=12)
    demo = build_demo(config)
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield demo, f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    return gradio_client.Client(app[1], verbose=False)


def test_only_the_typed_endpoints_are_public(client):
    info = client.view_api(return_format="dict", print_info=False)
    assert sorted(info["named_endpoints"]) == ["/compare", "/generate", "/pareto", "/policies", "/samples",
                                               "/vote_next", "/vote_register", "/vote_skip", "/vote_studies",
                                               "/vote_submit"]
    assert info["unnamed_endpoints"] == {}


def test_policies_lists_what_lies_under_the_runs_folder(client):
    values = [p["value"] for p in client.predict(api_name="/policies")]
    assert values[0] == "base"
    assert {"alpha-0.5", "alpha-0.5/checkpoints/step-000002", "alpha-2", "soups"} <= set(values)


def test_generate_streams_and_two_weight_vectors_differ(client):
    job = client.submit("How do airplanes stay in the air?", [1, 0], api_name="/generate")
    states = list(job)
    assert len(states) >= 3 and states[-1]["status"] == "done"
    helpful = states[-1]
    harmless = client.predict("How do airplanes stay in the air?", [0, 1], api_name="/generate")
    assert helpful["prefix"].count("Helpfulness: 1.00") == 1 and "Harmlessness: 1.00" in harmless["prefix"]
    for result in (helpful, harmless):
        assert result["response"] and set(result["scores"]) == set(OBJECTIVES)
    again = client.predict("How do airplanes stay in the air?", [1, 0], api_name="/generate")
    assert again["response"] == helpful["response"]  # same seed, same weights, same text


def test_generate_on_a_trained_run_and_a_soups_set(client):
    run = client.predict("Tell me about tea.", [0.3, 0.7], "alpha-0.5/checkpoints/step-000002", api_name="/generate")
    assert run["policy"] == "alpha-0.5/checkpoints/step-000002" and run["weights"] == pytest.approx([0.3, 0.7])
    soups = client.predict("Tell me about tea.", [0.3, 0.7], "soups", api_name="/generate")
    assert soups["status"] == "done" and soups["prefix"].startswith("[Begin System Instruction]")


def test_compare_two_weight_vectors_and_two_policies(client):
    prompt = "How can I become a better listener?"
    out = client.predict(prompt, [1, 0], [0, 1], api_name="/compare")
    assert out["status"] == "done" and out["a"]["prefix"] != out["b"]["prefix"]
    alone = client.predict(prompt, [1, 0], api_name="/generate")
    assert out["a"]["response"] == alone["response"]
    policies = client.predict(prompt, [0.5, 0.5], None, "base", "alpha-0.5", api_name="/compare")
    assert policies["a"]["policy"] == "base" and policies["b"]["policy"] == "alpha-0.5"
    assert policies["a"]["prefix"] == policies["b"]["prefix"]
    assert set(policies["a"]["scores"]) == set(policies["b"]["scores"]) == set(OBJECTIVES)


def test_pareto_data_and_samples(client):
    data = client.predict(["alpha-0.5", "alpha-2"], api_name="/pareto")
    assert data["objectives"] == OBJECTIVES and len(data["points"]) == 10
    assert [row["run"] for row in data["hypervolume"]] == ["alpha-0.5 (α=0.5)", "alpha-2 (α=2)"]
    assert len(data["reference_point"]) == 2 and data["warnings"] == []
    default = client.predict(api_name="/pareto")
    assert {p["run"] for p in default["points"]} == {"alpha-0.5", "alpha-2"}
    samples = client.predict("alpha-0.5", [0.5, 0.5], api_name="/samples")
    assert len(samples) == 2 and samples[0]["response"] == "answer 0 at 0.50"


@pytest.mark.parametrize("args,kwargs,match", [
    (("", [1, 0]), {}, "prompt is empty"),
    (("x" * 4001, [1, 0]), {}, "limit is 4,000"),
    (("hi", [0, 0]), {}, "must not all be zero"),
    (("hi", [1, 0, 0]), {}, "expected 2 weights"),
    (("hi", [-1, 2]), {}, "non-negative"),
    (("hi", 5), {}, "numbers, a list of 2"),
    (("hi", [1, 0]), {"policy": "../../etc"}, "not under the runs folder"),
    (("hi", [1, 0]), {"policy": "/etc"}, "not under the runs folder"),
    (("hi", [1, 0]), {"policy": "base:/tmp/model"}, "no longer exists"),
    (("hi", [1, 0]), {"policy": "alpha-0.5/checkpoints/step-000099"}, "no longer exists"),
    (("hi", [1, 0]), {"max_new_tokens": 100_000}, "max_new_tokens"),
    (("hi", [1, 0]), {"max_new_tokens": 0}, "max_new_tokens"),
    (("hi", [1, 0]), {"temperature": 9}, "temperature"),
])
def test_bad_generate_calls_get_a_clear_error(client, runs, args, kwargs, match):
    before = snapshot(runs)
    with pytest.raises(gradio_client.exceptions.AppError, match=match):
        client.predict(*args, api_name="/generate", **kwargs)
    assert snapshot(runs) == before


def within(seconds: float, fn, *args, **kwargs):
    """fn(*args, **kwargs), or a test failure if it has not returned after `seconds` (a hang)."""
    from concurrent.futures import ThreadPoolExecutor, TimeoutError

    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(fn, *args, **kwargs).result(timeout=seconds)
    except TimeoutError:
        pytest.fail(f"no answer within {seconds} s")
    finally:
        pool.shutdown(wait=False)


@pytest.mark.parametrize("api,args", [
    ("/generate", ("hi", ["nan", 1])),
    ("/generate", ("hi", [1, "inf"])),
    ("/generate", ("hi", ["1e999", 0])),
    ("/compare", ("hi", ["nan", 1], [0, 1])),
    ("/compare", ("hi", [1, 0], ["-inf", 1])),
    ("/compare", ("hi", ["nan", 0], None, "base", "alpha-0.5")),
])
def test_non_finite_weights_through_gradio_client(client, api, args):
    # JSON has no NaN or infinity, so a client sends them as text ("nan", "1e999" is inf too).
    with pytest.raises(gradio_client.exceptions.AppError, match="weights must be finite"):
        within(60, client.predict, *args, api_name=api)


@pytest.mark.parametrize("api", ["/generate", "/compare"])
def test_gradio_client_refuses_to_send_float_nan_at_once(client, api):
    # gradio_client's JSON encoder raises before anything is sent; predict reports it. (Iterating
    # `client.submit(...)` instead waits forever in gradio_client 2.7: its worker thread died.)
    args = ("hi", [math.nan, 1]) if api == "/generate" else ("hi", [1, 0], [math.inf, 1])
    with pytest.raises(ValueError, match="not JSON compliant"):
        within(60, client.predict, *args, api_name=api)


@pytest.mark.parametrize("api,data", [
    ("generate", '["hi", [NaN, 1], "base", 0, 8, 0.7]'),
    ("generate", '["hi", [Infinity, 1], "base", 0, 8, 0.7]'),
    ("compare", '["hi", [1, 0], [NaN, 1], "base", null, 0, 8, 0.7]'),
    ("compare", '["hi", [-Infinity, 0], null, "base", null, 0, 8, 0.7]'),
])
def test_non_finite_weights_over_raw_http(app, api, data):
    import httpx

    url = app[1] + f"gradio_api/call/{api}"
    body = '{"data": %s}' % data
    event = httpx.post(url, content=body, headers={"content-type": "application/json"}).json()["event_id"]
    with httpx.stream("GET", f"{url}/{event}", timeout=60) as reply:
        lines = [line for line in reply.iter_lines() if line.startswith("data:")]
    assert "weights must be finite" in lines[-1]


def test_a_checkpoint_that_vanishes_after_listing(client, runs):
    listed = [p["value"] for p in client.predict(api_name="/policies")]
    assert "alpha-0.5/checkpoints/step-000002" in listed
    hidden = runs / "alpha-0.5" / "checkpoints" / "step-000002"
    moved = runs.parent / "moved-away"
    shutil.move(hidden, moved)
    try:
        with pytest.raises(gradio_client.exceptions.AppError, match="no longer exists"):
            client.predict("hi", [1, 0], "alpha-0.5/checkpoints/step-000002", api_name="/generate")
    finally:
        shutil.move(moved, hidden)
    assert client.predict(api_name="/policies")  # still up


def test_bad_pareto_and_samples_calls(client):
    with pytest.raises(gradio_client.exceptions.AppError, match="not under the runs folder"):
        client.predict(["../.."], api_name="/pareto")
    data = client.predict(["alpha-0.5", "notes"], api_name="/pareto")
    assert "no evaluation data yet for notes" in data["warnings"][0]
    with pytest.raises(gradio_client.exceptions.AppError, match="has no evaluation data"):
        client.predict("notes", [1, 0], api_name="/samples")
    with pytest.raises(gradio_client.exceptions.AppError, match="no generations.jsonl"):
        client.predict("alpha-2", [1, 0], api_name="/samples")


def test_private_endpoints_cannot_be_called_by_name(client):
    with pytest.raises(ValueError, match="Cannot find a function"):
        client.predict(api_name="/start_run")
    with pytest.raises(ValueError, match="Cannot find a function"):
        client.predict(api_name="/run")
