"""``compress(model, config, calib) -> (model, record)``: Basis Sharing and its SVD baselines, layer by layer.

Memory (issue item 5): the calibration windows are run through the embedding once and stopped at the
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
    linear_weight,
    set_submodule,
)

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Raised by the pre-hook on the first decoder layer: the embedding output is all we need."""


def symmetric_gram(x: torch.Tensor, blocks: int = 6) -> torch.Tensor:
    """XᵀX from its upper block triangle only, mirrored: (b+1)/(2b) of the full product's multiply-adds.

    The Gram matrices cost as much as the calibration forward itself (down_proj's 1536² per token);
    torch has no syrk, and b = 6 column blocks measured 0.61× the time of ``x.mT @ x`` for d = 1536
    (0.65× for 576) on one thread, with the same float32 rounding.
    """
    d = x.shape[1]
    if d < 64 * blocks:
        return x.mT @ x
    edges = [round(i * d / blocks) for i in range(blocks + 1)]
    gram = torch.empty(d, d, dtype=x.dtype, device=x.device)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        gram[a:b, a:] = x[:, a:b].mT @ x[:, a:]
        gram[b:, a:b] = gram[a:b, b:].mT
    return gram


class _Stats:
    """Per-input statistics: Gram XᵀX (float64), Σ|x| (ASVD) and token count."""

    def __init__(self) -> None:
        self.gram: torch.Tensor | None = None
        self.abs_sum: torch.Tensor | None = None
        self.count = 0

    def add(self, x: torch.Tensor, need_abs: bool) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).float()
        g = symmetric_gram(x).double()
        self.gram = g if self.gram is None else self.gram + g
        if need_abs:
            a = x.abs().sum(0).double()
            self.abs_sum = a if self.abs_sum is None else self.abs_sum + a
        self.count += x.shape[0]


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
    if not isinstance(calib, torch.Tensor) or calib.ndim != 2 or calib.shape[0] < 1 or calib.shape[1] < 2:
        raise DataError(
            "calibration must be token windows [n >= 1, L >= 2]; use a longer calibration text (at least one window)"
        )
    found = discover(model)
    config.validate().check_layers(len(found.layers))
    n = config.effective_group_size
    dtype = torch.float64 if config.factor_dtype == "float64" else torch.float32
    dense_params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    items = _capture_inputs(model, found.layers, calib, config.calib_batch_size)
    low = config.calib_dtype == "bfloat16"
    if low:  # calibration activations in bfloat16 (hidden states and rotary tables alike)
        items = [[_to_bf16(item[0]), _to_bf16(item[1]), _to_bf16(item[2])] for item in items]
    calib_s, factor_s = time.perf_counter() - t0, 0.0
    before = after = 0
    shifts = 0
    ranks_by_type: dict[str, list[int]] = {}
    blocks = [list(range(i, min(i + n, len(found.layers)))) for i in range(0, len(found.layers), n)]
    for block in tqdm(
        blocks, desc=f"{config.method} r={config.ratio:.2f}", unit="block", disable=not progress
    ):
        t1 = time.perf_counter()
        groups = _groups(found, config, block)
        need_abs = config.whitening == "asvd"
        use_cache = stats_cache is not None and config.propagate == "dense"
        if use_cache and stats_cache.setdefault("calib_dtype", config.calib_dtype) != config.calib_dtype:
            raise ConfigError("this stats cache holds statistics of another calib_dtype; use a new cache")
        wanted = [(li, t) for t, members in groups for li in members]
        inputs = [item[0] for item in items]
        if config.whitening == "none" and config.propagate == "dense":  # plain SVD needs no statistics
            stats, alias = {}, {}
        elif use_cache and all(_cached(stats_cache, key, need_abs) for key in wanted):
            alias = {key: stats_cache[("alias", *key)] for key in wanted if ("alias", *key) in stats_cache}
            stats = {key: stats_cache[("stats", *key)] for key in wanted if ("stats", *key) in stats_cache}
            stats.update({owner: stats_cache[("stats", *owner)] for owner in alias.values()})
        else:
            # bfloat16: hooks and forward on a bfloat16 copy of the block; the fp32 layers get factorised
            run = {
                li: copy.deepcopy(found.layers[li]).to(torch.bfloat16) if low else found.layers[li]
                for li in block
            }
            stats, alias, handles = _hook_block(found, block, groups, need_abs=need_abs, layers=run)
            for item in items:
                h = item[0]
                for li in block:
                    _LAYER_INPUTS[
                        li
                    ] = []  # identity cache: q/k/v (or up/gate) read one tensor, count it once
                    h = _run_layer(run[li], [h, item[1], item[2]])
                item[0] = h
            del run
            for handle in handles:
                handle.remove()
            _LAYER_INPUTS.clear()
            if use_cache:  # per (layer, type), so sweeps with other group sizes reuse them too
                stats_cache.update({("stats", *key): value for key, value in stats.items()})
                stats_cache.update({("alias", *key): value for key, value in alias.items()})
        t2 = time.perf_counter()
        calib_s += t2 - t1
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
            pres.append(
                spectrum(weights, gram, absmean, config.whitening, config.asvd_alpha, config.eps, dtype)
            )
            weights_of.append((mods, weights, keys))
            costs.append(d_in + len(members) * d_out)
            uniform.append(config.rank or rank_for_ratio(config.ratio, d_in, d_out, len(members)))
        ranks = uniform
        if config.allocation == "loss" and config.rank is None:
            ranks = _allocate([p[0] for p in pres], costs, uniform)
        for (t, members), pre, (mods, weights, keys), k in zip(groups, pres, weights_of, ranks, strict=True):
            layer_grams = [stats[key].gram for key in keys] if config.refit and len(members) > 1 else None
            f = factorize(
                weights, None, None, k, config.whitening, layer_grams=layer_grams, pre=pre, dtype=dtype
            )
            shifts += int(f.shifted)
            ref = mods[0].weight
            basis = Basis(f.basis.shape[0], f.basis.shape[1], dtype=ref.dtype).to(ref.device)
            basis.weight.copy_(f.basis.mT)
            for li, mod, coeff in zip(members, mods, f.coeffs, strict=True):
                bias = linear_weight(mod)[1]
                new = SharedBasisLinear(basis, coeff.shape[1], bias is not None, dtype=ref.dtype).to(
                    ref.device
                )
                new.coeff.weight.copy_(coeff.mT)
                if bias is not None:
                    new.coeff.bias.copy_(bias)
                set_submodule(found.layers[li], t, new)
            before += sum(w.numel() for w in weights)
            after += basis.weight.numel() + sum(c.numel() for c in f.coeffs)
            ranks_by_type.setdefault(t, []).append(f.basis.shape[1])
        del stats, pres, weights_of
        factor_s += time.perf_counter() - t2
        if config.propagate == "compressed":  # sequential: the next block sees the compressed block's outputs
            t3 = time.perf_counter()
            for item, h in zip(items, inputs, strict=True):
                for li in block:
                    h = _run_layer(found.layers[li], [h, item[1], item[2]])
                item[0] = h
            calib_s += time.perf_counter() - t3
    del items
    if shifts:
        log.info("%d Gram matrices needed the eigenvalue shift", shifts)
    record = {
        "method": config.method,
        "config": config.to_dict(),
        "layers": len(found.layers),
        "decoder_layers": found.layers_name,
        "types": {t: found.roles[t] for t in found.types},
        "shared_types": sorted(found.resolve(config.share, found.default_share())) if n > 1 else [],
        "ranks": ranks_by_type,
        "projection_params_before": before,
        "projection_params_after": after,
        "ratio_achieved": 1.0 - after / before if before else 0.0,
        "params_before": dense_params,
        "params_after": sum(p.numel() for p in model.parameters()),
        "eigen_shifts": shifts,
        "calibration_s": calib_s,
        "factorization_s": factor_s,
    }
    if config.lora_epochs > 0:
        from frugalnn.methods.basis_sharing.recovery import lora_recover

        with torch.enable_grad():
            model, record["lora"] = lora_recover(model, config, calib, progress)
    model.train(was_training)
    model.frugalnn_compression = compression_spec(model, {"method": config.method, "ratio": config.ratio})
    return model, record


