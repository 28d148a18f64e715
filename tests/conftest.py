import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A FRUGALNN_CACHE with nothing installed: asset look-ups must fail with the fix in the message."""
    monkeypatch.setenv("FRUGALNN_CACHE", str(tmp_path / "empty-cache"))
    return tmp_path / "empty-cache"


@pytest.fixture(scope="session")
def smol_tokenizer():
    """SmolLM2's tokenizer (with its chat template) from the cached HF folder of the bundled model."""
    from transformers import AutoTokenizer

    from frugalnn.core import llm
    from frugalnn.errors import MissingAssetError

    try:
        folder = llm._bundled_folder("smollm2")
    except MissingAssetError:
        pytest.fail("smollm2 asset not installed; run frugalnn assets fetch")
    return AutoTokenizer.from_pretrained(str(folder))


def _write_legacy_llm_folder(model, folder, tokenizer=None):
    """A compressed LLM folder in the format before HF-loadable folders: the dense config,
    frugalnn_compression.json (with the aliases of shared tensors) and frugalnn_model.safetensors."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True)
    model.config.save_pretrained(folder)
    state, aliases, seen = {}, {}, {}
    for key, tensor in model.state_dict().items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if ident in seen:
            aliases[key] = seen[ident]
        else:
            seen[ident] = key
            state[key] = tensor.contiguous()
    save_file(state, str(folder / "frugalnn_model.safetensors"))
    spec = {k: v for k, v in model.frugalnn_compression.items() if k != "base_model_type"}
    (folder / "frugalnn_compression.json").write_text(json.dumps({**spec, "aliases": aliases}))
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def write_legacy_llm_folder():
    return _write_legacy_llm_folder


def _write_tiny_llama(folder, tokenizer, layers: int = 3):
    """A tiny random Llama over ``tokenizer``'s vocabulary, saved (with the tokenizer) to ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from frugalnn.core.llm import save_causal_lm

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=24, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=1, bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    save_causal_lm(LlamaForCausalLM(config).eval(), tokenizer, folder)
    return folder


@pytest.fixture
def write_tiny_llama():
    return _write_tiny_llama
