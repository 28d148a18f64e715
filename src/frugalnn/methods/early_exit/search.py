"""Per-exit β search (paper Sec. III-C) and the confidence baseline's threshold search.

Both run on cached outputs: the network runs once over the validation set (every head and the final
classifier on every sample), and each candidate setting is then simulated with tensor operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from frugalnn.errors import ConfigError

from .chain import MASKED
from .heads import EarlyExitModel
from .inference import InferenceResult, decide, enabled

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


def betas_and_taus(
    mode: str, values: list[float], taus: list[float] | None, exits: int
) -> tuple[list[float], list[float]]:
    """A setting as (β, τ) per exit: ``values`` are the thresholds in confidence mode, else the βs;
    ``taus`` default to 1 (never passed: the paper's rule)."""
    if mode == "confidence":
        return [0.0] * exits, list(values)
    return list(values), list(taus) if taus is not None else [1.0] * exits


def simulate(
    model: EarlyExitModel,
    outs: Outputs,
    values: list[float],
    mode: str | None = None,
    taus: list[float] | None = None,
) -> InferenceResult:
    """The early-exit decision on cached full outputs: the reference the skipping forward must match.

    ``values``: β per exit (exclusion, hybrid) or thresholds (confidence); ``taus``: the hybrid's
    thresholds over the remaining classes (default all 1, i.e. the paper's rule)."""
    mode = mode or model.config.mode
    n, k, e = len(outs.labels), model.num_classes, model.num_exits
    betas, taus = betas_and_taus(mode, values, taus, e)
    alive = torch.ones(n, k, dtype=torch.bool)
    active = torch.ones(n, dtype=torch.bool)
    pred = torch.zeros(n, dtype=torch.long)
    exit_index = torch.full((n,), e, dtype=torch.long)
    macs = torch.zeros(n, dtype=torch.long)
    scores = torch.full((n, k), MASKED)
    spent = torch.zeros(n, dtype=torch.long)
    rule = model.config.rule
    for i in range(e):
        spent += model.segment_macs[i] * active
        if not enabled(mode, betas[i], taus[i]):
            continue  # a switched-off exit is skipped and costs nothing
        z = outs.head_logits[i]
        new_alive, leave, choice, classes, zk = decide(mode, z, alive, betas[i], taus[i], rule)
        spent += model.head_in_features[i] * classes * active
        alive = torch.where(active[:, None], new_alive, alive)
        done = active & leave
        pred = torch.where(done, choice, pred)
        exit_index[done] = i
        macs = torch.where(done, spent, macs)
        scores[done] = zk[done].masked_fill(~alive[done], MASKED)
        active &= ~done
    final = outs.final_logits.masked_fill(~alive, MASKED)
    pred = torch.where(active, final.argmax(1), pred)
    macs = torch.where(active, spent + model.segment_macs[-1], macs)
    scores[active] = final[active]
    return InferenceResult(pred, exit_index, macs, scores)


def _score(
    model: EarlyExitModel, outs: Outputs, values: list[float], mode: str, taus: list[float] | None = None
) -> tuple[float, float]:
    r = simulate(model, outs, values, mode, taus)
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


def search_hybrid(
    model: EarlyExitModel,
    outs: Outputs,
    tolerance: float | None = None,
    step: float | None = None,
    backoff: int | None = None,
) -> tuple[SearchResult, list[float]]:
    """β and τ per exit for the hybrid rule (ours), searched together, exit by exit, with the same
    tolerance rule -> (result with the β values, τ values).

    For each τ on the confidence grid, walking down from 1 (τ = 1 is the paper's rule): (β = 0, τ)
    — the confidence baseline's setting — is a candidate, and β is raised by the paper's walk (from
    ``step`` while validation accuracy ≥ baseline − tolerance, back off two steps). The τ walk ends
    at the first τ where even β = 0 breaks the tolerance, and the last ``backoff`` τ values before it
    are dropped, as the confidence baseline's walk backs off. Of the remaining (β, τ) pairs that keep
    the tolerance and are at least as accurate on validation as the baseline's own step here (β = 0
    at the backed-off τ) the cheapest on validation MACs is kept (ties: the earlier, more cautious
    one): the hybrid may use exclusion to leave earlier, not to spend more of the tolerance.
    """
    cfg = model.config
    tolerance = cfg.tolerance if tolerance is None else tolerance
    step = cfg.step if step is None else step
    backoff = cfg.backoff_steps if backoff is None else backoff
    if len(outs.labels) == 0:
        raise ConfigError("the validation set is empty; the search needs labelled samples (val_size > 0)")
    if not 0.0 <= tolerance < 1.0:
        raise ConfigError(f"tolerance must lie in [0, 1) (0.005 = 0.5 point), got {tolerance}")
    if not 0.0 < step < 1.0:
        raise ConfigError(f"step must lie in (0, 1), got {step}")
    beta_grid = [round(step * j, 6) for j in range(1, int(0.99 / step + 1e-9) + 1)]
    tau_grid = [1.0, *CONFIDENCE_GRID]
    baseline = float((outs.final_logits.argmax(1) == outs.labels).double().mean())
    floor = baseline - tolerance - 1e-12
    betas, taus = [0.0] * model.num_exits, [1.0] * model.num_exits
    trace = []
    for i in range(model.num_exits):
        candidates: list[tuple[float, int, int, float, float, float]] = []  # MACs, τ idx, β idx, β, τ, acc
        stop = len(tau_grid)
        for t_idx, tau in enumerate(tau_grid):
            taus[i], betas[i] = tau, 0.0
            acc, macs = _score(model, outs, betas, "hybrid", taus)  # β = 0: the baseline's setting
            if acc < floor:
                stop = t_idx
                break
            candidates.append((macs, t_idx, 0, 0.0, tau, acc))
            failed_at = None
            for j, beta in enumerate(beta_grid):
                betas[i] = beta
                if _score(model, outs, betas, "hybrid", taus)[0] < floor:
                    failed_at = j
                    break
            if failed_at != 0:
                j = len(beta_grid) - 1 if failed_at is None else max(0, failed_at - backoff)
                betas[i] = beta_grid[j]
                acc, macs = _score(model, outs, betas, "hybrid", taus)
                if acc >= floor:
                    candidates.append((macs, t_idx, j + 1, betas[i], tau, acc))
            trace.append({"exit": i, "beta": betas[i], "tau": tau, "accuracy": acc, "macs_per_image": macs})
        if stop < len(tau_grid):  # back off from the τ that broke the tolerance, as the baseline's
            last = 0 if stop <= 1 else max(1, stop - backoff)  # walk does (not past its first τ)
            candidates = [c for c in candidates if c[1] <= last]
        # The baseline's own step here, (β = 0, the backed-off τ), sets the accuracy this exit may
        # spend: the cheapest candidate at least as accurate is kept. Taking the cheapest candidate
        # that merely keeps the tolerance let the first exit spend the slack the backoff leaves for
        # the later exits (VGG-small with 5 exits: 13.1 M MACs against the baseline's 9.5 M).
        reference = max((c for c in candidates if c[2] == 0), key=lambda c: c[1], default=None)
        if reference is not None:
            candidates = [c for c in candidates if c[5] >= reference[5]]
        # (β = 0, τ = 1), the exit switched off, keeps the accuracy the earlier exits left: a candidate
        _, _, _, betas[i], taus[i], _ = min(candidates) if candidates else (0, 0, 0, 0.0, 1.0, 0.0)
    acc, macs = _score(model, outs, betas, "hybrid", taus)
    return SearchResult(betas, baseline, baseline - tolerance, acc, macs, trace), taus


def drop_idle_exits(
    model: EarlyExitModel,
    outs: Outputs,
    values: list[float],
    taus: list[float] | None = None,
    min_share: float = 0.02,
    mode: str | None = None,
) -> tuple[list[float], list[float] | None]:
    """Switch off, one at a time and least used first, the exits that send out fewer than
    ``min_share`` of the validation images -> (values, τ of the hybrid). Ours, for wall time only: a
    head's MACs are negligible (in_features × K), but its pooling pass over the feature map and the
    decision cost 10–30 % of a ResNet-20 block's time at one thread for every image that reaches it,
    so an exit that almost nobody leaves at costs more time than it saves. A fixed share is a crude
    rule: with the measured costs the break-even on ResNet-20 lies at a 5–15 % share, depending on how
    many images reach the exit and how far they would otherwise go; ``drop_costly_exits`` (lean.py)
    decides by a measured time model instead.
    """
    mode = mode or model.config.mode
    values, taus = list(values), list(taus) if taus is not None else None
    off = 1.0 if mode == "confidence" else 0.0
    e = model.num_exits
    while True:
        r = simulate(model, outs, values, mode, taus)
        share = torch.bincount(r.exit_index, minlength=e + 1)[:e].double() / max(1, len(r.exit_index))
        betas, thresholds = betas_and_taus(mode, values, taus, e)
        on = [i for i in range(e) if enabled(mode, betas[i], thresholds[i])]
        idle = [i for i in on if float(share[i]) < min_share]
        if not idle:
            return values, taus
        i = min(idle, key=lambda j: float(share[j]))  # switching one off changes the others' shares
        values[i] = off
        if taus is not None:
            taus[i] = 1.0
