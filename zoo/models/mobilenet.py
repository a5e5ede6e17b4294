"""MobileNet V1, V2 and V3.

Papers:
    "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications", Howard, Zhu, Chen,
    Kalenichenko, Wang, Weyand, Andreetto and Adam, 2017 (V1: depthwise separable convolutions).
    "MobileNetV2: Inverted Residuals and Linear Bottlenecks", Sandler, Howard, Zhu, Zhmoginov and Chen, 2018.
    "Searching for MobileNetV3", Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le and
    Adam, 2019 (searched blocks, squeeze-excite with a hard-sigmoid gate, h-swish).

V1 stacks depthwise 3x3 + pointwise 1x1 pairs. V2 makes the block an inverted residual: expand 6x with a 1x1,
filter depthwise, project back linearly (no activation on the thin output) and add the input. V3 keeps that
block, adds squeeze-excite to some and h-swish to the later ones. The block lives in ``zoo.models.layers``
(EfficientNet uses it too). Module names follow torchvision's, so its state dicts load through
``convert_weights``; parameter counts equal torchvision's ``mobilenet_v2`` / ``mobilenet_v3_*`` and timm's
``mobilenetv1_100`` (which has the paper's V1 layout).

Small inputs: the ImageNet layouts downsample 32x (a 32 px image would end at 1 x 1). Below ``SMALL_INPUT``
pixels the stem convolution runs at stride 1 (output stride 16: 32 px ends at 2 x 2); ``output_stride=8``
also keeps the first downsampling block at stride 1 (32 px ends at 4 x 4, as CIFAR MobileNets do, at 4x the
compute). The parameters are the same in every layout.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn

from zoo.features import StagedFeatures, features_at_downsampling
from zoo.hookspecs import hookimpl
from zoo.models.family import Family, merge_variant
from zoo.models.layers import (
    SMALL_INPUT,
    ConvNormAct,
    InvertedResidual,
    init_weights_like_torchvision,
    make_divisible,
    reduce_strides,
    resolve_output_stride,
)
from zoo.specs import Reported

# V1: (out_chs, stride) of the 13 depthwise separable blocks after a 32-channel stride-2 stem.
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))
# V2: (expansion t, out_chs c, repeats n, first stride s), Table 2 of the paper; 32-channel stem, 1280 head.
V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# V3: (kernel, exp_chs, out_chs, squeeze-excite, activation, stride), Tables 1 and 2; 16-channel h-swish stem.
V3_LARGE = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
)
V3_SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)


# ---------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------


class DepthwiseSeparable(nn.Module):
    """MobileNetV1's block: 3x3 depthwise conv -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = ConvNormAct(in_chs, in_chs, 3, stride, groups=in_chs)  # N x in x H/stride x W/stride
        self.pw = ConvNormAct(in_chs, out_chs, 1)  # N x out x H/stride x W/stride
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


# ---------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------


