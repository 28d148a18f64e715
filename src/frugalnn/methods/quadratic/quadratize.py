"""``quadratize(model, config, filter_fn=None)``: swap chosen Linear / Conv2d layers of any model for
quadratic ones that keep their linear weights, optionally widening the swapped hidden layers.

The selection follows torchao's ``filter_fn(module, fqn) -> bool``; the config's ``layers`` /
``include`` give the same choice in a form that a checkpoint can store. The record's ``transform``
entry names the layers exactly, so ``frugalnn eval`` rebuilds the same model (``core.plugins``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from frugalnn.core.config import FieldError
from frugalnn.core.measure import count_params
from frugalnn.errors import ConfigError, UnsupportedModelError
from frugalnn.methods.quadratic.config import QuadraticConfig
from frugalnn.methods.quadratic.layers import from_conv, from_linear

FilterFn = Callable[[nn.Module, str], bool]

# modules and functions that act per channel: a widened layer's extra outputs can flow through them
_CHANNELWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardswish, nn.Dropout,
    nn.Identity, nn.Flatten, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.BatchNorm1d, nn.BatchNorm2d,
)  # fmt: skip
_CHANNELWISE_FUNCTIONS = {
    F.relu, torch.relu, F.gelu, torch.tanh, torch.sigmoid, torch.flatten, F.dropout, F.max_pool2d,
    F.avg_pool2d, F.adaptive_avg_pool2d,
}  # fmt: skip
_CHANNELWISE_METHODS = {"relu", "flatten", "tanh", "sigmoid"}


def _swappable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module) is nn.Conv2d


def _check_swappable(name: str, module: nn.Module) -> None:
    if not _swappable(module):
        raise UnsupportedModelError(
            f"layer {name!r} is a {type(module).__name__}; quadratize swaps nn.Linear and nn.Conv2d only "
            "(leave it out of the selection)"
        )
    if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.padding_mode != "zeros"):
        raise UnsupportedModelError(
            f"layer {name!r} is a grouped or non-zero-padded Conv2d (groups {module.groups}, padding_mode "
            f"{module.padding_mode}); quadratize swaps groups-1 zero-padded convolutions (leave it out)"
        )
    if isinstance(module, nn.Conv2d) and isinstance(module.padding, str):
        raise UnsupportedModelError(
            f"layer {name!r} uses padding={module.padding!r}; quadratize needs numeric padding (leave it out)"
        )


def _kind_ok(module: nn.Module, layers: str) -> bool:
    kinds = {"all": (nn.Linear, nn.Conv2d), "linear": (nn.Linear,), "conv": (nn.Conv2d,)}[layers]
    return isinstance(module, kinds)


def select_layers(model: nn.Module, config: QuadraticConfig, filter_fn: FilterFn | None = None) -> list[str]:
    """Names of the layers the config (and ``filter_fn``) choose, every one checked to be swappable."""
    chosen = []
    for name, module in model.named_modules():
        if not name:
            continue
        if filter_fn is not None:
            if filter_fn(module, name):
                _check_swappable(name, module)
                chosen.append(name)
            continue
        if config.include:
            if not any(fnmatchcase(name, p) for p in config.include):
                continue
            if name in config.include:  # named exactly: it must be swappable
                _check_swappable(name, module)
            elif not isinstance(module, nn.Linear | nn.Conv2d):
                continue  # a wildcard also matches containers and activations
        if _kind_ok(module, config.layers):
            _check_swappable(name, module)
            chosen.append(name)
    if not chosen:
        raise ConfigError(
            "no layer of the model matches the selection (layers / include / filter_fn); "
            "check the names with `frugalnn info`"
        )
    return chosen


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def _consumers(gm: fx.GraphModule, node: fx.Node, modules: dict[str, nn.Module]) -> tuple[list, list] | None:
    """Layers (and norms) fed by ``node`` through per-channel ops only; None when anything else reads it."""
    layers, norms, stack, seen = [], [], list(node.users), set()
    while stack:
        user = stack.pop()
        if user in seen:
            continue
        seen.add(user)
        if user.op == "call_module":
            sub = modules[user.target]
            if isinstance(sub, nn.Linear) or (isinstance(sub, nn.Conv2d) and sub.groups == 1):
                layers.append(user.target)
                continue
            if not isinstance(sub, _CHANNELWISE_MODULES):
                return None
            if isinstance(sub, nn.BatchNorm1d | nn.BatchNorm2d):
                norms.append(user.target)
        elif not (
            (user.op == "call_function" and user.target in _CHANNELWISE_FUNCTIONS)
            or (user.op == "call_method" and user.target in _CHANNELWISE_METHODS)
        ):
            return None
        stack.extend(user.users)
    return (layers, norms) if layers else None


@torch.no_grad()
def _resized(module: nn.Module, out_n: int | None, in_n: int | None) -> nn.Module:
    """A fresh layer of the new size whose overlapping block holds the old weights."""
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        new = type(module)(out_n, module.eps, module.momentum, module.affine, module.track_running_stats)
        k = min(out_n, module.num_features)
        for key, t in module.state_dict().items():
            if t.dim() == 1:
                getattr(new, key)[:k] = t[:k]
        return new.to(module.weight.device if module.affine else "cpu")
    old_out = module.weight.shape[0]
    old_in = module.weight.shape[1]
    if isinstance(module, nn.Linear):
        new_out, new_in = out_n or old_out, in_n or old_in
        new: nn.Module = nn.Linear(new_in, new_out, bias=module.bias is not None)
    else:
        new_out, new_in = out_n or old_out, in_n or old_in
        new = nn.Conv2d(new_in, new_out, module.kernel_size, module.stride, module.padding, module.dilation,
                        bias=module.bias is not None)  # fmt: skip
    new.to(module.weight.device, module.weight.dtype)
    o, i = min(old_out, new_out), min(old_in, new_in)
    new.weight[:o, :i] = module.weight[:o, :i]
    if module.bias is not None:
        new.bias[:o] = module.bias[:o]
    return new


def widen(model: nn.Module, names: list[str], width: float) -> dict[str, Any]:
    """Scale the outputs of each named layer whose outputs feed only other Linear/Conv2d layers through
    per-channel ops (ReLU, pooling, BatchNorm, flatten), and the inputs of those layers; -> report."""
    if width == 1.0:
        return {"widened": {}, "kept": {}}
    try:
        gm = fx.symbolic_trace(model)
    except Exception as err:  # fx raises many types on untraceable code
        raise UnsupportedModelError(
            f"width {width} needs a model torch.fx can trace ({type(err).__name__}: {str(err)[:80]}); "
            "use width 1"
        ) from None
    modules = dict(model.named_modules())
    new_out: dict[str, int] = {}
    new_in: dict[str, int] = {}
    norm_size: dict[str, int] = {}
    kept: dict[str, str] = {}
    channels_in: dict[str, int] = {}  # consumer -> the producer's old output count
    for node in gm.graph.nodes:
        if node.op != "call_module" or node.target not in names:
            continue
        found = _consumers(gm, node, modules)
        if found is None:
            kept[node.target] = "its output is read by more than per-channel ops (a residual add, the output)"
            continue
        old = modules[node.target].weight.shape[0]
        out_n = max(1, round(old * width))
        new_out[node.target] = out_n
        layers, norms = found
        for c in layers:
            channels_in[c] = old
            fan = modules[c].weight.shape[1]
            if fan % old:
                raise UnsupportedModelError(
                    f"layer {c!r} input {fan} is not a multiple of {node.target!r}'s {old}"
                )
            new_in[c] = out_n * (fan // old)
        for bn in norms:
            norm_size[bn] = out_n
    for name in set(new_out) | set(new_in):
        m = modules[name]
        if isinstance(m, nn.Linear) and name in new_in and m.in_features != new_in[name]:
            _set(model, name, _resized_flat(m, new_out.get(name), new_in[name], channels_in[name]))
        else:
            _set(model, name, _resized(m, new_out.get(name), new_in.get(name)))
    for name, size in norm_size.items():
        _set(model, name, _resized(modules[name], size, None))
    return {"widened": new_out, "kept": kept}


@torch.no_grad()
def _resized_flat(module: nn.Linear, out_n: int | None, in_n: int, channels: int) -> nn.Linear:
    """A Linear reading a flattened (C, S) map whose C changes: keep the old columns channel by channel."""
    spatial = module.in_features // channels
    new = nn.Linear(in_n, out_n or module.out_features, bias=module.bias is not None)
    new.to(module.weight.device, module.weight.dtype)
    new_c = in_n // spatial
    o, c = min(new.out_features, module.out_features), min(new_c, channels)
    new.weight.view(new.out_features, new_c, spatial)[:o, :c] = module.weight.view(-1, channels, spatial)[
        :o, :c
    ]
    if module.bias is not None:
        new.bias[:o] = module.bias[:o]
    return new


def quadratize(
    model: nn.Module, config: QuadraticConfig, filter_fn: FilterFn | None = None, **_: Any
) -> tuple[nn.Module, dict[str, Any]]:
    """Swap the chosen layers of ``model`` (in place) for quadratic ones -> (model, record).

    ``filter_fn(module, name) -> bool`` chooses the layers instead of ``layers`` / ``include``.
    The record holds the parameter counts before and after, each swapped layer, the widening, and
    ``transform``: the entry for a checkpoint's ``"transforms"`` list.
    """
    if not isinstance(config, QuadraticConfig):
        raise ConfigError(f"quadratize takes a QuadraticConfig, got {type(config).__name__}")
    config.validate()
    names = select_layers(model, config, filter_fn)
    modules = dict(model.named_modules())
    if config.form == "efficient":  # every rank problem before any layer changes
        for name in names:
            m = modules[name]
            fan_in = m.in_features if isinstance(m, nn.Linear) else m.weight[0].numel()
            if config.rank > fan_in:
                raise FieldError(
                    "rank", f"must be at most the input size of every swapped layer; {name!r} has {fan_in}, "
                    f"got {config.rank}"
                )  # fmt: skip
    params_before = count_params(model)
    widening = widen(model, names, config.width)
    layers = []
    if config.form != "linear":
        modules = dict(model.named_modules())
        for name in names:
            m = modules[name]
            make = from_linear if isinstance(m, nn.Linear) else from_conv
            q = make(m, config.form, config.rank, config.init_scale)
            _set(model, name, q)
            layers.append({"name": name, "type": type(m).__name__, "fan_in": q.fan_in,
                           "outputs": int(q.weight.shape[0]),
                           "extra_params": sum(p.numel() for p in q.quadratic_parameters())})  # fmt: skip
    exact = replace(config, layers="all", include=tuple(names))
    record = {
        "form": config.form,
        "params_before": params_before,
        "params_after": count_params(model),
        "layers": layers,
        **widening,
        "transform": {"name": "quadratic", "config": exact.to_dict()},
    }
    return model, record


def rebuild(model: nn.Module, config: dict[str, Any]) -> nn.Module:
    """The ``model_transform`` plug-in: redo a recorded swap on a freshly built model."""
    return quadratize(model, QuadraticConfig.from_dict(config))[0]
