"""Fused bases: q/k/v (and gate/up) share one basis GEMM; outputs equal the unfused ones, the fused weight
is one tensor per group of shared bases, it follows changes of the bases, and it holds for the Hugging
Face folder (trust_remote_code) and for folders written before fusion."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from frugalnn.core.llm import load_causal_lm, save_causal_lm
from frugalnn.methods.basis_sharing import Basis, BasisSharingConfig, compress, fuse_bases
from frugalnn.methods.basis_sharing.modules import FusedBases

VOCAB = 96


def _model(kv_heads: int = 2, fuse: bool = True, layers: int = 4) -> tuple[torch.nn.Module, torch.Tensor]:
    """A tiny Llama compressed at 30%, groups of 2 layers. With kv_heads < heads (grouped-query
    attention, as SmolLM2) q/gate/up share bases across the group and k/v are per layer."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=64,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    calib = torch.randint(0, VOCAB, (6, 16), generator=torch.Generator().manual_seed(1))
    model, _ = compress(model, BasisSharingConfig(ratio=0.3, fuse=fuse), calib, progress=False)
    return model.eval(), calib


def _basis_calls(model: torch.nn.Module) -> list[int]:
    """A counter of Basis.forward calls (the unfused path) while the returned hooks live."""
    calls = [0]

    def hook(*_: object) -> None:
        calls[0] += 1

    for m in model.modules():
        if isinstance(m, Basis):
            m.register_forward_hook(hook)
    return calls


def _fused(model: torch.nn.Module) -> dict[str, FusedBases]:
    return {
        name: m.fused_input.fused
        for name, m in model.named_modules()
        if getattr(m, "fused_input", None) is not None
    }


@pytest.mark.parametrize("kv_heads", [2, 4])
def test_fused_equals_unfused_in_float64(kv_heads) -> None:
    model, ids = _model(kv_heads)
    model = model.double()
    calls = _basis_calls(model)
    with torch.no_grad():
        fused = model(ids).logits
        assert calls[0] == 4 * 2  # only o_proj and down_proj call their own basis, in each of 4 layers
        assert fuse_bases(model, False) == 0
        plain = model(ids).logits
        assert calls[0] == 8 + 4 * 7
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    assert fuse_bases(model) == 4 * 2  # q/k/v and gate/up in each of 4 layers


def test_fused_weight_is_shared_across_the_group() -> None:
    model, _ = _model(kv_heads=2)  # q, gate, up shared by layers (0, 1) and (2, 3); k, v per layer
    fused = _fused(model)
    mlp = {name.split(".")[2]: f for name, f in fused.items() if name.endswith("mlp.gate_proj")}
    assert mlp["0"] is mlp["1"] and mlp["2"] is mlp["3"] and mlp["0"] is not mlp["2"]
    attn = {name.split(".")[2]: f for name, f in fused.items() if name.endswith("q_proj")}
    assert len({id(f) for f in attn.values()}) == 4  # k/v bases are per layer: one fused tensor per layer
    gate = model.model.layers[0].mlp.gate_proj
    with torch.no_grad():
        model(torch.zeros(1, 3, dtype=torch.long))
    w = mlp["0"].weight()
    assert w.shape == (gate.basis.rank + model.model.layers[0].mlp.up_proj.basis.rank, 32)
    assert w.data_ptr() == mlp["1"].weight().data_ptr()  # built once, not per layer
    copied = copy.deepcopy(model)
    assert _fused(copied)["model.layers.0.mlp.up_proj"] is _fused(copied)["model.layers.1.mlp.up_proj"]


def test_fused_weight_follows_changes_of_the_bases_and_autograd_reaches_them() -> None:
    model, ids = _model()
    with torch.no_grad():
        model(ids)
        model.model.layers[1].self_attn.q_proj.basis.weight.mul_(1.5)  # shared with layer 0
        changed = model(ids).logits
        fuse_bases(model, False)
        want = model(ids).logits
        fuse_bases(model)
    torch.testing.assert_close(changed, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # a dtype change rebuilds the fused weight
        torch.testing.assert_close(model.double()(ids).logits, want.double(), rtol=1e-5, atol=1e-5)
    model.zero_grad()
    model(ids).logits.sum().backward()  # training: the unfused path, so gradients reach every basis
    assert all(m.weight.grad is not None for m in model.modules() if isinstance(m, Basis))
    with torch.inference_mode():
        model(ids)
    for m in model.modules():  # frozen bases (LoRA-style training of the coefficients): the fused path
        if isinstance(m, Basis):
            m.weight.requires_grad_(False)
    model.zero_grad()
    model(ids).logits.sum().backward()
    assert model.model.layers[0].self_attn.q_proj.coeff.weight.grad is not None


def test_fuse_flag_travels_with_the_folder(tmp_path, smol_tokenizer) -> None:
    model, ids = _model(fuse=False)
    assert not _fused(model)
    save_causal_lm(model, smol_tokenizer, tmp_path / "off")
    loaded, _ = load_causal_lm(tmp_path / "off")
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "off"), trust_remote_code=True).eval()
    assert not _fused(hf) and not _fused(loaded)
    with torch.no_grad():
        assert torch.equal(hf(ids).logits, model(ids).logits)
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_hf_folder_fuses_and_generates_the_unfused_tokens(tmp_path, smol_tokenizer) -> None:
    model, ids = _model()
    save_causal_lm(model, smol_tokenizer, tmp_path / "bs")
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "bs"), trust_remote_code=True).eval()
    assert len(_fused(hf)) == 4 * 5
    prompt = ids[:2, :8]
    with torch.no_grad():
        assert torch.equal(hf(ids).logits, model(ids).logits)
        kwargs = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
        fused = hf.generate(prompt, attention_mask=torch.ones_like(prompt), **kwargs)
        hf.fuse_bases(False)
        assert not _fused(hf)
        plain = hf.generate(prompt, attention_mask=torch.ones_like(prompt), **kwargs)
    assert torch.equal(fused, plain)


def test_folder_written_before_fusion_loads_fused(tmp_path, smol_tokenizer) -> None:
    """A folder whose spec has no ``fuse`` key (written before fusion) loads with fused bases."""
    model, ids = _model()
    save_causal_lm(model, smol_tokenizer, tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    body = json.loads(path.read_text())
    del body["frugalnn_compression"]["fuse"]
    path.write_text(json.dumps(body))
    loaded, _ = load_causal_lm(tmp_path / "old")
    assert len(_fused(loaded)) == 4 * 5
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
