"""Data for the logic MLPs and their training: float epochs, calibration, then quantisation-aware epochs
with the hardware-aware penalty  loss = CE + lambda * mean_w cost(w / s_w),  cost(c) = the piecewise-linear
CSD digit count of the code c (``csd.csd_cost_surrogate``: the adders a weight costs in logic) + |c| / qmax
(the width those adders need)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from frugalnn.core.quant import qmax
from frugalnn.methods.logic_flatten.config import LogicFlattenConfig
from frugalnn.methods.logic_flatten.csd import csd_cost_surrogate
from frugalnn.methods.logic_flatten.model import LogicMLP


@dataclass
class FeatureData:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_check: torch.Tensor  # >= 10,000 real inputs for the equivalence proof
    check_source: str
    identity: dict = field(default_factory=dict)


def _shifted_digits(mean: float, std: float) -> torch.Tensor:
    """All 1,797 sklearn digits and their 8 one-pixel shifts (zero fill): 16,173 real images."""
    from sklearn.datasets import load_digits as sk_digits

    imgs = sk_digits().images / 16.0
    out = []
    for dy in (0, -1, 1):
        for dx in (0, -1, 1):
            s = np.roll(imgs, (dy, dx), axis=(1, 2))
            if dy:
                s[:, 0 if dy > 0 else -1, :] = 0
            if dx:
                s[:, :, 0 if dx > 0 else -1] = 0
            out.append(s)
    arr = (np.concatenate(out).astype(np.float32) - mean) / std
    return torch.from_numpy(arr.reshape(len(arr), -1))


def load_features(name: str, downsample: int = 4, seed: int = 0) -> FeatureData:
    """Flat features: digits 8x8 = 64; fashion-mnist average-pooled by ``downsample``."""
    from frugalnn.core.data import load_digits, load_fashion_mnist

    if name == "digits":
        d = load_digits(val_size=150, test_size=500, seed=seed)
        flat = [t.reshape(len(t), -1) for t in (d.x_train, d.x_val, d.x_test)]
        check = _shifted_digits(d.identity["mean"][0], d.identity["std"][0])
        source = "all 1,797 sklearn digits x 9 one-pixel shifts (incl. unshifted)"
    else:
        d = load_fashion_mnist(val_size=5000, seed=seed)
        flat = [F.avg_pool2d(t, downsample).reshape(len(t), -1) for t in (d.x_train, d.x_val, d.x_test)]
        check = flat[2]
        source = "Fashion-MNIST test split (10,000 images)"
    identity = {
        **d.identity,
        "features": int(flat[0].shape[1]),
        "downsample": downsample if name != "digits" else 1,
    }
    return FeatureData(name, flat[0], d.y_train, flat[1], d.y_val, flat[2], d.y_test, check, source, identity)


def logic_cost(model: LogicMLP, magnitude_weight: float = 1.0) -> torch.Tensor:
    """Mean logic cost over every weight (differentiable in the weights): the CSD-digit surrogate (adders
    per weight) plus ``magnitude_weight * |code| / qmax`` (a larger constant shifts its terms further, so
    its adders are wider; without this term, codes 1, 2 and 4 are all local minima of the digit count and
    the penalty stalls at powers of two instead of reaching zero)."""
    q = qmax(model.weight_bits)
    costs = []
    for i, layer in enumerate(model.layers):
        scaled = layer.weight / model.weight_scale(i)
        costs.append(csd_cost_surrogate(scaled, q) + magnitude_weight * scaled.abs().clamp(max=q) / q)
    return torch.cat([c.reshape(-1) for c in costs]).mean()


@torch.no_grad()
def accuracy(model: LogicMLP, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def _epochs(model, data, epochs, lr, batch, penalty, gen, desc) -> None:
    if epochs == 0:
        return
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (-(-len(data.x_train) // batch))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in tqdm(range(epochs), desc=desc, leave=False):
        model.train()
        order = torch.randperm(len(data.x_train), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            if penalty > 0:
                loss = loss + penalty * logic_cost(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


def train_logic_mlp(cfg: LogicFlattenConfig, data: FeatureData, init: LogicMLP | None = None) -> LogicMLP:
    """Float training (skipped when ``init`` is given), calibration, then QAT with the logic-cost penalty."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if init is None:
        sizes = [data.x_train.shape[1], *cfg.hidden, int(data.y_train.max()) + 1]
        model = LogicMLP(sizes, cfg.weight_bits, cfg.act_bits, cfg.input_bits)
        _epochs(model, data, cfg.epochs, cfg.lr, cfg.batch_size, 0.0, gen, "float")
    else:
        model = LogicMLP(init.sizes, cfg.weight_bits, cfg.act_bits, cfg.input_bits)
        model.load_state_dict(init.state_dict())
        model.quantized = False
    model.calibrate(data.x_train)
    _epochs(model, data, cfg.qat_epochs, cfg.lr / 3, cfg.batch_size, cfg.csd_penalty, gen, "qat")
    return model.eval()
