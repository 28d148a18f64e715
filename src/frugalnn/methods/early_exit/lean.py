"""Switching off exits that cost more wall time than they save (ours, not in the paper).

MACs count a head as in_features × K multiplications, which is nothing; on a CPU every enabled exit
also costs a pooling pass over the feature map, the decision and the compaction of the survivors,
for every image that reaches it (10–20 % of a ResNet-20 block at batch 64, one thread). An exit that
sends out few images therefore slows the network down. ``drop_costly_exits`` uses an additive time
model measured on the machine (per-image seconds of each segment and of each exit) and switches exits
off greedily while the modelled time falls and validation accuracy stays within the search tolerance.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from frugalnn.core.measure import fastest_seconds
from frugalnn.errors import ConfigError, UnsupportedModelError

from .chain import run_units
from .heads import EarlyExitModel
from .inference import InferenceResult, decide, enabled, prepare_cpu_inference
from .search import Outputs, betas_and_taus, simulate


def modelled_seconds(
    result: InferenceResult,
    exits_on: list[bool],
    segment_seconds: list[float],
    exit_seconds: list[float],
) -> float:
    """Mean per-image time of a setting under the additive model: an image that leaves at exit j ran
    segments 0…j and every enabled exit up to j; one that reaches the final classifier ran all
    segments and all enabled exits. (Re-batched inference keeps batches full, so per-image costs add.)"""
    e = len(exits_on)
    if len(segment_seconds) != e + 1 or len(exit_seconds) != e:
        raise ConfigError(
            f"cost model needs {e + 1} segment times and {e} exit times, got "
            f"{len(segment_seconds)} and {len(exit_seconds)}; measure one per segment and per exit"
        )
    seg = torch.tensor(segment_seconds, dtype=torch.float64).cumsum(0)
    per_exit = torch.tensor(exit_seconds, dtype=torch.float64) * torch.tensor(exits_on, dtype=torch.float64)
    ex = torch.cat([per_exit.cumsum(0), per_exit.sum().reshape(1)])  # index e: the final classifier
    j = result.exit_index
    return float((seg[j] + ex[j]).mean())


def drop_costly_exits(
    model: EarlyExitModel,
    outs: Outputs,
    values: list[float],
    taus: list[float] | None,
    segment_seconds: list[float],
    exit_seconds: list[float],
    tolerance: float,
    mode: str | None = None,
) -> tuple[list[float], list[float] | None]:
    """Greedy: switch off the one exit whose removal lowers the modelled time most, as long as it lowers
    it and validation accuracy stays ≥ the no-exit accuracy − ``tolerance`` (the β search's rule);
    repeat. -> (values, τ of the hybrid). Switched-off exits get β = 0 / τ = 1 (they cost nothing)."""
    mode = mode or model.config.mode
    e = model.num_exits
    values, taus = list(values), list(taus) if taus is not None else None
    floor = float((outs.final_logits.argmax(1) == outs.labels).double().mean()) - tolerance

    def evaluate(v: list[float], t: list[float] | None) -> tuple[float, float]:
        r = simulate(model, outs, v, mode, t)
        betas, thresholds = betas_and_taus(mode, v, t, e)
        on = [enabled(mode, betas[i], thresholds[i]) for i in range(e)]
        accuracy = float((r.pred == outs.labels).double().mean())
        return accuracy, modelled_seconds(r, on, segment_seconds, exit_seconds)

    _, current = evaluate(values, taus)
    while True:
        betas, thresholds = betas_and_taus(mode, values, taus, e)
        best: tuple[float, list[float], list[float] | None] | None = None
        for i in range(e):
            if not enabled(mode, betas[i], thresholds[i]):
                continue
            v, t = list(values), list(taus) if taus is not None else None
            v[i] = 1.0 if mode == "confidence" else 0.0
            if t is not None:
                t[i] = 1.0
            accuracy, seconds = evaluate(v, t)
            if accuracy >= floor - 1e-12 and seconds < current and (best is None or seconds < best[0]):
                best = (seconds, v, t)
        if best is None:
            return values, taus
        current, values, taus = best


@torch.no_grad()
def exit_costs(ee: EarlyExitModel, x: torch.Tensor, repeats: int = 9) -> tuple[list[float], list[float]]:
    """Per-image seconds of each segment and of each exit on this machine -> (segments, exits), the cost
    model of ``drop_costly_exits``: prepared (BN folded, channels-last), fastest of ``repeats`` on the
    batch ``x`` (use the batch size you will run). An exit costs what the skipping forward does there for
    every image that reaches it: the head (pooling + linear), the decision with the model's current
    setting, and moving the survivors (timed as half the batch)."""
    try:
        m = prepare_cpu_inference(ee, x[:8])
        h = x.contiguous(memory_format=torch.channels_last)
    except UnsupportedModelError:  # BN not foldable in registration order: time the model as it is
        m, h = ee.eval(), x
    mode, rule = ee.config.mode, ee.config.rule
    betas, taus = ee.betas.tolist(), ee.thresholds.tolist()
    alive = torch.ones(len(x), ee.num_classes, dtype=torch.bool)
    half = torch.arange(0, len(x), 2)
    fns: dict[str, Callable[[], object]] = {}
    for i, seg in enumerate(m.segments):
        fns[f"segment {i}"] = lambda seg=seg, h=h: run_units(seg, h)
        h = run_units(seg, h)
        if i < m.num_exits:
            b, t = betas[i] or 0.5, min(taus[i], 0.9)  # timed as if on (a switched-off exit costs 0)

            def exit_fn(head=m.heads[i], h=h, b=b, t=t) -> object:  # noqa: ANN001 - bound defaults
                decide(mode, head(h), alive, b, t, rule)
                return h[half], alive[half]

            fns[f"exit {i}"] = exit_fn
    best = fastest_seconds(fns, rounds=repeats, repeats=1)
    n = len(x)
    return (
        [best[f"segment {i}"] / n for i in range(len(m.segments))],
        [best[f"exit {i}"] / n for i in range(m.num_exits)],
    )
