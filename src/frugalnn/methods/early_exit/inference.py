"""Inference that skips work: a batched forward that drops samples once they have left, and a
batch-size-1 path whose heads only compute the logits of the classes still in the race.

Class exclusion at exit i (paper Sec. III-B, Eq. 2) with s = sigmoid(z_i): class c stays if
s_c > β_i · max_{remaining} s (``ratio``) or s_c > β_i (``absolute``); the top remaining class always
stays; an excluded class never returns; a sample with one class left stops and outputs it. A sample
that reaches the end gets the final classifier's argmax over its remaining classes.
Confidence baseline: a sample leaves at exit i when max softmax(z_i) > τ_i.

MACs per image follow the paper's batch-size-1 accounting: backbone segments run, plus every head
run, a head costing in_features × (classes still remaining); the final classifier is counted in full.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from frugalnn.errors import UnsupportedModelError

from .heads import MASKED, EarlyExitModel, run_units


@dataclass
class InferenceResult:
    pred: torch.Tensor  # (N,) predicted class
    exit_index: torch.Tensor  # (N,) exit a sample left at; num_exits = went through the final classifier
    macs: torch.Tensor  # (N,) MACs spent on the sample (batch-size-1 accounting, heads included)
    scores: torch.Tensor  # (N, K) head or final logits, excluded classes set to MASKED


def exit_enabled(model: EarlyExitModel, i: int, value: float | None = None) -> bool:
    """An exit with β = 0 (exclusion) or threshold ≥ 1 (confidence) can change nothing: it is skipped,
    head included, so it costs no MACs."""
    if model.config.mode == "exclusion":
        return (float(model.betas[i]) if value is None else value) > 0.0
    return (float(model.thresholds[i]) if value is None else value) < 1.0


def exclusion_step(logits: torch.Tensor, alive: torch.Tensor, beta: float, rule: str) -> torch.Tensor:
    """New (N, K) mask of remaining classes after one exclusion exit (never adds a class back)."""
    if beta <= 0.0:  # β = 0: the exit excludes nothing (and sigmoid underflow cannot change that)
        return alive
    s = torch.sigmoid(logits)
    top_val, top_idx = s.masked_fill(~alive, -1.0).max(1)
    limit = beta * top_val if rule == "ratio" else torch.full_like(top_val, beta)
    keep = s > limit[:, None]
    keep[torch.arange(len(keep)), top_idx] = True  # the top remaining class always stays
    return alive & keep


def confidence_step(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(leaves, prediction) of the softmax-confidence baseline."""
    conf, pred = torch.softmax(logits, 1).max(1)
    return conf > threshold, pred


