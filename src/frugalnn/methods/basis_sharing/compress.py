"""``compress(model, config, calib) -> (model, record)``: Basis Sharing and its SVD baselines, layer by layer.

Memory: the calibration windows are run through the embedding once and stopped at the
first decoder layer; from then on one *block* of n consecutive layers at a time is run on the stored
hidden states with hooks that accumulate each linear's Gram matrix XᵀX (float64) — so peak memory is the
model, the hidden states of the calibration set, and one block's Grams; never all Grams at once (the
reference keeps ~21 GB of them for a 7B model). The block is then factorised and swapped in, and its
outputs (dense, as the reference; or compressed, ``propagate="compressed"``) feed the next block.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from frugalnn.errors import ConfigError, DataError
from frugalnn.methods.basis_sharing.config import Config, rank_for_ratio
from frugalnn.methods.basis_sharing.discover import Discovered, discover
from frugalnn.methods.basis_sharing.factorize import factorize, spectrum
from frugalnn.methods.basis_sharing.layers import (
    Basis,
    SharedBasisLinear,
    compression_spec,
    fuse_bases,
    linear_weight,
    set_submodule,
)
from frugalnn.methods.basis_sharing.stats import (  # noqa: F401  (save_stats/load_stats: for callers)
    LAYER_INPUTS,
    cached,
    hook_block,
    load_stats,
    save_stats,
    symmetric_gram,
)

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Raised by the pre-hook on the first decoder layer: the embedding output is all we need."""


def _capture_inputs(
    model: nn.Module, layers: nn.ModuleList, calib: torch.Tensor, batch: int
) -> list[list[Any]]:
    """[hidden, extra positional args, kwargs] entering decoder layer 0, per calibration batch."""
    captured: list[list[Any]] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        kwargs = dict(kwargs)
        hidden = args[0] if args else kwargs.pop("hidden_states")
        captured.append([hidden.detach(), args[1:], kwargs])
        raise _Stop

    handle = layers[0].register_forward_pre_hook(hook, with_kwargs=True)
    device = next(model.parameters()).device
    try:
        for ids in calib.split(batch):
            try:
                model(input_ids=ids.to(device), use_cache=False)
            except _Stop:
                pass
    finally:
        handle.remove()
    return captured


