"""Simulate a generated design (RTL ``top.v`` or a mapped netlist) on input codes, with Icarus Verilog or
Verilator, one input per clock cycle; outputs come back aligned with their inputs (latency removed)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalnn.errors import ConfigError, ToolError
from frugalnn.hw.synth import run_tool

SIMULATORS = ("verilator", "iverilog")


@dataclass
class SimResult:
    pred: np.ndarray  # (N,) class index
    logits: np.ndarray  # (N, C) signed
    simulator: str
    build_s: float
    run_s: float

    @property
    def inputs_per_s(self) -> float:
        return len(self.pred) / max(self.run_s, 1e-9)


def pack_hex(codes: np.ndarray, bits: int) -> list[str]:
    """One hex word per input: feature i's code in bits [i*bits, (i+1)*bits)."""
    codes = np.asarray(codes, dtype=np.int64)
    n, f = codes.shape
    if codes.min(initial=0) < 0 or codes.max(initial=0) >= 1 << bits:
        raise ConfigError(f"input codes must lie in [0, {(1 << bits) - 1}] for {bits}-bit inputs")
    total = f * bits
    bitmat = ((codes[:, :, None] >> np.arange(bits)) & 1).reshape(n, total).astype(np.uint8)
    pad = (-total) % 4
    bitmat = np.concatenate([bitmat, np.zeros((n, pad), np.uint8)], axis=1)
    nib = bitmat.reshape(n, -1, 4) @ np.array([1, 2, 4, 8], dtype=np.int64)  # LSB nibble first
    digits = np.array(list("0123456789abcdef"))[nib[:, ::-1]]
    return ["".join(row) for row in digits]


def _testbench(n: int, in_width: int, n_classes: int, logit_width: int, index_bits: int, latency: int) -> str:
    clocked = latency > 0
    step = (
        "      #1 clk = 1;\n      #1 clk = 0;\n"
        f'      if (i >= {latency - 1}) $fdisplay(f, "%h %h", y, logits);\n'
        if clocked
        else '      #1;\n      $fdisplay(f, "%h %h", y, logits);\n'
    )
    return f"""`timescale 1ns/1ps
module tb;
  reg [{in_width - 1}:0] x;
  reg clk;
  wire [{index_bits - 1}:0] y;
  wire [{n_classes * logit_width - 1}:0] logits;
  reg [{in_width - 1}:0] mem [0:{n - 1}];
  integer i, f;
  top dut ({".clk(clk), " if clocked else ""}.x(x), .y(y), .logits(logits));
  initial begin
    $readmemh("in.hex", mem);
    f = $fopen("out.txt", "w");
    clk = 0;
    for (i = 0; i < {n + max(latency - 1, 0)}; i = i + 1) begin
      x = (i < {n}) ? mem[i] : 0;
{step}    end
    $fclose(f);
    $finish;
  end
endmodule
"""


def simulate_design(
    verilog: str,
    codes: np.ndarray,
    io: dict,
    simulator: str = "verilator",
    extra_sources: list[Path] | None = None,
    timeout_s: float = 900.0,
    allow_x: bool = False,
) -> SimResult:
    """Run ``verilog`` (module ``top``; ports as io.json describes) on ``codes`` (N, F).

    ``allow_x``: rows with unknown bits (registers before their first load) read as -1 instead of failing.
    """
    if simulator not in SIMULATORS:
        raise ConfigError(f"simulator must be one of {', '.join(SIMULATORS)}, got {simulator!r}")
    codes = np.asarray(codes, dtype=np.int64)
    n, f = codes.shape
    bits = io["input"]["bits_per_feature"]
    if f != io["input"]["features"]:
        raise ConfigError(f"the design takes {io['input']['features']} features, the inputs have {f}")
    wl, c, ib = io["logits"]["bits_per_class"], io["logits"]["classes"], io["output"]["width"]
    latency = int(io["latency_cycles"])
    with tempfile.TemporaryDirectory(prefix="frugalnn-logic-sim-") as tmp:
        work = Path(tmp)
        (work / "in.hex").write_text("\n".join(pack_hex(codes, bits)) + "\n")
        (work / "tb.v").write_text(_testbench(n, f * bits, c, wl, ib, latency))
        (work / "top.v").write_text(verilog)
        sources = ["tb.v", "top.v", *[str(p) for p in extra_sources or []]]
        start = time.perf_counter()
        if simulator == "iverilog":
            run_tool(["iverilog", "-o", "sim.vvp", "-s", "tb", *sources], work, "the design", timeout_s)
            build = time.perf_counter() - start
            start = time.perf_counter()
            run_tool(["vvp", "-n", "sim.vvp"], work, "the testbench", timeout_s)
        else:
            run_tool(
                [
                    "verilator",
                    "--binary",
                    "-j",
                    "1",
                    "-Wno-fatal",
                    "-Wno-lint",
                    "-Wno-style",
                    "--top-module",
                    "tb",
                    "-O2",
                    "--Mdir",
                    "obj",
                    *sources,
                ],
                work,
                "the design",
                timeout_s,
            )
            build = time.perf_counter() - start
            start = time.perf_counter()
            run_tool([str(work / "obj" / "Vtb")], work, "the testbench", timeout_s)
        run = time.perf_counter() - start
        rows = (work / "out.txt").read_text().split("\n")
    rows = [r.split() for r in rows if r.strip()]
    if len(rows) != n:
        raise ToolError(f"{simulator} wrote {len(rows)} output rows for {n} inputs")
    unknown = np.array(["x" in a.lower() or "x" in b.lower() for a, b in rows], dtype=bool)
    if unknown.any() and allow_x:
        rows = [("0", "0") if u else r for u, r in zip(unknown, rows)]
    elif unknown.any():
        raise ToolError(f"{simulator} produced X outputs; the design has undriven or uninitialised nets")
    pred = np.array([int(a, 16) for a, _ in rows], dtype=np.int64)
    words = [int(b, 16) for _, b in rows]
    mask = (1 << wl) - 1
    logits = np.array([[(v >> (j * wl)) & mask for j in range(c)] for v in words], dtype=np.int64)
    logits -= (logits >> (wl - 1) & 1) << wl
    pred[unknown] = -1
    logits[unknown] = -1
    return SimResult(pred, logits, simulator, build, run)
