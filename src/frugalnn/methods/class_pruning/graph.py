"""Physical channel pruning that respects dependencies, on Torch-Pruning's DependencyGraph.

A *group* is a set of channels that must go together: a conv's filters, its batch norm, the next
layers' input channels, and — in a ResNet — every conv/BN that writes into the same residual stream
(the adds couple them). Removing a channel from a group keeps the network an ordinary ``nn.Module``
with thinner ``Conv2d`` / ``BatchNorm2d`` / ``Linear`` layers.

Also here: an analytic MAC model over the groups' channel counts (so selection can try many widths
without pruning copies) and ``save_pruned``, whose layer-width record lets ``core.checkpoint.load_checkpoint``
rebuild the pruned model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from frugalnn.core.checkpoint import WIDTHS_TRANSFORM, layer_widths, save_checkpoint
from frugalnn.core.measure import mac_profile
from frugalnn.core.models import ModelSpec
from frugalnn.errors import UnsupportedModelError

SUPPORTED = "Conv2d (groups=1), BatchNorm2d and Linear layers with parameter-free activations and pooling"


def check_supported(model: nn.Module) -> None:
    """Raise UnsupportedModelError naming the first layer the pruner cannot handle."""
    has_conv = False
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.groups != 1:
                raise UnsupportedModelError(
                    f"layer {name!r} is a grouped/depthwise Conv2d (groups={module.groups}); the pruner "
                    f"handles {SUPPORTED}: replace it or prune another model"
                )
            has_conv = True
        elif isinstance(module, nn.BatchNorm2d | nn.Linear):
            continue
        elif any(True for _ in module.parameters(recurse=False)) or isinstance(
            module, nn.RNNBase | nn.MultiheadAttention
        ):
            raise UnsupportedModelError(
                f"layer {name or '<model>'!r} of type {type(module).__name__} is not supported by the "
                f"filter pruner; it handles {SUPPORTED}: prune a CNN such as resnet20 or vgg-small"
            )
    if not has_conv:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no Conv2d layer, so there are no filters to prune; "
            "use a CNN such as resnet20 or vgg-small"
        )


@dataclass
class ChannelGroup:
    """Channels that are pruned together; indices refer to the root conv's output channels."""

    root: str
    channels: int
    out_convs: list[str] = field(default_factory=list)  # convs whose filters these are
    bns: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)  # convs / linears reading these channels


class ChannelGraph:
    """Dependency groups of a model (rebuild it after every physical prune)."""

    def __init__(self, model: nn.Module, example: torch.Tensor):
        check_supported(model)
        self.model = model
        self.example = example
        self.dg = tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
        names = {m: n for n, m in model.named_modules()}
        self.groups: list[ChannelGroup] = []
        for group in self.dg.get_all_groups(root_module_types=[nn.Conv2d]):
            root_module = group[0].dep.target.module
            g = ChannelGroup(names[root_module], root_module.out_channels)
            for item in group:
                module, handler = item.dep.target.module, item.dep.handler
                name = names.get(module)
                if name is None:
                    continue
                if isinstance(module, nn.BatchNorm2d):
                    g.bns.append(name)
                elif self.dg.is_out_channel_pruning_fn(handler) and isinstance(module, nn.Conv2d):
                    g.out_convs.append(name)
                elif self.dg.is_in_channel_pruning_fn(handler) and isinstance(module, nn.Conv2d | nn.Linear):
                    g.consumers.append(name)
            for conv in g.out_convs:
                if model.get_submodule(conv).out_channels != g.channels:
                    raise UnsupportedModelError(
                        f"layer {conv!r} is coupled to {g.root!r} through a channel mapping (concat/split) "
                        "the pruner does not handle; prune a model without channel concatenation"
                    )
            self.groups.append(g)
        self.by_root = {g.root: g for g in self.groups}

    def counts(self) -> dict[str, int]:
        return {g.root: g.channels for g in self.groups}


class MacModel:
    """MACs of conv/linear layers as coef · n_in · n_out over the groups' channel counts.

    The coefficient (kernel area × output positions, or a flatten's spatial size for a linear) comes
    from one measured forward pass of the current model, so the model is exact for every width choice.
    """

    def __init__(self, graph: ChannelGraph):
        self.terms: list[tuple[float, str | None, int, str | None, int]] = []
        governs_out = {c: g.root for g in graph.groups for c in g.out_convs}
        governs_in = {c: g.root for g in graph.groups for c in g.consumers}
        channels = graph.counts()
        for rec in mac_profile(graph.model, graph.example[:1]):
            module = graph.model.get_submodule(rec.name)
            out_group, in_group = governs_out.get(rec.name), governs_in.get(rec.name)
            if isinstance(module, nn.Conv2d):
                n_in, n_out = module.in_channels, module.out_channels
            elif isinstance(module, nn.Linear):
                n_in, n_out = module.in_features, module.out_features
            else:
                continue
            n_in = channels[in_group] if in_group else n_in
            n_out = channels[out_group] if out_group else n_out
            coef = rec.macs / max(1, n_in * n_out)
            self.terms.append((coef, in_group, n_in, out_group, n_out))

    def macs(self, counts: dict[str, int]) -> float:
        total = 0.0
        for coef, in_group, n_in, out_group, n_out in self.terms:
            total += (
                coef * (counts[in_group] if in_group else n_in) * (counts[out_group] if out_group else n_out)
            )
        return total


def prune_channels(model: nn.Module, example: torch.Tensor, removals: dict[str, list[int]]) -> nn.Module:
    """Physically remove ``removals[conv] = [channel, ...]`` (output channels of any conv of a group), in place.

    Every coupled layer shrinks with it (BN, next convs' inputs, residual partners, the classifier).
    """
    graph = ChannelGraph(model, example)
    owner = {conv: g for g in graph.groups for conv in g.out_convs}
    roots = [owner[c].root for c in removals if c in owner]
    if len(roots) != len(set(roots)):
        raise UnsupportedModelError("two of the given convs share one channel group; name each group once")
    for conv, idxs in removals.items():
        if conv not in owner:
            raise UnsupportedModelError(
                f"{conv!r} is not a prunable conv of this model; convs: {', '.join(owner)}"
            )
        idxs = sorted({int(i) for i in idxs})
        if not idxs:
            continue
        channels = owner[conv].channels
        if idxs[0] < 0 or idxs[-1] >= channels or len(idxs) >= channels:
            raise UnsupportedModelError(
                f"cannot remove channels {idxs[:5]}... of {conv!r} ({channels} channels): keep at least one"
            )
        group = graph.dg.get_pruning_group(model.get_submodule(conv), tp.prune_conv_out_channels, idxs)
        group.prune()
    return model


# ----------------------------------------------------------------------------- save
def save_pruned(
    folder: str | Path, model: nn.Module, spec: ModelSpec | None = None, meta: dict[str, Any] | None = None
) -> Path:
    """A frugalnn checkpoint whose ``layer_widths`` transform records the pruned widths.

    ``spec``: the zoo spec the model was built from; ``None`` for a model built by hand, which
    ``core.checkpoint.load_checkpoint(folder, model=<a fresh unpruned instance>)`` loads back.
    """
    widths = {"name": WIDTHS_TRANSFORM, "config": layer_widths(model)}
    return save_checkpoint(folder, model, spec, meta, transforms=[widths])
