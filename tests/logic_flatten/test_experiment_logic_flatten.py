import json

import pytest

from frugalnn.experiments.logic_flatten.protocol import run


@pytest.mark.slow  # ~20 s CPU: yosys twice, iverilog twice
def test_experiment_end_to_end_on_a_one_neuron_digits_mlp(tmp_path):
    """The whole protocol at its smallest: train, flatten, synthesise, pipeline, simulate, report."""
    heads = run(
        tmp_path,
        quick=True,
        seed=0,
        hidden={"digits": (1,)},
        penalties={"digits": (0.0,)},
        hw_penalty=0.0,
        epochs=2,
        simulator="iverilog",
        check_limit=1000,
        compare_synth_multiplier=("digits",),
    )
    record = json.loads((tmp_path / "logic_flatten.json").read_text())
    rows = record["results"]["rows"]
    assert [(r["pipelined"], r["multiplier"], r["latency_cycles"] > 0) for r in rows] == [
        ("no", "csd", False),
        ("levelised", "csd", True),
        ("no", "synth", False),
    ]
    assert all(r["mismatches"] == 0 and r["inputs_checked"] == 1000 for r in rows)
    assert rows[1]["clock_ns"] < rows[0]["clock_ns"] and rows[1]["flip_flops"] > 0
    sims = record["results"]["simulators"]
    assert sims[-1]["iverilog_mismatches"] == 0 and sims[-1]["iverilog_inputs_per_s"] > 0
    assert all(r["area"] > 0 and r["energy_pj"] > 0 for r in rows)
    assert heads[0]["ours"] == 0 and heads[0]["met"] is False  # 1,000 inputs are below the 10,000 asked
    assert (tmp_path / "area_vs_accuracy.png").stat().st_size > 0
    assert "| data |" in (tmp_path / "logic_flatten.md").read_text()
