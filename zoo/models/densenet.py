"""DenseNet.

Paper: "Densely Connected Convolutional Networks", Huang, Liu, van der Maaten and Weinberger, 2017 (CVPR;
arXiv 2016).

Inside a dense block every layer receives the concatenation of all earlier feature maps of the block and adds
``growth_rate`` (the paper's k) new ones. DenseNet-BC layers are a bottleneck (BN-ReLU-1x1 conv to 4k channels,
BN-ReLU-3x3 conv to k channels); transitions between blocks halve the channels (compression 0.5) with a 1x1
conv and halve the resolution with a 2x2 average pool. The ImageNet models (Table 1) have four blocks after a
7x7 stride-2 conv and a max-pool; module names follow torchvision's, so parameters equal torchvision's
``densenet121/161/169/201`` and its state dicts (including the legacy ``norm.1`` keys) load through
``convert_weights``.

``densenet_bc_100_k12`` is the paper's CIFAR model (Table 2): depth 100, k = 12, three blocks of 16 bottleneck
layers, a 3x3 stem conv of 2k channels, no stem pooling; 32x32 inputs and 10 classes by default.

Small inputs: below ``SMALL_INPUT`` px every DenseNet uses the CIFAR stem (3x3 stride-1 conv, no max-pool), so
a 32 px image enters the first block at 32 x 32 and leaves the fourth at 4 x 4; from ``SMALL_INPUT`` px up
every DenseNet, the CIFAR one included, uses the ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max-pool).
The blocks are the same in both layouts; ``small_stem=True/False`` picks one explicitly.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from zoo.features import MATCH_PREV_GROUP, StagedFeatures
from zoo.hookspecs import hookimpl
from zoo.models.family import Family, merge_variant
from zoo.models.layers import SMALL_INPUT, choose_stem
from zoo.specs import Reported

PAPER = "Densely Connected Convolutional Networks"

URL = "https://arxiv.org/abs/1608.06993"


def min_img_size(num_blocks: int, small_stem: bool) -> int:
    """The smallest input that leaves at least 1 x 1 after the stem and the ``num_blocks - 1`` transitions."""
    size = 2 ** (num_blocks - 1)  # each transition's 2x2 average pool floors the size in half
    if small_stem:
        return size
    # undo the max-pool (3x3, stride 2, padding 1) and the conv (7x7, stride 2, padding 3): out = (in - 1) // 2 + 1
    return 2 * (2 * size - 1) - 1


# ---------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------


class DenseLayer(nn.Module):
    """BN-ReLU-Conv(1x1, bn_size*k) -> BN-ReLU-Conv(3x3, k) on the concatenation of all earlier feature maps.

    Args:
        memory_efficient: recompute the concatenation and the bottleneck in backward instead of storing them
            (Pleiss et al., 2017): less memory, slower.
    """

    def __init__(
        self, in_chs: int, growth_rate: int, bn_size: int, drop_rate: float = 0.0, memory_efficient: bool = False
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_chs)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_chs, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def bottleneck(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)  # N x (in_chs) x H x W
        return self.conv1(self.relu1(self.norm1(x)))  # N x bn_size*k x H x W

    @staticmethod
    def any_requires_grad(features: list[torch.Tensor]) -> bool:
        for f in features:  # noqa: SIM110 (a loop, not any(...): torch.jit.script compiles no generator)
            if f.requires_grad:
                return True
        return False

    @torch.jit.unused  # checkpointing is for training: TorchScript compiles the plain path (as torchvision's)
    def checkpointed_bottleneck(self, features):
        # type: (List[Tensor]) -> Tensor
        return cp.checkpoint(lambda *f: self.bottleneck(list(f)), *features, use_reentrant=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and self.any_requires_grad(features):
            return self.new_features(self.checkpointed_bottleneck(features))
        return self.new_features(self.bottleneck(features))

    def new_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.relu2(self.norm2(x)))  # N x k x H x W
        return F.dropout(x, p=self.drop_rate, training=self.training) if self.drop_rate > 0 else x


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers: N x C x H x W -> N x (C + num_layers*k) x H x W."""

    def __init__(self, num_layers: int, in_chs: int, growth_rate: int, bn_size: int, **layer_kwargs) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_chs + i * growth_rate, growth_rate, bn_size, **layer_kwargs)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv(1x1) -> 2x2 average pool: N x C x H x W -> N x out_chs x H/2 x W/2."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_chs)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


# ---------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------


