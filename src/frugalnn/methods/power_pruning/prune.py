"""The verb: ``power_prune(model, config, data) -> (power-pruned int8 model, record)``.

1. int8 model (core/quant.py: per-channel weights, calibrated per-tensor activations);
2. per-layer (activation, partial-sum) streams and (weight, activation) counts from real inference;
3. per-layer energy of every weight code under its own stream; the K cheapest codes; the delay step;
4. the lowest supply voltage meeting the clock;
5. retraining with weights and activations projected onto the allowed codes (STE), then the weights
   baked to allowed code x channel scale;
6. the MAC-array power of the result from its own streams and counts, at nominal and scaled Vdd.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from frugalnn.core.config import FieldError
from frugalnn.core.data import ImageData
from frugalnn.core.measure import accuracy
from frugalnn.core.quant import QuantConfig, calibrate, quantize_model
from frugalnn.core.train import TrainConfig, train
from frugalnn.methods.power_pruning.characterise import (
    ALL_WEIGHTS,
    Characteriser,
    EnergyTable,
    delays_from_file,
)
from frugalnn.methods.power_pruning.config import PowerPruningConfig
from frugalnn.methods.power_pruning.layers import BITS, bake, check_quantisable, to_pruned
from frugalnn.methods.power_pruning.power import breakdown, network_power, total_pj
from frugalnn.methods.power_pruning.select import select
from frugalnn.methods.power_pruning.stats import LayerStats, record_stats
from frugalnn.methods.power_pruning.voltage import VoltageModel, choose_vdd

TRANSFORM = "power-pruning"


def quantise_int8(model: nn.Module, x_calib: torch.Tensor) -> nn.Module:
    """A calibrated int8 fake-quant copy (the 8-bit baseline every figure is relative to)."""
    check_quantisable(model)
    q = quantize_model(copy.deepcopy(model).cpu(), QuantConfig(BITS, BITS, per_channel=True))
    return calibrate(q, x_calib)


def characterise_layers(
    ch: Characteriser, stats: list[LayerStats], weights: np.ndarray, glitch: bool, progress: bool, desc: str
) -> list[EnergyTable]:
    bar = tqdm(stats, desc=desc, disable=not progress, leave=False)
    return [ch.energies(s.activations, s.psums, weights, glitch) for s in bar]


def power_prune(
    model: nn.Module,
    config: PowerPruningConfig,
    data: ImageData,
    *,
    progress: bool = True,
    voltage_model: VoltageModel | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """PowerPruning of any model of Conv2d / Linear layers on image data ``data`` (train split:
    calibration, statistics, retraining; test split: accuracy)."""
    config.validate()
    vm = voltage_model or VoltageModel()
    model = model.cpu().eval()
    check_quantisable(model)
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(data.x_train), generator=gen)
    x_calib = data.x_train[order[: config.calibration_images]]
    x_stats = data.x_train[order[: config.stats_images]]
    x_test, y_test = data.x_test[: config.test_images], data.y_test[: config.test_images]
    glitch = config.energy == "glitch"
    ch = Characteriser(config.cache_dir, config.transitions, config.timed_transitions, config.seed)
    t0 = time.perf_counter()
    delays = (
        delays_from_file(config.delay_characterisation)
        if config.delay_characterisation
        else ch.delays(config.delay_transitions, progress)
    )
    clock_ns = config.clock_ns if config.clock_ns is not None else delays.baseline_ns
    if clock_ns < delays.baseline_ns * (1 - 1e-9):
        raise FieldError(
            "clock_ns",
            f"is {clock_ns:.3f} ns but the 8-bit MAC's worst sensitised delay is {delays.baseline_ns:.3f} ns "
            f"at the nominal {vm.nominal_v} V: the design cannot meet it; use at least {delays.baseline_ns:.3f} ns",
        )
    base = quantise_int8(model, x_calib)
    base_stats = record_stats(base, x_stats, config.stream_sites, config.transitions + 1, config.seed)
    base_tables = characterise_layers(
        ch, base_stats, ALL_WEIGHTS, glitch, progress, "characterise (baseline)"
    )
    sel = select(
        base_stats,
        base_tables,
        delays.delay_ns,
        config.keep,
        config.energy,
        config.delay_target if config.delay_step else None,
        config.min_activations,
        config.sign,
    )
    vc = choose_vdd(sel.max_delay_ns, clock_ns, config.vdd_step_v, vm)
    select_s = time.perf_counter() - t0
    pruned = to_pruned(copy.deepcopy(base), sel.weight_codes, sel.activation_codes)
    restricted = len(sel.weight_codes) < len(ALL_WEIGHTS) or len(sel.activation_codes) < len(ALL_WEIGHTS)
    steps = config.finetune_steps if restricted else 0
    t1 = time.perf_counter()
    history: list = []
    if steps:
        tc = TrainConfig(
            epochs=1,
            batch_size=config.batch_size,
            lr=config.lr,
            weight_decay=5e-4,
            max_steps_per_epoch=steps,
            seed=config.seed,
            flip=data.name == "fashion-mnist" or data.name.startswith("cifar"),
        )
        history = train(pruned, data, tc, progress=progress, evaluate_test=False).history
    bake(pruned).eval()
    train_s = time.perf_counter() - t1
    after_stats = record_stats(pruned, x_stats, config.stream_sites, config.transitions + 1, config.seed)
    kept = np.array(sel.weight_codes)
    after_tables = characterise_layers(ch, after_stats, kept, glitch, progress, "characterise (pruned)")
    before_rows, before = network_power(base_stats, base_tables, config.energy, clock_ns)
    after_rows, after = network_power(after_stats, after_tables, config.energy, clock_ns)
    e_base = total_pj(before_rows, None)
    e_nominal = total_pj(after_rows, None)
    e_scaled = total_pj(after_rows, vc)
    acc_float = accuracy(model, x_test, y_test)
    acc_base = accuracy(base, x_test, y_test)
    acc = accuracy(pruned, x_test, y_test)
    reduction_nominal = 1.0 - e_nominal / e_base
    reduction_scaled = 1.0 - e_scaled / e_base
    record = {
        "method": TRANSFORM,
        "config": config.to_dict(),
        "voltage_model": vm.to_dict(),
        "selection": asdict(sel),
        "delay_table": delays.source,
        "clock_ns": clock_ns,
        "voltage": asdict(vc),
        "vdd_v": vc.vdd_v if config.voltage_scaling else vm.nominal_v,
        "power_before": before,
        "power_after_nominal": after,
        "power_reduction_nominal": reduction_nominal,
        "power_reduction_scaled": reduction_scaled,
        "power_reduction": reduction_scaled if config.voltage_scaling else reduction_nominal,
        "layers": breakdown(before_rows, after_rows, vc if config.voltage_scaling else None),
        "accuracy_float": acc_float,
        "accuracy_int8": acc_base,
        "accuracy": acc,
        "accuracy_loss_pt": 100.0 * (acc_base - acc),
        "finetune_steps_run": steps,
        "finetune_history": history,
        "seconds": {"selection_and_voltage": select_s, "retraining": train_s},
        "characterisations": {"run": ch.runs, "from_cache": ch.hits, "cache": str(ch.cache)},
        "stats_images": len(x_stats),
        "weight_code_use": {
            int(c): int(n) for c, n in zip(ALL_WEIGHTS, sum(s.weight_use for s in after_stats)) if n
        },
        "transform": {
            "name": TRANSFORM,
            "config": {"weight_codes": sel.weight_codes, "activation_codes": sel.activation_codes},
        },
    }
    return pruned, record
