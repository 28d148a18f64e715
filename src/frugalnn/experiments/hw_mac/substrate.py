"""The gate-level substrate bench: simulator speed, bit-exactness, OpenSTA cross-checks.

Runs with one thread (torch = 1; the bench script sets OMP/MKL before importing).
1. zero-delay energy of the 8-bit MAC: all 256 weights x 65,536 activation transitions (target < 60 s);
2. glitch-aware timed simulation (Liberty delays, and unit delay): 256 weights x 4,096 transitions (< 120 s);
3. our simulator vs Icarus Verilog (vendor cell models) on the mapped 8-bit MAC datapath, 100,000 vectors;
4. OpenSTA: critical path of the MAC and of an 8x8 signed multiplier; report_power vs our model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from frugalnn.core.report import make_record, write_record
from frugalnn.hw.crosscheck import iverilog_simulate, power_crosscheck
from frugalnn.hw.mac import CharacterizeConfig, MacConfig, build_mac, characterize_mac
from frugalnn.hw.synth import sta_timing, synthesize
from frugalnn.hw.timed import electrical


def substrate_bench(out: Path, seed: int = 0) -> dict:
    """Run the four checks; write the record to ``out``; return its results."""
    torch.set_num_threads(1)
    results: dict = {}
    mac = MacConfig(bits=8, psum_bits=22)
    t0 = time.perf_counter()
    mapped = build_mac(mac)
    results["mac"] = {
        "synth_s": round(time.perf_counter() - t0, 2),
        "area": mapped.area,
        "cells": mapped.n_cells,
        "cell_counts": mapped.cell_counts,
    }
    print(f"8-bit MAC: {mapped.n_cells} cells, area {mapped.area:g} ({results['mac']['synth_s']} s yosys)")

    cfg = CharacterizeConfig(mac=mac, transitions=65536, timed_transitions=0, seed=seed)
    t0 = time.perf_counter()
    zero = characterize_mac(cfg, mapped=mapped, progress=False)
    zero_s = time.perf_counter() - t0
    print(f"zero-delay 256 x 65,536: {zero_s:.1f} s (target < 60 s)")
    timed = {}
    for model, step in (("liberty", 0.05), ("unit", 1.0)):
        cfg_t = CharacterizeConfig(
            mac=mac, transitions=64, timed_transitions=4096, delay_model=model, time_step_ns=step, seed=seed
        )
        t0 = time.perf_counter()
        res = characterize_mac(cfg_t, mapped=mapped, progress=False)
        secs = time.perf_counter() - t0
        glitch = res.timed_toggles_per_op / res.zero_delay_toggles_on_timed_stream
        timed[model] = {
            "seconds": round(secs, 1),
            "glitch_factor_mean": float(glitch.mean()),
            "glitch_factor_w_minus_93": float(glitch[list(res.weights).index(-93)]),
            "max_delay": float(res.delay_ns.max()),
        }
        print(
            f"timed ({model}) 256 x 4,096: {secs:.1f} s (target < 120 s); glitch factor mean "
            f"{glitch.mean():.2f}, w=-93 {timed[model]['glitch_factor_w_minus_93']:.2f}"
        )
    order = np.argsort(zero.energy_pj)
    results["zero_delay"] = {
        "seconds": round(zero_s, 1),
        "weights": 256,
        "transitions": 65536,
        "lowest_energy_weights": [int(w) for w in zero.weights[order[:10]]],
        "highest_energy_weights": [int(w) for w in zero.weights[order[::-1][:6]]],
        "energy_pj_min_mean_max": [
            float(zero.energy_pj.min()),
            float(zero.energy_pj.mean()),
            float(zero.energy_pj.max()),
        ],
    }
    results["timed"] = timed

    comb = build_mac(MacConfig(bits=8, psum_bits=22, weight_register=False))
    rng = np.random.default_rng(seed)
    n = 100_000
    vec = {"w": rng.integers(0, 256, n), "a": rng.integers(0, 256, n), "p": rng.integers(0, 1 << 22, n)}
    t0 = time.perf_counter()
    ours = comb.netlist.simulate(vec)["y"]
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = iverilog_simulate(comb, vec)["y"]
    ref_s = time.perf_counter() - t0
    sw = lambda x: x - ((x >> 7) & 1) * 256  # noqa: E731 - signed 8-bit
    arith = (sw(vec["w"]) * sw(vec["a"]) + vec["p"]) & ((1 << 22) - 1)
    results["bit_exact"] = {
        "vectors": n,
        "mismatches_vs_iverilog": int((ours != ref).sum()),
        "mismatches_vs_arithmetic": int((ours != arith).sum()),
        "ours_s": round(ours_s, 2),
        "iverilog_s": round(ref_s, 1),
    }
    print(
        f"bit-exact vs iverilog on {n:,} vectors: {results['bit_exact']['mismatches_vs_iverilog']} mismatches "
        f"(ours {ours_s:.2f} s, iverilog {ref_s:.1f} s)"
    )

    sta = sta_timing(mapped, output_load_pf=cfg.output_load_pf)
    mul = synthesize(
        "module mul8(input signed [7:0] a, input signed [7:0] b, output signed [15:0] y);"
        " assign y = a * b; endmodule",
        "mul8",
    )
    sta_mul = sta_timing(mul)
    results["timing"] = {
        "mac_critical_path_ns_opensta": sta.critical_path_ns,
        "mac_critical_path_ns_ours": zero.critical_path_ns,
        "mul8_cells": mul.n_cells,
        "mul8_area": mul.area,
        "mul8_critical_path_ns_opensta": sta_mul.critical_path_ns,
        "mul8_critical_path_ns_ours": electrical(mul.netlist).critical_path_ns(),
    }
    print(
        f"critical path MAC: OpenSTA {sta.critical_path_ns:.3f} ns, ours {zero.critical_path_ns:.3f} ns; "
        f"8x8 multiplier {mul.n_cells} cells, area {mul.area:g}, {sta_mul.critical_path_ns:.3f} ns"
    )
    n = 64 * 160 + 1
    stream = {"w": np.full(n, (-93) & 0xFF), "a": rng.integers(0, 256, n), "p": rng.integers(0, 1 << 22, n)}
    check = power_crosscheck(comb, stream, output_load_pf=cfg.output_load_pf)
    results["power_crosscheck"] = {
        "weight": -93,
        "vectors": n,
        "opensta_w": {
            "internal": check.sta.internal_w,
            "switching": check.sta.switching_w,
            "leakage": check.sta.leakage_w,
            "total": check.sta.total_w,
        },
        "ours_same_activities_w": {
            "internal": check.ours_sta_convention.internal_w,
            "switching": check.ours_sta_convention.switching_w,
            "leakage": check.ours_sta_convention.leakage_w,
            "total": check.ours_sta_convention.total_w,
        },
        "ours_simulated_activities_w": {
            "internal": check.ours.internal_w,
            "switching": check.ours.switching_w,
            "leakage": check.ours.leakage_w,
            "total": check.ours.total_w,
        },
    }
    print(
        f"power (mW): OpenSTA {check.sta.total_w * 1e3:.4f}; ours, same activities "
        f"{check.ours_sta_convention.total_w * 1e3:.4f} (switching ratio "
        f"{check.ours_sta_convention.switching_w / check.sta.switching_w:.4f}); ours, simulated activities "
        f"{check.ours.total_w * 1e3:.4f}"
    )
    record = make_record(
        "hw-bench",
        config={"mac": "8-bit signed, 22-bit psum, OSU018", "threads": 1},
        seed=seed,
        data={"stream": "uniform activations; psum = sum of 16 random products"},
        results=results,
        cpu_load_at_end=os.getloadavg(),
    )
    write_record(out, record)
    print(f"wrote {out}")
    return results
