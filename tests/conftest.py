"""Shared fixtures: a tiny random model (no download, milliseconds) and the embedded model."""
import pytest
import torch

import labkit as lk
from labkit.models import LM


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded model's real tokenizer (49,152 tokens, chat template), from the local cache."""
    return lk.load().tokenizer


@pytest.fixture(scope="session")
def tiny_lm(tokenizer):
    """A 2-layer Llama with random weights and the real tokenizer: fast, and no download."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    return LM(model=model, tokenizer=tokenizer, name="tiny-random-llama")


@pytest.fixture(scope="session")
def smol():
    """The embedded SmolLM2-135M-Instruct (cached after the first conversion)."""
    return lk.load()
