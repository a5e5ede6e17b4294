"""EfficientNet B0-B7.

Paper: "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", Tan and Le, 2019.

B0 is a searched network of MBConv blocks (MobileNetV2's inverted residual with squeeze-excite and SiLU, the paper's
"swish"). B1-B7 are not searched again: compound scaling multiplies every width by ``w`` (rounded to a multiple of
8) and every stage's depth by ``d`` (rounded up), and trains at a larger resolution ``r``. Here the eight variants
are generated from ``EFFICIENTNET_B0`` (Table 1 of the paper) and each builder's (w, d, r, dropout), not written out
eight times. Structure as torchvision's (stochastic depth rising linearly to ``drop_path_rate=0.2``, module names
``features.i.j.block.k``; batch norm as PyTorch's default, except B5-B7 which keep TensorFlow's eps 1e-3 and
momentum 0.01 as torchvision's do): parameter counts equal torchvision's ``efficientnet_b0`` ... ``efficientnet_b7``
and its state dicts load through ``convert_weights``.

Small inputs: the ImageNet layout downsamples 32x; below ``SMALL_INPUT`` pixels the stem runs at stride 1
(output stride 16: 32 px ends at 2 x 2); ``output_stride=8`` also keeps stage 2 at stride 1 (4 x 4 at 32 px).
The parameters are the same in every layout.
"""

from __future__ import annotations

import math

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

PAPER = "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"
URL = "https://arxiv.org/abs/1905.11946"

# B0, Table 1: (expansion, kernel, first stride, in_chs, out_chs, layers) per stage, after a 32-channel stem
EFFICIENTNET_B0 = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


class EfficientNet(StagedFeatures, nn.Module):
    """EfficientNet: stem -> 7 stages of MBConv -> 1x1 head conv (``features``) -> average pool -> dropout ->
    ``classifier``.

    Args:
        width_mult: the width coefficient ``w`` (channels rounded to a multiple of 8).
        depth_mult: the depth coefficient ``d`` (each stage's layers rounded up).
        drop_path_rate: stochastic depth of the last block; earlier blocks drop proportionally less.
        output_stride: total downsampling, 8, 16 or 32; ``None`` picks 32, or 16 below ``SMALL_INPUT`` px.
        bn_eps, bn_momentum: batch-norm settings (B5-B7 use TensorFlow's 1e-3 and 0.01).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.2,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        output_stride: int | None = None,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        name: str = "efficientnet",
    ) -> None:
        super().__init__()
        output_stride = resolve_output_stride(name, img_size, output_stride)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.output_stride = output_stride

        def ch(c: int) -> int:
            return make_divisible(c * width_mult, 8)

        stages = [
            (t, k, s, ch(c_in), ch(c_out), math.ceil(n * depth_mult)) for t, k, s, c_in, c_out, n in EFFICIENTNET_B0
        ]
        layout = [2] + [s if i == 0 else 1 for (_, _, s, _, _, n) in stages for i in range(n)]
        block_strides = reduce_strides(layout, output_stride)
        strides = iter(block_strides)
        total_blocks = sum(n for *_, n in stages)
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)

        stem_chs = stages[0][3]
        layers: list[nn.Module] = [ConvNormAct(in_chans, stem_chs, 3, next(strides), act="silu", **bn)]
        # N x stem x H/2 x W/2 (H x W in the small-input layouts)
        block_id = 0
        for t, k, _, c_in, c_out, n in stages:
            stage = []
            for i in range(n):
                chs = c_in if i == 0 else c_out
                stage.append(
                    InvertedResidual(
                        chs, c_out, exp_chs=make_divisible(chs * t, 8), kernel_size=k, stride=next(strides),
                        act="silu", se_chs=max(1, chs // 4), se_act="silu", se_gate="sigmoid",
                        drop_path=drop_path_rate * block_id / total_blocks, **bn,
                    )
                )  # fmt: skip
                block_id += 1
            layers.append(nn.Sequential(*stage))  # N x c_out x H/s x W/s
        self.num_features = 4 * stages[-1][4]
        layers.append(ConvNormAct(stages[-1][4], self.num_features, 1, act="silu", **bn))  # N x 4*C x H/32 x W/32
        self.features = nn.Sequential(*layers)
        # feature points as timm's: the last stage before each downsampling of the ImageNet layout, and the head
        # conv; features' children are the stem, the 7 stages and the head conv, so take each one's first stride
        firsts = [0] + [sum(n for *_, n in stages[:i]) + 1 for i in range(len(stages))]
        channels = [stem_chs] + [c_out for *_, c_out, _ in stages] + [self.num_features]
        self.feature_info = features_at_downsampling(
            [block_strides[i] for i in firsts] + [1], channels, layout=[layout[i] for i in firsts] + [1]
        )
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_weights_like_torchvision(self, linear="uniform")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x num_features x H/os x W/os

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))  # N x num_features
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
        """timm's parameter groups: the stem, each block (each stage if ``coarse``), the head conv, then the
        classifier."""
        return dict(stem=r"^features\.0\.", blocks=r"^features\.(\d+)\." if coarse else r"^features\.(\d+)\.(\d+)\.")

    def no_weight_decay(self) -> set[str]:
        return set()


def convert_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map torchvision's ``efficientnet_b*`` state dict onto zoo's names: only the classifier differs
    (torchvision's ``classifier`` is ``Dropout, Linear``, so its Linear is ``classifier.1``)."""
    return {k.replace("classifier.1.", "classifier."): v for k, v in state_dict.items()}


