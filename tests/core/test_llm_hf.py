"""Compressed LLM folders in Hugging Face form: plain transformers (trust_remote_code) loads them with
the same logits as frugalnn, save_pretrained round-trips, each shared basis is stored once, and the
earlier folder format still loads."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from frugalnn.core.llm import load_causal_lm, save_causal_lm
from frugalnn.methods.basis_sharing import BasisSharingConfig, compress


def _compressed(tied: bool):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=tied,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    calib = torch.randint(0, 96, (6, 16), generator=torch.Generator().manual_seed(1))
    model, _ = compress(model, BasisSharingConfig(ratio=0.3), calib, progress=False)
    return model.eval(), calib


@pytest.mark.parametrize("tied", [True, False])
def test_transformers_loads_the_folder_with_identical_logits(tmp_path, tied) -> None:
    model, ids = _compressed(tied)
    save_causal_lm(model, None, tmp_path / "bs")
    files = {p.name for p in (tmp_path / "bs").iterdir()}
    assert {"config.json", "model.safetensors", "modeling_frugalnn.py"} <= files
    stored = load_file(str(tmp_path / "bs" / "model.safetensors"))
    groups = {m["group"] for m in model.frugalnn_compression["modules"]}
    assert sum(k.endswith("basis.weight") for k in stored) == len(groups)  # each shared basis once
    with torch.no_grad():
        want = model(ids).logits
        hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "bs"), trust_remote_code=True).eval()
        assert torch.equal(hf(ids).logits, want)
        hf.save_pretrained(tmp_path / "again")  # shared bases declared tied: no shared-tensor error
        again = AutoModelForCausalLM.from_pretrained(str(tmp_path / "again"), trust_remote_code=True).eval()
        assert torch.equal(again(ids).logits, want)


def test_frugalnn_loads_both_formats(tmp_path, smol_tokenizer, write_legacy_llm_folder) -> None:
    model, ids = _compressed(True)
    save_causal_lm(model, smol_tokenizer, tmp_path / "new")
    loaded, tok = load_causal_lm(tmp_path / "new")
    with torch.no_grad():
        want = model(ids).logits
        assert torch.equal(loaded(ids).logits, want) and tok is not None
    old = write_legacy_llm_folder(model, tmp_path / "old", smol_tokenizer)  # the earlier format
    legacy, _ = load_causal_lm(old)
    with torch.no_grad():
        assert torch.equal(legacy(ids).logits, want)


def test_hub_id_offline_without_a_cached_copy_is_one_clear_line(tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    from frugalnn.errors import CheckpointError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="neither a local folder nor in the Hugging Face cache") as err:
        load_causal_lm("someorg/some-model")
    assert "huggingface-cli download someorg/some-model" in str(err.value) and "\n" not in str(err.value)


def test_hub_id_from_the_cache(tmp_path, monkeypatch, smol_tokenizer) -> None:
    """A model already in the HF cache (as snapshot_download lays it out) loads by its id, offline."""
    model, ids = _compressed(False)
    hub = tmp_path / "hf" / "hub" / "models--someorg--tiny"
    snapshot = hub / "snapshots" / ("0" * 40)
    (hub / "refs").mkdir(parents=True)
    (hub / "refs" / "main").write_text("0" * 40)
    save_causal_lm(model, smol_tokenizer, snapshot)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1, read when the hub loads
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    loaded, _ = load_causal_lm("someorg/tiny")
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
