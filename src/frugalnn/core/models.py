"""The model zoo: MLP, LeNet-5, VGG-small and ResNet-20 (CIFAR-style), for grey 28x28 and colour 32x32.

Each model is built from a ``ModelSpec`` (name + keyword options), which checkpoints store so a
model can be rebuilt without its caller knowing the class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from frugalnn.errors import ConfigError

MODEL_NAMES = ("mlp", "lenet5", "vgg-small", "resnet20")


@dataclass
class ModelSpec:
    name: str
    num_classes: int = 10
    in_channels: int = 1
    image_size: int = 28
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(**data)


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: tuple[int, ...] = (256, 128)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun 1998) with ReLU and max-pooling; padding keeps 28x28 input on the 32x32 geometry."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        pad = 2 if image_size == 28 else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class VGGSmall(nn.Module):
    """VGG-style: three stages of two 3x3 conv-BN-ReLU, max-pool after each, then one linear layer.

    ``stages`` are the channel widths (default 32, 64, 128: about 29 M MACs on 28x28).
    ``blocks`` exposes the stage boundaries, where early-exit heads attach.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, stages: tuple[int, ...] = (32, 64, 128), **_: Any
    ):
        super().__init__()
        blocks = []
        width = in_channels
        for out in stages:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(width, out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(out, out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
            )
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(x)), 1))


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016) with a 1x1-conv projection shortcut when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """CIFAR-style ResNet-(6n+2): a 3x3 stem, three stages of n basic blocks (widths w, 2w, 4w).

    ResNet-20 is n = 3, w = 16: 0.27 M parameters, about 40.8 M MACs on 32x32 input.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, depth: int = 20, width: int = 16, **_: Any
    ):
        super().__init__()
        if (depth - 2) % 6:
            raise ConfigError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        layers, planes = [], width
        for stage, stride in enumerate((1, 2, 2)):
            out = width * 2**stage
            blocks = [BasicBlock(planes, out, stride)] + [BasicBlock(out, out) for _ in range(n - 1)]
            layers.append(nn.Sequential(*blocks))
            planes = out
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def build_model(spec: ModelSpec | str, **overrides: Any) -> nn.Module:
    """Build a zoo model from a spec (or a name plus keyword overrides of the spec's fields)."""
    if isinstance(spec, str):
        fields = {k: overrides.pop(k) for k in ("num_classes", "in_channels", "image_size") if k in overrides}
        spec = ModelSpec(spec, **fields, options=overrides)
    opts = dict(spec.options)
    if spec.num_classes < 2 or spec.in_channels < 1 or spec.image_size < 8:
        raise ConfigError(f"impossible model shape: {spec}; need >=2 classes, >=1 channel, images >=8 px")
    if spec.name == "mlp":
        hidden = tuple(opts.pop("hidden", (256, 128)))
        return MLP(spec.in_channels * spec.image_size**2, spec.num_classes, hidden)
    if spec.name == "lenet5":
        if spec.image_size < 28:
            raise ConfigError(
                f"LeNet-5 needs images of at least 28 px, got {spec.image_size}; use vgg-small or mlp"
            )
        return LeNet5(spec.in_channels, spec.num_classes, spec.image_size)
    if spec.name == "vgg-small":
        return VGGSmall(spec.in_channels, spec.num_classes, tuple(opts.pop("stages", (32, 64, 128))))
    if spec.name in ("resnet20", "resnet32", "resnet44", "resnet56"):
        depth = int(spec.name.removeprefix("resnet"))
        return ResNetCifar(spec.in_channels, spec.num_classes, depth, int(opts.pop("width", 16)))
    raise ConfigError(
        f"unknown model {spec.name!r}; choose one of {', '.join(MODEL_NAMES)} (or resnet32/44/56)"
    )