class MobileNet(StagedFeatures, nn.Module):
    """MobileNet V1/V2/V3: ``features`` (stem, blocks, V2/V3's 1x1 head conv) -> global average pool ->
    (V3: Linear + h-swish) -> dropout -> ``classifier``.

    Args:
        version: ``"v1"``, ``"v2"`` or ``"v3"``.
        blocks: the version's block table (``V1_BLOCKS``, ``V2_BLOCKS``, ``V3_LARGE``, ``V3_SMALL``).
        head_chs: V1 ignores it; V2's last conv width; V3's hidden Linear width (both scaled by ``width_mult``
            as torchvision does: V2 only when ``width_mult > 1``).
        drop_path_rate: stochastic depth of the last residual block, earlier ones proportionally less (V2/V3;
            off by default, as in the papers).
        width_mult: channel multiplier (the paper's alpha), every width rounded to a multiple of 8.
        output_stride: total downsampling, 8, 16 or 32; ``None`` picks 32, or 16 below ``SMALL_INPUT`` px.
    """

    def __init__(
        self,
        version: str,
        blocks: tuple,
        head_chs: int,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        width_mult: float = 1.0,
        output_stride: int | None = None,
        name: str = "mobilenet",
    ) -> None:
        super().__init__()
        output_stride = resolve_output_stride(name, img_size, output_stride)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.output_stride = output_stride

        def ch(c: float) -> int:
            return make_divisible(c * width_mult, 8)

        if version == "v1":
            strides = [2] + [s for _, s in blocks]
        elif version == "v2":
            strides = [2] + [s if i == 0 else 1 for _, _, n, s in blocks for i in range(n)]
        else:
            strides = [2] + [row[-1] for row in blocks]
        num_blocks = len(strides) - 1
        layout, strides = strides, reduce_strides(strides, output_stride)  # the ImageNet layout, and this one's
        strides_left = iter(strides)

        def drop_path(block_id: int) -> float:
            return drop_path_rate * block_id / num_blocks

        bn = dict(bn_eps=1e-3, bn_momentum=0.01) if version == "v3" else {}
        stem_chs = ch(16) if version == "v3" else ch(32)
        stem_act = {"v1": "relu", "v2": "relu6", "v3": "hardswish"}[version]
        layers: list[nn.Module] = [ConvNormAct(in_chans, stem_chs, 3, next(strides_left), act=stem_act, **bn)]
        # N x stem x H/2 x W/2 (H x W in the small-input layouts)
        chs = stem_chs
        if version == "v1":
            for out, _ in blocks:
                layers.append(DepthwiseSeparable(chs, ch(out), next(strides_left)))
                chs = ch(out)
        elif version == "v2":
            for t, c, n, _ in blocks:
                for _ in range(n):
                    out = ch(c)
                    exp = int(round(chs * t))
                    dp = drop_path(len(layers) - 1)  # layers holds the stem and the blocks so far
                    layers.append(InvertedResidual(chs, out, exp_chs=exp, stride=next(strides_left), drop_path=dp))
                    chs = out
            head_chs = make_divisible(head_chs * max(1.0, width_mult), 8)
            layers.append(ConvNormAct(chs, head_chs, 1, act="relu6"))  # N x 1280 x H/32 x W/32
            chs = head_chs
        else:
            for k, exp, out, se, act, _ in blocks:
                exp, out = ch(exp), ch(out)
                se_chs = make_divisible(exp // 4, 8) if se else 0
                layers.append(
                    InvertedResidual(
                        chs, out, exp_chs=exp, kernel_size=k, stride=next(strides_left), act=act, se_chs=se_chs,
                        se_gate="hardsigmoid", drop_path=drop_path(len(layers) - 1), **bn,
                    )
                )  # fmt: skip
                chs = out
            layers.append(ConvNormAct(chs, 6 * chs, 1, act="hardswish", **bn))  # N x 6*C x H/32 x W/32
            chs = 6 * chs
        self.features = nn.Sequential(*layers)  # N x chs x H/os x W/os
        # feature points as timm's: the last layer before each downsampling of the ImageNet layout, and the last
        channels = [layer.out_channels for layer in layers]
        extra = [1] * (len(layers) - len(strides))  # V2/V3's 1x1 head conv
        self.feature_info = features_at_downsampling(strides + extra, channels, layout=layout + extra)

        if version == "v3":
            head_chs = ch(head_chs)
            self.pre_logits = nn.Sequential(nn.Linear(chs, head_chs), nn.Hardswish(inplace=True))  # N x head_chs
            chs = head_chs
        else:
            self.pre_logits = nn.Identity()
        self.num_features = chs
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(chs, num_classes) if num_classes > 0 else nn.Identity()
        init_weights_like_torchvision(self, linear="normal")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x C x H/os x W/os

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x.mean((2, 3)))  # N x num_features
        if pre_logits:
            return x
        return self.classifier(self.dropout(x))  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: the stem, each block, the 1x1 head conv; V3's hidden Linear and the
        classifier last."""
        return dict(stem=r"^features\.0\.", blocks=r"^features\.(\d+)\.")

    def no_weight_decay(self) -> set[str]:
        return set()


# ---------------------------------------------------------------------------------------------------------
# torchvision weights
# ---------------------------------------------------------------------------------------------------------

_TV_V2_BLOCK = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$")


def convert_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map torchvision's ``mobilenet_v2`` / ``mobilenet_v3_*`` state dict onto zoo's names.

    Only the head and V2's block differ: torchvision's V2 block ends in a bare ``Conv2d`` and ``BatchNorm2d``
    (``conv.k``, ``conv.k+1``) where zoo's has one ``ConvNormAct`` (``block.k.0``, ``block.k.1``); V3's hidden
    ``classifier.0`` is zoo's ``pre_logits.0`` and its ``classifier.3`` zoo's ``classifier``.
    """
    is_v3 = "classifier.3.weight" in state_dict
    last_bn: dict[str, int] = {}  # V2 block -> index of its final BatchNorm2d
    for k in state_dict:
        m = _TV_V2_BLOCK.match(k)
        if m:
            last_bn[m[1]] = max(last_bn.get(m[1], 0), int(m[2]))
    out = {}
    for k, v in state_dict.items():
        m = _TV_V2_BLOCK.match(k)
        if m:
            block, i, rest = m[1], int(m[2]), m[3]
            last = last_bn[block]
            if i >= last - 1:  # the projection conv and its BatchNorm become one ConvNormAct
                i, rest = last - 1, f"{i - last + 1}.{rest}"
            k = f"features.{block}.block.{i}.{rest}"
        elif is_v3:
            k = k.replace("classifier.0.", "pre_logits.0.").replace("classifier.3.", "classifier.")
        else:
            k = k.replace("classifier.1.", "classifier.")
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------


