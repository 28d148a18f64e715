"""Gate-level comparison: an encoded PE column against a multiplier PE column (yosys + OSU018).

Both columns take N activation codes, N (stationary) weight codes and a P-bit partial sum, and put
out the P-bit partial sum (wrapping mod 2^P), as one column of a weight-stationary systolic array:

* multiplier column:  y = p + sum_i a_i * w_i                   (N signed B x B multipliers + adders)
* encoded column:     per PE the encoder gates; per kept bit k a counter c_k = sum_i bit_k(a_i, w_i)
                      (bit-wise accumulation); one decoder y = p + (sum_k S_k c_k + N S_one) << shift
                      with the position weights S_k rounded to ``weight_bits`` signed bits
                      (the public code's PE_column_Bo_64.v: 64 PEs, 7-bit counters, 15-bit weights).

Area and energy are reported per MAC (column figure / N). Energy comes from ``hw.timed.stream_energy``
on the network's own activation / weight codes, glitch-aware (Liberty delays), both at one clock.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from frugalnn.errors import DataError
from frugalnn.hw.synth import MappedNetlist, synthesize
from frugalnn.hw.timed import electrical, stream_energy
from frugalnn.methods.encoding_mac.cgp import signed_codes
from frugalnn.methods.encoding_mac.encoder import Encoder

_VOP = {
    "NAND": "~({a} & {b})",
    "NOR": "~({a} | {b})",
    "AND": "{a} & {b}",
    "OR": "{a} | {b}",
    "XOR": "{a} ^ {b}",
    "XNOR": "~({a} ^ {b})",
    "NOT": "~{a}",
    "WIRE": "{a}",
}


def _ref(ref: str, pe: str) -> str:
    """Verilog name of an encoder signal in PE ``pe`` ("" for the lone encoder, else "_<i>")."""
    if ref[0] in "xw" and ref[1:].isdigit():
        return f"{'a' if ref[0] == 'x' else 'w'}{pe[1:]}[{ref[1:]}]"
    return f"{ref}{pe}"


def _encoder_body(enc: Encoder, pe: str) -> list[str]:
    lines = []
    for g in enc.gates:
        a, b = (_ref(r, pe) for r in g["in"])
        lines.append(f"  wire {g['id']}{pe} = {_VOP[g['op']].format(a=a, b=b)};")
    return lines


def encoder_verilog(enc: Encoder, top: str = "encoder") -> str:
    """The encoder alone: codes a, w in; the kept bits out (bit k = kept[k]; "one" is a constant 1)."""
    m = len(enc.kept)
    body = _encoder_body(enc, "")
    outs = [f"  assign bits[{k}] = {'1' if r == 'one' else _ref(r, '')};" for k, r in enumerate(enc.kept)]
    return (
        "`default_nettype none\n"
        f"module {top} (input [{enc.bits - 1}:0] a, input [{enc.bits - 1}:0] w, output [{m - 1}:0] bits);\n"
        + "\n".join(body + outs)
        + "\nendmodule\n"
    )


def _ports(bits: int, n: int, psum_bits: int) -> str:
    ins = [f"  input [{bits - 1}:0] a{i}," for i in range(n)] + [
        f"  input [{bits - 1}:0] w{i}," for i in range(n)
    ]
    return "\n".join(
        ins + [f"  input signed [{psum_bits - 1}:0] p,", f"  output signed [{psum_bits - 1}:0] y"]
    )


def mac_verilog(bits: int, psum_bits: int, top: str = "mac_pe") -> str:
    """The conventional PE's datapath: y = p + a * w (signed B x B multiplier, P-bit adder)."""
    return (
        "\n".join(
            [
                "`default_nettype none",
                f"module {top} (input [{bits - 1}:0] a, input [{bits - 1}:0] w, input signed [{psum_bits - 1}:0] p,",
                f"  output signed [{psum_bits - 1}:0] y);",
                f"  wire signed [{2 * bits - 1}:0] m = $signed(a) * $signed(w);",
                "  assign y = p + m;",
                "endmodule",
            ]
        )
        + "\n"
    )


def counter_bits(n: int) -> int:
    return max(1, math.ceil(math.log2(n + 1)))


def counted(enc: Encoder) -> list[int]:
    """Indices of the kept bits that need a counter (all but the constant "one")."""
    return [k for k, r in enumerate(enc.kept) if r != "one"]


def accumulate_verilog(enc: Encoder, n: int, top: str = "enc_acc") -> str:
    """Stage 1 of the encoded column: N encoders and one bit-wise counter per kept bit."""
    cw = counter_bits(n)
    ports = [f"  input [{enc.bits - 1}:0] a{i}," for i in range(n)] + [
        f"  input [{enc.bits - 1}:0] w{i}," for i in range(n)
    ]
    ks = counted(enc)
    ports += [f"  output [{cw - 1}:0] c{k}" + ("," if j < len(ks) - 1 else "") for j, k in enumerate(ks)]
    lines = ["`default_nettype none", f"module {top} (", *ports, ");"]
    for i in range(n):
        lines += _encoder_body(enc, f"_{i}")
    for k in ks:
        lines.append(f"  assign c{k} = " + " + ".join(_ref(enc.kept[k], f"_{i}") for i in range(n)) + ";")
    return "\n".join(lines) + "\nendmodule\n"


