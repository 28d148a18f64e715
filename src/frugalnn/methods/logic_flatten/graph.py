"""The integer network as a graph of word-level operations, ready to print as Verilog.

Every neuron is dedicated logic: a weight w becomes the terms of its canonical signed digits,
±(a_i << k) (``multiplier="csd"``), or one product a_i * w left to synthesis (``multiplier="synth"``);
zero weights add nothing. A neuron's terms and its bias meet in an adder tree built earliest-first
(Huffman order on the estimated arrival time, which for equal leaves is a balanced tree). Signs travel
with the operands, so (-a) + (-b) is computed as a + b and negated once at the root, and common
trailing shifts are factored out, keeping every adder as narrow as its exact value range allows.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from frugalnn.methods.logic_flatten.csd import csd_digits
from frugalnn.methods.logic_flatten.model import IntegerMLP

Operand = tuple[int, int, int]  # (node, left shift, sign)


def signed_width(lo: int, hi: int) -> int:
    """Bits of the two's-complement word that holds every integer in [lo, hi]."""
    need = max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0)
    return need + 1


@dataclass
class Node:
    kind: str  # in | const | add | mul | requant | pack | amax
    args: tuple
    lo: int
    hi: int
    delay: float  # estimated delay of this operation in adder-bit units (see Graph.delay_of)
    arrival: float = 0.0
    width: int = 0

    def __post_init__(self) -> None:
        self.width = signed_width(self.lo, self.hi)


