"""Print a ``Graph`` as one Verilog module ``top``, combinational or pipelined.

Ports: ``x`` (feature i's unsigned code in bits [i*b, (i+1)*b)), ``y`` (predicted class), ``logits``
(class j's signed logit in bits [j*W, (j+1)*W)), and ``clk`` when the design has registers.

Pipelining (``levelise``): each operation gets a stage, greedily as soon as possible, such that the
estimated delay inside a stage stays within the budget (ASAP scheduling under a cycle-time constraint);
a value used k stages after the one that computes it passes through k registers, and the outputs are
registered after the last stage, so latency = number of stages. ``output_registers`` instead puts R
registers after the combinational outputs (what yosys/abc retiming starts from).
"""

from __future__ import annotations

from frugalnn.methods.logic_flatten.graph import Graph

CONST_STAGE = -1  # constants are wires at every stage, never registered


def levelise(g: Graph, budget: float) -> tuple[list[int], int]:
    """Stage of every node (ASAP under ``budget`` delay units per stage) and the number of stages."""
    stage = [0] * len(g.nodes)
    t_in = [0.0] * len(g.nodes)
    for i, node in enumerate(g.nodes):
        if node.kind == "const":
            stage[i] = CONST_STAGE
            continue
        preds = [p for p in g.preds(i) if stage[p] != CONST_STAGE]
        s = max((stage[p] for p in preds), default=0)
        t = max((t_in[p] for p in preds if stage[p] == s), default=0.0)
        if t > 0 and t + node.delay > budget:
            s, t = s + 1, 0.0
        stage[i], t_in[i] = s, t + node.delay
    return stage, max(stage) + 1


def emit_verilog(
    g: Graph, stages: list[int] | None = None, n_stages: int = 0, output_registers: int = 0, top: str = "top"
) -> str:
    """Verilog text; ``stages`` from :func:`levelise` (None: combinational)."""
    n = len(g.nodes)
    if stages is None:
        stages = [CONST_STAGE if nd.kind == "const" else 0 for nd in g.nodes]
        n_stages = output_registers
    wl, ib = g.logit_width, g.index_bits
    pw = ib + wl
    delays = [0] * n

    def ref(p: int, at: int) -> str:
        d = 0 if stages[p] == CONST_STAGE else at - stages[p]
        delays[p] = max(delays[p], d)
        return f"n{p}" if d == 0 else f"n{p}_d{d}"

    body: list[str] = []
    for i, nd in enumerate(g.nodes):
        s = stages[i]
        if nd.kind == "in":
            f = nd.args[0]
            b = g.input_bits
            expr = f"{{1'b0, x[{f * b + b - 1}:{f * b}]}}"
        elif nd.kind == "const":
            expr = str(nd.args[0])
        elif nd.kind == "add":
            terms = []
            for p, k, sign in nd.args:
                t = ref(p, s) + (f" <<< {k}" if k else "")
                terms.append(("- " if sign < 0 else "+ ") + (f"({t})" if k else t))
            expr = " ".join(terms).removeprefix("+ ")
        elif nd.kind == "mul":
            expr = f"{ref(nd.args[0], s)} * {nd.args[1]}"
        elif nd.kind == "requant":
            src, k, top_code = nd.args
            r, w = ref(src, s), g.nodes[src].width
            expr = f"{r}[{w - 1}] ? 0 : ((({r} >>> {k}) > {top_code}) ? {top_code} : ({r} >>> {k}))"
        elif nd.kind == "pack":
            body.append(f"  wire signed [{wl - 1}:0] n{i}_v = {ref(nd.args[0], s)};")
            expr = f"{{{ib}'d{nd.args[1]}, n{i}_v}}"
        else:  # amax: the later operand only wins when strictly larger
            a, b = ref(nd.args[0], s), ref(nd.args[1], s)
            expr = f"($signed({b}[{wl - 1}:0]) > $signed({a}[{wl - 1}:0])) ? {b} : {a}"
        body.append(f"  assign n{i} = {expr};")
    out_logits = [ref(p, n_stages) for p in g.logits]
    out_pred = ref(g.pred, n_stages)

    def decl(i: int, name: str, kind: str) -> str:
        nd = g.nodes[i]
        width = pw if nd.kind in ("pack", "amax") else nd.width
        sign = "" if nd.kind in ("pack", "amax") else "signed "
        return f"  {kind} {sign}[{width - 1}:0] {name};"

    decls = [decl(i, f"n{i}", "wire") for i in range(n)]
    regs, seq = [], []
    for i in range(n):
        for d in range(1, delays[i] + 1):
            regs.append(decl(i, f"n{i}_d{d}", "reg"))
            seq.append(f"    n{i}_d{d} <= {f'n{i}' if d == 1 else f'n{i}_d{d - 1}'};")
    c = len(g.logits)
    ports = ([" input clk"] if seq else []) + [
        f" input [{len(g.inputs) * g.input_bits - 1}:0] x",
        f" output [{ib - 1}:0] y",
        f" output [{c * wl - 1}:0] logits",
    ]
    outs = [f"  wire signed [{wl - 1}:0] lg{j} = {r};" for j, r in enumerate(out_logits)]
    outs.append(f"  assign logits = {{{', '.join(f'lg{j}' for j in reversed(range(c)))}}};")
    outs.append(f"  assign y = {out_pred}[{pw - 1}:{wl}];")
    lines = [f"module {top} (", ",\n".join(ports), ");", *decls, *regs, *body]
    if seq:
        lines += ["  always @(posedge clk) begin", *seq, "  end"]
    lines += [*outs, "endmodule", ""]
    return "\n".join(lines)


def register_bits(verilog: str) -> int:
    """Flip-flop bits declared in a generated design (before synthesis removes constant ones)."""
    import re

    return sum(int(m) + 1 for m in re.findall(r"^\s*reg (?:signed )?\[(\d+):0\]", verilog, re.M))
