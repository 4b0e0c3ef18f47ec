"""Shared fixtures: a tiny Llama built from a config with the real SmolLM2 tokenizer, saved to disk."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch


@pytest.fixture(scope="session")
def smol_dir():
    """The embedded SmolLM2-135M-Instruct, converted once into the cache (~20 s the first time)."""
    from moodpo.models import resolve_model

    return resolve_model("smollm2-135m")


def build_tiny_model(path, tokenizer_dir, *, seed: int = 0, layers: int = 2):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_dir):
    """A 2-layer, 64-wide Llama with SmolLM2's tokenizer and chat template (~3 M parameters)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), smol_dir)
