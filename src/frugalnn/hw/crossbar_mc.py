"""Many chips at once: programme D chips into effective weights (variation and level quantisation
folded in), run them as one batch, and the Monte-Carlo accuracy over variation draws."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from tqdm import tqdm

from frugalnn.errors import ConfigError, UnsupportedModelError
from frugalnn.hw.crossbar import (
    Chips,
    CrossbarConfig,
    analog_modules,
    convert_to_analog,
    program,
    program_weight,
)


def program_chips(
    model: nn.Module, draws: int, generator: torch.Generator | None = None, device: str | None = None
) -> dict[str, Chips]:
    """Write ``draws`` chips at once: what ``draws`` calls of ``program(model, generator)`` would write.

    Each chip programs every analog layer in module order and then draws one noise seed per layer, as
    ``program`` does, so chip d of a batch equals the d-th chip of the one-chip loop bit for bit.
    """
    if draws < 1:
        raise ConfigError(f"draws={draws} must be >= 1; pass the number of chips to sample")
    mods = analog_modules(model)
    if not mods:
        raise UnsupportedModelError("model has no analog layers; call convert_to_analog(model, config) first")
    gen = generator if generator is not None else torch.Generator().manual_seed(mods[0][1].config.seed)
    w_eff: dict[str, list[torch.Tensor]] = {n: [] for n, _ in mods}
    scale: dict[str, list[torch.Tensor]] = {n: [] for n, _ in mods}
    seeds: dict[str, list[int]] = {n: [] for n, _ in mods}
    with torch.no_grad():
        for _ in range(draws):
            for name, m in mods:
                prog = program_weight(m.weight.detach().cpu(), m.config, gen)
                w_eff[name].append(prog.w_eff)
                scale[name].append(prog.scale)
                seeds[name].append(int(torch.randint(0, 2**62, (1,), generator=gen)))
    dev = torch.device(device) if device is not None else mods[0][1].weight.device
    return {
        name: Chips(
            torch.stack(w_eff[name]).to(dev),
            torch.stack(scale[name]).to(dev),
            [torch.Generator(device=dev).manual_seed(sd) for sd in seeds[name]],
        )  # fmt: skip
        for name, _ in mods
    }


@contextmanager
def load_chips(model: nn.Module, chips: dict[str, Chips]) -> Iterator[nn.Module]:
    """Within the block the analog layers of ``model`` run the chips of ``program_chips`` at once."""
    mods = dict(analog_modules(model))
    if set(mods) != set(chips):
        raise ConfigError("the chips were programmed for another model; call program_chips on this one")
    try:
        for name, m in mods.items():
            m._chips = chips[name]
        yield model
    finally:
        for m in mods.values():
            m._chips = None


def forward_chips(model: nn.Module, x: torch.Tensor, chips: dict[str, Chips]) -> torch.Tensor:
    """(B, ...) inputs through every chip at once -> (D, B, ...) outputs (chips as a batch dimension)."""
    n = next(iter(chips.values())).w_eff.shape[0]
    with load_chips(model, chips):
        for c in chips.values():
            c.images = len(x)
        out = model(x)
    if out.shape[0] == len(x) and n > 1:  # no analog layer read the input (cannot happen for mapped models)
        out = out.expand(n, *out.shape).reshape(n * len(x), *out.shape[1:])
    return out.reshape(n, len(x), *out.shape[1:])


def accuracy_stats(per_draw: list[float]) -> dict[str, float | list[float]]:
    """Mean, std, 5th percentile (linear interpolation), worst and best accuracy over chips."""
    t = torch.tensor(per_draw, dtype=torch.float64)
    std = float(t.std()) if len(per_draw) > 1 else 0.0
    return {"mean": float(t.mean()), "std": std, "p5": float(torch.quantile(t, 0.05)),
            "min": float(t.min()), "max": float(t.max()), "per_draw": list(per_draw)}  # fmt: skip


def monte_carlo_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    draws: int = 10,
    config: CrossbarConfig | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 512,
    progress: bool = False,
    chips_per_pass: int | None = None,
    device: str | None = None,
) -> dict[str, float | list[float]]:
    """Accuracy over ``draws`` chips (variation draws): {mean, std, p5, min, max, per_draw}.

    With ``config`` the (digital or analog) model is converted afresh; otherwise it must be analog.
    ``chips_per_pass`` chips run as one batch (None: as many as keep ~1024 images per pass; 1: the
    one-chip loop, program then evaluate). Both give the same chips for the same ``generator``.
    ``device`` (``cpu``, ``cuda``) runs the passes there; noise then comes from that device's generators.
    """
    if draws < 1:
        raise ConfigError(f"draws={draws} must be >= 1; pass the number of chips to sample")
    if len(x) != len(y):
        raise ConfigError(f"x has {len(x)} samples but y has {len(y)}; pass matching inputs and labels")
    if batch_size < 1 or (chips_per_pass is not None and chips_per_pass < 1):
        raise ConfigError(f"batch_size={batch_size}, chips_per_pass={chips_per_pass} must be >= 1")
    if config is not None:
        model = convert_to_analog(model, config)
    if not analog_modules(model):
        raise UnsupportedModelError(
            "model has no analog layers (no Linear/Conv2d to map); pass config= or call convert_to_analog first"
        )
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    per_draw: list[float] = []
    if chips_per_pass == 1 and device is None:
        from frugalnn.core.measure import predict

        for _ in tqdm(range(draws), desc="monte-carlo chips", disable=not progress):
            program(model, gen)
            per_draw.append(int((predict(model, x, batch_size).argmax(1) == y).sum()) / len(x))
        return accuracy_stats(per_draw)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    if dev != next(model.parameters()).device:
        model = copy.deepcopy(model).to(dev)
    per_pass = chips_per_pass or max(1, min(draws, 1024 // batch_size))
    was_training = model.training
    model.eval()
    bar = tqdm(total=draws, desc="monte-carlo chips", disable=not progress)
    with torch.no_grad():
        for start in range(0, draws, per_pass):
            chips = program_chips(model, min(per_pass, draws - start), gen, str(dev))
            correct = torch.zeros(len(next(iter(chips.values())).generators), dtype=torch.int64)
            for i in range(0, len(x), batch_size):
                logits = forward_chips(model, x[i : i + batch_size].to(dev), chips)
                correct += (logits.argmax(-1).cpu() == y[i : i + batch_size]).sum(1)
            per_draw += (correct.double() / len(x)).tolist()
            bar.update(len(correct))
    bar.close()
    model.train(was_training)
    return accuracy_stats(per_draw)