_LAYER_INPUTS: dict[int, list[tuple[torch.Tensor, tuple[int, str]]]] = {}


def _cached(cache: dict, key: tuple[int, str], need_abs: bool) -> bool:
    owner = cache.get(("alias", *key), key)
    stats = cache.get(("stats", *owner))
    return stats is not None and (not need_abs or stats.abs_sum is not None)


def save_stats(cache: dict, path: str) -> None:
    """Persist a stats cache (benchmarks: several processes share one calibration pass)."""
    plain = {k: ((v.gram, v.abs_sum, v.count) if isinstance(v, _Stats) else v) for k, v in cache.items()}
    torch.save(plain, path)


def load_stats(path: str) -> dict:
    out = {}
    for k, v in torch.load(path, weights_only=False).items():
        if k[0] == "stats":
            st = _Stats()
            st.gram, st.abs_sum, st.count = v
            v = st
        out[k] = v
    return out


def _hook_block(
    found: Discovered,
    block: list[int],
    groups: list[tuple[str, list[int]]],
    need_abs: bool,
    layers: dict[int, nn.Module] | None = None,
) -> tuple[dict, dict, list]:
    """Forward pre-hooks that accumulate input statistics for each linear to be factorised.

    ``layers``: the modules that will actually run (a bfloat16 copy of the block), default the model's."""
    stats: dict[tuple[int, str], _Stats] = {}
    alias: dict[tuple[int, str], tuple[int, str]] = {}
    handles = []
    wanted = {(li, t) for t, members in groups for li in members}
    for li, t in sorted(wanted):
        key = (li, t)

        def hook(module: nn.Module, args: tuple, key: tuple[int, str] = key) -> None:
            x = args[0]
            seen = _LAYER_INPUTS.setdefault(key[0], [])
            for tensor, owner in seen:  # the very same tensor object: another type already counted it
                if tensor is x:
                    if owner != key:
                        alias[key] = owner
                    return
            seen.append((x, key))
            stats.setdefault(key, _Stats()).add(x, need_abs)

        owner = layers[li] if layers is not None else found.layers[li]
        handles.append(owner.get_submodule(t).register_forward_pre_hook(hook))
    return stats, alias, handles


def check_inputs(ratio: float, group_size: int) -> None:
    """Fail fast on impossible CLI options before loading a model."""
    if not 0.0 < ratio < 1.0:
        raise ConfigError(f"ratio must lie strictly between 0 and 1, got {ratio}")
    if group_size < 1:
        raise ConfigError(f"group size must be at least 1, got {group_size}")
