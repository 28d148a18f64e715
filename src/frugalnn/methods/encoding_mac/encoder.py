"""A searched encoder as a self-contained object: gate list, kept output bits, position weights, LUT.

``encoder.json`` (written by ``frugalnn encoding search``) holds everything needed to check it:
``bits``; ``gates`` in topological order, each ``{"id": "n17", "op": "NAND", "in": ["x3", "w1"]}``
(inputs ``x0..x{B-1}`` / ``w0..w{B-1}`` are the bits of the two's-complement codes, LSB first);
``kept`` (gate ids, or ``"one"`` for the constant row of the regression); integer ``weights`` (the
rounded position weights); and ``lut``, the 2^B x 2^B table LUT[x_code][w_code] = sum_k weights_k *
bit_k(x, w), codes in two's-complement order 0 .. 2^B - 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frugalnn.core.io import atomic_write_json
from frugalnn.errors import ConfigError, DataError
from frugalnn.hw.netlist import unpack_bits
from frugalnn.methods.encoding_mac.cgp import AREAS, GATES, TWO_INPUT, gate_op, signed_codes

FORMAT = "frugalnn-encoder/1"


@dataclass
class Encoder:
    bits: int
    gates: list[dict[str, Any]]
    kept: list[str]
    weights: list[int]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check()
        self.lut = self._lut()

    # ------------------------------------------------------------------ structure
    def _check(self) -> None:
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 8:
            raise DataError(f"encoder bits must be 2..8, got {self.bits!r}; the file is not a valid encoder")
        known = {f"x{k}" for k in range(self.bits)} | {f"w{k}" for k in range(self.bits)}
        for g in self.gates:
            if not isinstance(g, dict) or g.get("op") not in GATES or not isinstance(g.get("in"), list):
                raise DataError(f"encoder gate {g!r} is malformed (ops: {', '.join(GATES)})")
            if len(g["in"]) != 2 or any(ref not in known for ref in g["in"]):
                raise DataError(f"encoder gate {g.get('id')!r} reads an unknown or later signal {g['in']}")
            if not isinstance(g.get("id"), str) or g["id"] in known or g["id"] == "one":
                raise DataError(f"encoder gate id {g.get('id')!r} is missing or reused")
            known.add(g["id"])
        if len(self.kept) != len(self.weights) or not self.kept:
            raise DataError("encoder 'kept' and 'weights' must be non-empty lists of the same length")
        for ref in self.kept:
            if ref != "one" and ref not in known:
                raise DataError(f"encoder kept bit {ref!r} is no gate or input of the encoder")
        if not all(isinstance(w, int) and not isinstance(w, bool) for w in self.weights):
            raise DataError("encoder weights must be integers (rounded position weights)")

    @property
    def area(self) -> float:
        """Gate area in the spec's units (NAND2 = 1)."""
        return float(sum(AREAS[GATES.index(g["op"])] for g in self.gates))

    def signals(self, x_codes: np.ndarray, w_codes: np.ndarray) -> dict[str, np.ndarray]:
        """Every signal on packed vectors: integer codes in, packed uint64 words out (bit-parallel)."""
        from frugalnn.hw.netlist import pack_bits

        vals: dict[str, np.ndarray] = {}
        for k in range(self.bits):
            vals[f"x{k}"] = pack_bits((np.asarray(x_codes) >> k) & 1)
            vals[f"w{k}"] = pack_bits((np.asarray(w_codes) >> k) & 1)
        for g in self.gates:
            code = GATES.index(g["op"])
            a, b = vals[g["in"][0]], vals[g["in"][1]]
            vals[g["id"]] = gate_op(code, a, b)
        return vals

    def kept_bits(self, x_codes: np.ndarray, w_codes: np.ndarray) -> np.ndarray:
        """(len(kept), n) 0/1 kept output bits for code pairs (codes 0 .. 2^B - 1)."""
        n = len(x_codes)
        vals = self.signals(x_codes, w_codes)
        rows = [np.ones(n, np.uint8) if ref == "one" else unpack_bits(vals[ref], n) for ref in self.kept]
        return np.stack(rows)

    def _lut(self) -> np.ndarray:
        n = 1 << self.bits
        codes = np.arange(n * n)
        bits = self.kept_bits(codes >> self.bits, codes & (n - 1)).astype(np.int64)
        return (np.asarray(self.weights, dtype=np.int64) @ bits).reshape(n, n)

    def exact_table(self) -> np.ndarray:
        v = signed_codes(self.bits)
        return np.outer(v, v)

    @property
    def max_re(self) -> float:
        exact = self.exact_table()
        return float(np.abs(self.lut - exact).max() / np.abs(exact).max())

    # ------------------------------------------------------------------ hardware weights
    def hardware_weights(self, weight_bits: int) -> tuple[list[int], int]:
        """Position weights rounded to ``weight_bits`` signed bits: (w_k, shift) with weight ~ w_k << shift."""
        top = max(abs(w) for w in self.weights) or 1
        shift = max(0, math.ceil(math.log2(top + 1)) + 1 - weight_bits)
        while True:
            hw = [int(round(w / (1 << shift))) for w in self.weights]
            if all(-(1 << (weight_bits - 1)) <= v < (1 << (weight_bits - 1)) for v in hw):
                return hw, shift
            shift += 1

    # ------------------------------------------------------------------ files
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "bits": self.bits,
            "gates": self.gates,
            "kept": self.kept,
            "weights": self.weights,
            "max_re": self.max_re,
            "area": self.area,
            "lut": self.lut.tolist(),
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "encoder") -> Encoder:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(
                f"{source} is not a frugalnn encoder (format {FORMAT}); write one with `frugalnn encoding search`"
            )
        try:
            enc = cls(data["bits"], data["gates"], data["kept"], data["weights"], data.get("meta", {}))
        except KeyError as err:
            raise DataError(f"{source} lacks the field {err}; it is truncated or corrupt") from None
        lut = data.get("lut")
        if lut is not None and not np.array_equal(np.asarray(lut, dtype=np.int64), enc.lut):
            raise DataError(f"{source}: its 'lut' differs from its gates and weights; the file is corrupt")
        return enc

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return atomic_write_json(folder / "encoder.json", self.to_json())

    @classmethod
    def load(cls, path: str | Path, bits: int | None = None) -> Encoder:
        """Load ``path`` (a folder holding encoder.json, or the file); ``bits`` checks the width."""
        path = Path(path)
        file = path / "encoder.json" if path.is_dir() else path
        if not file.is_file():
            raise ConfigError(f"no encoder at {path}; write one with `frugalnn encoding search --out {path}`")
        try:
            data = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{file} is not valid JSON ({err}); it is corrupt, search again") from None
        enc = cls.from_json(data, str(file))
        if bits is not None and enc.bits != bits:
            raise ConfigError(
                f"encoder {file} is for {enc.bits}-bit codes, this needs {bits}; search one with --bits {bits}"
            )
        return enc


