"""Experiment ``logic-flatten``: small MLPs as flattened logic (arXiv 2309.10510) on sklearn digits and
average-pooled Fashion-MNIST — plain vs hardware-aware training, combinational vs pipelined, CSD vs
synthesis-chosen constant multipliers, our levelised pipelining vs abc retiming; every design proven
bit-exact against the integer model on >= 10,000 real inputs (Verilator)."""

from frugalnn.experiments import register
from frugalnn.experiments.logic_flatten.protocol import run as _run


@register(
    "logic-flatten",
    "flattened logic MLPs: area, clock, energy, bit-exact proof, hardware-aware training",
    order=75,
)
def run(out_dir, quick, seed, **options):
    return _run(out_dir, quick, seed, **options)
