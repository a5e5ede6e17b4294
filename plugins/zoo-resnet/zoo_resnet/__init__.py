"""ResNets for CIFAR-10, as a zoo plugin.

Paper: "Deep Residual Learning for Image Recognition", He, Zhang, Ren and Sun, 2015 (section 4.2).

Three stages of 16, 32 and 64 channels with ``n`` basic blocks each (depth = 6n + 2), a 3x3 stem, global average
pooling and one fully connected layer. Shortcuts that change shape use the paper's option A: subsample by 2 and
pad the new channels with zeros, so shortcuts add no parameters (ResNet-20: 0.27M).
"""

from __future__ import annotations

import json
from importlib import resources

import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo

__version__ = "0.1.0"
PAPER = "Deep Residual Learning for Image Recognition"


class PadShortcut(nn.Module):
    """Option A shortcut: take every other pixel and zero-pad the added channels."""

    def __init__(self, out_chs: int) -> None:
        super().__init__()
        self.out_chs = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]  # N x C x H/2 x W/2
        pad = self.out_chs - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, pad // 2, pad - pad // 2))  # N x out_chs x H/2 x W/2


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, added to the shortcut."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.shortcut = PadShortcut(out_chs) if stride != 1 or in_chs != out_chs else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 images: stem -> 3 stages (16, 32, 64 channels) -> global pool -> fc."""

    def __init__(
        self, depth: int, num_classes: int = 10, in_chans: int = 3, img_size: int = 32, drop_rate: float = 0.0
    ):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        if img_size < 8:
            raise ValueError(f"resnet{depth} needs img_size >= 8 (got {img_size})")
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)
        )
        layers, in_chs = [], 16
        for i, chs in enumerate((16, 32, 64)):
            for j in range(n):
                layers.append(BasicBlock(in_chs, chs, stride=2 if i > 0 and j == 0 else 1))
                in_chs = chs
        self.layers = nn.Sequential(*layers)  # N x 64 x H/4 x W/4
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.mean((2, 3)))  # N x 64
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(64, num_classes)


def _create_resnet(depth: int, *, num_classes=10, in_chans=3, img_size=32, drop_rate=0.0) -> CifarResNet:
    return CifarResNet(depth, num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)


def resnet20(*, num_classes=10, in_chans=3, img_size=32, drop_rate=0.0) -> CifarResNet:
    """ResNet-20 for CIFAR (He et al., 2015): 3 x 3 basic blocks, 0.27M parameters."""
    return _create_resnet(20, num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)


def resnet32(*, num_classes=10, in_chans=3, img_size=32, drop_rate=0.0) -> CifarResNet:
    """ResNet-32 for CIFAR (He et al., 2015): 3 x 5 basic blocks."""
    return _create_resnet(32, num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)


def resnet44(*, num_classes=10, in_chans=3, img_size=32, drop_rate=0.0) -> CifarResNet:
    """ResNet-44 for CIFAR (He et al., 2015): 3 x 7 basic blocks."""
    return _create_resnet(44, num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)


def resnet56(*, num_classes=10, in_chans=3, img_size=32, drop_rate=0.0) -> CifarResNet:
    """ResNet-56 for CIFAR (He et al., 2015): 3 x 9 basic blocks."""
    return _create_resnet(56, num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)


def resnet110(*, num_classes=10, in_chans=3, img_size=32, drop_rate=0.0) -> CifarResNet:
    """ResNet-110 for CIFAR (He et al., 2015): 3 x 18 basic blocks."""
    return _create_resnet(110, num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)


@zoo.hookimpl
def register_models(register):
    for builder in (resnet20, resnet32, resnet44, resnet56, resnet110):
        register(
            builder.__name__,
            builder,
            family="resnet",
            paper=PAPER,
            year=2015,
            input_size=(3, 32, 32),
            num_classes=10,
            tags=("cnn", "residual", "cifar"),
            description=(builder.__doc__ or "").splitlines()[0],
            url="https://arxiv.org/abs/1512.03385",
        )


@zoo.hookimpl
def register_weights(register):
    """ResNet-20 trained on zoo's digits by ``make_weights.py``, shipped in this package: ``resnet20.digits``."""
    entry = resources.files(__name__) / "weights.json"
    if entry.is_file():
        register("resnet20", "digits", package=__name__, **json.loads(entry.read_text()))
