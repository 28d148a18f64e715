"""Experiment ``hw-mac``: the gate-level substrate on its headline task, PowerPruning's step 1-2
characterisation of an 8-bit weight-stationary MAC (8-bit signed weight x 8-bit signed activation +
22-bit partial sum) on OSU018, plus the two cross-checks: OpenSTA's critical path against our NLDM timing,
and OpenSTA's ``report_power`` against our power model on the MAC datapath (spec: shared/specs/hardware.md).

quick: all 256 weights x 16,384 zero-delay transitions + 1,024 glitch-aware transitions each.
full:  all 256 weights x 65,536 zero-delay transitions + 4,096 glitch-aware transitions each.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from frugalnn.experiments import register, row

POWER_TOLERANCE = 0.10  # the target: our power within 10% of OpenSTA's on the same activities


def headline(record: dict) -> list[dict]:
    """The cross-checks against OpenSTA (``crosscheck.json`` of this experiment), or the substrate bench's
    speed, bit-exactness and cross-check figures (``hw_bench.json`` of ``bench/bench_hw.py``)."""
    res = record["results"]
    if "rows" in res:
        return [
            row(r["figure"], r["ours"], r["OpenSTA"],
                f"within {POWER_TOLERANCE:.0%} of OpenSTA (or explained)" if "power" in r["figure"] else None,
                abs(r["ratio"] - 1) <= POWER_TOLERANCE if "power" in r["figure"] else None)
            for r in res["rows"]
        ]  # fmt: skip
    timed, power = res["timed"]["liberty"], res["power_crosscheck"]
    return [
        row("zero-delay energy, 256 weights x 65,536 transitions (s)", res["zero_delay"]["seconds"], None,
            "< 60", res["zero_delay"]["seconds"] < 60),
        row("Liberty-delay timed simulation, 256 x 4,096 transitions (s)", timed["seconds"], None, "< 120",
            timed["seconds"] < 120),
        row(f"mismatches vs iverilog, {res['bit_exact']['vectors']:,} vectors",
            res["bit_exact"]["mismatches_vs_iverilog"], None, "0", res["bit_exact"]["mismatches_vs_iverilog"] == 0),
        row("critical path (ns), ours vs OpenSTA", res["timing"]["mac_critical_path_ns_ours"],
            res["timing"]["mac_critical_path_ns_opensta"]),
        row("total power, same activities (mW), ours vs OpenSTA", power["ours_same_activities_w"]["total"] * 1e3,
            power["opensta_w"]["total"] * 1e3, f"within {POWER_TOLERANCE:.0%} (or explained)",
            abs(power["ours_same_activities_w"]["total"] / power["opensta_w"]["total"] - 1) <= POWER_TOLERANCE),
    ]  # fmt: skip


@register(
    "hw-mac",
    "gate-level MAC: energy and delay per weight value (8-bit, OSU018) + OpenSTA checks",
    order=60,
    headline=headline,
)
def run(out_dir: Path, quick: bool, seed: int) -> list[dict]:
    from frugalnn.core.report import make_record, markdown_table, write_markdown, write_record
    from frugalnn.hw.crosscheck import power_crosscheck
    from frugalnn.hw.mac import (
        CharacterizeConfig,
        MacConfig,
        build_mac,
        characterize_mac,
    )
    from frugalnn.hw.mac_report import save_characterisation
    from frugalnn.hw.synth import sta_timing

    mac = MacConfig(bits=8, psum_bits=22)
    cfg = CharacterizeConfig(
        mac=mac, transitions=16384 if quick else 65536, timed_transitions=1024 if quick else 4096, seed=seed
    )
    start = time.perf_counter()
    mapped = build_mac(mac)
    result = characterize_mac(cfg, mapped=mapped)
    char_s = time.perf_counter() - start
    char_head = save_characterisation(result, out_dir, seed)
    # cross-check 1: critical path, OpenSTA vs ours (same netlist, same output load)
    sta = sta_timing(mapped, clock_ns=cfg.clock_ns, output_load_pf=cfg.output_load_pf)
    # cross-check 2: power of the combinational datapath (weight as a port held at one value)
    comb = build_mac(MacConfig(bits=8, psum_bits=22, weight_register=False))
    rng = np.random.default_rng(seed)
    n = 64 * (40 if quick else 160) + 1
    weight = int(rng.integers(-128, 128))
    stream = {"w": np.full(n, weight & 0xFF), "a": rng.integers(0, 256, n), "p": rng.integers(0, 1 << 22, n)}
    check = power_crosscheck(comb, stream, clock_ns=cfg.clock_ns, output_load_pf=cfg.output_load_pf)
    rows = [
        {
            "figure": "critical path (ns)",
            "ours": result.critical_path_ns,
            "OpenSTA": sta.critical_path_ns,
            "ratio": result.critical_path_ns / sta.critical_path_ns,
        },
        {
            "figure": "switching power, OpenSTA activities (mW)",
            "ours": check.ours_sta_convention.switching_w * 1e3,
            "OpenSTA": check.sta.switching_w * 1e3,
            "ratio": check.ours_sta_convention.switching_w / check.sta.switching_w,
        },
        {
            "figure": "internal power, OpenSTA activities (mW)",
            "ours": check.ours_sta_convention.internal_w * 1e3,
            "OpenSTA": check.sta.internal_w * 1e3,
            "ratio": check.ours_sta_convention.internal_w / check.sta.internal_w,
        },
        {
            "figure": "total power, OpenSTA activities (mW)",
            "ours": check.ours_sta_convention.total_w * 1e3,
            "OpenSTA": check.sta.total_w * 1e3,
            "ratio": check.ours_sta_convention.total_w / check.sta.total_w,
        },
        {
            "figure": "total power, simulated activities (mW)",
            "ours": check.ours.total_w * 1e3,
            "OpenSTA": check.sta.total_w * 1e3,
            "ratio": check.ours.total_w / check.sta.total_w,
        },
    ]
    checks = {
        "critical_path_ns_ours": result.critical_path_ns,
        "critical_path_ns_opensta": sta.critical_path_ns,
        "power_crosscheck_weight": weight,
        "power_crosscheck_vectors": n,
        "rows": rows,
    }
    crosscheck = make_record(
        "hw-mac-crosscheck",
        config={"clock_ns": cfg.clock_ns, "output_load_pf": cfg.output_load_pf},
        seed=seed,
        data={"stream": "uniform a, p; fixed w"},
        results=checks,
    )
    write_record(out_dir / "crosscheck.json", crosscheck)
    write_markdown(
        out_dir / "crosscheck.md", "# OpenSTA cross-checks (8-bit MAC)\n\n" + markdown_table(rows, digits=4)
    )
    # the same characterisation on real activation statistics: MNIST pixels (the activations a first
    # layer sees, unsigned 8-bit) against a uniform unsigned stream of the same length
    real = _mnist_pixels(200)
    umac = MacConfig(bits=8, psum_bits=22, activation_signed=False)
    ucfg = CharacterizeConfig(
        mac=umac, transitions=cfg.transitions, timed_transitions=cfg.timed_transitions, seed=seed
    )
    umapped = build_mac(umac)
    on_real = characterize_mac(ucfg, activations=real, mapped=umapped)
    on_uniform = characterize_mac(ucfg, mapped=umapped, progress=False)
    real_head = save_characterisation(
        on_real, out_dir / "mnist_pixels", seed, on_real.stream | {"source": "mnist5k"}
    )
    return [
        row("characterisation, 256 weights (s)", char_s),
        row("energy per op, mean over weights (pJ), uniform signed", char_head["energy_pj_min_mean_max"][1]),
        row("energy per op, mean (pJ): MNIST pixels vs uniform unsigned", float(on_real.energy_pj.mean()),
            float(on_uniform.energy_pj.mean())),
        row("lowest-energy weights on MNIST pixels: " + ", ".join(map(str, real_head["lowest_energy_weights"][:5])),
            real_head["energy_pj_min_mean_max"][0]),
        *headline(crosscheck),
    ]  # fmt: skip


def _mnist_pixels(images: int) -> np.ndarray:
    """Pixel codes (0..255) of the first MNIST images, row-major, in file order."""
    import gzip

    from frugalnn.core.assets import asset_path

    with gzip.open(asset_path("mnist5k"), "rt") as handle:
        rows = np.loadtxt(handle, delimiter=",", max_rows=images, dtype=np.int64)
    return rows[:, :784].ravel()
