"""Shared fixtures: SmolLM2's tokenizer (chat template) on a tiny random Llama, and the real SmolLM2."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def smol_tok(smol_tokenizer):
    return smol_tokenizer


@pytest.fixture(scope="session")
def tiny_lm(smol_tok):
    """A 2-layer random Llama over SmolLM2's vocabulary: real tokenizer and template, fast forward passes."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(smol_tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct (model, tokenizer), loaded once for the session."""
    from frugalnn.core.llm import load_causal_lm
    from frugalnn.errors import MissingAssetError

    try:
        return load_causal_lm("smollm2")
    except MissingAssetError:
        pytest.fail("smollm2 asset not installed; run frugalnn assets fetch")
