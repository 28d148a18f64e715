"""The early-exit training loss (paper Sec. III-A) and head training.

L = CE(final) + Σ_{i=1..N} 1/(N−i+1) · BCEWithLogits(z_i, one-hot(y); pos_weight)   (class exclusion)
L = CE(final) + Σ_{i=1..N} 1/(N−i+1) · CE(z_i, y)                                  (confidence baseline)
Hybrid (ours, not in the paper): each exit has both heads on the same pooled features, and its term is
the sum of the two (BCE on the sigmoid head, CE on the softmax head). The heads share no parameter, so
each is trained exactly as it would be alone.

The positive weight balances one positive against K−1 negatives per sample (EECE code: 36 / 396).
Heads are trained first on the frozen backbone — cheap, because their input is a pooled feature
vector that is computed once per image and cached — and optionally fine-tuned jointly afterwards.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from frugalnn.core.data import ImageData
from frugalnn.core.train import TrainConfig, TrainResult, train
from frugalnn.errors import ConfigError

from .chain import run_units
from .config import default_pos_weight
from .heads import EarlyExitModel


def head_loss(z: torch.Tensor, y: torch.Tensor, mode: str, pos_weight: float) -> torch.Tensor:
    if mode == "hybrid":  # ours: z = [sigmoid-head logits, softmax-head logits]
        k = z.shape[1] // 2
        return head_loss(z[:, :k], y, "exclusion", pos_weight) + head_loss(z[:, k:], y, "confidence", 0.0)
    if mode == "exclusion":  # the paper's sigmoid heads
        target = F.one_hot(y, z.shape[1]).to(z.dtype)
        weight = torch.full((z.shape[1],), pos_weight, dtype=z.dtype)
        return F.binary_cross_entropy_with_logits(z, target, pos_weight=weight)
    return F.cross_entropy(z, y)


def exit_loss(
    head_logits: list[torch.Tensor],
    final_logits: torch.Tensor | None,
    y: torch.Tensor,
    mode: str,
    pos_weight: float,
) -> torch.Tensor:
    """The spec's weighted sum; ``final_logits=None`` drops the (constant) CE of a frozen backbone."""
    n = len(head_logits)
    total = F.cross_entropy(final_logits, y) if final_logits is not None else torch.zeros(())
    for i, z in enumerate(head_logits, start=1):
        total = total + head_loss(z, y, mode, pos_weight) / (n - i + 1)
    return total


@torch.no_grad()
def pooled_features(
    model: EarlyExitModel, x: torch.Tensor, batch_size: int = 512, progress: bool = False, final: bool = False
) -> list[torch.Tensor]:
    """Each head's pooled input for every sample (the backbone runs once, in eval mode);
    ``final=True`` appends the final classifier's logits."""
    was = model.training
    model.eval()
    feats: list[list[torch.Tensor]] = [[] for _ in range(model.num_exits + int(final))]
    try:
        for s in tqdm(range(0, len(x), batch_size), desc="features", disable=not progress, leave=False):
            h = x[s : s + batch_size]
            for i in range(model.num_exits):
                h = run_units(model.segments[i], h)
                feats[i].append(model.heads[i].features(h))
            if final:
                feats[-1].append(run_units(model.segments[-1], h))
    finally:
        model.train(was)
    return [torch.cat(f) for f in feats]


def train_heads(
    model: EarlyExitModel, data: ImageData, progress: bool = True, feats: list[torch.Tensor] | None = None
) -> dict:
    """Train the heads on the frozen backbone (Adam on cached pooled features); returns a history.

    ``feats`` lets a caller train heads of both modes from one feature cache (same positions/pool).
    """
    cfg = model.config
    x, y = data.x_train, data.y_train
    if len(x) == 0:
        raise ConfigError("the training set is empty; heads need labelled training samples")
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.train_subset is not None and cfg.train_subset < len(x):
        pick = torch.randperm(len(x), generator=gen)[: cfg.train_subset]
        x, y = x[pick], y[pick]
        feats = [f[pick] for f in feats] if feats is not None else None
    if feats is None:
        feats = pooled_features(model, x, progress=progress)
    pos_weight = cfg.pos_weight or default_pos_weight(model.num_classes)
    params = list(model.heads.parameters())  # the linear layers (pooling has no parameters)
    opt = torch.optim.Adam(params, lr=cfg.head_lr, weight_decay=cfg.head_weight_decay)
    steps = max(1, len(y) // cfg.head_batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.head_epochs * steps))
    history = []
    bar = tqdm(range(cfg.head_epochs), desc=f"{cfg.mode} heads", disable=not progress, leave=False)
    for epoch in bar:
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for s in range(steps):
            idx = order[s * cfg.head_batch_size : (s + 1) * cfg.head_batch_size]
            zs = [model.heads[i].classify(f[idx]) for i, f in enumerate(feats)]
            loss = exit_loss(zs, None, y[idx], cfg.mode, pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        history.append({"epoch": epoch + 1, "loss": total / steps})
        bar.set_postfix(loss=f"{total / steps:.4f}")
    out = {"history": history, "train_samples": len(y), "pos_weight": pos_weight}
    if len(data.x_val):
        out["head_val_accuracy"] = head_accuracies(model, data.x_val, data.y_val)
    return out


@torch.no_grad()
def head_accuracies(model: EarlyExitModel, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Argmax accuracy of every head (hybrid: its softmax head, the one that picks the class)."""
    feats = pooled_features(model, x)
    fcs = [h.fc if h.conf is None else h.conf for h in model.heads]
    return [float((fc(f).argmax(1) == y).double().mean()) for fc, f in zip(fcs, feats)]


def train_joint(model: EarlyExitModel, data: ImageData, progress: bool = True) -> TrainResult:
    """Fine-tune backbone and heads together with the full loss (core trainer: SGD, cosine, crop+flip)."""
    cfg = model.config
    pos_weight = cfg.pos_weight or default_pos_weight(model.num_classes)
    # flips where the data set allows them (core.data.DATASETS), as every core training run
    tc = replace(TrainConfig(), epochs=cfg.joint_epochs, lr=cfg.joint_lr, seed=cfg.seed)

    def loss_fn(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        heads, final = getattr(net, "module", net).outputs(xb)
        return exit_loss(heads, final, yb, cfg.mode, pos_weight)

    return train(model, data, tc, loss_fn=loss_fn, progress=progress, evaluate_test=False)