@dataclass
class Graph:
    input_bits: int
    nodes: list[Node] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    logits: list[int] = field(default_factory=list)
    pred: int = -1  # the amax root; its top bits are the class index
    index_bits: int = 1
    logit_width: int = 1

    def _add(self, node: Node, preds: tuple[int, ...]) -> int:
        node.arrival = max((self.nodes[p].arrival for p in preds), default=0.0) + node.delay
        self.nodes.append(node)
        return len(self.nodes) - 1

    @staticmethod
    def delay_of(kind: str, width: int) -> float:
        """Delay estimate: a w-bit add or compare ~ 2 + log2 w (carry look-ahead after abc), a product by
        a constant ~ two adder levels, the ReLU/clamp a compare plus a mux; shifts and constants are wires."""
        lg = math.log2(max(width, 2))
        return {"add": 2 + lg, "neg": 2 + lg, "mul": 2 * (2 + lg), "requant": 3 + lg, "amax": 3 + lg}.get(
            kind, 0.0
        )

    def input(self, feature: int) -> int:
        return self._add(Node("in", (feature,), 0, 2**self.input_bits - 1, 0.0), ())

    def const(self, value: int) -> int:
        return self._add(Node("const", (int(value),), int(value), int(value), 0.0), ())

    def _range(self, op: Operand) -> tuple[int, int]:
        n, k, s = op
        lo, hi = self.nodes[n].lo << k, self.nodes[n].hi << k
        return (lo, hi) if s > 0 else (-hi, -lo)

    def add(self, ops: tuple[Operand, ...]) -> int:
        ranges = [self._range(op) for op in ops]
        lo, hi = sum(r[0] for r in ranges), sum(r[1] for r in ranges)
        width = signed_width(lo, hi)
        kind = "add" if len(ops) > 1 else ("neg" if ops[0][2] < 0 else "shift")
        return self._add(Node("add", ops, lo, hi, self.delay_of(kind, width)), tuple(o[0] for o in ops))

    def mul(self, src: int, constant: int) -> int:
        a, b = self.nodes[src].lo * constant, self.nodes[src].hi * constant
        lo, hi = min(a, b), max(a, b)
        return self._add(
            Node("mul", (src, int(constant)), lo, hi, self.delay_of("mul", signed_width(lo, hi))), (src,)
        )

    def sum_tree(self, ops: list[Operand], bias: int) -> int:
        """sum of sign * (node << shift) over ``ops`` plus ``bias``, as a tree of two-input adders."""
        if bias:
            ops = ops + [(self.const(abs(bias)), 0, 1 if bias > 0 else -1)]
        if not ops:
            return self.const(0)
        heap = [(self.nodes[op[0]].arrival, i, op) for i, op in enumerate(ops)]
        heapq.heapify(heap)
        tie = len(ops)
        while len(heap) > 1:
            _, _, (a, ka, sa) = heapq.heappop(heap)
            _, _, (b, kb, sb) = heapq.heappop(heap)
            m = min(ka, kb)
            if sa == sb:
                node, sign = self.add(((a, ka - m, 1), (b, kb - m, 1))), sa
            else:
                (p, kp), (q, kq) = ((a, ka), (b, kb)) if sa > 0 else ((b, kb), (a, ka))
                node, sign = self.add(((p, kp - m, 1), (q, kq - m, -1))), 1
            heapq.heappush(heap, (self.nodes[node].arrival, tie, (node, m, sign)))
            tie += 1
        root, k, s = heap[0][2]
        return root if (k == 0 and s > 0) else self.add(((root, k, s),))

    def neuron(self, sources: list[int], weights: np.ndarray, bias: int, multiplier: str) -> int:
        ops: list[Operand] = []
        for src, w in zip(sources, weights.tolist()):
            if w == 0:
                continue
            if multiplier == "csd":
                ops.extend((src, k, s) for k, s in csd_digits(w))
            else:
                ops.append((self.mul(src, w), 0, 1))
        return self.sum_tree(ops, bias)

    def requant(self, acc: int, mult: int, shift: int, act_bits: int, multiplier: str) -> int:
        """clamp((acc * M + 2^(k-1)) >> k, 0, 2^b - 1): ReLU, rescale and round to the next layer's codes."""
        if multiplier == "csd":
            scaled = self.sum_tree([(acc, k, s) for k, s in csd_digits(mult)], 1 << (shift - 1))
        else:
            scaled = self.sum_tree([(self.mul(acc, mult), 0, 1)], 1 << (shift - 1))
        width = self.nodes[scaled].width
        node = Node(
            "requant",
            (scaled, int(shift), 2**act_bits - 1),
            0,
            2**act_bits - 1,
            self.delay_of("requant", width),
        )
        return self._add(node, (scaled,))

    def argmax(self, logits: list[int]) -> int:
        """Tournament of comparisons; on a tie the lower class wins (torch / numpy argmax)."""
        self.index_bits = max(1, math.ceil(math.log2(len(logits))))
        self.logit_width = max(self.nodes[n].width for n in logits)
        level = [self._add(Node("pack", (n, j), 0, 0, 0.0), (n,)) for j, n in enumerate(logits)]
        delay = self.delay_of("amax", self.logit_width)
        while len(level) > 1:
            nxt = [
                self._add(Node("amax", (a, b), 0, 0, delay), (a, b)) for a, b in zip(level[::2], level[1::2])
            ]
            level = nxt + ([level[-1]] if len(level) % 2 else [])
        return level[0]

    def preds(self, index: int) -> tuple[int, ...]:
        node = self.nodes[index]
        if node.kind == "add":
            return tuple(o[0] for o in node.args)
        if node.kind in ("mul", "requant", "pack"):
            return (node.args[0],)
        if node.kind == "amax":
            return node.args
        return ()

    @property
    def depth(self) -> float:
        return max(n.arrival for n in self.nodes)


def build_graph(net: IntegerMLP, multiplier: str = "csd") -> Graph:
    g = Graph(net.input_bits)
    sources = [g.input(i) for i in range(net.sizes[0])]
    g.inputs = list(sources)
    for index, layer in enumerate(net.layers):
        accs = [
            g.neuron(sources, layer.weight[j], int(layer.bias[j]), multiplier) for j in range(len(layer.bias))
        ]
        if index == len(net.layers) - 1:
            g.logits = accs
        else:
            sources = [
                g.requant(a, int(m), int(k), net.act_bits, multiplier)
                for a, m, k in zip(accs, layer.multiplier, layer.shift)
            ]
    g.pred = g.argmax(g.logits)
    return g


def adder_count(g: Graph) -> int:
    """Two-input adders / subtractors and negations in the graph (shifts are wires)."""
    return sum(1 for n in g.nodes if n.kind == "add" and not (len(n.args) == 1 and n.args[0][2] > 0))