def decoder_verilog(enc: Encoder, n: int, psum_bits: int, weight_bits: int, top: str = "enc_dec") -> str:
    """Stage 2 (once per column): y = p + (sum_k S_k c_k + N S_one) << shift, S_k rounded weights."""
    hw, shift = enc.hardware_weights(weight_bits)
    cw, pb = counter_bits(n), psum_bits
    ks = counted(enc)
    ports = [f"  input [{cw - 1}:0] c{k}," for k in ks]
    ports += [f"  input signed [{pb - 1}:0] p,", f"  output signed [{pb - 1}:0] y"]
    lines = ["`default_nettype none", f"module {top} (", *ports, ");"]
    const = sum(n * hw[k] for k, r in enumerate(enc.kept) if r == "one")
    terms = []
    for k in ks:
        lines.append(
            f"  wire signed [{pb - 1}:0] t{k} = $signed({{{pb - cw}'d0, c{k}}}) * {pb}'sd{abs(hw[k])};"
        )
        terms.append(f"{'-' if hw[k] < 0 else '+'} t{k}")
    lines.append(
        f"  wire signed [{pb - 1}:0] dec = {'-' if const < 0 else ''}{pb}'sd{abs(const)} {' '.join(terms)};"
    )
    lines.append(f"  assign y = p + (dec <<< {shift});" if shift else "  assign y = p + dec;")
    return "\n".join(lines) + "\nendmodule\n"


def register_verilog(width: int, top: str = "pipe_reg") -> str:
    return (
        f"module {top} (input clk, input [{width - 1}:0] d, output reg [{width - 1}:0] q);\n"
        "  always @(posedge clk) q <= d;\nendmodule\n"
    )


def column_reference(
    lut: np.ndarray, a: np.ndarray, w: np.ndarray, p: np.ndarray, psum_bits: int
) -> np.ndarray:
    """y = p + sum_i lut[a_i, w_i] (codes (T, N)), wrapped to P signed bits."""
    bits = int(round(math.log2(lut.shape[0])))
    mask = (1 << bits) - 1
    total = p + lut[a & mask, w & mask].sum(axis=1)
    half = 1 << (psum_bits - 1)
    return ((total + half) % (1 << psum_bits)) - half


def hardware_lut(enc: Encoder, weight_bits: int) -> np.ndarray:
    hw, shift = enc.hardware_weights(weight_bits)
    n = 1 << enc.bits
    codes = np.arange(n * n)
    bits = enc.kept_bits(codes >> enc.bits, codes & (n - 1)).astype(np.int64)
    return ((np.asarray(hw, dtype=np.int64) << shift) @ bits).reshape(n, n)