FAMILY = Family(
    "efficientnet",
    EfficientNet,
    paper=PAPER,
    year=2019,
    url=URL,
    num_classes=1000,
    tags=("cnn", "efficient", "compound-scaling"),
    convert_weights=convert_weights,
    notes=(
        "Parameters equal torchvision's model of the same name; convert_weights loads its state dicts. Below "
        f"{SMALL_INPUT} px the stem runs at stride 1 (output "
        "stride 16: 32 px ends at 2x2, same parameters); output_stride=8 also keeps stage 2 at stride 1 (4x4 at 32 "
        "px). Smallest img_size: the output stride. Dropout before the classifier: 0.2 (B0, B1), 0.3 (B2, B3), "
        "0.4 (B4, B5), 0.5 (B6, B7); stochastic depth drop_path_rate=0.2. Keywords: width_mult, depth_mult, "
        "drop_path_rate, output_stride."
    ),
)


def _table2(top1: float) -> tuple[Reported, ...]:
    """The variant's ImageNet top-1 in Table 2 of the paper (single model, single crop)."""
    return (Reported("ImageNet-1k", "top-1", top1, "Tan & Le 2019, Table 2"),)


def _create_efficientnet(variant: str, kwargs: dict, *, tf_batchnorm: bool = False, **scaling) -> EfficientNet:
    """B0 scaled by ``scaling`` (``width_mult`` w, ``depth_mult`` d, ``img_size`` r and the classifier's
    ``drop_rate``); ``tf_batchnorm``: TensorFlow's eps 1e-3 and momentum 0.01, kept by torchvision's B5-B7, which
    were ported from TensorFlow checkpoints."""
    if tf_batchnorm:
        scaling.update(bn_eps=1e-3, bn_momentum=0.01)
    return EfficientNet(name=variant, **merge_variant(kwargs, **scaling))


@FAMILY.variant(input_size=(3, 224, 224), twin="efficientnet_b0", reported=_table2(77.1))
def efficientnet_b0(**kwargs) -> EfficientNet:
    """EfficientNet-B0 (Tan & Le, 2019): the searched base network, 224 px."""
    return _create_efficientnet("efficientnet_b0", kwargs, width_mult=1.0, depth_mult=1.0, img_size=224, drop_rate=0.2)


@FAMILY.variant(input_size=(3, 240, 240), twin="efficientnet_b1", reported=_table2(79.1))
def efficientnet_b1(**kwargs) -> EfficientNet:
    """EfficientNet-B1 (Tan & Le, 2019): B0 scaled by w=1.0, d=1.1, 240 px."""
    return _create_efficientnet("efficientnet_b1", kwargs, width_mult=1.0, depth_mult=1.1, img_size=240, drop_rate=0.2)


@FAMILY.variant(input_size=(3, 260, 260), twin="efficientnet_b2", reported=_table2(80.1))
def efficientnet_b2(**kwargs) -> EfficientNet:
    """EfficientNet-B2 (Tan & Le, 2019): B0 scaled by w=1.1, d=1.2, 260 px."""
    return _create_efficientnet("efficientnet_b2", kwargs, width_mult=1.1, depth_mult=1.2, img_size=260, drop_rate=0.3)


@FAMILY.variant(input_size=(3, 300, 300), twin="efficientnet_b3", reported=_table2(81.6))
def efficientnet_b3(**kwargs) -> EfficientNet:
    """EfficientNet-B3 (Tan & Le, 2019): B0 scaled by w=1.2, d=1.4, 300 px."""
    return _create_efficientnet("efficientnet_b3", kwargs, width_mult=1.2, depth_mult=1.4, img_size=300, drop_rate=0.3)


@FAMILY.variant(input_size=(3, 380, 380), twin="efficientnet_b4", reported=_table2(82.9))
def efficientnet_b4(**kwargs) -> EfficientNet:
    """EfficientNet-B4 (Tan & Le, 2019): B0 scaled by w=1.4, d=1.8, 380 px."""
    return _create_efficientnet("efficientnet_b4", kwargs, width_mult=1.4, depth_mult=1.8, img_size=380, drop_rate=0.4)


@FAMILY.variant(input_size=(3, 456, 456), twin="efficientnet_b5", reported=_table2(83.6))
def efficientnet_b5(**kwargs) -> EfficientNet:
    """EfficientNet-B5 (Tan & Le, 2019): B0 scaled by w=1.6, d=2.2, 456 px."""
    return _create_efficientnet(
        "efficientnet_b5", kwargs, width_mult=1.6, depth_mult=2.2, img_size=456, drop_rate=0.4, tf_batchnorm=True
    )


@FAMILY.variant(input_size=(3, 528, 528), twin="efficientnet_b6", reported=_table2(84.0))
def efficientnet_b6(**kwargs) -> EfficientNet:
    """EfficientNet-B6 (Tan & Le, 2019): B0 scaled by w=1.8, d=2.6, 528 px."""
    return _create_efficientnet(
        "efficientnet_b6", kwargs, width_mult=1.8, depth_mult=2.6, img_size=528, drop_rate=0.5, tf_batchnorm=True
    )


@FAMILY.variant(input_size=(3, 600, 600), twin="efficientnet_b7", reported=_table2(84.3))
def efficientnet_b7(**kwargs) -> EfficientNet:
    """EfficientNet-B7 (Tan & Le, 2019): B0 scaled by w=2.0, d=3.1, 600 px."""
    return _create_efficientnet(
        "efficientnet_b7", kwargs, width_mult=2.0, depth_mult=3.1, img_size=600, drop_rate=0.5, tf_batchnorm=True
    )


@hookimpl
def register_models(register):
    FAMILY.register_all(register)
