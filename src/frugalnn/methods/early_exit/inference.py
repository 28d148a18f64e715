"""Inference that skips work: a batched forward that drops samples once they have left, and a
batch-size-1 path whose heads only compute the logits of the classes still in the race.

Class exclusion at exit i (paper Sec. III-B, Eq. 2) with s = sigmoid(z_i): class c stays if
s_c > β_i · max_{remaining} s (``ratio``) or s_c > β_i (``absolute``); the top remaining class always
stays; an excluded class never returns; a sample with one class left stops and outputs it. A sample
that reaches the end gets the final classifier's argmax over its remaining classes.
Confidence baseline: a sample leaves at exit i when max softmax(z_i) > τ_i. Hybrid (our extension,
not in the paper): two heads per exit on the same pooled features; class exclusion with β_i on the
sigmoid head, then a sample also leaves when the softmax of the softmax head's logits over its
remaining classes passes τ_i.

MACs per image follow the paper's batch-size-1 accounting: backbone segments run, plus every head
run, a head costing in_features × (classes still remaining; the confidence baseline's all K); the
final classifier is counted in full. A hybrid exit runs its sigmoid head only when β_i > 0 and its
softmax head only when τ_i < 1 and more than one class remains after the exclusion.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from frugalnn.errors import UnsupportedModelError

from .chain import MASKED, run_units

if TYPE_CHECKING:
    from .heads import EarlyExitModel


@dataclass
class InferenceResult:
    pred: torch.Tensor  # (N,) predicted class
    exit_index: torch.Tensor  # (N,) exit a sample left at; num_exits = went through the final classifier
    macs: torch.Tensor  # (N,) MACs spent on the sample (batch-size-1 accounting, heads included)
    scores: torch.Tensor  # (N, K) head or final logits, excluded classes set to MASKED


def enabled(mode: str, beta: float, tau: float) -> bool:
    """An exit that can change nothing is skipped, head included, so it costs no MACs: β = 0
    (exclusion), threshold ≥ 1 (confidence), both (hybrid)."""
    if mode == "exclusion":
        return beta > 0.0
    if mode == "confidence":
        return tau < 1.0
    return beta > 0.0 or tau < 1.0


def exit_enabled(model: EarlyExitModel, i: int, beta: float | None = None, tau: float | None = None) -> bool:
    beta = float(model.betas[i]) if beta is None else beta
    tau = float(model.thresholds[i]) if tau is None else tau
    return enabled(model.config.mode, beta, tau)


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


def decide(
    mode: str, logits: torch.Tensor, alive: torch.Tensor, beta: float, tau: float, rule: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One exit's decision for a batch -> (remaining classes, leaves now, class if it leaves,
    head logits computed per sample — MACs = in_features × this —, the K class scores it reports).

    exclusion (paper Sec. III-B): leave when one class remains; the sigmoid head runs on the classes
    still remaining. confidence (the baseline): leave when max softmax > τ; the head runs on all K.
    hybrid (ours, not in the paper): ``logits`` is (N, 2K) = [sigmoid head, softmax head]; exclusion
    with β on the first half, then also leave when the softmax of the second half over the
    *remaining* classes passes τ. β = 0 excludes nothing and skips the sigmoid head: the confidence
    baseline's decision. τ = 1 can never be passed and skips the softmax head: the paper's rule.
    """
    k = alive.shape[1]
    if mode == "confidence":
        leaves, choice = confidence_step(logits, tau)
        return alive, leaves, choice, torch.full((len(alive),), k, dtype=torch.long), logits
    z = logits[:, :k]
    before = alive.sum(1)
    classes = before if beta > 0.0 else torch.zeros_like(before)
    alive = exclusion_step(z, alive, beta, rule)
    after = alive.sum(1)
    single = after == 1
    if mode == "exclusion" or tau >= 1.0:
        return alive, single, alive.to(torch.uint8).argmax(1), classes, z
    zc = logits[:, k:]
    classes = classes + after.masked_fill(single, 0)  # one class left: no softmax head needed
    conf, choice = torch.softmax(zc.masked_fill(~alive, MASKED), 1).max(1)
    return alive, single | (conf > tau), choice, classes, zc  # one class left: softmax picks it