def _wrap(v: np.ndarray, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    return ((v + half) % (1 << bits)) - half


def _simulate(mapped: MappedNetlist, stream: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return mapped.netlist.simulate(stream)


def _energy(mapped: MappedNetlist, stream: dict[str, np.ndarray], clock_ns: float, delay_model: str):  # noqa: ANN202
    return stream_energy(mapped.netlist, stream, clock_ns=clock_ns, delay_model=delay_model)


def compare_columns(
    enc: Encoder,
    a: np.ndarray,
    w: np.ndarray,
    p: np.ndarray,
    psum_bits: int,
    weight_bits: int,
    clock_ns: float | None = None,
    delay_model: str = "liberty",
) -> dict[str, Any]:
    """Area and energy per MAC of the encoded column and of the multiplier PEs on a code stream.

    ``a``, ``w``: (T, N) codes of N PEs (weights stationary), ``p``: (T,) partial sums entering the
    column. Multiplier PEs (the public code's trad PE): PE i computes p_i + a_i w_i into a P-bit
    register. Encoded column (PE_column_Bo_64.v): stage 1 (encoders + counters) into registers, stage 2
    (decoder) into a P-bit register. Every stage is checked against its reference on the stream, then
    simulated glitch-aware; registers add their Liberty area and their clock + data-pin energy.
    """
    t, n = a.shape
    cw = counter_bits(n)
    ks = counted(enc)
    mac = synthesize(mac_verilog(enc.bits, psum_bits), "mac_pe")
    acc = synthesize(accumulate_verilog(enc, n), "enc_acc")
    dec = synthesize(decoder_verilog(enc, n, psum_bits, weight_bits), "enc_dec")
    # multiplier PEs: PE i sees its own weight and the running partial sum from the PEs above
    va, vw = (
        signed_codes(enc.bits)[a & ((1 << enc.bits) - 1)],
        signed_codes(enc.bits)[w & ((1 << enc.bits) - 1)],
    )
    p_in = _wrap(p[:, None] + np.cumsum(va * vw, axis=1) - va * vw, psum_bits)
    mac_stream = {"a": a.T.ravel(), "w": w.T.ravel(), "p": p_in.T.ravel()}
    y_mac = _wrap(_simulate(mac, mac_stream)["y"], psum_bits)
    if not np.array_equal(y_mac, _wrap(mac_stream["p"] + (va * vw).T.ravel(), psum_bits)):
        raise DataError("mac_pe: the gate-level MAC disagrees with a * w + p; report this as a bug")
    acc_stream = {f"a{i}": a[:, i] for i in range(n)} | {f"w{i}": w[:, i] for i in range(n)}
    counts = _simulate(acc, acc_stream)
    bits = enc.kept_bits((a & ((1 << enc.bits) - 1)).ravel(), (w & ((1 << enc.bits) - 1)).ravel())
    for k in ks:
        if not np.array_equal(counts[f"c{k}"], bits[k].reshape(t, n).sum(axis=1)):
            raise DataError(f"enc_acc: counter c{k} disagrees with the encoder's bits; report this as a bug")
    dec_stream = {f"c{k}": counts[f"c{k}"] for k in ks} | {"p": p}
    y_dec = _wrap(_simulate(dec, dec_stream)["y"], psum_bits)
    if not np.array_equal(y_dec, column_reference(hardware_lut(enc, weight_bits), a, w, p, psum_bits)):
        raise DataError("enc_dec: the encoded column disagrees with p + sum LUT[a, w]; report this as a bug")
    crit = {
        name: electrical(m.netlist).critical_path_ns()
        for name, m in (("mac", mac), ("acc", acc), ("dec", dec))
    }
    clock = clock_ns or math.ceil(max(crit.values()) * 2) / 2
    reg_p = synthesize(register_verilog(psum_bits, "reg_p"), "reg_p")
    reg_c = synthesize(register_verilog(cw * len(ks), "reg_c"), "reg_c")
    e_mac = _energy(mac, mac_stream, clock, delay_model)
    e_acc = _energy(acc, acc_stream, clock, delay_model)
    e_dec = _energy(dec, dec_stream, clock, delay_model)
    c_all = np.zeros(t, dtype=np.int64)
    for j, k in enumerate(ks):
        c_all |= counts[f"c{k}"] << (cw * j)
    e_rp_mac = _energy(reg_p, {"d": y_mac, "clk": np.zeros_like(y_mac)}, clock, delay_model)
    e_rp_dec = _energy(reg_p, {"d": y_dec, "clk": np.zeros_like(y_dec)}, clock, delay_model)
    e_rc = _energy(reg_c, {"d": c_all, "clk": np.zeros_like(c_all)}, clock, delay_model)

    def pj(e) -> float:  # noqa: ANN001
        return e.timed_energy_pj_per_op if e.timed_energy_pj_per_op is not None else e.energy_pj_per_op

    out: dict[str, Any] = {"pes": n, "clock_ns": clock, "vectors": int(t), "delay_model": delay_model}
    out["area_multiplier"] = mac.area + reg_p.area
    out["area_encoded"] = (acc.area + reg_c.area + dec.area + reg_p.area) / n
    out["area_encoder_gates"] = acc.area / n
    out["energy_multiplier_pj"] = pj(e_mac) + pj(e_rp_mac)
    out["energy_encoded_pj"] = (pj(e_acc) + pj(e_rc) + pj(e_dec) + pj(e_rp_dec)) / n
    out["energy_zero_delay_multiplier_pj"] = e_mac.energy_pj_per_op + e_rp_mac.energy_pj_per_op
    out["energy_zero_delay_encoded_pj"] = (
        e_acc.energy_pj_per_op + e_rc.energy_pj_per_op + e_dec.energy_pj_per_op + e_rp_dec.energy_pj_per_op
    ) / n
    out["cells"] = {"mac_pe": mac.n_cells, "enc_acc": acc.n_cells, "enc_dec": dec.n_cells}
    out["energy_breakdown_pj_per_mac"] = {
        "mac_pe": pj(e_mac), "mac_register": pj(e_rp_mac), "encoders_and_counters": pj(e_acc) / n,
        "counter_registers": pj(e_rc) / n, "decoder": pj(e_dec) / n, "decoder_register": pj(e_rp_dec) / n,
    }  # fmt: skip
    out["area_breakdown_per_mac"] = {
        "mac_pe": mac.area, "mac_register": reg_p.area, "encoders_and_counters": acc.area / n,
        "counter_registers": reg_c.area / n, "decoder": dec.area / n, "decoder_register": reg_p.area / n,
    }  # fmt: skip
    out["critical_path_ns"] = crit
    out["area_saving"] = 1 - out["area_encoded"] / out["area_multiplier"]
    out["energy_saving"] = 1 - out["energy_encoded_pj"] / out["energy_multiplier_pj"]
    exact = np.outer(signed_codes(enc.bits), signed_codes(enc.bits))
    out["hardware_max_re"] = float(np.abs(hardware_lut(enc, weight_bits) - exact).max() / np.abs(exact).max())
    return out
