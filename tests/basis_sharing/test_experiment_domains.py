"""The multi-domain study end to end in its smallest form (a tiny Llama with SmolLM2's tokenizer on the
real texts): rows per calibration set, the ratio to dense recomputed from the logged perplexities,
resume without recomputing."""

from __future__ import annotations

import json

from frugalnn.experiments import get


def test_domains_study_smallest_form_and_resume(tmp_path, smol_tokenizer, write_tiny_llama) -> None:
    run = get("basis-sharing-domains").fn
    model = str(write_tiny_llama(tmp_path / "dense", smol_tokenizer, layers=2))
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
