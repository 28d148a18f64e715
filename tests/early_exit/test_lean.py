"""The exit cost model and drop_costly_exits against brute force (per-image loops, all subsets)."""

from __future__ import annotations

import pytest
import torch
from test_hybrid import _hybrid_model  # same directory (rootdir-style import)

from frugalnn.errors import ConfigError
from frugalnn.methods.early_exit import collect_outputs, drop_costly_exits, modelled_seconds, simulate
from frugalnn.methods.early_exit.inference import enabled


def _setup(n: int = 300):
    ee, x, _ = _hybrid_model(n=n)
    labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(5))
    outs = collect_outputs(ee, x, labels)
    # labels: the final classifier's own answer for 80 % of the images, so exits can lose accuracy
    keep = torch.rand(n, generator=torch.Generator().manual_seed(6)) < 0.8
    outs.labels = torch.where(keep, outs.final_logits.argmax(1), labels)
    return ee, outs


def _loop_seconds(exit_index, on, seg, ex) -> float:
    """Per image, by hand: segments 0..j and the enabled exits 0..j (final: all), in float64."""
    e, total = len(on), 0.0
    for j in exit_index.tolist():
        total += sum(seg[: j + 1]) + sum(ex[i] for i in range(min(j + 1, e)) if on[i])
    return total / len(exit_index)


def _state(ee, outs, betas, taus, seg, ex):
    r = simulate(ee, outs, betas, taus=taus)
    on = [enabled("hybrid", b, t) for b, t in zip(betas, taus)]
    return float((r.pred == outs.labels).double().mean()), _loop_seconds(r.exit_index, on, seg, ex)


@pytest.mark.parametrize("on", [[True, True], [True, False], [False, True], [False, False]])
def test_modelled_seconds_matches_a_per_image_loop(on):
    ee, outs = _setup()
    betas = [0.5 if o else 0.0 for o in on]
    taus = [0.9 if o else 1.0 for o in on]
    r = simulate(ee, outs, betas, taus=taus)
    seg, ex = [1.0e-3, 2.5e-3, 0.7e-3], [0.3e-3, 0.45e-3]
    got = modelled_seconds(r, on, seg, ex)
    assert got == pytest.approx(_loop_seconds(r.exit_index, on, seg, ex), rel=1e-12)
    with pytest.raises(ConfigError, match="segment times"):
        modelled_seconds(r, on, seg[:2], ex)


def test_free_exits_are_never_dropped_and_costly_ones_all_are():
    ee, outs = _setup()
    betas, taus = [0.5, 0.3], [0.9, 0.8]
    seg = [1e-3, 1e-3, 1e-3]
    # free exits: switching one off only sends images deeper, so nothing gets cheaper
    assert drop_costly_exits(ee, outs, betas, taus, seg, [0.0, 0.0], tolerance=1.0) == (betas, taus)
    # exits dearer than the whole network, any accuracy allowed: all go
    assert drop_costly_exits(ee, outs, betas, taus, seg, [1.0, 1.0], tolerance=1.0) == (
        [0.0, 0.0],
        [1.0, 1.0],
    )


@pytest.mark.parametrize("ex", [[0.2e-3, 0.2e-3], [0.9e-3, 0.1e-3], [0.1e-3, 1.5e-3], [2e-3, 2e-3]])
@pytest.mark.parametrize("tolerance", [0.0, 0.02, 0.2])
def test_result_is_feasible_cheaper_and_a_local_optimum_by_brute_force(ex, tolerance):
    ee, outs = _setup()
    betas, taus = [0.5, 0.3], [0.9, 0.8]
    seg = [1.2e-3, 1.0e-3, 0.8e-3]
    floor = float((outs.final_logits.argmax(1) == outs.labels).double().mean()) - tolerance
    got_b, got_t = drop_costly_exits(ee, outs, betas, taus, seg, ex, tolerance)
    acc, cost = _state(ee, outs, got_b, got_t, seg, ex)
    _, start_cost = _state(ee, outs, betas, taus, seg, ex)
    assert cost <= start_cost
    changed = (got_b, got_t) != (betas, taus)
    assert not changed or acc >= floor - 1e-12
    for i in range(2):  # kept exits are the original ones; switched-off ones are fully off
        assert (got_b[i], got_t[i]) in ((betas[i], taus[i]), (0.0, 1.0))
    # no single further switch-off is both allowed and cheaper
    for i in range(2):
        if not enabled("hybrid", got_b[i], got_t[i]):
            continue
        b2, t2 = list(got_b), list(got_t)
        b2[i], t2[i] = 0.0, 1.0
        a2, c2 = _state(ee, outs, b2, t2, seg, ex)
        assert not (a2 >= floor - 1e-12 and c2 < cost - 1e-15)