@torch.no_grad()
def skipping_forward(
    model: EarlyExitModel, x: torch.Tensor, batch_size: int | None = None, rebatch: bool = False
) -> InferenceResult:
    """Batched early-exit inference; samples that left are removed before the next segment.

    ``batch_size``: images per backbone call (None = all of ``x`` at once). By default each batch goes
    through the network alone and shrinks as samples leave. ``rebatch=True`` streams instead: the
    survivors of a segment wait in a queue until ``batch_size`` of them are there, so every segment
    runs on full batches (small late batches are less efficient) while a batch's features are still
    in cache (re-batching a whole data set stage by stage spills them to memory).
    """
    bs = batch_size or max(1, len(x))
    was = model.training
    model.eval()
    try:
        if len(x) == 0:
            return _skip(model, x)
        if rebatch:
            return _Stream(model, len(x), bs).run(x)
        parts = [_skip(model, x[i : i + bs]) for i in range(0, len(x), bs)]
    finally:
        model.train(was)
    if len(parts) == 1:
        return parts[0]
    return InferenceResult(
        *(torch.cat([getattr(p, f) for p in parts]) for f in InferenceResult.__dataclass_fields__)
    )


def _skip(model: EarlyExitModel, x: torch.Tensor) -> InferenceResult:
    n, k, e = len(x), model.num_classes, model.num_exits
    mode, rule = model.config.mode, model.config.rule
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
        if not exit_enabled(model, i, betas[i], taus[i]):
            continue  # a switched-off exit costs nothing
        z = model.heads[i](h)  # all logits: a (C × K) matmul is noise here
        alive, done, choice, classes, zk = decide(mode, z, alive, betas[i], taus[i], rule)
        # MACs: a head computes only the remaining classes' logits (confidence: all K)
        spent += model.head_in_features[i] * classes
        if not bool(done.any()):
            continue
        left = idx[done]
        pred[left] = choice[done]
        exit_index[left] = i
        macs[left] = spent[done]
        scores[left] = zk[done].masked_fill(~alive[done], MASKED)
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