@torch.no_grad()
def skipping_forward(
    model: EarlyExitModel, x: torch.Tensor, batch_size: int | None = None
) -> InferenceResult:
    """Batched early-exit inference; samples that left are removed from the batch before the next segment."""
    if batch_size is not None and len(x) > batch_size:
        parts = [skipping_forward(model, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return InferenceResult(
            *(torch.cat([getattr(p, f) for p in parts]) for f in InferenceResult.__dataclass_fields__)
        )
    was = model.training
    model.eval()
    try:
        return _skip(model, x)
    finally:
        model.train(was)


def _skip(model: EarlyExitModel, x: torch.Tensor) -> InferenceResult:
    n, k, e = len(x), model.num_classes, model.num_exits
    exclusion = model.config.mode == "exclusion"
    rule = model.config.rule
    betas, taus = model.betas.tolist(), model.thresholds.tolist()
    pred = torch.zeros(n, dtype=torch.long)
    exit_index = torch.full((n,), e, dtype=torch.long)
    macs = torch.zeros(n, dtype=torch.long)
    scores = torch.full((n, k), MASKED)
    idx = torch.arange(n)
    alive = torch.ones(n, k, dtype=torch.bool)
    spent = torch.zeros(n, dtype=torch.long)
    h = x
    for i in range(e):
        h = run_units(model.segments[i], h)
        spent += model.segment_macs[i]
        if not exit_enabled(model, i):
            continue  # a switched-off exit (β = 0 / threshold 1) costs nothing
        z = model.heads[i](h)  # all K logits: a (C × K) matmul is noise next to a conv stage
        if exclusion:
            spent += model.heads[i].fc.in_features * alive.sum(1)
            alive = exclusion_step(z, alive, betas[i], rule)
            done = alive.sum(1) == 1
            choice = alive.to(torch.uint8).argmax(1)
        else:
            spent += model.head_macs(i)
            done, choice = confidence_step(z, taus[i])
        if not bool(done.any()):
            continue
        left = idx[done]
        pred[left] = choice[done]
        exit_index[left] = i
        macs[left] = spent[done]
        scores[left] = z[done].masked_fill(~alive[done], MASKED) if exclusion else z[done]
        stay = (~done).nonzero().squeeze(1)
        if len(stay) == 0:
            return InferenceResult(pred, exit_index, macs, scores)
        # the work skipped: later segments only see the samples that are still in the race
        # (advanced indexing keeps a channels-last layout, index_select would not)
        h, alive, idx, spent = h[stay], alive[stay], idx[stay], spent[stay]
    logits = run_units(model.segments[-1], h).masked_fill(~alive, MASKED)
    pred[idx] = logits.argmax(1)
    scores[idx] = logits
    macs[idx] = spent + model.segment_macs[-1]
    return InferenceResult(pred, exit_index, macs, scores)


@torch.no_grad()
def infer_single(model: EarlyExitModel, image: torch.Tensor) -> tuple[int, int, int]:
    """Batch-size-1 latency path -> (class, exit index, MACs). Heads compute only the remaining
    classes' logits (rows of the head's weight), so their cost really shrinks with the class set."""
    h = image if image.dim() == 4 else image.unsqueeze(0)
    exclusion = model.config.mode == "exclusion"
    rule = model.config.rule
    remaining = torch.arange(model.num_classes)
    spent = 0
    for i in range(model.num_exits):
        h = run_units(model.segments[i], h)
        spent += model.segment_macs[i]
        if not exit_enabled(model, i):
            continue
        head = model.heads[i]
        feat = head.features(h)[0]
        if exclusion:
            spent += head.fc.in_features * len(remaining)
            beta = float(model.betas[i])
            s = torch.sigmoid(head.fc.weight[remaining] @ feat + head.fc.bias[remaining])
            top = int(s.argmax())
            limit = beta * s[top] if rule == "ratio" else beta
            keep = s > limit
            keep[top] = True
            remaining = remaining[keep]
            if len(remaining) == 1:
                return int(remaining[0]), i, spent
        else:
            spent += model.head_macs(i)
            p = torch.softmax(head.fc(feat), 0)
            if float(p.max()) > float(model.thresholds[i]):
                return int(p.argmax()), i, spent
    logits = run_units(model.segments[-1], h)[0]
    spent += model.segment_macs[-1]
    return int(remaining[logits[remaining].argmax()]), model.num_exits, spent


def summarize(model: EarlyExitModel, result: InferenceResult, labels: torch.Tensor | None = None) -> dict:
    """Accuracy, mean MACs per image (heads included), the exit histogram and the saving."""
    counts = torch.bincount(result.exit_index, minlength=model.num_exits + 1).tolist()
    names = [*model.exit_names, "final"]
    full = sum(model.segment_macs)
    mean_macs = float(result.macs.double().mean()) if len(result.macs) else 0.0
    out = {
        "macs_per_image": mean_macs,
        "backbone_macs": full,
        "mac_reduction": 1.0 - mean_macs / full if full else 0.0,
        "exit_histogram": dict(zip(names, counts)),
        "exit_share": {nm: c / max(1, len(result.pred)) for nm, c in zip(names, counts)},
    }
    if labels is not None:
        out["accuracy"] = float((result.pred == labels).double().mean())
    return out


def prepare_cpu_inference(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy for fast CPU inference: every BatchNorm2d folded into the Conv2d registered just before
    it, weights in channels-last layout (feed it channels-last inputs). Memory-bound BN and pooling
    passes over large early feature maps cost wall time that MACs do not show; removing them makes
    time track MACs. Use it for the no-exit baseline too when comparing speeds.
    """
    fast = copy.deepcopy(model).eval()
    for parent in list(fast.modules()):
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                parent._modules[b] = nn.Identity()
    fast = fast.to(memory_format=torch.channels_last)
    if isinstance(fast, EarlyExitModel):
        fast.refresh_segments()
    with torch.no_grad():
        ref = model.eval()(example)
        got = fast(example.contiguous(memory_format=torch.channels_last))
    if not torch.allclose(ref, got, atol=1e-3, rtol=1e-3):
        raise UnsupportedModelError(
            f"folding BatchNorm into the convolutions of {type(model).__name__} changed its output; "
            "its BN layers do not follow their convs in registration order: time it without preparation"
        )
    return fast
