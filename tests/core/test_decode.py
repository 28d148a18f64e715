"""The timed greedy loop gives HF generate's greedy tokens; the memory probes read sensible values."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from frugalnn.core.decode import greedy_decode, peak_rss_bytes, prefill_seconds, reset_peak_rss, vm_hwm_bytes


def test_greedy_decode_equals_generate() -> None:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, eos_token_id=None,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(1, 96, (3, 10), generator=torch.Generator().manual_seed(1))
    run = greedy_decode(model, ids, 12)
    with torch.no_grad():
        want = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    assert torch.equal(run.tokens, want[:, 10:])
    assert run.steps.wall > 0 and run.prefill.cpu >= 0 and prefill_seconds(model, ids, 1).wall > 0


def test_memory_probes() -> None:
    assert peak_rss_bytes() > 10_000_000
    if reset_peak_rss():
        assert vm_hwm_bytes() > 10_000_000
