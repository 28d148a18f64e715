"""Exit heads and the early-exit model wrapper.

Any zoo CNN whose forward is a plain chain of its children (VGG-small, ResNet-20, LeNet-5; an
``nn.Linear`` after a 4-D tensor gets the implicit flatten) is cut into segments at the named exit
positions. The wrapper stays an ``nn.Module``: ``state_dict`` holds ``backbone.*`` and ``heads.*``
plus the per-exit β / threshold buffers. ``save_early_exit`` records the ``early_exit`` model transform,
so ``core.checkpoint.load_checkpoint`` rebuilds the wrapper (``load_early_exit`` adds clearer errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.core import plugins
from frugalnn.core.checkpoint import (
    MODEL_FILE,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    tensor_names,
    transform_config,
)
from frugalnn.core.measure import count_macs
from frugalnn.core.models import ModelSpec
from frugalnn.errors import CheckpointError, ConfigError, UnsupportedModelError

from .chain import Chain, chain_units, run_units
from .config import Config, check_unit_values
from .inference import skipping_forward


class ExitHead(nn.Module):
    """Pooling → linear to K classes (paper Sec. III-A); sigmoid (exclusion) or softmax (confidence).

    ``confidence_head=True`` (hybrid mode, our extension, not in the paper): a second linear layer on
    the same pooled features, trained with cross-entropy like the confidence baseline's heads. Its
    logits follow the exclusion head's: the head's output is then (N, 2K) = [sigmoid-head logits,
    softmax-head logits]; the two are separate ``nn.Linear`` layers, so each half is computed exactly
    as a one-head model with the same weights computes it."""

    def __init__(self, channels: int, num_classes: int, pool: int = 1, confidence_head: bool = False):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.fc = nn.Linear(channels * pool * pool, num_classes)
        self.conf = nn.Linear(channels * pool * pool, num_classes) if confidence_head else None

    def features(self, h: torch.Tensor) -> torch.Tensor:
        p = self.pool.output_size
        if h.dim() == 4 and p != 1:
            # Same averages, faster kernels (one thread, batch of 64, caches cold): when p divides the
            # map (28→4) a plain average pool (0.28 ms against 0.39 ms for the adaptive kernel on
            # 16×28×28); when it does not (14→4, 7→4) the NCHW adaptive kernel is slow (0.47 / 0.57 ms)
            # and the channels-last one, conversion included, is not (0.29 / 0.13 ms).
            size = h.shape[-2:]
            if size[0] % p == 0 and size[1] % p == 0:
                return torch.flatten(F.avg_pool2d(h, (size[0] // p, size[1] // p)), 1)
            h = h.contiguous(memory_format=torch.channels_last)
        return torch.flatten(self.pool(h), 1)  # flatten keeps the (C, p, p) order in either layout

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features: (N, K), or (N, 2K) with the confidence head."""
        z = self.fc(f)
        return z if self.conf is None else torch.cat([z, self.conf(f)], 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(h))


def default_exits(model: nn.Module) -> tuple[str, ...]:
    """After each block or stage but the last (the last one feeds the final classifier): VGG-small's
    blocks are its stages; ResNet-20 gets an exit after every residual block (``layer1.0`` …
    ``layer3.1``, 8 exits), the finest positions between whole blocks."""
    kind = type(model).__name__
    if kind == "VGGSmall":
        return tuple(f"blocks.{i}" for i in range(len(model.blocks) - 1))
    if kind == "ResNetCifar":
        stages = [n for n, _ in model.named_children() if n.startswith("layer")]
        return tuple(f"{s}.{b}" for s in stages for b in range(len(getattr(model, s))))[:-1]
    if kind == "LeNet5":
        return ("features.2",)  # after the first conv + pool
    # generic: parameterised top-level children, minus the last feature stage and the classifier
    names = [n for n, m in model.named_children() if any(True for _ in m.parameters())]
    return tuple(names[:-2]) if len(names) > 2 else tuple(names[:1])


