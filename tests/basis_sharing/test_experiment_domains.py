"""The multi-domain study end to end in its smallest form (a tiny Llama with SmolLM2's tokenizer on the
real texts): rows per calibration set, the ratio to dense recomputed from the logged perplexities,
resume without recomputing."""

from __future__ import annotations

import json

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from frugalnn.core.llm import save_causal_lm
from frugalnn.experiments import get


def tiny_folder(tmp_path, tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=24, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    save_causal_lm(LlamaForCausalLM(config).eval(), tokenizer, tmp_path / "dense")
    return tmp_path / "dense"


def test_domains_study_smallest_form_and_resume(tmp_path, smol_tokenizer) -> None:
    run = get("basis-sharing-domains").fn
    model = str(tiny_folder(tmp_path, smol_tokenizer))
    kwargs = {
        "ratios": (0.3,),
        "recoveries": ("none",),
        "calib_windows": 3,
        "eval_windows": 1,
        "model": model,
    }
    tmp_path = tmp_path / "report"
    head = run(tmp_path, True, 0, **kwargs)
    record = json.loads((tmp_path / "basis_sharing_domains.json").read_text())
    rows, dense = record["results"]["rows"], record["results"]["dense"]
    assert {r["calib"] for r in rows} == {"austen:emma", "mix"} and len(rows) == 2
    for r in rows:
        for domain, ppl in dense.items():
            assert abs(r[f"x_dense:{domain}"] - r[f"ppl:{domain}"] / ppl) < 1e-9
            assert r[f"ppl:{domain}"] > 1
    mix = record["data"]["calibration"]["mix"]["sources"]
    assert sorted(s["windows"] for s in mix) == [1, 1, 1]
    assert any(h["metric"].startswith("basis-sharing 30% mix none: Jargon") for h in head)
    assert (tmp_path / "basis_sharing_domains.png").stat().st_size > 10_000
    before = (tmp_path / "rows.jsonl").read_text()
    run(tmp_path, True, 0, **kwargs)  # everything logged: nothing recomputed, nothing appended
    assert (tmp_path / "rows.jsonl").read_text() == before