def exact_encoder(bits: int) -> Encoder:
    """A multiplier's own bits: the B^2 partial products x_i & w_j with weights ±2^(i+j) (two's complement)."""
    gates, kept, weights = [], [], []
    for i in range(bits):
        for j in range(bits):
            gid = f"p{i}_{j}"
            gates.append({"id": gid, "op": "AND", "in": [f"x{i}", f"w{j}"]})
            kept.append(gid)
            sign = -1 if (i == bits - 1) != (j == bits - 1) else 1
            weights.append(sign * (1 << (i + j)))
    return Encoder(bits, gates, kept, weights, {"kind": "exact partial products"})


def from_genome(genome, layout, fit, bits: int, meta: dict[str, Any]) -> Encoder:  # noqa: ANN001
    """The encoder of a CGP genome: the gates its kept outputs depend on, weights rounded."""
    from frugalnn.methods.encoding_mac.cgp import active_nodes

    def ref(src: int) -> str:
        if src < bits:
            return f"x{src}"
        if src < 2 * bits:
            return f"w{src - bits}"
        return f"n{src - 2 * bits}"

    kept_idx = np.asarray(fit.kept)
    out_nodes = genome.out[kept_idx[kept_idx < layout.outputs]]
    active = np.flatnonzero(active_nodes(genome, layout, out_nodes))
    gates = []
    for node in active:
        code = int(genome.func[node])
        a = ref(int(genome.in0[node]))
        b = ref(int(genome.in1[node])) if TWO_INPUT[code] else a
        gates.append({"id": f"n{node}", "op": GATES[code], "in": [a, b]})
    kept = ["one" if k == layout.outputs else ref(int(genome.out[k])) for k in fit.kept]
    weights = [int(round(w)) for w in fit.weights]
    return Encoder(bits, gates, kept, weights, meta)