class EarlyExitModel(nn.Module):
    """A backbone with exit heads. ``outputs(x)`` runs everything (training, search);
    in eval mode ``forward`` is the batched skipping inference and returns class scores whose argmax
    is the early-exit prediction; in train mode it returns the final classifier's logits."""

    def __init__(self, backbone: nn.Module, config: Config):
        super().__init__()
        config.validate()
        self.config = config
        self.backbone = backbone
        exits = tuple(config.exits) if config.exits is not None else default_exits(backbone)
        named = chain_units(backbone, "", set(exits))
        names = [n for n, _ in named]
        # an opened Sequential (``blocks.0`` when ``blocks.0.2`` is an exit too) ends with its last unit
        where = [next((n for n in reversed(names) if n.startswith(e + ".")), e) for e in exits]
        _check_positions(backbone, tuple(where), names)
        cuts = [names.index(w) + 1 for w in where]
        if cuts != sorted(set(cuts)):
            order = [e for _, e in sorted(zip(cuts, exits))]
            raise ConfigError(
                f"exits {list(exits)} are out of network order or repeat a position; list them as {order}"
            )
        self.exit_names = exits
        bounds = [0, *cuts, len(named)]
        # plain lists: the modules are already registered under ``backbone``
        self._segments: list[list[nn.Module]] = [
            [m for _, m in named[a:b]] for a, b in zip(bounds[:-1], bounds[1:])
        ]
        self._segment_names = [[n for n, _ in named[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]
        channels, num_classes, self.segment_macs = self._trace(config.input_shape)
        self.num_classes = num_classes
        two = config.mode == "hybrid"  # ours: a softmax head next to the paper's sigmoid head
        self.heads = nn.ModuleList(ExitHead(c, num_classes, config.head_pool, two) for c in channels)
        # MAC widths of the heads (pool → linear, paper Sec. III-A): one list read by every MAC count
        self.head_in_features = [h.fc.in_features for h in self.heads]
        n = len(exits)
        config.check_exit_count(n)
        self.register_buffer("betas", torch.tensor(config.betas or (0.0,) * n, dtype=torch.float32))
        self.register_buffer("thresholds", torch.tensor(config.thresholds or (1.0,) * n, dtype=torch.float32))
        self.train(backbone.training)  # start in the backbone's mode (a new Module would be in train)

    @torch.no_grad()
    def _trace(self, input_shape: tuple[int, int, int]) -> tuple[list[int], int, list[int]]:
        """Check the chain reproduces the backbone, and read head widths and segment MACs."""
        was = self.backbone.training
        self.backbone.eval()
        try:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(2, *input_shape, generator=gen)
            try:
                ref = self.backbone(x)
            except RuntimeError as err:
                raise ConfigError(
                    f"the backbone rejects input of shape {tuple(input_shape)} ({err}); set input_shape to (C, H, W) of your data"
                ) from None
            h, channels, macs = x, [], []
            for i, seg in enumerate(self._segments):
                macs.append(count_macs(Chain(seg).eval(), h[:1]))  # eval: mac_profile restores the mode
                h = run_units(seg, h)
                if i < len(self._segments) - 1:
                    if h.dim() != 4:
                        raise ConfigError(
                            f"exit position {self.exit_names[i]} gives a {h.dim()}-D output; heads attach to conv feature maps (N, C, H, W)"
                        )
                    channels.append(int(h.shape[1]))
            if h.shape != ref.shape or not torch.allclose(h, ref, atol=1e-4, rtol=1e-4):
                raise UnsupportedModelError(
                    f"{type(self.backbone).__name__}.forward is not a plain chain of its children; "
                    "wrap it in nn.Sequential or use a zoo model (vgg-small, resnet20, lenet5)"
                )
        finally:
            self.backbone.train(was)
        return channels, int(ref.shape[1]), macs

    def refresh_segments(self) -> None:
        """Re-read the segment modules by name (after modules of the backbone were replaced)."""
        modules = dict(self.backbone.named_modules())
        self._segments = [[modules[n] for n in names] for names in self._segment_names]

    @property
    def num_exits(self) -> int:
        return len(self.heads)

    @property
    def segments(self) -> list[list[nn.Module]]:
        return self._segments

    def head_macs(self, exit_index: int, classes: int | None = None) -> int:
        """MACs of one head for a sample with ``classes`` candidate classes (default all K)."""
        return self.head_in_features[exit_index] * (self.num_classes if classes is None else classes)

    def set_betas(self, values: Any) -> None:
        values = [float(v) for v in values]
        check_unit_values("betas", values)
        if len(values) != self.num_exits:
            raise ConfigError(f"got {len(values)} betas for {self.num_exits} exits; give one per exit")
        self.betas.copy_(torch.tensor(values))

    def set_thresholds(self, values: Any) -> None:
        values = [float(v) for v in values]
        check_unit_values("thresholds", values)
        if len(values) != self.num_exits:
            raise ConfigError(f"got {len(values)} thresholds for {self.num_exits} exits; give one per exit")
        self.thresholds.copy_(torch.tensor(values))

    def outputs(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every head's logits and the final logits for every sample (no skipping)."""
        h, heads = x, []
        for i, seg in enumerate(self._segments[:-1]):
            h = run_units(seg, h)
            heads.append(self.heads[i](h))
        return heads, run_units(self._segments[-1], h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.outputs(x)[1]
        return skipping_forward(self, x).scores

    def describe(self) -> dict[str, Any]:
        """Positions, head widths and MACs per image (backbone up to each exit; heads with all K)."""
        cum, rows = 0, []
        for i, name in enumerate(self.exit_names):
            cum += self.segment_macs[i]
            rows.append(
                {
                    "exit": name,
                    "head_in_features": self.head_in_features[i],
                    "backbone_macs_to_here": cum,
                    "head_macs_all_classes": self.head_macs(i),  # per head (hybrid: two)
                }
            )
        return {
            "exits": rows,
            "backbone_macs": sum(self.segment_macs),
            "head_params": sum(p.numel() for p in self.heads.parameters()),
            "num_classes": self.num_classes,
        }


def _check_positions(model: nn.Module, exits: tuple[str, ...], unit_names: list[str]) -> None:
    modules = dict(model.named_modules())
    valid = unit_names[:-1]
    for e in exits:
        if e in unit_names[:-1]:
            continue
        if e == unit_names[-1]:
            raise ConfigError(f"exit position {e!r} is the network's last layer; choose one of {valid}")
        if e in modules:
            parent = next((n for n in unit_names if e.startswith(n + ".")), "?")
            raise ConfigError(
                f"exit position {e!r} lies inside {parent!r}, whose forward is not a plain sequence; "
                f"choose one of {valid} (or a stage of a Sequential)"
            )
        raise ConfigError(
            f"exit position {e!r} does not exist in {type(model).__name__}; choose one of {valid}"
        )


TRANSFORM = "early_exit"  # the model_transform that wraps a backbone in its exit heads


@plugins.register("model_transform", TRANSFORM)
def wrap_backbone(backbone: nn.Module, config: dict[str, Any]) -> EarlyExitModel:
    """Rebuild the wrapper around a loaded backbone from the config its checkpoint recorded."""
    return EarlyExitModel(backbone, Config.from_dict(config))


def save_early_exit(
    folder: str | Path, model: EarlyExitModel, spec: ModelSpec | None, meta: dict[str, Any] | None = None
) -> Path:
    """safetensors (backbone + heads + β/thresholds) and checkpoint.json (backbone spec, and the
    ``early_exit`` transform with the config, exits and per-exit values)."""
    config = model.config.to_dict()
    config.update(
        exits=list(model.exit_names),
        betas=[round(float(b), 6) for b in model.betas],
        thresholds=[round(float(t), 6) for t in model.thresholds],
    )
    return save_checkpoint(folder, model, spec, meta, transforms=[{"name": TRANSFORM, "config": config}])


def load_early_exit(
    folder: str | Path, backbone: nn.Module | None = None
) -> tuple[EarlyExitModel, ModelSpec | None, dict[str, Any]]:
    """``core.checkpoint.load_checkpoint`` for a checkpoint with exit heads, with errors that say
    what to do when it has none (``backbone``: a fresh instance when the checkpoint has no spec)."""
    folder = Path(folder)
    if not folder.exists():
        raise CheckpointError(
            f"checkpoint {folder} does not exist; create one with `frugalnn early-exit train`"
        )
    config = transform_config(read_meta(folder), TRANSFORM)
    if config is None:
        raise CheckpointError(
            f"{folder} is a plain model checkpoint without exit heads; attach and train heads first "
            "(attach_exits, train_heads, save_early_exit; or `frugalnn early-exit train`)"
        )
    if config.get("mode") == "hybrid" and "heads.0.conf.weight" not in tensor_names(folder / MODEL_FILE):
        # Hybrid checkpoints written before the two-head hybrid (one shared sigmoid head per exit) hold
        # no softmax head: the generic shape error would not say what to do.
        raise CheckpointError(
            f"{folder} is a hybrid early-exit checkpoint from an older frugalnn with one head per exit; "
            f"the hybrid now has two (exclusion + confidence): re-train the heads with "
            f"`frugalnn early-exit train --mode hybrid --model BACKBONE`"
        )
    model, spec, meta = load_checkpoint(folder, backbone)
    return model, spec, meta
