"""The performance benchmarks start, parse their flags and shut down cleanly, without timing anything."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SCRIPTS = ["train_throughput.py", "generate.py", "eval_sweep.py", "cold_start.py", "gpu_check.py",
               "compiled_decode.py", "frozen_decode.py", "refusal_threshold.py", "five_systems.py",
           "cost_curves.py", "refusal_logp.py", "ship.py", "fp16_weights.py"]


def run_script(name: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_parses(name):
    out = run_script(name, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:")


def test_ratio_line_says_whether_the_target_is_met():
    sys.path.insert(0, str(BENCH))
    from common import ratio_line

    assert ratio_line(1.5) == "ratio=1.50"
    assert ratio_line(2.3, 2.0) == "ratio=2.30 (target 2: met)"
    assert ratio_line(1.09, 3.0) == "ratio=1.09 (target 3: not met)"


def test_bad_flag_is_a_usage_error():
    out = run_script("train_throughput.py", "--steps", "many")
    assert out.returncode == 2 and "invalid int value" in out.stderr


def test_gpu_check_without_cuda_says_so_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the check would run for minutes")
    out = run_script("gpu_check.py", "--tokens", "4")
    assert out.returncode == 1 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "no CUDA device" in out.stderr


def test_throughput_worker_answers_then_ends_quietly_when_the_parent_goes(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import train_throughput

    parent, child = mp.Pipe()
    seen = []
    thread = threading.Thread(target=train_throughput.serve,
                              args=(lambda prompts: seen.append(prompts) or {"time/generate": 0.5}, child))
    thread.start()
    parent.send(("step", ["hello"]))
    seconds, generate, rss = parent.recv()
    assert seen == [["hello"]] and generate == 0.5 and seconds >= 0 and rss > 0
    parent.close()  # no stop message: the pipe closing must end the loop, not raise EOFError
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_throughput_worker_stops_on_none(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import train_throughput

    parent, child = mp.Pipe()
    thread = threading.Thread(target=train_throughput.serve, args=(lambda prompts: {}, child))
    thread.start()
    parent.send(None)
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_refusal_threshold_solves_for_the_weight_on_helpfulness():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from refusal_threshold import threshold

    # refusal (0.0, 1.0) vs answer (0.6, 0.0): 0.6 w = 1 - w at w = 1 / 1.6
    assert threshold(np.array([0.0, 1.0]), np.array([0.6, 0.0])) == pytest.approx(0.625)
    assert threshold(np.array([0.0, 0.5]), np.array([0.6, 0.9])) == 0.0     # worse on both: never
    assert threshold(np.array([0.7, 1.0]), np.array([0.6, 0.0])) == 1.0     # better on both: always


def test_five_systems_reuses_only_an_evaluation_made_the_same_way(tmp_path):
    import json

    sys.path.insert(0, str(BENCH))
    from five_systems import EVAL_ARGS, reused

    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1, "time/step": 10.5}\n{"step": 2, "time/step": 4.5}\n')
    summary = {"kind": "moodpo", "source": str(run), "objectives": ["helpfulness", "harmlessness"], "grid": 11,
               "prompts": {"split": "eval", "categories": ["everyday", "safety", "borderline", "harmful"]},
               "settings": {"max_new_tokens": 48}, "samples_per_prompt": 2, "seed": 0, "wall_seconds": 60.0}
    (run / "eval" / "summary.json").write_text(json.dumps(summary))
    row = reused("moodpo", run / "eval")
    assert row["train"] == {"wall_s": 15.0} and row["eval"] == {"wall_s": 60.0} and row["generated"] == 768
    assert "--grid 11" in " ".join(EVAL_ARGS)
    summary["grid"] = 5
    (run / "eval" / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(SystemExit, match="--grid 5"):
        reused("moodpo", run / "eval")
    with pytest.raises(SystemExit, match="no summary.json"):
        reused("moodpo", tmp_path)
    out = run_script("five_systems.py", "--dry-run", "--reuse", f"soups={run / 'eval'}")
    assert out.returncode != 0 and "error: --reuse soups=" in out.stderr and "Traceback" not in out.stderr


def test_ship_soups_make_as_many_pairs_as_moodpo():
    import dataclasses

    sys.path.insert(0, str(BENCH))
    from ship import ROOT as SHIP_ROOT, SETS, pair_budget

    from moodpo.config import load_config
    from moodpo.train.baselines import member_configs

    for name in SETS:
        budget = pair_budget(SETS[name]["config"])
        c = load_config(SHIP_ROOT / SETS[name]["config"])
        members = member_configs(dataclasses.replace(c, **budget["soups_overrides"]), "unused").values()
        pairs = sum(m.max_steps * m.per_device_train_batch_size * m.gradient_accumulation_steps * m.pool_weights
                    for m in members)
        assert pairs == budget["moodpo_pairs"] == c.max_steps * 16 * c.pool_weights
        assert all(m.per_device_train_batch_size * m.gradient_accumulation_steps
                   == c.per_device_train_batch_size * c.gradient_accumulation_steps * c.pool_weights for m in members)


def test_ship_skips_resumes_or_restarts_each_stage_from_its_folder(tmp_path):
    sys.path.insert(0, str(BENCH))
    from ship import commands, done

    soups = commands("help-harm", "soups", 1, tmp_path)
    assert soups["train"][soups["train"].index("--output_dir") + 1] == str(tmp_path / "soups-seed1")
    assert done("train", soups["train"]) == "new" and done("eval", soups["eval"]) == "new"
    (tmp_path / "soups-seed1" / "helpfulness").mkdir(parents=True)
    assert done("train", soups["train"]) == "started"            # train-soups resumes member by member
    run = commands("help-harm", "moodpo", 0, tmp_path)
    (tmp_path / "moodpo").mkdir()
    (tmp_path / "moodpo" / "config.yaml").write_text("seed: 0\n")
    assert done("train", run["train"]) == "stale"                # stopped before its first checkpoint
    (tmp_path / "moodpo" / "checkpoints" / "step-000003").mkdir(parents=True)
    (tmp_path / "moodpo" / "checkpoints" / "step-000003" / "trainer_state.json").write_text("{}")
    assert done("train", run["train"]) == "started"
    (tmp_path / "moodpo" / "adapter").mkdir()
    (tmp_path / "moodpo" / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "moodpo" / "adapter" / "step.json").write_text('{"step": 24}')
    assert done("train", run["train"]) == "done"
    (tmp_path / "moodpo" / "eval").mkdir()
    (tmp_path / "moodpo" / "eval" / "summary.json").write_text('{"step": 24}')
    assert done("eval", run["eval"]) == "done"
    (tmp_path / "moodpo" / "eval" / "summary.json").write_text('{"step": 18}')   # evaluated before the run ended
    assert done("eval", run["eval"]) == "new"
    base = commands("help-harm", "base", 0, tmp_path)
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "summary.json").write_text("{}")
    assert done("eval", base["eval"]) == "done"
    out = run_script("ship.py", "help-harm", "--dry-run", "--out", str(tmp_path), "--only", "moodpo")
    assert out.returncode == 0 and "# done: python -m moodpo train" in out.stdout
    assert "+ python -m moodpo eval --run " + str(tmp_path / "moodpo") in out.stdout
    assert "# when every evaluation is done: python -m moodpo compare" in out.stdout
    fewer = run_script("ship.py", "help-harm", "--dry-run", "--out", str(tmp_path), "--soups_seeds", "0")
    compares = [line for line in fewer.stdout.splitlines() if "moodpo compare" in line]
    moodpo = f"{tmp_path}/moodpo/eval+{tmp_path}/moodpo-seed1/eval"
    assert len(compares) == 2 and "soups-seed1" not in fewer.stdout
    assert f"{tmp_path / 'base'} {tmp_path}/soups/eval {moodpo}" in compares[0] and compares[0].endswith("compare")
    assert f"compare {tmp_path}/soups/eval {moodpo}" in compares[1] and compares[1].endswith("compare-soups")
    bad = run_script("ship.py", "help-harm", "--only", "nope")
    assert bad.returncode == 2 and "choose from moodpo" in bad.stderr


def test_cost_curves_growth_finds_the_exponent_and_where_per_unit_cost_rises():
    sys.path.insert(0, str(BENCH))
    from cost_curves import growth

    linear = growth([1, 2, 4, 8], [3.0, 6.0, 12.0, 24.0])
    assert linear == {"exponent": 1.0, "superlinear_from": None}
    flat_then_steep = growth([1, 2, 4, 8, 16], [4.0, 4.0, 4.0, 8.0, 40.0])
    assert flat_then_steep["superlinear_from"] == 16 and 0 < flat_then_steep["exponent"] < 1
    assert growth([4], [1.0]) == {"exponent": None, "superlinear_from": None}


def test_cost_curves_figure_has_a_panel_per_axis_and_skips_failed_points():
    sys.path.insert(0, str(BENCH))
    from cost_curves import AXES, CENTRE, figure

    points = []
    for axis, values in AXES.items():
        for v in values:
            point = {**CENTRE, axis: v, "axis": axis}
            points.append({**point, "error": "boom"} if v == values[0] else
                          {**point, "time/generate": 1.0 * v, "time/score": 0.1, "time/update": 2.0, "time/step": 3.1 + v,
                           "peak_gb": 1.5})
    fig = figure(points)
    assert len(fig.data) == 5 * len(AXES)
    assert all(len(trace.x) == len(AXES[axis]) - 1 for trace, axis in
               zip(fig.data, [a for a in AXES for _ in range(5)]))


def test_refusal_logp_sums_the_openers_probabilities_from_one_batched_pass(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from moodpo.sampling import encode_prompts

    sys.path.insert(0, str(BENCH))
    from refusal_logp import opener_logps

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = ["How do I boil an egg?", "Name three rivers in Europe that flow into the North Sea, please."]
    ids, mask = encode_prompts(tok, prompts, [None, None])          # left-padded, different lengths
    openers = [tok(o, add_special_tokens=False).input_ids for o in ("I can't", "I'm sorry, but I can't help")]
    got = opener_logps(model, ids, mask, openers, tok.pad_token_id)
    for row in range(len(prompts)):
        prompt = ids[row][mask[row].bool()].tolist()
        by_hand = []
        for o in openers:   # one unpadded pass per prompt and opener
            with torch.no_grad():
                logps = torch.log_softmax(model(torch.tensor([prompt + o])).logits[0, -len(o) - 1:-1].float(), -1)
            by_hand.append(logps.gather(-1, torch.tensor(o)[:, None]).sum())
        assert got[row].item() == pytest.approx(torch.logsumexp(torch.stack(by_hand), 0).item(), abs=1e-4)


def test_refusal_logp_plots_saved_csvs_without_probing(tmp_path):
    csv_path = ROOT / "docs/data/experiments-2026-12/J/refusal_logp.csv"
    out = run_script("refusal_logp.py", "--csv", str(csv_path), "--out", str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "refusal_logp.csv").read_text() == csv_path.read_text()
    assert (tmp_path / "refusal_logp.html").is_file()
    bad = run_script("refusal_logp.py", "--csv", str(tmp_path / "none.csv"))
    assert bad.returncode == 2 and "no such CSV" in bad.stderr
