"""The verb: a (quantised) MLP -> one Verilog design, combinational or pipelined, with its gate-level
figures; plus the design folder (top.v, io.json, integer_model.json, report) and its verification."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from frugalnn.core.config import FieldError
from frugalnn.core.io import atomic_write_json, atomic_write_text
from frugalnn.errors import ConfigError
from frugalnn.methods.logic_flatten.config import LogicFlattenConfig
from frugalnn.methods.logic_flatten.flow import Hardware, measure, register_floor_ns
from frugalnn.methods.logic_flatten.graph import Graph, adder_count, build_graph
from frugalnn.methods.logic_flatten.model import IntegerMLP, LogicMLP, to_integer
from frugalnn.methods.logic_flatten.verilog import emit_verilog, levelise, register_bits

ABC_RETIME_TIMEOUT_S = 300.0  # abc's retiming runs its full script over the whole flattened design
CELLS_PER_ADDER = 30  # measured: 31-39 OSU018 cells per two-input adder of the digits MLPs


@dataclass
class LogicDesign:
    net: IntegerMLP
    graph: Graph
    verilog: str
    io: dict
    hardware: Hardware | None = None
    combinational: Hardware | None = None  # the combinational design a pipelined one was derived from
    pipeline: dict = field(default_factory=dict)

    @property
    def latency_cycles(self) -> int:
        return int(self.io["latency_cycles"])


def io_spec(g: Graph, model: LogicMLP, latency: int) -> dict:
    f, b = len(g.inputs), g.input_bits
    return {
        "top": "top",
        "input": {
            "port": "x",
            "width": f * b,
            "features": f,
            "bits_per_feature": b,
            "bit_order": f"feature i's unsigned code in bits [i*{b}, (i+1)*{b})",
            "code": "clamp(round((feature - lo) / scale), 0, 2^bits - 1) in float32",
            "lo": float(model.in_lo),
            "scale": float(model.in_scale),
        },
        "output": {
            "port": "y",
            "width": g.index_bits,
            "meaning": "predicted class: the index of the first maximal logit, unsigned",
        },
        "logits": {
            "port": "logits",
            "classes": len(g.logits),
            "bits_per_class": g.logit_width,
            "bit_order": f"class j's signed (two's complement) logit in bits [j*{g.logit_width}, (j+1)*{g.logit_width})",
        },
        "clock": "clk" if latency else None,
        "reset": None,
        "reset_note": "no reset: the pipeline holds data only; outputs are valid latency_cycles after the first input",
        "latency_cycles": latency,
        "throughput": "one inference per clock cycle"
        if latency
        else "combinational: one inference per critical path",
    }


def as_logic_mlp(model: nn.Module, cfg: LogicFlattenConfig, calib: torch.Tensor | None) -> LogicMLP:
    if isinstance(model, LogicMLP) and model.quantized and float(model.in_scale) > 0:
        return model
    if calib is None:
        raise ConfigError("flatten needs calib=<float inputs> to calibrate the quantisers of a float model")
    m = LogicMLP.from_module(model, cfg.weight_bits, cfg.act_bits, cfg.input_bits)
    return m.calibrate(calib)


def check_size(g: Graph, net: IntegerMLP, cfg: LogicFlattenConfig) -> int:
    adders = adder_count(g)
    if adders > cfg.max_adders:
        raise FieldError(
            "max_adders",
            f"is {cfg.max_adders}, but the {'-'.join(map(str, net.sizes))} network needs {adders} two-input "
            f"adders (~{adders * CELLS_PER_ADDER:,} cells): too large for yosys in minutes; shrink the hidden "
            "widths, lower weight_bits, train with csd_penalty > 0, or raise max_adders",
        )
    return adders


def pipeline(
    g: Graph, cfg: LogicFlattenConfig, comb: Hardware, codes: np.ndarray, tries: int = 2
) -> tuple[str, Hardware, dict]:
    """Registers for cfg.pipeline_ns: our levelised stages (re-budgeted from each try's measured clock),
    or the levelised stage count as output registers retimed by abc (``abc -dff -D``)."""
    target = float(cfg.pipeline_ns)
    floor = register_floor_ns(None)
    unit_ns = comb.clock_ns / g.depth
    budget = max((target - floor) / unit_ns, 1e-3)
    history = []
    best = None
    for _ in range(tries):
        stages, n = levelise(g, budget)
        verilog = emit_verilog(g, stages, n)
        hw, _ = measure(verilog, n, codes, g.input_bits, g.logit_width)
        history.append({"budget_units": round(budget, 3), "stages": n, "clock_ns": hw.clock_ns})
        if best is None or hw.clock_ns < best[1].clock_ns:
            best = (verilog, hw)
        if hw.clock_ns <= target * 1.02:
            best = (verilog, hw)
            break
        budget *= max(0.3, (target - floor) / max(hw.clock_ns - floor, 1e-3))
    verilog, hw = best
    info = {
        "method": "levelised",
        "target_ns": target,
        "tries": history,
        "register_bits": register_bits(verilog),
    }
    if cfg.retime == "abc":
        n = hw.latency_cycles
        verilog = emit_verilog(g, output_registers=n)
        hw, _ = measure(
            verilog,
            n,
            codes,
            g.input_bits,
            g.logit_width,
            pre_map=f"abc -dff -D {int(target * 1000)}",
            timeout_s=ABC_RETIME_TIMEOUT_S,
        )
        info = {
            "method": "abc",
            "target_ns": target,
            "stages": n,
            "register_bits_before": register_bits(verilog),
        }
    return verilog, hw, info


def flatten(
    model: nn.Module,
    config: LogicFlattenConfig,
    calib: torch.Tensor | None = None,
    measure_inputs: torch.Tensor | None = None,
    synthesize: bool = True,
    combinational: Hardware | None = None,
) -> tuple[LogicDesign, dict]:
    """A Flatten/Linear/ReLU network -> its flattened-logic design and a record.

    ``calib``: float inputs to calibrate a float model's quantisers (ignored for a calibrated LogicMLP);
    ``measure_inputs``: float inputs whose activity gives the energy (default ``calib``);
    ``synthesize``: run yosys / OpenSTA (always done when ``pipeline_ns`` is set);
    ``combinational``: the figures of this network's combinational design, if already measured.
    """
    cfg = config.validate()
    if cfg.pipeline_ns is not None:
        floor = register_floor_ns(None)
        if cfg.pipeline_ns < floor:
            raise FieldError(
                "pipeline_ns",
                f"is {cfg.pipeline_ns} ns, below one register plus one cell delay ({floor:.2f} ns on OSU018); "
                f"give at least {floor:.2f} ns",
            )
    start = time.perf_counter()
    m = as_logic_mlp(model, cfg, calib)
    net = to_integer(m, cfg.requant_bits)
    g = build_graph(net, cfg.multiplier)
    adders = check_size(g, net, cfg)
    verilog = emit_verilog(g)
    design = LogicDesign(net, g, verilog, io_spec(g, m, 0))
    source = measure_inputs if measure_inputs is not None else calib
    if synthesize or cfg.pipeline_ns is not None:
        if source is None:
            raise ConfigError("synthesis measures energy on real inputs: pass measure_inputs= or calib=")
        codes = m.input_codes(source).numpy()[:8192]
        comb = combinational or measure(verilog, 0, codes, g.input_bits, g.logit_width)[0]
        design.hardware = design.combinational = comb
        if cfg.pipeline_ns is not None:
            design.verilog, design.hardware, design.pipeline = pipeline(g, cfg, comb, codes)
            design.io = io_spec(g, m, design.hardware.latency_cycles)
    record = {
        "config": cfg.to_dict(),
        "sizes": net.sizes,
        "adders": adders,
        "nonzero_weights": int(sum((layer.weight != 0).sum() for layer in net.layers)),
        "latency_cycles": design.latency_cycles,
        "hardware": design.hardware.to_dict() if design.hardware else None,
        "combinational": design.combinational.to_dict() if design.combinational else None,
        "pipeline": design.pipeline,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return design, record


def write_design(design: LogicDesign, record: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "top.v", design.verilog)
    atomic_write_json(out / "io.json", design.io)
    atomic_write_json(out / "integer_model.json", design.net.to_dict())
    atomic_write_json(out / "report.json", record)
    hw = design.hardware
    lines = [f"# Flattened logic design ({'x'.join(map(str, design.net.sizes))})", ""]
    lines += [f"- latency: {design.latency_cycles} cycles; adders: {record['adders']}"]
    if hw is not None:
        lines += [
            f"- area {hw.area:,.0f} um^2, {hw.cells:,} cells ({hw.flip_flops} flip-flops)",
            f"- clock {hw.clock_ns:.3f} ns -> {hw.throughput_inf_s / 1e6:.1f} M inferences/s",
            f"- energy {hw.energy_pj:.2f} pJ per inference (zero-delay activity on real inputs)",
            f"- synthesis {hw.synth_s:.1f} s",
        ]
    if design.pipeline:
        target = design.pipeline["target_ns"]
        met = "met" if hw is not None and hw.clock_ns <= target * 1.02 else "missed"
        lines.append(f"- pipelined by {design.pipeline['method']} for {target} ns: {met}")
    if design.combinational is not None and design.combinational is not hw:
        c = design.combinational
        lines.append(
            f"- combinational design: area {c.area:,.0f} um^2, clock {c.clock_ns:.3f} ns, {c.energy_pj:.2f} pJ"
        )
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return out
