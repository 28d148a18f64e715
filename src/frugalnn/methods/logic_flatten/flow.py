"""Gate-level figures of a generated design: yosys + abc onto OSU018, OpenSTA's minimum clock period,
a cycle-accurate bit-parallel simulation of the mapped netlist (equivalence and switching activity on
real inputs) and the energy per inference from that activity (``hw.timed`` energy per toggle)."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

import numpy as np

from frugalnn.errors import ConfigError, ToolError
from frugalnn.hw.netlist import CONST1, Netlist, popcount
from frugalnn.hw.synth import MappedNetlist, sta_timing, synthesize
from frugalnn.hw.timed import electrical


@dataclass
class Hardware:
    area: float  # um^2 (OSU018 library units)
    cells: int
    flip_flops: int
    clock_ns: float  # OpenSTA minimum period (critical path incl. setup; input-to-output when combinational)
    latency_cycles: int
    throughput_inf_s: float  # one inference per clock period
    energy_pj: float  # per inference: switching + internal on real inputs, + clock tree + leakage
    synth_s: float
    sta_startpoint: str = ""
    sta_endpoint: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# abc's default standard-cell script (&fraig, scorr, &dch, &nf) takes minutes on thousands of adders;
# structural hashing + one rewrite pass + the classic delay-oriented mapper takes seconds
FAST_ABC = "strash; dc2; map; topo\n"


def synthesize_design(
    verilog: str, pre_map: str = "", timeout_s: float = 1800.0
) -> tuple[MappedNetlist, float]:
    import tempfile
    from pathlib import Path

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="frugalnn-abc-") as tmp:
        script = Path(tmp) / "fast.abc"
        script.write_text(FAST_ABC)
        mapped = synthesize(verilog, "top", abc_script=str(script), pre_map=pre_map, timeout_s=timeout_s)
    return mapped, time.perf_counter() - start


_ASSIGN = re.compile(r"^(\s*)assign\s+(.+?)\s*=\s*(.+?);\s*$", re.M)
_ITEM = re.compile(r"(\d+)'([hbd])([0-9a-fA-F_]+)|([^\s,{}\[\]]+)(?:\[(\d+)(?::(\d+))?\])?")


_DECL = re.compile(r"^\s*(?:wire|reg|input|output|inout)\s+(?:\[(\d+):(\d+)\]\s+)?([^\s;]+)\s*;", re.M)


def _bits(expr: str, ranges: dict[str, tuple[int, int]]) -> list[str]:
    """One reference per bit, MSB first, of a yosys ``write_verilog`` operand or concatenation
    (``ranges``: declared [msb, lsb] of every vector)."""
    out: list[str] = []
    for m in _ITEM.finditer(expr):
        if m.group(1):
            width, base, digits = int(m.group(1)), m.group(2), m.group(3).replace("_", "")
            value = int(digits, {"h": 16, "b": 2, "d": 10}[base])
            out += [f"1'b{(value >> k) & 1}" for k in range(width - 1, -1, -1)]
        elif m.group(5) is None and m.group(4) in ranges:
            hi, lo = ranges[m.group(4)]
            step = -1 if hi >= lo else 1
            out += [f"{m.group(4)}[{k}]" for k in range(hi, lo + step, step)]
        elif m.group(5) is None:
            out.append(m.group(4))
        else:
            hi = int(m.group(5))
            lo = int(m.group(6)) if m.group(6) is not None else hi
            step = -1 if hi >= lo else 1
            out += [f"{m.group(4)}[{k}]" for k in range(hi, lo + step, step)]
    return out


def _split_concats(verilog: str) -> str:
    """``assign { a[8], a[0] } = { b, 1'h0 };`` (yosys ties bits together) as one assign per bit:
    OpenSTA 2019's Verilog reader takes no concatenation."""
    ranges = {m.group(3): (int(m.group(1)), int(m.group(2))) for m in _DECL.finditer(verilog) if m.group(1)}

    def one(m: re.Match) -> str:
        if "{" not in m.group(0):
            return m.group(0)
        lhs, rhs = _bits(m.group(2), ranges), _bits(m.group(3), ranges)
        if len(lhs) != len(rhs):
            raise ToolError(f"cannot split the yosys assign {m.group(0).strip()!r} into bits")
        return "\n".join(f"{m.group(1)}assign {a} = {b};" for a, b in zip(lhs, rhs))

    return _ASSIGN.sub(one, verilog)


def min_period_ns(mapped: MappedNetlist) -> tuple[float, str, str]:
    """Smallest clock period OpenSTA accepts: period - worst slack (register setup included)."""
    from dataclasses import replace

    period = 100.0
    rep = sta_timing(replace(mapped, verilog=_split_concats(mapped.verilog)), clock_ns=period)
    slack = re.search(r"(-?[0-9.]+)\s+slack", rep.report)
    if slack is None:
        raise ToolError(f"OpenSTA reported no slack for {mapped.top}; is there a timing path?")
    return period - float(slack.group(1)), rep.startpoint, rep.endpoint


def register_floor_ns(mapped_or_lib) -> float:
    """One flip-flop clock-to-Q plus one inverter: no pipeline stage can be shorter (OSU018 tables)."""
    from frugalnn.hw.liberty import read_liberty

    lib = read_liberty() if mapped_or_lib is None else mapped_or_lib
    clk_q = min(
        arc.delay_ns(0.06, 0.01)
        for cell in lib.cells.values()
        if cell.ff
        for pin in cell.outputs
        for arc in cell.pins[pin].timing
        if arc.timing_type.startswith("rising")
    )
    gate = min(
        arc.delay_ns(0.06, 0.01)
        for cell in lib.cells.values()
        if not cell.is_sequential
        for pin in cell.outputs
        for arc in cell.pins[pin].timing
        if arc.cell_rise is not None
    )
    return clk_q + gate


@dataclass
class GateRun:
    pred: np.ndarray
    logits: np.ndarray
    toggles: np.ndarray  # per net, over the steady-state window
    transitions: int  # input-to-input transitions in that window
    seconds: float


def _pack_cycle(codes: np.ndarray, bits: int) -> np.ndarray:
    """(P lanes, F) codes -> (F*bits, P/64) uint64 words: bit i*bits+k of lane j = bit k of code (j, i)."""
    p, f = codes.shape
    bitmat = ((codes[:, :, None] >> np.arange(bits)) & 1).reshape(p, f * bits).T.astype(np.uint8)
    return np.ascontiguousarray(np.packbits(bitmat, axis=1, bitorder="little")).view(np.uint64)


def _read(net: Netlist, values: np.ndarray, nets: list[int], lanes: int) -> np.ndarray:
    """Unsigned integers of a bus, per lane."""
    bits = np.unpackbits(np.ascontiguousarray(values[nets]).view(np.uint8), axis=1, bitorder="little")[
        :, :lanes
    ].astype(np.int64)
    return (bits << np.arange(len(nets))[:, None]).sum(axis=0)


def run_gates(
    net: Netlist, codes: np.ndarray, bits: int, latency: int, words: int, logit_bits: int
) -> GateRun:
    """Cycle simulation of a mapped design fed one input per cycle in each of 64*words parallel lanes.

    Lane j takes inputs j*L .. j*L+L-1 in consecutive cycles (L = ceil(N / lanes)), so toggles between
    consecutive cycles are those of back-to-back inferences in one pipeline. Outputs of input t are read
    ``latency`` cycles later; toggles are counted once every stage holds real data (cycles latency..L-1).
    """
    start = time.perf_counter()
    codes = np.asarray(codes, dtype=np.int64)
    n = len(codes)
    lanes = 64 * words
    per_lane = -(-n // lanes)
    padded = np.zeros((lanes * per_lane, codes.shape[1]), dtype=np.int64)
    padded[:n] = codes
    stream = padded.reshape(lanes, per_lane, -1)
    x_nets = net.inputs["x"]
    live = [k for k, nt in enumerate(x_nets) if nt > CONST1]
    clk = [nt for p, nets in net.inputs.items() if p in ("clk", "clock") for nt in nets]
    state = {g.name: np.zeros(words, dtype=np.uint64) for g in net.seq}
    toggles = np.zeros(net.n_nets, dtype=np.int64)
    prev = None
    preds = np.zeros((lanes, per_lane), dtype=np.int64)
    logit_words = np.zeros((lanes, per_lane, len(net.outputs["logits"])), dtype=np.uint8)
    counted = 0
    for t in range(per_lane + latency):
        values = net.new_values(words)
        if t < per_lane:
            packed = _pack_cycle(stream[:, t], bits)
            values[[x_nets[k] for k in live]] = packed[live]
        for nt in clk:
            values[nt] = 0
        for g in net.seq:
            for o, fn in zip(g.outs, net.functions(g.cell)):
                if o >= 0:
                    values[o] = fn(*([np.uint64(0)] * len(g.ins)), state[g.name])
        net.evaluate(values)
        if t >= latency:
            preds[:, t - latency] = _read(net, values, net.outputs["y"], lanes)
            logit_words[:, t - latency] = np.unpackbits(
                np.ascontiguousarray(values[net.outputs["logits"]]).view(np.uint8), axis=1, bitorder="little"
            )[:, :lanes].T
        if prev is not None and latency < t < per_lane:
            toggles += popcount(values ^ prev, axis=1)
            counted += lanes
        prev = values
        for g in net.seq:
            cell = net.library.cells[g.cell]
            pin = dict(zip(cell.inputs, g.ins))
            state[g.name] = values[pin[cell.ff["next_state"].strip("()")]].copy()
    pred = preds.reshape(-1)[:n]
    lw = logit_words.reshape(lanes * per_lane, -1)[:n].astype(np.int64)
    c = lw.shape[1] // logit_bits
    lw = lw.reshape(n, c, logit_bits)
    logits = (lw << np.arange(logit_bits)).sum(axis=2)
    logits -= (logits >> (logit_bits - 1) & 1) << logit_bits
    return GateRun(pred, logits, toggles, counted, time.perf_counter() - start)


def energy_per_inference(mapped: MappedNetlist, run: GateRun, clock_ns: float) -> float:
    """pJ per inference: toggles x energy per toggle, averaged over the window, + clock + leakage."""
    if run.transitions == 0:
        raise ConfigError("too few inputs per lane to measure activity; give more inputs or fewer lanes")
    el = electrical(mapped.netlist)
    dynamic = float(run.toggles @ el.toggle_energy_pj) / run.transitions
    fixed = (el.clock_energy_pj if mapped.netlist.seq else 0.0) + el.leakage_nw * clock_ns * 1e-6
    return dynamic + fixed


def measure(
    verilog: str,
    latency: int,
    codes: np.ndarray,
    bits: int,
    logit_bits: int,
    pre_map: str = "",
    timeout_s: float = 1800.0,
) -> tuple[Hardware, MappedNetlist]:
    """Synthesise, time, and measure energy on ``codes`` (a few thousand real inputs are plenty)."""
    mapped, synth_s = synthesize_design(verilog, pre_map, timeout_s)
    period, start, end = min_period_ns(mapped)
    words = max(1, min(4, len(codes) // (64 * (latency + 16))))
    need = 64 * words * (latency + 16)  # every lane streams >= 16 inferences once the pipeline is full
    if len(codes) < need:
        codes = np.resize(np.asarray(codes), (need, np.shape(codes)[1]))  # the real inputs, repeated
    run = run_gates(mapped.netlist, codes, bits, latency, words, logit_bits)
    energy = energy_per_inference(mapped, run, period)
    hw = Hardware(
        area=round(mapped.area, 1),
        cells=mapped.n_cells,
        flip_flops=len(mapped.netlist.seq),
        clock_ns=round(period, 4),
        latency_cycles=latency,
        throughput_inf_s=1e9 / period,
        energy_pj=round(energy, 4),
        synth_s=round(synth_s, 1),
        sta_startpoint=start,
        sta_endpoint=end,
    )
    return hw, mapped
