"""The LiveMind experiment end to end with one question (the quick form's arms and settings): both arms
answer the same question, the summary and reductions follow from the stored rows, and the headline from
the summary."""

from __future__ import annotations

import json

import pytest

from frugalnn.experiments.livemind import run
from frugalnn.methods.livemind.evaluate import summarize


@pytest.mark.slow
def test_quick_livemind_run_with_one_question(tmp_path):
    headline = run(tmp_path, quick=True, seed=0, questions=1)
    record = json.loads((tmp_path / "livemind.json").read_text())
    rows, summary = record["results"]["rows"], record["results"]["summary"]
    assert set(rows) == {"baseline", "livemind"} and all(len(r) == 1 for r in rows.values())
    assert (
        not record["partial"]
        and record["questions_done"] == 1
        and record["config"]["max_inference_tokens"] == 16
    )
    for arm, arm_rows in rows.items():
        assert summary[arm] == summarize(arm_rows)
        assert arm_rows[0]["latency_s"] > 0
    mean = next(h for h in headline if h["metric"].startswith("livemind: mean latency"))
    assert mean["ours"] == pytest.approx(summary["livemind"]["mean_latency_s"], rel=1e-3)
    assert mean["baseline"] == pytest.approx(summary["baseline"]["mean_latency_s"], rel=1e-3)
    assert mean["met"] == (summary["reduction_vs_baseline"]["mean"] >= 0.59)
    assert (tmp_path / "livemind.md").exists() and (tmp_path / "livemind_latency_hist.png").exists()