class _Stream:
    """Re-batching skipping forward: a queue in front of every segment after the first; a segment runs
    as soon as its queue holds a full batch, and the queues are drained in network order at the end.
    Leavers are collected per step and written into the result once at the end (fewer small ops)."""

    def __init__(self, model: EarlyExitModel, n: int, bs: int):
        self.model, self.bs, self.n = model, bs, n
        self.mode, self.rule = model.config.mode, model.config.rule
        self.betas, self.taus = model.betas.tolist(), model.thresholds.tolist()
        self.enabled = [exit_enabled(model, i, self.betas[i], self.taus[i]) for i in range(model.num_exits)]
        self.left: list[tuple[torch.Tensor, ...]] = []  # (sample, class, exit, MACs, scores) per step
        self.queues: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in range(model.num_exits + 1)]

    def run(self, x: torch.Tensor) -> InferenceResult:
        k = self.model.num_classes
        for i in range(0, len(x), self.bs):
            m = len(x[i : i + self.bs])
            alive = torch.ones(m, k, dtype=torch.bool)
            self._stage(
                0, x[i : i + self.bs], torch.arange(i, i + m), alive, torch.zeros(m, dtype=torch.long)
            )
        for j in range(1, len(self.queues)):  # drain: partial batches, in network order
            while self.queues[j]:
                self._stage(j, *self._pop(j))
        idx, pred, exit_index, macs, scores = (torch.cat(t) for t in zip(*self.left))
        out = InferenceResult(
            torch.zeros(self.n, dtype=torch.long),
            torch.zeros(self.n, dtype=torch.long),
            torch.zeros(self.n, dtype=torch.long),
            torch.zeros(self.n, k),
        )
        out.pred[idx], out.exit_index[idx], out.macs[idx], out.scores[idx] = pred, exit_index, macs, scores
        return out

    def _pop(self, j: int) -> tuple[torch.Tensor, ...]:
        parts = self.queues[j]
        batch = tuple(torch.cat(t) if len(parts) > 1 else t[0] for t in zip(*parts))
        self.queues[j] = [tuple(t[self.bs :] for t in batch)] if len(batch[1]) > self.bs else []
        return tuple(t[: self.bs] for t in batch)

    def _stage(
        self, i: int, h: torch.Tensor, idx: torch.Tensor, alive: torch.Tensor, spent: torch.Tensor
    ) -> None:
        model = self.model
        h = run_units(model.segments[i], h)
        spent = spent + model.segment_macs[i]
        if i == model.num_exits:  # the final classifier
            logits = h.masked_fill(~alive, MASKED)
            self.left.append((idx, logits.argmax(1), torch.full_like(idx, i), spent, logits))
            return
        if self.enabled[i]:
            z = model.heads[i](h)
            alive, done, choice, classes, zk = decide(
                self.mode, z, alive, self.betas[i], self.taus[i], self.rule
            )
            spent = spent + model.head_in_features[i] * classes
            if bool(done.any()):
                out, stay = done.nonzero().squeeze(1), (~done).nonzero().squeeze(1)
                scores = zk[out].masked_fill(~alive[out], MASKED)
                self.left.append((idx[out], choice[out], torch.full_like(out, i), spent[out], scores))
                h, idx, alive, spent = h[stay], idx[stay], alive[stay], spent[stay]
        if len(idx):
            self.queues[i + 1].append((h, idx, alive, spent))
            if sum(len(q[1]) for q in self.queues[i + 1]) >= self.bs:
                self._stage(i + 1, *self._pop(i + 1))


@torch.no_grad()
def infer_single(model: EarlyExitModel, image: torch.Tensor) -> tuple[int, int, int]:
    """Batch-size-1 latency path -> (class, exit index, MACs). Exclusion and hybrid heads compute only
    the remaining classes' logits (rows of the head's weight), so their cost shrinks with the class set;
    a hybrid exit's softmax head runs only when τ < 1 and more than one class is left."""
    h = image if image.dim() == 4 else image.unsqueeze(0)
    mode, rule = model.config.mode, model.config.rule
    remaining = torch.arange(model.num_classes)
    spent = 0
    for i in range(model.num_exits):
        h = run_units(model.segments[i], h)
        spent += model.segment_macs[i]
        if not exit_enabled(model, i):
            continue
        head = model.heads[i]
        feat = head.features(h)[0]
        tau = float(model.thresholds[i])
        if mode == "confidence":
            spent += model.head_macs(i)
            p = torch.softmax(head.fc(feat), 0)
            if float(p.max()) > tau:
                return int(p.argmax()), i, spent
            continue
        beta = float(model.betas[i])
        if beta > 0.0:  # the sigmoid head, on the remaining classes only
            spent += model.head_in_features[i] * len(remaining)
            s = torch.sigmoid(head.fc.weight[remaining] @ feat + head.fc.bias[remaining])
            top = int(s.argmax())
            limit = beta * s[top] if rule == "ratio" else beta
            keep = s > limit
            keep[top] = True
            remaining = remaining[keep]
        if len(remaining) == 1:
            return int(remaining[0]), i, spent
        if mode == "hybrid" and tau < 1.0:  # ours: the softmax head, on the remaining classes only
            spent += model.head_in_features[i] * len(remaining)
            p = torch.softmax(head.conf.weight[remaining] @ feat + head.conf.bias[remaining], 0)
            if float(p.max()) > tau:
                return int(remaining[p.argmax()]), i, spent
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
    Heads stay as they are: folding a head's pool into its linear layer gives one 10-column matmul
    over the whole map, 2x slower than the pool on these maps.
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
    if hasattr(fast, "refresh_segments"):  # an EarlyExitModel: its segments point at the old modules
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
