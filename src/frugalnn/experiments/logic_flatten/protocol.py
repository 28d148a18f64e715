"""The logic-flatten protocol (see the package docstring); ``report`` writes the table and plot."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from frugalnn.core.report import write_record
from frugalnn.errors import ToolError
from frugalnn.experiments.logic_flatten.report import headline, write_report
from frugalnn.methods.logic_flatten import LogicFlattenConfig, flatten, load_features, train_logic_mlp
from frugalnn.methods.logic_flatten.sim import simulate_design

FULL = {
    "datasets": ("digits", "fashion-mnist"),
    "hidden": {"digits": (16,), "fashion-mnist": (16,)},
    "penalties": {"digits": (0.0, 1.0, 3.0), "fashion-mnist": (0.0, 0.1, 0.2, 0.3, 1.0)},
    "hw_penalty": 1.0,
    "pipeline_ns": 2.0,
    "epochs": 40,
    "fashion_epochs": 15,
    "abc_retime": ("digits",),
    "compare_synth_multiplier": ("digits",),
    "simulator": "verilator",
    "check_limit": None,
}
QUICK = {
    "datasets": ("digits",),
    "hidden": {"digits": (4,), "fashion-mnist": (4,)},
    "penalties": {"digits": (0.0, 1.0), "fashion-mnist": (0.0, 1.0)},
    "hw_penalty": 1.0,
    "pipeline_ns": 2.0,
    "epochs": 30,
    "fashion_epochs": 5,
    "abc_retime": (),
    "compare_synth_multiplier": (),
    "simulator": "verilator",
    "check_limit": None,
}


def _verify(design, model, x_check, simulator: str = "verilator", limit: int | None = None) -> dict:
    x = x_check[:limit] if limit else x_check
    codes = model.input_codes(x).numpy()
    ref = design.net.forward(codes)
    sim = simulate_design(design.verilog, codes, design.io, simulator)
    bad = (sim.pred != ref["pred"]) | (sim.logits != ref["logits"]).any(axis=1)
    return {
        "mismatches": int(bad.sum()),
        "inputs_checked": len(codes),
        f"{simulator}_inputs_per_s": round(sim.inputs_per_s, 1),
        f"{simulator}_build_s": round(sim.build_s, 2),
    }


def _row(data, variant, pipelined, multiplier, acc, design, record, check) -> dict:
    hw = design.hardware
    return {
        "data": data,
        "variant": variant,
        "pipelined": pipelined,
        "multiplier": multiplier,
        "acc": round(acc, 4),
        "area": hw.area,
        "cells": hw.cells,
        "clock_ns": hw.clock_ns,
        "throughput_inf_s": round(hw.throughput_inf_s),
        "energy_pj": hw.energy_pj,
        "mismatches": check["mismatches"],
        "inputs_checked": check["inputs_checked"],
        "latency_cycles": hw.latency_cycles,
        "flip_flops": hw.flip_flops,
        "adders": record["adders"],
        "synth_s": hw.synth_s,
        "verilator_inputs_per_s": check.get("verilator_inputs_per_s"),
    }


def run(out_dir: Path, quick: bool, seed: int, **options) -> list[dict]:
    plan = {**(QUICK if quick else FULL), **options}
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rows: list[dict] = []
    sims: list[dict] = []
    failures: list[dict] = []
    identities = {}
    start = time.perf_counter()

    def progress(rows: list[dict], sims: list[dict]) -> None:
        """Partial results on disk after every design (a long run can be read while it goes)."""
        write_record(
            out_dir / "progress.json",
            {"rows": rows, "simulators": sims, "seconds": time.perf_counter() - start},
        )

    for name in plan["datasets"]:
        data = load_features(name, 4, seed)
        identities[name] = {**data.identity, "check_inputs": data.check_source}
        epochs = plan["epochs"] if name == "digits" else plan["fashion_epochs"]
        base = LogicFlattenConfig(
            data=name, hidden=tuple(plan["hidden"][name]), epochs=epochs, qat_epochs=epochs, seed=seed
        )
        trained = {}
        for penalty in plan["penalties"][name]:
            cfg = replace(base, csd_penalty=penalty).validate()
            model = train_logic_mlp(cfg, data)
            design, record = flatten(model, cfg, measure_inputs=data.x_test)
            acc = float(
                (
                    design.net.forward(model.input_codes(data.x_test).numpy())["pred"] == data.y_test.numpy()
                ).mean()
            )
            variant = "plain" if penalty == 0 else f"hw-aware λ={penalty:g}"
            check = _verify(design, model, data.x_check, plan["simulator"], plan["check_limit"])
            rows.append(_row(name, variant, "no", "csd", acc, design, record, check))
            trained[penalty] = (model, cfg, acc, design.hardware)
            progress(rows, sims)
        # pipelined: plain and hardware-aware by levelising, then the comparisons (abc retiming last:
        # it is the slowest and may hit its time limit)
        jobs = [(p, "levelised") for p in sorted({0.0, plan["hw_penalty"]}) if p in trained]
        if name in plan["compare_synth_multiplier"]:
            jobs.append((0.0, "synth-multiplier"))
        if name in plan["abc_retime"]:
            jobs.append((0.0, "abc"))
        for penalty, job in jobs:
            model, cfg, acc, comb = trained[penalty]
            variant = "plain" if penalty == 0 else f"hw-aware λ={penalty:g}"
            if job == "synth-multiplier":
                design, record = flatten(
                    model, replace(cfg, multiplier="synth").validate(), measure_inputs=data.x_test
                )
                check = _verify(design, model, data.x_check, plan["simulator"], plan["check_limit"])
                rows.append(_row(name, variant, "no", "synth", acc, design, record, check))
                iv = _verify(design, model, data.x_check, "iverilog", limit=2000)
                iv = {
                    "iverilog_mismatches": iv.pop("mismatches"),
                    "iverilog_inputs": iv.pop("inputs_checked"),
                    **iv,
                }
                sims.append({"data": name, "design": "combinational, synth multipliers", **check, **iv})
                progress(rows, sims)
                continue
            pcfg = replace(cfg, pipeline_ns=plan["pipeline_ns"], retime=job)
            try:
                design, record = flatten(
                    model, pcfg.validate(), measure_inputs=data.x_test, combinational=comb
                )
            except ToolError as err:  # abc retiming of the whole design may exceed its time limit
                failures.append({"data": name, "variant": variant, "pipelined": job, "error": str(err)[:300]})
                continue
            check = _verify(design, model, data.x_check, plan["simulator"], plan["check_limit"])
            rows.append(_row(name, variant, job, "csd", acc, design, record, check))
            if job == "levelised" and penalty == 0:
                sims.append({"data": name, "design": "pipelined", **check})
            progress(rows, sims)
    seconds = time.perf_counter() - start
    write_report(out_dir, rows, sims + failures, plan, seed, identities, seconds, quick)
    (out_dir / "progress.json").unlink(missing_ok=True)
    return headline(rows, plan)
