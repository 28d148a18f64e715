"""The basis-sharing experiment end to end in a smaller quick form (2 calibration windows, 1 evaluation
window, Basis Sharing at 30%): the dense perplexity equals an independent exp(NLL) from the model's own
loss, the compressed model removes the asked share and is worse, and the record carries no reference
figure (those belong to the full protocol)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from frugalnn.core.data import load_text
from frugalnn.core.llm import encode_text, load_causal_lm
from frugalnn.experiments.basis_sharing import run
from frugalnn.experiments.basis_sharing.protocol import WINDOW


@pytest.mark.slow
def test_quick_basis_sharing_run_on_one_window(tmp_path):
    headline = run(tmp_path, quick=True, seed=0, calib_windows=2, eval_windows=1)
    record = json.loads((tmp_path / "basis_sharing.json").read_text())
    dense, point = record["results"]
    assert record["data"]["calibration"]["windows_used"] == 2 and record["data"]["evaluation"]["windows"] == 1
    model, tok = load_causal_lm("smollm2")
    ids = encode_text(tok, load_text("austen:prideprejudice").text)[:WINDOW].unsqueeze(0)
    with torch.no_grad():
        nll = model(input_ids=ids, labels=ids).loss.item()  # HF's shifted mean cross-entropy
    assert dense["ppl"] == pytest.approx(math.exp(nll), rel=1e-3)  # same forward, other kernels (cache on)
    assert point["config_name"] == "basis-sharing" and point["ratio_achieved"] == pytest.approx(0.3, abs=0.01)
    assert point["ppl"] > dense["ppl"] and point["reference_ppl"] is None and dense["reference_ppl"] is None
    assert [h["ours"] for h in headline] == pytest.approx([dense["ppl"], point["ppl"]], rel=1e-3)
    assert all(h["baseline"] is None for h in headline)
    assert (tmp_path / "basis_sharing.md").exists() and (tmp_path / "basis_sharing.png").exists()
