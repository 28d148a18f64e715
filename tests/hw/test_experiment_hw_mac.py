"""The hw-mac experiment end to end in its quick form (8-bit MAC on OSU018, yosys + OpenSTA): every weight
value is characterised, our critical path and power sit near OpenSTA's on the same netlist, and the
headline rows are the record's cross-check rows."""

from __future__ import annotations

import json

import pytest

from frugalnn.experiments.hw_mac import run


@pytest.mark.slow
def test_quick_hw_mac_run_is_consistent(tmp_path):
    headline = run(tmp_path, quick=True, seed=0)
    char = json.loads((tmp_path / "mac_characterisation.json").read_text())
    check = json.loads((tmp_path / "crosscheck.json").read_text())
    assert sorted(char["results"]["weights"]) == list(range(-128, 128))
    energy = char["results"]["energy_pj"]
    assert len(energy) == 256 and min(energy) > 0
    res = check["results"]
    # same netlist, same load: our NLDM path takes the worse of rise/fall per arc, so it may only be slower
    assert (
        res["critical_path_ns_opensta"]
        <= res["critical_path_ns_ours"]
        <= 1.2 * res["critical_path_ns_opensta"]
    )
    for r in res["rows"]:
        assert r["ratio"] == pytest.approx(r["ours"] / r["OpenSTA"])
    switching = next(r for r in res["rows"] if r["figure"].startswith("switching power, OpenSTA"))
    assert switching["ratio"] == pytest.approx(1.0, abs=0.02)  # same activities, same capacitances
    by_metric = {h["metric"]: h for h in headline}
    for r in res["rows"]:
        assert by_metric[r["figure"]]["ours"] == pytest.approx(r["ours"], rel=1e-3)
    assert by_metric["energy per op, mean over weights (pJ), uniform signed"]["ours"] == pytest.approx(
        sum(energy) / 256, rel=1e-3
    )
    assert (tmp_path / "mnist_pixels" / "mac_characterisation.json").exists()
