"""Integration on the real embedded SmolLM2-135M-Instruct (slow: a model load and a real step)."""

from __future__ import annotations

import json

import pytest
import torch

from moodpo.cli import main
from moodpo.models import load_model, load_tokenizer, resolve_model

pytestmark = pytest.mark.slow


def test_embedded_model_is_a_plain_model(smol_dir, tmp_path):
    model = load_model("smollm2-135m")
    assert not getattr(model.config, "quantization_config", None)
    assert model.config.num_hidden_layers == 30 and model.dtype == torch.float32
    model.save_pretrained(tmp_path / "copy")  # refused while the GGUF quantization config is attached
    tokenizer = load_tokenizer("smollm2-135m")
    assert tokenizer.padding_side == "left" and tokenizer.chat_template
    assert resolve_model("smollm2-135m") == smol_dir


def test_one_training_step_on_the_embedded_default(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--config", "configs/default.yaml", "--max_steps", "1", "--per_device_train_batch_size", "2",
                 "--gradient_accumulation_steps", "1", "--max_new_tokens", "16", "--output_dir", str(run), "--save_steps", "1"])
    assert code == 0, capsys.readouterr().err
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1
    m = metrics[0]
    assert 0 <= m["objectives/helpfulness/mean"] <= 1 and 0 <= m["objectives/conciseness/mean"] <= 1
    assert m["pairs"] + m["ties"] == 2 * 4   # 2 prompt slots, each paired under pool_weights 4 weight vectors
    assert (run / "checkpoints" / "step-000001" / "model" / "adapter_model.safetensors").is_file()
    assert (run / "adapter" / "adapter_config.json").is_file()
