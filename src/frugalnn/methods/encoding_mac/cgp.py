"""Cartesian genetic programming over logic gates: genomes, bit-packed fitness, (mu + lambda) evolution.

A genome is a grid of ``rows x columns`` two-input gate nodes (function gene + two connection genes)
and ``outputs`` output genes pointing at nodes (Miller's CGP; hal-cgp's layout, which the public
EncodingNet code uses). Inputs are the 2B bits of the two's-complement activation code x (LSB first)
then of the weight code w. A node in column c reads inputs or nodes of columns c-levels_back .. c-1.

Fitness (EncodingNet Sec. III-B, public Code_1_CGP_search.py), evaluated on all 2^(2B) (x, w) pairs
at once, 64 pairs per uint64 word:
    B   = output-bit matrix (outputs x pairs) plus a row of ones,    v = x * w (integers)
    s   = v B^T (B B^T + lambda I)^-1                                  (ridge regression)
    K   = the M outputs with the largest |s|
    maxRE = max |round(s_K) B_K - v| / max |v|
    fitness = -(area_K + threshold)  if maxRE <= threshold  else  -(area_max + maxRE)
with area_K the summed gate areas of the nodes the kept outputs depend on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalnn.hw.netlist import pack_bits

# gate set and areas of the spec (NAND2 = NOR2 = 1, AND2 = OR2 = 4/3, XOR2 = XNOR2 = 2, NOT = 2/3, wire = 0)
GATES = ("NAND", "NOR", "AND", "OR", "XOR", "XNOR", "NOT", "WIRE")
AREAS = np.array([1.0, 1.0, 4 / 3, 4 / 3, 2.0, 2.0, 2 / 3, 0.0])
TWO_INPUT = np.array([True, True, True, True, True, True, False, False])
AND, WIRE = GATES.index("AND"), GATES.index("WIRE")


def gate_op(code: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One gate function on packed words (or on 0/1 integers masked by the caller)."""
    if code == 0:
        return ~(a & b)
    if code == 1:
        return ~(a | b)
    if code == 2:
        return a & b
    if code == 3:
        return a | b
    if code == 4:
        return a ^ b
    if code == 5:
        return ~(a ^ b)
    if code == 6:
        return ~a
    return a.copy()


def signed_codes(bits: int) -> np.ndarray:
    """Values of the codes 0 .. 2^B - 1 read as two's complement."""
    c = np.arange(1 << bits, dtype=np.int64)
    return np.where(c >= 1 << (bits - 1), c - (1 << bits), c)


@dataclass
class Problem:
    """All (x, w) code pairs of a B-bit encoder, packed: pair p = x_code * 2^B + w_code."""

    bits: int
    inputs: np.ndarray  # (2B, words) uint64: x bits then w bits
    target: np.ndarray  # (pairs,) float64: x * w
    pairs: int
    ones: np.ndarray  # (words,) the row of ones (padding pairs 0)
    planes: np.ndarray  # (2B + 1, words) two's-complement bit planes of x * w
    plane_weights: np.ndarray  # 2^b, the sign plane negative
    target_split: np.ndarray  # (pairs, 2) float32: x*w = 128 * hi + lo with 0 <= lo < 128

    @property
    def target32(self) -> np.ndarray:
        return self.target.astype(np.float32)

    @classmethod
    def build(cls, bits: int) -> Problem:
        codes = np.arange(1 << (2 * bits), dtype=np.int64)
        x_code, w_code = codes >> bits, codes & ((1 << bits) - 1)
        rows = [pack_bits((x_code >> k) & 1) for k in range(bits)]
        rows += [pack_bits((w_code >> k) & 1) for k in range(bits)]
        vals = signed_codes(bits)
        prod = vals[x_code] * vals[w_code]
        n_planes = 2 * bits + 1
        planes = np.stack([pack_bits((prod >> b) & 1) for b in range(n_planes)])
        plane_weights = np.array([1 << b for b in range(n_planes)], dtype=np.int64)
        plane_weights[-1] = -plane_weights[-1]
        hi = np.floor_divide(prod, 128)
        split = np.stack([hi, prod - 128 * hi], axis=1).astype(np.float32)
        ones = pack_bits(np.ones(codes.size, dtype=np.uint8))
        return cls(
            bits, np.stack(rows), prod.astype(np.float64), codes.size, ones, planes, plane_weights, split
        )