class DenseNet(StagedFeatures, nn.Module):
    """DenseNet-BC: ``features`` (stem, dense blocks with transitions between them, final BN) -> ReLU -> global
    average pool -> dropout -> ``classifier``.

    Args:
        growth_rate: k, the channels each dense layer adds.
        block_config: the number of layers in each dense block.
        num_init_features: the stem's output channels (2k in the paper).
        bn_size: bottleneck width in multiples of k (4 in the paper).
        compression: the transitions' channel factor (the paper's theta; 0.5 for DenseNet-BC).
        drop_rate: dropout before the classifier.
        layer_drop_rate: dropout after each dense layer (the paper's 0.2 on CIFAR without augmentation;
            torchvision's ``drop_rate``).
        memory_efficient: checkpoint each layer's bottleneck (less memory, slower backward).
        small_stem: ``True`` for the CIFAR stem (3x3 stride-1 conv, no max-pool), ``False`` for the ImageNet stem
            (7x7 stride-2 conv + max-pool); ``None`` picks it from ``img_size`` (CIFAR below ``SMALL_INPUT`` px).
    """

    def __init__(
        self,
        growth_rate: int,
        block_config: tuple[int, ...],
        num_init_features: int,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        drop_rate: float = 0.0,
        layer_drop_rate: float = 0.0,
        bn_size: int = 4,
        compression: float = 0.5,
        memory_efficient: bool = False,
        small_stem: bool | None = None,
        name: str = "densenet",
    ) -> None:
        super().__init__()
        min_size = {s: min_img_size(len(block_config), s) for s in (True, False)}
        small = choose_stem(name, img_size, small_stem, min_size, small_label="CIFAR")
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.small_stem = small

        if small:
            # the CIFAR stem of the paper's Table 2 (there with 2k channels, here with num_init_features)
            stem = [("conv0", nn.Conv2d(in_chans, num_init_features, 3, stride=1, padding=1, bias=False))]
        else:
            stem = [("conv0", nn.Conv2d(in_chans, num_init_features, 7, stride=2, padding=3, bias=False))]
        stem += [("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True))]
        if not small:
            stem.append(("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        self.features = nn.Sequential(OrderedDict(stem))  # N x 2k x H/4 x W/4 (H x W with the CIFAR stem)
        # feature points as timm's DenseNet: the stem before its pool, each dense block before its transition, the end
        reduction = 1 if small else 2
        self.feature_info = [dict(num_chs=num_init_features, reduction=reduction, module="features.relu0")]
        reduction *= 1 if small else 2

        chs = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(
                num_layers, chs, growth_rate, bn_size, drop_rate=layer_drop_rate, memory_efficient=memory_efficient
            )
            self.features.add_module(f"denseblock{i + 1}", block)
            chs += num_layers * growth_rate  # N x chs x h x w
            if i != len(block_config) - 1:
                self.feature_info.append(dict(num_chs=chs, reduction=reduction, module=f"features.denseblock{i + 1}"))
                out_chs = int(math.floor(chs * compression))
                self.features.add_module(f"transition{i + 1}", Transition(chs, out_chs))
                chs, reduction = out_chs, reduction * 2  # N x chs x h/2 x w/2
        self.features.add_module("norm5", nn.BatchNorm2d(chs))  # N x chs x H/32 x W/32 (ImageNet stem, 4 blocks)
        self.features.add_module("relu5", nn.ReLU())  # not in place: the output of norm5 stays readable (torch.fx)
        self.feature_info.append(dict(num_chs=chs, reduction=reduction, module="features.relu5"))
        self.num_features = chs
        self.classifier = nn.Linear(chs, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x num_features x h x w

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # N x num_features
        if pre_logits:
            return x
        return self.classifier(F.dropout(x, p=self.drop_rate, training=self.training))  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: the stem, then each dense layer with a transition (and the final norm) joining
        the layer before it (each dense block if ``coarse``); the classifier last."""
        blocks = r"^features\.(?:denseblock|transition)(\d+)" if coarse else [
            (r"^features\.denseblock(\d+)\.denselayer(\d+)\.", None),
            (r"^features\.transition(\d+)\.", MATCH_PREV_GROUP),
            (r"^features\.norm5\.", MATCH_PREV_GROUP),
        ]  # fmt: skip
        return dict(stem=r"^features\.(?:conv0|norm0)\.", blocks=blocks)

    def no_weight_decay(self) -> set[str]:
        return set()


# ---------------------------------------------------------------------------------------------------------
# torchvision weights
# ---------------------------------------------------------------------------------------------------------

# torchvision's old checkpoints name dense-layer modules 'norm.1', 'conv.2', ...; its loader renames them too
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_\w+|num_batches_\w+))$"
)


def convert_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision ``densenet*`` state dict onto zoo's names: they are the same, except the legacy
    ``denselayerN.norm.1.weight``-style keys of torchvision's published checkpoints, which become ``norm1``."""
    out = {}
    for k, v in state_dict.items():
        m = _LEGACY_KEY.match(k)
        out[m[1] + m[2] if m else k] = v
    return out


# ---------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------


FAMILY = Family(
    "densenet",
    DenseNet,
    paper=PAPER,
    year=2017,
    url=URL,
    input_size=(3, 224, 224),
    num_classes=1000,
    tags=("cnn", "dense"),
    convert_weights=convert_weights,
    notes=(
        "small_stem=True/False forces a layout. Keywords: layer_drop_rate (dropout after each dense layer), "
        "memory_efficient, small_stem."
    ),
)
_IMAGENET_NOTES = (
    "Parameters equal torchvision's model of the same name; convert_weights loads its state dicts (legacy 'norm.1' "
    f"keys too). Below {SMALL_INPUT} px the CIFAR stem (3x3 stride-1 conv, no max-pool; 32 px ends at 4x4). "
    f"Smallest img_size: {min_img_size(4, True)} (CIFAR stem), {min_img_size(4, False)} (ImageNet stem)."
)


# Table 3 of the paper: ImageNet validation error, single crop. DenseNet-161 (k=48) is torchvision's, not in the table.
_TABLE3 = "Huang et al. 2017, Table 3 (single crop)"


def _create_densenet(variant: str, kwargs: dict, *, growth_rate: int, block_config: tuple[int, ...], stem: int, **cfg):
    """DenseNet with growth rate k=``growth_rate``, ``block_config`` layers per dense block and a ``stem``-channel
    first convolution; ``cfg`` holds the variant's defaults for the keywords (the user's ``kwargs`` win)."""
    return DenseNet(growth_rate, block_config, stem, name=variant, **merge_variant(kwargs, **cfg))


@FAMILY.variant(
    notes=_IMAGENET_NOTES,
    twin="densenet121",
    reported=(
        Reported("ImageNet-1k", "top-1 error %", 25.02, _TABLE3),
        Reported("ImageNet-1k", "top-5 error %", 7.71, _TABLE3),
    ),
)
def densenet121(**kwargs) -> DenseNet:
    """DenseNet-121 (Huang et al., 2017): k=32, blocks (6, 12, 24, 16), 64-channel stem; 3x224x224."""
    return _create_densenet("densenet121", kwargs, growth_rate=32, block_config=(6, 12, 24, 16), stem=64)


@FAMILY.variant(notes=_IMAGENET_NOTES, twin="densenet161")
def densenet161(**kwargs) -> DenseNet:
    """DenseNet-161 (Huang et al., 2017): k=48, blocks (6, 12, 36, 24), 96-channel stem; 3x224x224."""
    return _create_densenet("densenet161", kwargs, growth_rate=48, block_config=(6, 12, 36, 24), stem=96)


@FAMILY.variant(
    notes=_IMAGENET_NOTES,
    twin="densenet169",
    reported=(
        Reported("ImageNet-1k", "top-1 error %", 23.80, _TABLE3),
        Reported("ImageNet-1k", "top-5 error %", 6.85, _TABLE3),
    ),
)
def densenet169(**kwargs) -> DenseNet:
    """DenseNet-169 (Huang et al., 2017): k=32, blocks (6, 12, 32, 32), 64-channel stem; 3x224x224."""
    return _create_densenet("densenet169", kwargs, growth_rate=32, block_config=(6, 12, 32, 32), stem=64)


@FAMILY.variant(
    notes=_IMAGENET_NOTES,
    twin="densenet201",
    reported=(
        Reported("ImageNet-1k", "top-1 error %", 22.58, _TABLE3),
        Reported("ImageNet-1k", "top-5 error %", 6.34, _TABLE3),
    ),
)
def densenet201(**kwargs) -> DenseNet:
    """DenseNet-201 (Huang et al., 2017): k=32, blocks (6, 12, 48, 32), 64-channel stem; 3x224x224."""
    return _create_densenet("densenet201", kwargs, growth_rate=32, block_config=(6, 12, 48, 32), stem=64)


@FAMILY.variant(
    input_size=(3, 32, 32),
    num_classes=10,
    tags=("cnn", "dense", "small"),
    description="The paper's CIFAR DenseNet-BC: depth 100, growth rate 12, three dense blocks, 0.8M params.",
    notes=(
        f"3x3 stride-1 stem of 2k=24 channels below {SMALL_INPUT} px; from {SMALL_INPUT} px up the ImageNet "
        "stem (7x7 stride-2 conv + max-pool), so large inputs stay affordable. Smallest img_size: "
        f"{min_img_size(3, True)} (CIFAR stem), {min_img_size(3, False)} (ImageNet stem)."
    ),
    convert_weights=None,
    # Table 2: error on CIFAR with the standard augmentation (mirroring, shifting), the columns C10+ and C100+.
    reported=(
        Reported("CIFAR-10", "test error %", 4.51, "Huang et al. 2017, Table 2 (DenseNet-BC L=100 k=12, C10+)"),
        Reported("CIFAR-100", "test error %", 22.27, "Huang et al. 2017, Table 2 (DenseNet-BC L=100 k=12, C100+)"),
    ),
)
def densenet_bc_100_k12(**kwargs) -> DenseNet:
    """DenseNet-BC (L=100, k=12) for CIFAR (Huang et al., 2017): 3 blocks of 16 layers, 3x3 stem; 3x32x32."""
    # depth 100 = 3 blocks x 16 layers x 2 convs + stem conv + 2 transition convs + classifier
    return _create_densenet(
        "densenet_bc_100_k12", kwargs, growth_rate=12, block_config=(16, 16, 16), stem=24, img_size=32, num_classes=10
    )


@hookimpl
def register_models(register):
    FAMILY.register_all(register)