FAMILY = Family(
    "mobilenet",
    MobileNet,
    input_size=(3, 224, 224),
    num_classes=1000,
    tags=("cnn", "mobile", "efficient"),
    convert_weights=convert_weights,
    notes=(
        f"Below {SMALL_INPUT} px the stem runs at stride 1 (output stride 16: 32 px ends at 2x2, same parameters); "
        "output_stride=8 also keeps the first downsampling block at stride 1 (4x4 at 32 px). Smallest img_size: the "
        "output stride. Keywords: width_mult, output_stride, drop_path_rate."
    ),
)
_V3 = dict(paper="Searching for MobileNetV3", year=2019, url="https://arxiv.org/abs/1905.02244")
# Table 3 of the MobileNetV3 paper: ImageNet top-1 of the 1.0 multiplier models (floating point).
_V3_TABLE = "Howard et al. 2019, Table 3"
_TORCHVISION = "Parameters equal torchvision's model of the same name; convert_weights loads its state dicts."


def _create_mobilenet(variant: str, kwargs: dict, *, version: str, blocks: tuple, head_chs: int, **cfg) -> MobileNet:
    """MobileNet ``version`` with the ``blocks`` table and a ``head_chs``-wide head (V2's last conv, V3's hidden
    Linear); ``cfg`` holds the variant's defaults for the keywords (the user's ``kwargs`` win)."""
    return MobileNet(version, blocks, head_chs, name=variant, **merge_variant(kwargs, **cfg))


@FAMILY.variant(
    paper="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
    year=2017,
    url="https://arxiv.org/abs/1704.04861",
    notes="Parameters equal timm/mobilenetv1_100's (the paper's layout).",
    convert_weights=None,
    # Table 8 ("comparison to popular models"): 1.0 MobileNet-224, 569M mult-adds, 4.2M parameters.
    reported=(Reported("ImageNet-1k", "top-1", 70.6, "Howard et al. 2017, Table 8 (1.0 MobileNet-224)"),),
)
def mobilenet_v1(**kwargs) -> MobileNet:
    """MobileNetV1 (Howard et al., 2017): 13 depthwise separable blocks, 32 -> 1024 channels."""
    return _create_mobilenet("mobilenet_v1", kwargs, version="v1", blocks=V1_BLOCKS, head_chs=1024, drop_rate=0.0)


@FAMILY.variant(
    paper="MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    year=2018,
    url="https://arxiv.org/abs/1801.04381",
    notes=_TORCHVISION,
    twin="mobilenet_v2",
    # Table 4: MobileNetV2 (multiplier 1.0, 224 px), 300M multiply-adds, 3.4M parameters.
    reported=(Reported("ImageNet-1k", "top-1", 72.0, "Sandler et al. 2018, Table 4 (MobileNetV2)"),),
)
def mobilenet_v2(**kwargs) -> MobileNet:
    """MobileNetV2 (Sandler et al., 2018): 17 inverted residuals with linear bottlenecks, 1280-channel head."""
    return _create_mobilenet("mobilenet_v2", kwargs, version="v2", blocks=V2_BLOCKS, head_chs=1280, drop_rate=0.2)


@FAMILY.variant(
    **_V3,
    notes=_TORCHVISION,
    twin="mobilenet_v3_small",
    reported=(Reported("ImageNet-1k", "top-1", 67.4, f"{_V3_TABLE} (MobileNetV3-Small 1.0)"),),
)
def mobilenet_v3_small(**kwargs) -> MobileNet:
    """MobileNetV3-Small (Howard et al., 2019): 11 searched blocks, SE and h-swish, 1024-wide hidden head."""
    return _create_mobilenet("mobilenet_v3_small", kwargs, version="v3", blocks=V3_SMALL, head_chs=1024, drop_rate=0.2)


@FAMILY.variant(
    **_V3,
    notes=_TORCHVISION,
    twin="mobilenet_v3_large",
    reported=(Reported("ImageNet-1k", "top-1", 75.2, f"{_V3_TABLE} (MobileNetV3-Large 1.0)"),),
)
def mobilenet_v3_large(**kwargs) -> MobileNet:
    """MobileNetV3-Large (Howard et al., 2019): 15 searched blocks, SE and h-swish, 1280-wide hidden head."""
    return _create_mobilenet("mobilenet_v3_large", kwargs, version="v3", blocks=V3_LARGE, head_chs=1280, drop_rate=0.2)


@hookimpl
def register_models(register):
    FAMILY.register_all(register)