def _to_bf16(value: Any) -> Any:
    """Floating tensors (also inside tuples / dicts) to bfloat16; masks and ids stay as they are."""
    if isinstance(value, torch.Tensor):
        return value.to(torch.bfloat16) if value.is_floating_point() else value
    if isinstance(value, tuple | list):
        return type(value)(_to_bf16(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_bf16(v) for k, v in value.items()}
    return value


def _run_layer(layer: nn.Module, item: list[Any]) -> torch.Tensor:
    out = layer(item[0], *item[1], **item[2])
    return out[0] if isinstance(out, tuple) else out


def _groups(found: Discovered, config: Config, block: list[int]) -> list[tuple[str, list[int]]]:
    """(type, layer indices) per factorisation in this block: shared types as one group, others per layer."""
    compress_types = found.resolve(config.types, set(found.types))
    share = found.resolve(config.share, found.default_share()) if config.effective_group_size > 1 else set()
    out: list[tuple[str, list[int]]] = []
    for t in found.types:
        if t not in compress_types:
            continue
        if t in share:
            out.append((t, list(block)))
        else:
            out.extend((t, [li]) for li in block)
    return out


def _allocate(specs: list[torch.Tensor], costs: list[int], ranks: list[int]) -> list[int]:
    """Same parameter budget as ``ranks``; each rank goes where it removes the most relative whitened
    error per parameter (σ_j² / Σσ² / cost), greedily (a knapsack by gain per parameter; singular values
    decrease, so each matrix receives a prefix of its ranks). Every matrix keeps at least rank 1."""
    budget = sum(k * c for k, c in zip(ranks, costs, strict=True))
    cand = []
    for g, (s, c) in enumerate(zip(specs, costs, strict=True)):
        energy = (s.double() ** 2).sum().clamp_min(1e-30)
        gains = (s.double() ** 2) / energy / c
        cand.extend((float(gains[j]), j, g, c) for j in range(1, s.numel()))
    new = [1] * len(specs)
    spent = sum(costs)
    for _, _, g, c in sorted(cand, key=lambda item: (-item[0], item[1])):  # ties: lower ranks first
        if spent + c > budget:
            continue
        new[g] += 1
        spent += c
    return new


def _check_calib(calib: torch.Tensor) -> None:
    if not isinstance(calib, torch.Tensor) or calib.ndim != 2 or calib.shape[0] < 1 or calib.shape[1] < 2:
        raise DataError(
            "calibration must be token windows [n >= 1, L >= 2]; use a longer calibration text (at least one window)"
        )


def _block_stats(
    found: Discovered,
    config: Config,
    block: list[int],
    groups: list[tuple[str, list[int]]],
    items: list[list[Any]],
    stats_cache: dict | None,
) -> tuple[dict, dict]:
    """Input statistics of the block's linears, (stats, alias); runs the block on the stored hidden
    states (advancing them to the block's dense outputs) unless a cache or plain SVD makes that moot.

    ``alias[key] = owner``: q/k/v (or up/gate) read one tensor, whose statistics are counted once."""
    need_abs = config.whitening == "asvd"
    use_cache = stats_cache is not None and config.propagate == "dense"
    if use_cache and stats_cache.setdefault("calib_dtype", config.calib_dtype) != config.calib_dtype:
        raise ConfigError("this stats cache holds statistics of another calib_dtype; use a new cache")
    wanted = [(li, t) for t, members in groups for li in members]
    if config.whitening == "none" and config.propagate == "dense":  # plain SVD needs no statistics
        return {}, {}
    if use_cache and all(cached(stats_cache, key, need_abs) for key in wanted):
        alias = {key: stats_cache[("alias", *key)] for key in wanted if ("alias", *key) in stats_cache}
        stats = {key: stats_cache[("stats", *key)] for key in wanted if ("stats", *key) in stats_cache}
        stats.update({owner: stats_cache[("stats", *owner)] for owner in alias.values()})
        return stats, alias
    # bfloat16: hooks and forward on a bfloat16 copy of the block; the fp32 layers get factorised
    low = config.calib_dtype == "bfloat16"
    run = {
        li: copy.deepcopy(found.layers[li]).to(torch.bfloat16) if low else found.layers[li] for li in block
    }
    stats, alias, handles = hook_block(found, block, groups, need_abs=need_abs, layers=run)
    try:
        for item in items:
            h = item[0]
            for li in block:
                LAYER_INPUTS[li] = []  # identity cache, per layer and calibration batch
                h = _run_layer(run[li], [h, item[1], item[2]])
            item[0] = h
    finally:
        for handle in handles:
            handle.remove()
        LAYER_INPUTS.clear()
    if use_cache:  # per (layer, type), so sweeps with other group sizes reuse them too
        stats_cache.update({("stats", *key): value for key, value in stats.items()})
        stats_cache.update({("alias", *key): value for key, value in alias.items()})
    return stats, alias


def _factorize_block(
    found: Discovered,
    config: Config,
    groups: list[tuple[str, list[int]]],
    stats: dict,
    alias: dict,
    totals: dict[str, Any],
) -> None:
    """Factorise each group of the block and swap the shared-basis layers in; adds parameter counts,
    eigen shifts and ranks to ``totals``."""
    dtype = torch.float64 if config.factor_dtype == "float64" else torch.float32
    pres, weights_of, costs, uniform = [], [], [], []
    for t, members in groups:
        mods = [found.layers[li].get_submodule(t) for li in members]
        weights = [linear_weight(m)[0] for m in mods]
        keys = [alias.get((li, t), (li, t)) for li in members]
        gram = sum(stats[k].gram for k in keys) if config.whitening == "cholesky" else None
        absmean = None
        if config.whitening == "asvd":
            absmean = sum(stats[k].abs_sum for k in keys) / sum(stats[k].count for k in keys)
        d_in, d_out = found.shapes[t]
        pres.append(spectrum(weights, gram, absmean, config.whitening, config.asvd_alpha, config.eps, dtype))
        weights_of.append((mods, weights, keys))
        costs.append(d_in + len(members) * d_out)
        uniform.append(config.rank or rank_for_ratio(config.ratio, d_in, d_out, len(members)))
    ranks = uniform
    if config.allocation == "loss" and config.rank is None:
        ranks = _allocate([p[0] for p in pres], costs, uniform)
    for (t, members), pre, (mods, weights, keys), k in zip(groups, pres, weights_of, ranks, strict=True):
        layer_grams = [stats[key].gram for key in keys] if config.refit and len(members) > 1 else None
        f = factorize(weights, None, None, k, config.whitening, layer_grams=layer_grams, pre=pre, dtype=dtype)
        basis = _swap_in(found, t, members, mods, f)
        totals["shifts"] += int(f.shifted)
        totals["before"] += sum(w.numel() for w in weights)
        totals["after"] += basis.weight.numel() + sum(c.numel() for c in f.coeffs)
        totals["ranks"].setdefault(t, []).append(f.basis.shape[1])


def _swap_in(found: Discovered, t: str, members: list[int], mods: list[nn.Module], f: Any) -> Basis:
    """Replace the ``t`` linears of layers ``members`` by SharedBasisLinears over one new Basis."""
    ref = mods[0].weight
    basis = Basis(f.basis.shape[0], f.basis.shape[1], dtype=ref.dtype).to(ref.device)
    basis.weight.copy_(f.basis.mT)
    for li, mod, coeff in zip(members, mods, f.coeffs, strict=True):
        bias = linear_weight(mod)[1]
        new = SharedBasisLinear(basis, coeff.shape[1], bias is not None, dtype=ref.dtype).to(ref.device)
        new.coeff.weight.copy_(coeff.mT)
        if bias is not None:
            new.coeff.bias.copy_(bias)
        set_submodule(found.layers[li], t, new)
    return basis


def _propagate_compressed(found: Discovered, block: list[int], items: list[list[Any]], inputs: list) -> None:
    """Sequential calibration: the next block sees the compressed block's outputs."""
    for item, h in zip(items, inputs, strict=True):
        for li in block:
            h = _run_layer(found.layers[li], [h, item[1], item[2]])
        item[0] = h


@torch.no_grad()
def compress(
    model: nn.Module,
    config: Config,
    calib: torch.Tensor,
    progress: bool = True,
    stats_cache: dict | None = None,
) -> tuple[nn.Module, dict]:
    """Replace the decoder's linears by shared-basis factorisations, in place; returns (model, record).

    ``stats_cache``: a dict the caller keeps between calls on copies of the *same* dense model and the same
    calibration windows; with ``propagate="dense"`` the Gram matrices do not depend on the ratio, so a sweep
    computes them once (it then holds all of them: a benchmark convenience, not the low-memory path).
    """
    _check_calib(calib)
    found = discover(model)
    config.validate().check_layers(len(found.layers))
    n = config.effective_group_size
    dense_params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    items = _capture_inputs(model, found.layers, calib, config.calib_batch_size)
    if (
        config.calib_dtype == "bfloat16"
    ):  # calibration activations in bfloat16 (hidden states and rotary tables alike)
        items = [[_to_bf16(item[0]), _to_bf16(item[1]), _to_bf16(item[2])] for item in items]
    calib_s, factor_s = time.perf_counter() - t0, 0.0
    totals: dict[str, Any] = {"before": 0, "after": 0, "shifts": 0, "ranks": {}}
    blocks = [list(range(i, min(i + n, len(found.layers)))) for i in range(0, len(found.layers), n)]
    for block in tqdm(
        blocks, desc=f"{config.method} r={config.ratio:.2f}", unit="block", disable=not progress
    ):
        t1 = time.perf_counter()
        groups = _groups(found, config, block)
        inputs = [item[0] for item in items]
        stats, alias = _block_stats(found, config, block, groups, items, stats_cache)
        t2 = time.perf_counter()
        _factorize_block(found, config, groups, stats, alias, totals)
        del stats
        t3 = time.perf_counter()
        if config.propagate == "compressed":
            _propagate_compressed(found, block, items, inputs)
        calib_s += (t2 - t1) + (time.perf_counter() - t3)
        factor_s += t3 - t2
    del items
    if totals["shifts"]:
        log.info("%d Gram matrices needed the eigenvalue shift", totals["shifts"])
    record = _record(model, config, found, totals, dense_params, calib_s, factor_s)
    if config.lora_epochs > 0:
        from frugalnn.methods.basis_sharing.recovery import lora_recover

        with torch.enable_grad():
            model, record["lora"] = lora_recover(model, config, calib, progress)
    model.train(was_training)
    model.frugalnn_compression = compression_spec(
        model, {"method": config.method, "ratio": config.ratio, "fuse": config.fuse}
    )
    fuse_bases(model, config.fuse)
    return model, record


def _record(
    model: nn.Module,
    config: Config,
    found: Discovered,
    totals: dict[str, Any],
    dense_params: int,
    calib_s: float,
    factor_s: float,
) -> dict[str, Any]:
    before, after = totals["before"], totals["after"]
    shared = found.resolve(config.share, found.default_share()) if config.effective_group_size > 1 else []
    return {
        "method": config.method,
        "config": config.to_dict(),
        "layers": len(found.layers),
        "decoder_layers": found.layers_name,
        "types": {t: found.roles[t] for t in found.types},
        "shared_types": sorted(shared),
        "ranks": totals["ranks"],
        "projection_params_before": before,
        "projection_params_after": after,
        "ratio_achieved": 1.0 - after / before if before else 0.0,
        "params_before": dense_params,
        "params_after": sum(p.numel() for p in model.parameters()),
        "eigen_shifts": totals["shifts"],
        "calibration_s": calib_s,
        "factorization_s": factor_s,
    }
