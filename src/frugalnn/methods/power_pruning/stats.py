"""What the MAC array sees in real inference, per layer (PowerPruning Sec. 3.1: "realistic activation
and partial-sum sequences").

In a weight-stationary array the processing element (PE) that holds W[o, i] sees the activation
sequence x[n, i, l] over images n and output positions l, and the partial sum
p[n, o, l, i] = Σ_{i' < i} W[o, i'] · x[n, i', l] from the PEs above it. For every Conv2d / Linear we
record, on the integer codes of the int8 model:

* ``counts[w, a]``: how many multiply-accumulates pair weight code w with activation code a
  (codes -127..127 at index code + 127), from per-input-position histograms: with H_w[i, w] the number
  of output channels whose weight at input position i is w and H_a[i, a] the number of (n, l) with
  activation a there, counts = H_wᵀ · H_a;
* a stream: the (activation, partial sum) sequences of ``sites`` randomly chosen PEs, concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.core.quant import QuantConv2d, QuantLinear, quantize
from frugalnn.methods.power_pruning.layers import BITS, PRUNED

N_CODES = 255  # -127..127
OFFSET = 127


@dataclass
class LayerStats:
    name: str
    counts: np.ndarray  # (255, 255) int64: [weight code + 127, activation code + 127]
    activations: np.ndarray  # int64 activation codes of the sampled PEs, in time order
    psums: np.ndarray  # int64 partial sums entering those PEs, in step with ``activations``
    macs: int  # multiply-accumulates of the layer over the recorded images

    @property
    def weight_use(self) -> np.ndarray:
        """MACs per weight code."""
        return self.counts.sum(axis=1)

    @property
    def activation_use(self) -> np.ndarray:
        return self.counts.sum(axis=0)


def weight_codes(layer: nn.Module) -> torch.Tensor:
    """Integer weight codes of an int8 or power-pruned layer, (out, in·kh·kw)."""
    if isinstance(layer, PRUNED):
        w = layer.weight_int()
    else:
        w = quantize(layer.weight.detach(), layer.weight_scale().detach(), BITS)
    return w.reshape(w.shape[0], -1).to(torch.int64)


def input_codes(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Activation codes as the MAC sees them, unfolded to (N, in·kh·kw, L) (float32, exact integers)."""
    if isinstance(layer, PRUNED):
        q = layer.input_codes(x)
    else:
        q = quantize(x, layer.act_scale, BITS)
    if isinstance(layer, nn.Conv2d):
        return F.unfold(q.to(torch.float32), layer.kernel_size, padding=layer.padding, stride=layer.stride)
    return q.reshape(q.shape[0], -1, 1).to(torch.float32)


def _histograms(codes: torch.Tensor, rows: int) -> torch.Tensor:
    """codes (rows, m) -> (rows, 255) counts of each code per row."""
    flat = (torch.arange(rows).reshape(-1, 1) * N_CODES + codes + OFFSET).reshape(-1)
    return torch.bincount(flat, minlength=rows * N_CODES).reshape(rows, N_CODES)


def layer_counts(w_q: torch.Tensor, cols: torch.Tensor) -> np.ndarray:
    """counts[w, a] = Σ_i H_w[i, w] · H_a[i, a] (see the module docstring)."""
    inputs = w_q.shape[1]
    hw = _histograms(w_q.T, inputs).to(torch.float64)
    ha = torch.zeros(inputs, N_CODES, dtype=torch.float64)
    for s in range(0, cols.shape[0], 16):  # 16 images at a time keeps the int64 copies small
        chunk = cols[s : s + 16].permute(1, 0, 2).reshape(inputs, -1).to(torch.int64)
        ha += _histograms(chunk, inputs).to(torch.float64)
    return (hw.T @ ha).round().to(torch.int64).numpy()


def layer_stream(
    w_q: torch.Tensor, cols: torch.Tensor, sites: int, length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(activations, partial sums) of ``sites`` random PEs, each a contiguous run of its time sequence."""
    out_c, inputs = w_q.shape
    o = rng.integers(0, out_c, size=sites)
    i = rng.integers(0, inputs, size=sites)
    seq = cols.permute(1, 0, 2).reshape(inputs, -1)  # (inputs, T): time = (image, position)
    t_len = seq.shape[1]
    run = min(t_len, -(-length // sites))
    start = rng.integers(0, t_len - run + 1, size=sites)
    t = torch.from_numpy(start[:, None] + np.arange(run)[None, :])  # (sites, run)
    acts = seq[torch.from_numpy(i)[:, None], t].to(torch.int64)  # (sites, run)
    # partial sum into PE (o, i): the products of the rows above it, exact in float64
    mask = (torch.arange(inputs)[None, :] < torch.from_numpy(i)[:, None]).to(torch.float64)
    w_above = w_q[torch.from_numpy(o)].to(torch.float64) * mask  # (sites, inputs)
    window = seq[:, t].to(torch.float64)  # (inputs, sites, run)
    psum = torch.einsum("si,isr->sr", w_above, window).round().to(torch.int64)
    return acts.reshape(-1).numpy(), psum.reshape(-1).numpy()


def mac_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear | QuantConv2d)}


@torch.no_grad()
def record_stats(
    model: nn.Module, x: torch.Tensor, sites: int, length: int, seed: int, batch_size: int = 128
) -> list[LayerStats]:
    """Run the int8 (or power-pruned) model on ``x``; counts and one PE stream per MAC layer."""
    layers = mac_layers(model)
    inputs: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, name=n: inputs[name].append(args[0].detach()))
        for n, m in layers.items()
    ]
    was_training = model.training
    model.eval()
    try:
        for s in range(0, len(x), batch_size):
            model(x[s : s + batch_size])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rng = np.random.default_rng(seed)
    out = []
    for name, layer in layers.items():
        w_q = weight_codes(layer)
        cols = input_codes(layer, torch.cat(inputs.pop(name)))
        acts, psums = layer_stream(w_q, cols, sites, length, rng)
        counts = layer_counts(w_q, cols)
        out.append(LayerStats(name, counts, acts, psums, int(counts.sum())))
    return out