@dataclass
class Layout:
    """Grid shape and the legal source range of every node / output gene."""

    n_in: int
    rows: int
    columns: int
    levels_back: int
    outputs: int

    @property
    def n_nodes(self) -> int:
        return self.rows * self.columns

    @property
    def genes(self) -> int:
        return 3 * self.n_nodes + self.outputs

    def source_range(self, column: int) -> tuple[int, int]:
        """Node sources of a node in ``column``: [lo, hi) over node ids; inputs 0..n_in-1 always allowed."""
        lo = self.n_in + self.rows * max(0, column - self.levels_back)
        return lo, self.n_in + self.rows * column

    def random_source(self, column: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo = self.n_in + self.rows * np.maximum(0, column - self.levels_back)
        hi = self.n_in + self.rows * column
        n_choices = self.n_in + (hi - lo)
        pick = rng.integers(0, n_choices)
        return np.where(pick < self.n_in, pick, lo + pick - self.n_in)


@dataclass
class Genome:
    func: np.ndarray  # (n_nodes,) gate codes
    in0: np.ndarray  # (n_nodes,) source ids (inputs 0..n_in-1, node i at n_in + i)
    in1: np.ndarray
    out: np.ndarray  # (outputs,) node ids

    def dna(self) -> list[int]:
        return np.concatenate([self.func, self.in0, self.in1, self.out]).astype(int).tolist()

    @classmethod
    def from_dna(cls, dna: list[int], layout: Layout) -> Genome:
        a = np.asarray(dna, dtype=np.int64)
        n = layout.n_nodes
        return cls(a[:n].copy(), a[n : 2 * n].copy(), a[2 * n : 3 * n].copy(), a[3 * n :].copy())

    def copy(self) -> Genome:
        return Genome(self.func.copy(), self.in0.copy(), self.in1.copy(), self.out.copy())


def random_genome(layout: Layout, rng: np.random.Generator) -> Genome:
    n = layout.n_nodes
    column = np.arange(n) // layout.rows
    func = rng.integers(0, len(GATES), size=n)
    in0 = layout.random_source(column, rng)
    in1 = layout.random_source(column, rng)
    out = layout.n_in + rng.integers(0, n, size=layout.outputs)
    return Genome(func, in0.astype(np.int64), in1.astype(np.int64), out.astype(np.int64))


def partial_product_genome(layout: Layout, bits: int, rng: np.random.Generator) -> Genome:
    """The exact encoder: B^2 AND gates x_i & w_j (a multiplier's partial products) in column 0,
    2B wires of the input bits, all other nodes random; outputs on the products, then on the wires."""
    g = random_genome(layout, rng)
    r = layout.rows
    nodes = [k for c in range(layout.columns) for k in range(c * r, (c + 1) * r)]
    col0 = [k for k in nodes if k < r]  # column-0 nodes may read inputs only when levels_back >= 1
    slots = col0 + [k for k in nodes if k >= r]
    pp = [(i, j) for i in range(bits) for j in range(bits)]
    for k, (i, j) in enumerate(pp):
        g.func[slots[k]], g.in0[slots[k]], g.in1[slots[k]] = AND, i, bits + j
    wires = slots[len(pp) : len(pp) + 2 * bits]
    for k, node in enumerate(wires):
        g.func[node], g.in0[node], g.in1[node] = WIRE, k, k
    products = [slots[k] for k in range(len(pp))]
    g.out[:] = [
        layout.n_in + (products[k] if k < len(pp) else wires[(k - len(pp)) % len(wires)])
        for k in range(layout.outputs)
    ]
    return g


def mutate(g: Genome, layout: Layout, rate: float, rng: np.random.Generator) -> Genome:
    """Point mutation: every gene is redrawn (from its legal values, never its current one where
    another exists) with probability ``rate``; at least one gene changes."""
    child = g.copy()
    n = layout.n_nodes
    hit = rng.random(layout.genes) < rate
    if not hit.any():
        hit[rng.integers(0, layout.genes)] = True
    column = np.arange(n) // layout.rows
    f_hit = np.flatnonzero(hit[:n])
    if f_hit.size:
        child.func[f_hit] = (g.func[f_hit] + rng.integers(1, len(GATES), size=f_hit.size)) % len(GATES)
    for gene, arr in ((1, child.in0), (2, child.in1)):
        idx = np.flatnonzero(hit[gene * n : (gene + 1) * n])
        if idx.size:
            arr[idx] = layout.random_source(column[idx], rng)
    o_hit = np.flatnonzero(hit[3 * n :])
    if o_hit.size:
        child.out[o_hit] = layout.n_in + rng.integers(0, n, size=o_hit.size)
    return child


def evaluate_nodes(g: Genome, layout: Layout, inputs: np.ndarray) -> np.ndarray:
    """Packed values of every source (inputs then nodes): (n_in + n_nodes, words) uint64.

    One numpy call per (column, gate type): a column's nodes read only earlier columns.
    """
    vals = np.empty((layout.n_in + layout.n_nodes, inputs.shape[1]), dtype=np.uint64)
    vals[: layout.n_in] = inputs
    for c in range(layout.columns):
        sl = slice(layout.n_in + c * layout.rows, layout.n_in + (c + 1) * layout.rows)
        f = g.func[c * layout.rows : (c + 1) * layout.rows]
        a = vals[g.in0[c * layout.rows : (c + 1) * layout.rows]]
        b = vals[g.in1[c * layout.rows : (c + 1) * layout.rows]]
        out = np.empty_like(a)
        for code in np.unique(f):
            m = f == code
            out[m] = gate_op(int(code), a[m], b[m])
        vals[sl] = out
    return vals


def active_nodes(g: Genome, layout: Layout, out_nodes: np.ndarray) -> np.ndarray:
    """Boolean mask over nodes that the given output node ids depend on."""
    active = np.zeros(layout.n_in + layout.n_nodes, dtype=bool)
    active[out_nodes] = True
    for c in reversed(range(layout.columns)):
        lo, hi = c * layout.rows, (c + 1) * layout.rows
        on = np.flatnonzero(active[layout.n_in + lo : layout.n_in + hi]) + lo
        active[g.in0[on]] = True
        active[g.in1[on[TWO_INPUT[g.func[on]]]]] = True
    return active[layout.n_in :]


@dataclass
class Fitness:
    fitness: float
    area: float
    max_re: float
    kept: list[int]  # indices into the output genes (== outputs: the row of ones)
    weights: list[float]  # ridge position weights of the kept outputs (unrounded)


@dataclass
class Normal:
    """The ridge system of an evaluated genome (exact integers), reused by its offspring."""

    words: np.ndarray  # (outputs + 1, words) packed output bits, last row all ones
    gram: np.ndarray  # B B^T, float64
    rhs: np.ndarray  # B v


# above this many changed output rows a full GEMM beats per-row popcounts
_FULL_AT = 16


def unpack_rows(words: np.ndarray, pairs: int) -> np.ndarray:
    return np.unpackbits(np.ascontiguousarray(words).view(np.uint8), axis=1, bitorder="little")[:, :pairs]


def normal_equations(words: np.ndarray, problem: Problem, parent: Normal | None = None) -> Normal:
    """B B^T and B v, exactly: a float32 GEMM from scratch (every partial sum < 2^24), or, next to a
    parent's system, popcounts of the changed rows only (offspring differ in a few output bits)."""
    if parent is not None:
        changed = np.flatnonzero((words != parent.words).any(axis=1))
        if changed.size <= _FULL_AT:
            gram, rhs = parent.gram.copy(), parent.rhs.copy()
            if changed.size:
                rows = words[changed]
                cross = np.bitwise_count(rows[:, None, :] & words[None, :, :]).sum(-1, dtype=np.int64)
                gram[changed, :] = cross
                gram[:, changed] = cross.T
                planes = np.bitwise_count(rows[:, None, :] & problem.planes[None]).sum(-1, dtype=np.int64)
                rhs[changed] = planes @ problem.plane_weights
            return Normal(words, gram, rhs)
    mat = unpack_rows(words, problem.pairs).astype(np.float32)
    gram = (mat @ mat.T).astype(np.float64)
    rhs = (mat @ problem.target_split).astype(np.float64) @ np.array([128.0, 1.0])
    return Normal(words, gram, rhs)


def fitness(
    g: Genome,
    layout: Layout,
    problem: Problem,
    kept_bits: int,
    threshold: float,
    ridge: float,
    parent: Normal | None = None,
) -> tuple[Fitness, Normal]:
    vals = evaluate_nodes(g, layout, problem.inputs)
    words = np.vstack([vals[g.out], problem.ones[None]])
    normal = normal_equations(words, problem, parent)
    s = np.linalg.solve(normal.gram + ridge * np.eye(len(words)), normal.rhs)
    kept = np.sort(np.argsort(-np.abs(s), kind="stable")[:kept_bits])
    bits = unpack_rows(words[kept], problem.pairs).astype(np.float32)
    pred = np.rint(s[kept]).astype(np.float32) @ bits  # integer sums < 2^24: exact
    max_re = float(np.abs(pred - problem.target32).max() / np.abs(problem.target).max())
    out_nodes = g.out[kept[kept < layout.outputs]]
    area = float(AREAS[g.func[active_nodes(g, layout, out_nodes)]].sum())
    area_max = float(layout.n_nodes * AREAS.max())
    fit = -(area + threshold) if max_re <= threshold else -(area_max + max_re)
    return Fitness(fit, area, max_re, kept.tolist(), s[kept].tolist()), normal
