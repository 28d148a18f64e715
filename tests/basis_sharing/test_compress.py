"""Basis Sharing: rank formula, exactness at full rank, whitening optimality, sharing, families, bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from frugalnn.core.llm import load_causal_lm, save_causal_lm
from frugalnn.errors import ConfigError, DataError, UnsupportedModelError
from frugalnn.methods.basis_sharing import Config, SharedBasisLinear, compress, rank_for_ratio
from frugalnn.methods.basis_sharing.factorize import factorize

VOCAB = 96


def tiny(family: str, layers: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    special = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    if family == "llama":
        m = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=VOCAB,
                hidden_size=32,
                intermediate_size=48,
                num_hidden_layers=layers,
                num_attention_heads=4,
                num_key_value_heads=4,
                **special,
            )
        )
    elif family == "qwen2":
        m = Qwen2ForCausalLM(
            Qwen2Config(
                vocab_size=VOCAB,
                hidden_size=32,
                intermediate_size=48,
                num_hidden_layers=layers,
                num_attention_heads=4,
                num_key_value_heads=2,
                **special,
            )
        )
    elif family == "gpt2":
        m = GPT2LMHeadModel(
            GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=layers, n_head=2, n_positions=64, **special)
        )
    else:
        m = OPTForCausalLM(
            OPTConfig(
                vocab_size=VOCAB,
                hidden_size=32,
                ffn_dim=48,
                num_hidden_layers=layers,
                num_attention_heads=2,
                word_embed_proj_dim=32,
                max_position_embeddings=64,
                **special,
            )
        )
    return m.eval()


FAMILIES = ["llama", "qwen2", "gpt2", "opt"]


def calib(n: int = 6, length: int = 24, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("d_in", "d_out", "n", "ratio"),
    [(576, 576, 2, 0.2), (576, 192, 1, 0.5), (576, 1536, 2, 0.3), (1536, 576, 1, 0.4), (40, 7, 3, 0.9)],
)
def test_rank_formula_meets_budget(d_in, d_out, n, ratio):
    k = rank_for_ratio(ratio, d_in, d_out, n)
    budget = (1 - ratio) * n * d_in * d_out
    assert k * (d_in + n * d_out) <= budget < (k + 1) * (d_in + n * d_out)


def test_each_type_keeps_its_share_within_one_rank():
    model = tiny("llama", layers=5)  # 5 layers, n = 2: a leftover group of one
    _, record = compress(model, Config(ratio=0.4, group_size=2), calib(), progress=False)
    assert record["ranks"]["self_attn.q_proj"] == [rank_for_ratio(0.4, 32, 32, 2)] * 2 + [
        rank_for_ratio(0.4, 32, 32, 1)
    ]
    for t, ranks in record["ranks"].items():
        shared = t in record["shared_types"]
        d_in, d_out = (48, 32) if "down" in t else (32, 48) if ("up" in t or "gate" in t) else (32, 32)
        groups = [2, 2, 1] if shared else [1] * 5
        kept = sum(k * (d_in + g * d_out) for k, g in zip(ranks, groups, strict=True))
        slack = sum(d_in + g * d_out for g in groups)
        assert 0.6 * 5 * d_in * d_out - slack <= kept <= 0.6 * 5 * d_in * d_out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["basis-sharing", "svd-llm", "asvd", "svd"])
def test_full_rank_reproduces_dense_logits_float64(family, method):
    model = tiny(family).double()
    ids = calib(2, 16, seed=7)
    with torch.no_grad():
        dense = model(ids).logits
    compressed, _ = compress(model, Config(ratio=0.5, method=method, rank=10**6), calib(), progress=False)
    assert any(isinstance(m, SharedBasisLinear) for m in compressed.modules())
    with torch.no_grad():
        out = compressed(ids).logits
    assert float((out - dense).norm() / dense.norm()) < 1e-5


def test_whitened_truncation_beats_plain_svd_and_matches_numpy():
    rng = np.random.default_rng(0)
    d_in, d_out, tokens, k = 24, 16, 400, 6
    mix = rng.normal(size=(d_in, d_in)) * np.linspace(0.05, 3.0, d_in)  # strongly anisotropic inputs
    x = rng.normal(size=(tokens, d_in)) @ mix
    w = [rng.normal(size=(d_out, d_in)), rng.normal(size=(d_out, d_in))]
    gram = torch.tensor(x.T @ x)
    f = factorize([torch.tensor(wi) for wi in w], gram, None, k, "cholesky")
    approx = [(f.basis @ c).numpy() for c in f.coeffs]  # d_in × d_out each
    # numpy reference: whitened SVD of the stacked matrix, S = chol(XᵀX)ᵀ
    stacked = np.concatenate([wi.T for wi in w], axis=1)
    s_up = np.linalg.cholesky(x.T @ x).T
    u, s, vt = np.linalg.svd(s_up @ stacked, full_matrices=False)
    ref = np.linalg.solve(s_up, u[:, :k] * s[:k]) @ vt[:k]
    np.testing.assert_allclose(np.concatenate(approx, axis=1), ref, rtol=1e-8, atol=1e-8)
    u2, s2, vt2 = np.linalg.svd(stacked, full_matrices=False)
    plain = (u2[:, :k] * s2[:k]) @ vt2[:k]
    err_white = np.linalg.norm(x @ stacked - x @ ref)
    err_plain = np.linalg.norm(x @ stacked - x @ plain)
    assert err_white < 0.9 * err_plain
    plain_ours = factorize([torch.tensor(wi) for wi in w], None, None, k, "none")
    ours = np.concatenate([(plain_ours.basis @ c).numpy() for c in plain_ours.coeffs], axis=1)
    np.testing.assert_allclose(ours, plain, rtol=1e-8, atol=1e-8)


def test_eigen_shift_fallback_on_singular_gram():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 12))  # 5 tokens, 12 inputs: XᵀX has rank 5, Cholesky fails
    f = factorize([torch.tensor(rng.normal(size=(8, 12)))], torch.tensor(x.T @ x), None, 4, "cholesky")
    assert f.shifted and torch.isfinite(f.basis).all() and all(torch.isfinite(c).all() for c in f.coeffs)


def test_shared_basis_is_one_object_before_and_after_save_load(tmp_path, smol_tokenizer):
    model = tiny_vocab_llama()
    model, record = compress(model, Config(ratio=0.3, group_size=2), calib_vocab(), progress=False)
    q0, q1 = model.model.layers[0].self_attn.q_proj, model.model.layers[1].self_attn.q_proj
    assert q0.basis is q1.basis and q0.coeff is not q1.coeff
    n_params = sum(p.numel() for p in model.parameters())
    ids = calib_vocab(2, 12, seed=3)
    with torch.no_grad():
        before = model(ids).logits
    save_causal_lm(model, smol_tokenizer, tmp_path / "c")
    loaded, _ = load_causal_lm(tmp_path / "c")
    l0, l1 = loaded.model.layers[0].self_attn.q_proj, loaded.model.layers[1].self_attn.q_proj
    assert l0.basis is l1.basis and l0.basis.weight is l1.basis.weight
    assert sum(p.numel() for p in loaded.parameters()) == n_params
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, before)


def test_folder_with_the_old_dotted_loader_path_loads_and_other_paths_are_refused(tmp_path):
    """Folders written before the plug-in registry name the rebuild function by its import path."""
    import json

    from frugalnn.errors import CheckpointError

    model, _ = compress(tiny("llama"), Config(ratio=0.3, group_size=2), calib(), progress=False)
    save_causal_lm(model, None, tmp_path / "c")
    spec_path = tmp_path / "c" / "frugalnn_compression.json"
    spec = json.loads(spec_path.read_text())
    assert spec.pop("layer") == "basis_sharing"
    spec_path.write_text(json.dumps({**spec, "loader": "frugalnn.methods.basis_sharing.layers:rebuild"}))
    ids = calib(2, 12, seed=3)
    loaded, _ = load_causal_lm_model_only(tmp_path / "c")
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
    spec_path.write_text(json.dumps({**spec, "loader": "os:system"}))
    with pytest.raises(CheckpointError, match="names loader 'os:system', which is no frugalnn layer format"):
        load_causal_lm_model_only(tmp_path / "c")


def load_causal_lm_model_only(folder):
    from transformers import AutoConfig

    from frugalnn.core.llm import _load_compressed

    return _load_compressed(folder, AutoConfig.from_pretrained(str(folder)), torch.float32), None


def tiny_vocab_llama() -> torch.nn.Module:
    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=49152,
            hidden_size=16,
            intermediate_size=24,
            num_hidden_layers=3,
            num_attention_heads=2,
            num_key_value_heads=1,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=2,
        )
    ).eval()


def calib_vocab(n: int = 4, length: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 49152, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
def test_family_compresses_saves_loads_generates(family, tmp_path, smol_tokenizer):
    model = tiny(family)
    model.resize_token_embeddings(len(smol_tokenizer))
    ids = torch.randint(0, len(smol_tokenizer), (4, 20), generator=torch.Generator().manual_seed(2))
    model, record = compress(model, Config(ratio=0.3), ids, progress=False)
    assert record["projection_params_after"] < record["projection_params_before"]
    assert record["params_after"] < record["params_before"]
    save_causal_lm(model, smol_tokenizer, tmp_path / family)
    loaded, tok = load_causal_lm(tmp_path / family)
    prompt = ids[:1, :5]
    kwargs = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        a = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), **kwargs)
        b = loaded.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), **kwargs)
    assert a.shape == (1, 9) and torch.equal(a, b)


def test_lora_recovery_keeps_basis_shared_and_lowers_loss():
    model, _ = compress(tiny("llama"), Config(ratio=0.5), calib(), progress=False)
    before = copy.deepcopy(model)
    model, record = compress(
        tiny("llama"),
        Config(ratio=0.5, lora_epochs=3, lora_lr=3e-3, lora_batch_size=2),
        calib(),
        progress=False,
    )
    assert record["lora"]["steps"] == 9
    assert model.model.layers[0].self_attn.q_proj.basis is model.model.layers[1].self_attn.q_proj.basis
    ids = calib()
    with torch.no_grad():
        assert model(input_ids=ids, labels=ids).loss < before(input_ids=ids, labels=ids).loss


def test_bad_input():
    with pytest.raises(ConfigError, match="ratio"):
        compress(tiny("llama"), Config(ratio=1.0), calib(), progress=False)
    with pytest.raises(ConfigError, match="ratio"):
        compress(tiny("llama"), Config(ratio=0.0), calib(), progress=False)
    with pytest.raises(ConfigError, match="group_size 9 is larger"):
        compress(tiny("llama"), Config(ratio=0.2, group_size=9), calib(), progress=False)
    with pytest.raises(UnsupportedModelError, match="no decoder layers"):
        compress(torch.nn.Sequential(torch.nn.Linear(4, 4)), Config(), calib(), progress=False)
    with pytest.raises(DataError, match="calibration"):
        compress(tiny("llama"), Config(), torch.zeros(0, 16, dtype=torch.long), progress=False)
    with pytest.raises(UnsupportedModelError, match="not in this model"):
        compress(tiny("llama"), Config(share=("nonexistent",)), calib(), progress=False)


def test_loss_allocation_keeps_the_budget_and_moves_rank_to_slow_spectra():
    from frugalnn.methods.basis_sharing.compress import _allocate

    flat = torch.ones(20)  # every rank removes the same error: needs many ranks
    steep = torch.tensor([10.0] + [1e-3] * 19)  # one direction holds all the energy
    costs, uniform = [30, 30], [8, 8]
    new = _allocate([flat, steep], costs, uniform)
    assert sum(k * c for k, c in zip(new, costs)) <= sum(k * c for k, c in zip(uniform, costs))
    assert new[0] > uniform[0] and new[1] < uniform[1] and min(new) >= 1
    same = _allocate([flat, flat.clone()], costs, uniform)
    assert abs(same[0] - same[1]) <= 1 and sum(same) == sum(uniform)


@pytest.mark.parametrize("d", [40, 576, 1000])
def test_symmetric_gram_matches_numpy(d):
    from frugalnn.methods.basis_sharing.compress import symmetric_gram

    x = torch.randn(300, d, generator=torch.Generator().manual_seed(d))
    ref = x.double().numpy().T @ x.double().numpy()
    got = symmetric_gram(x).double().numpy()
    assert np.allclose(got, got.T) and np.abs(got - ref).max() < 1e-4 * np.abs(ref).max()


def test_bfloat16_calibration_factorises_the_full_precision_weights():
    """bf16 only touches the statistics: full rank stays exact; at 50% it lands near fp32 calibration."""
    model = tiny("llama").double()
    ids = calib(2, 16, seed=7)
    with torch.no_grad():
        dense = model(ids).logits
    full, _ = compress(
        copy.deepcopy(model), Config(ratio=0.5, rank=10**6, calib_dtype="bfloat16"), calib(), progress=False
    )
    with torch.no_grad():
        assert float((full(ids).logits - dense).norm() / dense.norm()) < 1e-5
    outs = {}
    for dtype in ("float32", "bfloat16"):
        m, _ = compress(copy.deepcopy(model), Config(ratio=0.5, calib_dtype=dtype), calib(), progress=False)
        with torch.no_grad():
            outs[dtype] = m(ids).logits
    gap = float((outs["bfloat16"] - outs["float32"]).norm() / (outs["float32"] - dense).norm())
    assert gap < 0.05  # the bf16 statistics move the result by a small part of the truncation error itself
    with pytest.raises(ConfigError, match="dense"):
        Config(calib_dtype="bfloat16", propagate="compressed").validate()
