"""Flattened logic: our levelised pipelining against abc's retiming on networks small enough for abc.

abc (`abc -dff -D <ps>`: `dretime; retime -o`) did not finish within its 300 s limit on the digits
MLPs (64-16-10 and 64-4-10), and not within 600 s on a random 2-2-2 MLP with 4-bit weights, so the
comparison runs on the 2-2-2 network of the tests (every one of its 256 inputs checked): the same
register count for both (levelised stages = registers placed after the logic for abc), OpenSTA's
minimum period, area, and a gate-level check against the integer model. A run past 120 s is a row
with its error.
Writes docs/results/logic_flatten/retime_small.{json,md}.

OMP_NUM_THREADS=1 .venv/bin/python bench/bench_logic_retime.py
"""

import argparse
import time
from pathlib import Path

import numpy as np

from frugalnn.core.report import make_record, markdown_table, write_markdown, write_record
from frugalnn.errors import ToolError
from frugalnn.methods.logic_flatten.flow import min_period_ns, run_gates, synthesize_design
from frugalnn.methods.logic_flatten.graph import build_graph
from frugalnn.methods.logic_flatten.model import IntegerMLP, IntLayer
from frugalnn.methods.logic_flatten.verilog import emit_verilog, levelise

OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "logic_flatten"
BUDGETS = (2.0,)  # levelising budget in adder-delay units (5 and 3 give the same 9 stages here)
TARGET_PS = 1000  # abc's retiming target


def two_neuron_mlp() -> IntegerMLP:
    """2 inputs -> 2 hidden -> 2 outputs, 4-bit (tests/logic_flatten/test_verilog.py, checked by hand there)."""
    hidden = IntLayer(np.array([[3, -2], [1, 5]]), np.array([1, -4]), np.array([200, 150]), np.array([9, 9]))
    return IntegerMLP([hidden, IntLayer(np.array([[2, -1], [-3, 4]]), np.array([0, 1]))], 4, 4, 4)


if __name__ == "__main__":
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    net = two_neuron_mlp()
    g = build_graph(net, "csd")
    codes = np.array([[a, b] for a in range(16) for b in range(16)])
    ref = net.forward(codes)
    comb, _ = synthesize_design(emit_verilog(g))
    comb_ns = round(min_period_ns(comb)[0], 3)
    rows = []
    for budget in BUDGETS:
        stages, n = levelise(g, budget)
        designs = {
            "levelised": (emit_verilog(g, stages, n), ""),
            "abc retiming": (emit_verilog(g, output_registers=n), f"abc -dff -D {TARGET_PS}"),
            "registers at the outputs, no retiming": (emit_verilog(g, output_registers=n), ""),
        }
        for method, (verilog, pre_map) in designs.items():
            row = {"budget_units": budget, "method": method, "stages": n, "comb_clock_ns": comb_ns}
            t0 = time.perf_counter()
            try:
                mapped, _ = synthesize_design(verilog, pre_map=pre_map, timeout_s=120)
            except ToolError as err:
                rows.append(row | {"error": str(err), "synth_s": round(time.perf_counter() - t0, 1)})
                print(rows[-1], flush=True)
                continue
            gates = run_gates(mapped.netlist, codes, 4, n, 1, g.logit_width)
            row |= {
                "clock_ns": round(min_period_ns(mapped)[0], 3), "area": mapped.area,
                "flip_flops": len(mapped.netlist.seq), "synth_s": round(time.perf_counter() - t0, 1),
                "exact": bool(np.array_equal(gates.logits, ref["logits"]) and np.array_equal(gates.pred, ref["pred"])),
            }  # fmt: skip
            rows.append(row)
            print(row, flush=True)
    config = {
        "network": "2-2-2",
        "budgets_units": BUDGETS,
        "abc_target_ps": TARGET_PS,
        "inputs": 256,
        "bits": 4,
    }
    about = "levelised pipelining vs abc retiming on a 2-2-2 4-bit MLP (same register count)"
    write_record(OUT / "retime_small.json", make_record("logic-retime-small", config=config, seed=0,
                 data={"name": "every 4-bit input pair"}, results={"rows": rows}, about=about))  # fmt: skip
    columns = list(dict.fromkeys(k for r in rows for k in r))
    write_markdown(OUT / "retime_small.md", f"# {about}\n\n{markdown_table(rows, columns)}\n")
