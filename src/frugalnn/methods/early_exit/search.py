"""Per-exit β search (paper Sec. III-C) and the confidence baseline's threshold search.

Both run on cached outputs: the network runs once over the validation set (every head and the final
classifier on every sample), and each candidate setting is then simulated with tensor operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from frugalnn.errors import ConfigError

from .heads import MASKED, EarlyExitModel
from .inference import InferenceResult, confidence_step, exclusion_step

# Thresholds for the confidence baseline, from "nobody leaves" downwards: a fine grid near 1 so that
# softmax heads, which are often 0.999-confident, get a fair search; then 0.99 … 0.01 in 0.01 steps.
CONFIDENCE_GRID = (
    0.9999,
    0.9998,
    0.9995,
    0.999,
    0.998,
    0.995,
    *(round(1 - k / 100, 2) for k in range(1, 100)),
)


@dataclass
class Outputs:
    head_logits: list[torch.Tensor]
    final_logits: torch.Tensor
    labels: torch.Tensor


@dataclass
class SearchResult:
    values: list[float]  # β (exclusion) or threshold (confidence) per exit
    baseline_accuracy: float
    floor: float
    accuracy: float
    macs_per_image: float
    trace: list[dict] = field(default_factory=list)


@torch.no_grad()
def collect_outputs(
    model: EarlyExitModel, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512, progress: bool = False
) -> Outputs:
    """Every head's and the final classifier's logits on every sample (eval mode, no skipping)."""
    if len(x) == 0:
        raise ConfigError("the validation set is empty; the search needs labelled samples (val_size > 0)")
    was = model.training
    model.eval()
    heads: list[list[torch.Tensor]] = [[] for _ in range(model.num_exits)]
    finals = []
    try:
        for i in tqdm(range(0, len(x), batch_size), desc="outputs", disable=not progress, leave=False):
            hs, final = model.outputs(x[i : i + batch_size])
            for j, z in enumerate(hs):
                heads[j].append(z)
            finals.append(final)
    finally:
        model.train(was)
    return Outputs([torch.cat(h) for h in heads], torch.cat(finals), y)


def simulate(
    model: EarlyExitModel, outs: Outputs, values: list[float], mode: str | None = None
) -> InferenceResult:
    """The early-exit decision on cached full outputs: the reference the skipping forward must match."""
    mode = mode or model.config.mode
    n, k, e = len(outs.labels), model.num_classes, model.num_exits
    alive = torch.ones(n, k, dtype=torch.bool)
    active = torch.ones(n, dtype=torch.bool)
    pred = torch.zeros(n, dtype=torch.long)
    exit_index = torch.full((n,), e, dtype=torch.long)
    macs = torch.zeros(n, dtype=torch.long)
    scores = torch.full((n, k), MASKED)
    spent = torch.zeros(n, dtype=torch.long)
    for i in range(e):
        spent += model.segment_macs[i] * active
        if not (values[i] > 0.0 if mode == "exclusion" else values[i] < 1.0):
            continue  # a switched-off exit (β = 0 / threshold 1) is skipped and costs nothing
        z = outs.head_logits[i]
        if mode == "exclusion":
            spent += model.heads[i].fc.in_features * alive.sum(1) * active
            alive = torch.where(
                active[:, None], exclusion_step(z, alive, values[i], model.config.rule), alive
            )
            done = active & (alive.sum(1) == 1)
            choice = alive.to(torch.uint8).argmax(1)
            zs = z.masked_fill(~alive, MASKED)
        else:
            spent += model.head_macs(i) * active
            leave, choice = confidence_step(z, values[i])
            done, zs = active & leave, z
        pred = torch.where(done, choice, pred)
        exit_index[done] = i
        macs = torch.where(done, spent, macs)
        scores[done] = zs[done]
        active &= ~done
    final = outs.final_logits.masked_fill(~alive, MASKED)
    pred = torch.where(active, final.argmax(1), pred)
    macs = torch.where(active, spent + model.segment_macs[-1], macs)
    scores[active] = final[active]
    return InferenceResult(pred, exit_index, macs, scores)


def _score(model: EarlyExitModel, outs: Outputs, values: list[float], mode: str) -> tuple[float, float]:
    r = simulate(model, outs, values, mode)
    return float((r.pred == outs.labels).double().mean()), float(r.macs.double().mean())


def _greedy(
    model: EarlyExitModel,
    outs: Outputs,
    grid: list[float],
    off: float,
    tolerance: float,
    backoff: int,
    mode: str,
) -> SearchResult:
    """Exit by exit: walk the grid towards more exiting while accuracy ≥ baseline − tolerance; at the
    first value that breaks it, step back ``backoff`` grid points (paper: two 0.01 steps). An exit whose
    very first grid value already breaks the tolerance is switched off (``off``) rather than clipped
    to it, so the tolerance is kept."""
    if len(outs.labels) == 0:
        raise ConfigError("the validation set is empty; the search needs labelled samples (val_size > 0)")
    if not 0.0 <= tolerance < 1.0:
        raise ConfigError(f"tolerance must lie in [0, 1) (0.005 = 0.5 point), got {tolerance}")
    baseline = float((outs.final_logits.argmax(1) == outs.labels).double().mean())
    floor = baseline - tolerance - 1e-12
    values = [off] * model.num_exits
    trace = []
    for i in range(model.num_exits):
        failed_at = None
        for j, v in enumerate(grid):
            values[i] = v
            acc, macs = _score(model, outs, values, mode)
            trace.append({"exit": i, "value": v, "accuracy": acc, "macs_per_image": macs})
            if acc < floor:
                failed_at = j
                break
        if failed_at is None:
            values[i] = grid[-1]
        elif failed_at == 0:
            values[i] = off
        else:
            values[i] = grid[max(0, failed_at - backoff)]
    acc, macs = _score(model, outs, values, mode)
    return SearchResult(values, baseline, baseline - tolerance, acc, macs, trace)


def search_betas(
    model: EarlyExitModel,
    outs: Outputs,
    tolerance: float | None = None,
    step: float | None = None,
    backoff: int | None = None,
) -> SearchResult:
    """β per exit for class exclusion: raise β from ``step`` (0.01) while validation accuracy stays
    above baseline − tolerance, back off two steps, clip to [0.01, 0.99] (paper Sec. III-C)."""
    cfg = model.config
    step = cfg.step if step is None else step
    if not 0.0 < step < 1.0:
        raise ConfigError(f"step must lie in (0, 1), got {step}")
    grid = [round(step * j, 6) for j in range(1, int(0.99 / step + 1e-9) + 1)]
    return _greedy(
        model,
        outs,
        grid,
        0.0,
        cfg.tolerance if tolerance is None else tolerance,
        cfg.backoff_steps if backoff is None else backoff,
        "exclusion",
    )


def search_thresholds(
    model: EarlyExitModel, outs: Outputs, tolerance: float | None = None, backoff: int | None = None
) -> SearchResult:
    """Confidence thresholds per exit, the same greedy walk from 1 (nobody leaves) downwards."""
    cfg = model.config
    return _greedy(
        model,
        outs,
        list(CONFIDENCE_GRID),
        1.0,
        cfg.tolerance if tolerance is None else tolerance,
        cfg.backoff_steps if backoff is None else backoff,
        "confidence",
    )
