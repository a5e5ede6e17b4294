"""GoogLeNet (Inception v1).

Paper: "Going Deeper with Convolutions", Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke and
Rabinovich, 2014.

A stem of three convolutions, then nine Inception blocks, each running a 1x1, a 1x1 -> 3x3, a 1x1 -> "5x5" and
a 3x3 max-pool -> 1x1 branch side by side and concatenating them; global average pooling replaces the large
fully connected layers. During training two auxiliary classifiers on Inception 4a and 4d add gradient to the
middle of the network. This follows torchvision's ``googlenet`` (batch norm after every convolution, as its
ported weights have) so parameters equal torchvision's (6,624,904 at 1000 classes; 13,004,888 with
``aux_logits=True``) and its state dicts load through ``convert_weights``.

Small inputs: the ImageNet stem (7x7 stride-2 conv and two stride-2 max-pools) divides the image by 32. Below
``SMALL_INPUT`` px the first convolution is 3x3 at stride 1 and the first max-pool is dropped, as CIFAR
versions do: output stride 8, so a 32 px image reaches the Inception 3 blocks at 16 x 16 and ends at 4 x 4.
"""

from __future__ import annotations

from collections import namedtuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.features import StagedFeatures
from zoo.hookspecs import hookimpl
from zoo.models.family import Family
from zoo.models.layers import SMALL_INPUT, choose_stem
from zoo.specs import Reported

PAPER = "Going Deeper with Convolutions"
MIN_SIZE = {False: 15, True: 4}  # smallest img_size of the ImageNet and the small-input layouts

# Table 1 of the paper: (in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) of each Inception block.
INCEPTION_CFG = {
    "3a": (192, 64, 96, 128, 16, 32, 32),  # -> 256 channels
    "3b": (256, 128, 128, 192, 32, 96, 64),  # -> 480
    "4a": (480, 192, 96, 208, 16, 48, 64),  # -> 512
    "4b": (512, 160, 112, 224, 24, 64, 64),  # -> 512
    "4c": (512, 128, 128, 256, 24, 64, 64),  # -> 512
    "4d": (512, 112, 144, 288, 32, 64, 64),  # -> 528
    "4e": (528, 256, 160, 320, 32, 128, 128),  # -> 832
    "5a": (832, 256, 160, 320, 32, 128, 128),  # -> 832
    "5b": (832, 384, 192, 384, 48, 128, 128),  # -> 1024
}

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])
GoogLeNetOutputs.__doc__ = "What a GoogLeNet with auxiliary heads returns in training mode (torchvision's order)."


# ---------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d (eps 1e-3) -> ReLU; named ``conv`` and ``bn`` as in torchvision."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels: N x C x H x W -> N x (ch1x1+ch3x3+ch5x5+pool_proj) x H x W."""

    def __init__(
        self, in_chs: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_chs, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_chs, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        # Deliberate deviation: the paper's "5x5" branch is 3x3 here, as in torchvision (pytorch/vision#906):
        # its weights and parameter counts were made that way, and zoo keeps them loadable and equal.
        self.branch3 = nn.Sequential(BasicConv2d(in_chs, ch5x5red, 1), BasicConv2d(ch5x5red, ch5x5, 3, padding=1))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True), BasicConv2d(in_chs, pool_proj, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool -> 1x1 conv (128) -> fc 1024 -> dropout -> fc num_classes."""

    def __init__(self, in_chs: int, num_classes: int, drop_rate: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_chs, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.dropout = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # adaptive (the paper: 5x5 stride 3) so that any input size gives 4 x 4
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))  # N x 128 x 4 x 4
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)  # N x 1024
        return self.fc2(self.dropout(x))  # N x num_classes


# ---------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------


class GoogLeNet(StagedFeatures, nn.Module):
    """GoogLeNet: stem -> Inception 3a-3b -> pool -> 4a-4e -> pool -> 5a-5b -> global average pool -> dropout -> fc.

    Args:
        transform_input: re-normalise inputs given with ImageNet's mean/std to the ``(x - 0.5) / 0.5`` that
            torchvision's ported GoogLeNet weights were trained on, as torchvision's ``transform_input`` does
            (3 channels only). Off by default; ``zoo.create("googlenet", weights=GoogLeNet_Weights...)`` switches it
            on, as torchvision does when it loads those weights.
        aux_logits: build the two auxiliary classifiers; in training mode ``forward`` then returns
            ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` (weigh the auxiliary losses by 0.3, as the
            paper does); in eval mode it returns the logits only.
        aux_drop_rate: dropout inside the auxiliary classifiers (the paper's 0.7).
        small_stem: ``True`` for the small-input stem (3x3 stride-1 first conv, no first max-pool), ``False`` for
            the ImageNet stem; ``None`` picks it from ``img_size`` (small below ``SMALL_INPUT`` px).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        drop_rate: float = 0.2,
        aux_logits: bool = False,
        aux_drop_rate: float = 0.7,
        small_stem: bool | None = None,
        transform_input: bool = False,
    ) -> None:
        super().__init__()
        small = choose_stem("googlenet", img_size, small_stem, MIN_SIZE)
        if transform_input and in_chans != 3:
            raise ValueError(
                f"googlenet: transform_input re-normalises RGB images: it needs in_chans=3, not {in_chans}"
            )
        self.num_classes = num_classes
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.small_stem = small

        if small:
            # Deliberate deviation for small images: a 7x7 stride-2 conv and a max-pool would leave a 32 px image
            # at 8 x 8 before the first Inception block; CIFAR versions keep the resolution instead.
            self.conv1 = BasicConv2d(in_chans, 64, 3, stride=1, padding=1)  # N x 64 x S x S
            self.maxpool1 = nn.Identity()
        else:
            self.conv1 = BasicConv2d(in_chans, 64, 7, stride=2, padding=3)  # N x 64 x 112 x 112 at 224
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 64 x 56 x 56
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)  # N x 192 x 56 x 56 (32 x 32 at 32)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 192 x 28 x 28 (16 x 16)
        self.inception3a = Inception(*INCEPTION_CFG["3a"])  # N x 256 x 28 x 28
        self.inception3b = Inception(*INCEPTION_CFG["3b"])  # N x 480 x 28 x 28
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 480 x 14 x 14 (8 x 8)
        self.inception4a = Inception(*INCEPTION_CFG["4a"])  # N x 512 x 14 x 14
        self.inception4b = Inception(*INCEPTION_CFG["4b"])  # N x 512 x 14 x 14
        self.inception4c = Inception(*INCEPTION_CFG["4c"])  # N x 512 x 14 x 14
        self.inception4d = Inception(*INCEPTION_CFG["4d"])  # N x 528 x 14 x 14
        self.inception4e = Inception(*INCEPTION_CFG["4e"])  # N x 832 x 14 x 14
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # N x 832 x 7 x 7 (4 x 4)
        self.inception5a = Inception(*INCEPTION_CFG["5a"])  # N x 832 x 7 x 7
        self.inception5b = Inception(*INCEPTION_CFG["5b"])  # N x 1024 x 7 x 7
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, aux_drop_rate)  # on inception4a's output
            self.aux2 = InceptionAux(528, num_classes, aux_drop_rate)  # on inception4d's output
        else:
            self.aux1 = self.aux2 = None
        # feature points as timm's Inception: the end of the stem's two parts and of each Inception stage
        r = (1, 1, 2, 4, 8) if small else (2, 4, 8, 16, 32)
        chs = (64, 192, 480, 832, 1024)
        names = ("conv1", "conv3", "inception3b", "inception4e", "inception5b")
        self.feature_info = [dict(num_chs=c, reduction=s, module=m) for c, s, m in zip(chs, r, names, strict=True)]
        self.num_features = 1024
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation (init_weights=True)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised RGB -> ``(x - 0.5) / 0.5``, channel by channel, exactly as torchvision computes it."""
        if not self.transform_input:
            return x
        x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((x_ch0, x_ch1, x_ch2), 1)

    # The trunk in three parts, cut where the auxiliary heads branch off, so that the plain path never calls
    # them (torch.jit.script compiles every call it reaches, and without aux_logits they are None).
    def _to_4a(self, x: torch.Tensor) -> torch.Tensor:
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))  # N x 64 x 56 x 56 (S x S with the small stem)
        x = self.maxpool2(self.conv3(self.conv2(x)))  # N x 192 x 28 x 28
        x = self.inception3b(self.inception3a(x))  # N x 480 x 28 x 28
        return self.inception4a(self.maxpool3(x))  # N x 512 x 14 x 14

    def _to_4d(self, x: torch.Tensor) -> torch.Tensor:
        return self.inception4d(self.inception4c(self.inception4b(x)))  # N x 528 x 14 x 14

    def _to_5b(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool4(self.inception4e(x))  # N x 832 x 7 x 7
        return self.inception5b(self.inception5a(x))  # N x 1024 x 7 x 7

    @torch.jit.unused  # training with the auxiliary heads is eager-only; exports take the plain path
    def _forward_aux(self, x: torch.Tensor) -> GoogLeNetOutputs:
        x = self._to_4a(x)
        aux1 = self.aux1(x)
        x = self._to_4d(x)
        aux2 = self.aux2(x)
        return GoogLeNetOutputs(self.forward_head(self._to_5b(x)), aux2, aux1)

    def feature_stages(self) -> list:
        """The trunk of ``_features`` cut at ``feature_info``'s modules (no auxiliary heads)."""
        return [
            [self._transform_input, self.conv1],
            [self.maxpool1, self.conv2, self.conv3],
            [self.maxpool2, self.inception3a, self.inception3b],
            [self.maxpool3, self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e],
            [self.maxpool4, self.inception5a, self.inception5b],
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._to_5b(self._to_4d(self._to_4a(x)))  # N x 1024 x H/32 x W/32 (H/8 x W/8 with the small stem)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # N x 1024
        return x if pre_logits else self.fc(self.dropout(x))  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits; in training mode with ``aux_logits`` a ``GoogLeNetOutputs`` (eager only: a scripted
        GoogLeNet returns the logits, as torchvision's does with ``aux_logits=False``)."""
        if not torch.jit.is_scripting():  # noqa: SIM102 (TorchScript drops this branch only when alone)
            if self.aux_logits and self.training:
                return self._forward_aux(x)
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A new ``fc`` (and new auxiliary ``fc2`` layers, so that every head predicts the same classes)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                aux.fc2 = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: the stem convs, then each Inception block (each stage if ``coarse``); the
        classifier and the auxiliary heads last."""
        blocks = r"^inception(\d)" if coarse else [(rf"^inception{b}\.", (i,)) for i, b in enumerate(INCEPTION_CFG)]
        return dict(stem=r"^conv[123]\.", blocks=blocks)

    def no_weight_decay(self) -> set[str]:
        return set()


# ---------------------------------------------------------------------------------------------------------
# torchvision weights
# ---------------------------------------------------------------------------------------------------------


def convert_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fit torchvision's ``googlenet`` state dict to a zoo GoogLeNet.

    The module names are torchvision's, so this runs only when the keys differ: the usual reason is a state
    dict with auxiliary heads (torchvision's ImageNet weights always have them) loaded into a model built
    without them, so the ``aux1`` / ``aux2`` entries are dropped, as torchvision's own loader does.
    """
    return {k: v for k, v in state_dict.items() if not k.startswith(("aux1.", "aux2."))}


# ---------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------


FAMILY = Family(
    "googlenet",
    GoogLeNet,
    paper=PAPER,
    year=2014,
    url="https://arxiv.org/abs/1409.4842",
    input_size=(3, 224, 224),
    num_classes=1000,
    tags=("cnn", "classic", "inception"),
    convert_weights=convert_weights,
    twin="googlenet",
    twin_kwargs={"transform_input": True},  # torchvision's googlenet() switches it on with its weights
)


@FAMILY.variant(
    description="Nine Inception blocks of parallel 1x1, 3x3, 5x5 and pooling branches; global average pooling.",
    # Table 3: one model, one crop, validation set (the paper gives top-5 error only; 6.67 is 7 models x 144 crops).
    reported=(Reported("ImageNet-1k", "top-5 error %", 10.07, "Szegedy et al. 2014, Table 3 (1 model, 1 crop)"),),
    notes=(
        "Parameters equal torchvision/googlenet's (with BN; its '5x5' branch is 3x3). aux_logits=True adds "
        "the two auxiliary classifiers: in training mode forward returns (logits, aux_logits2, aux_logits1). "
        "transform_input=True re-normalises ImageNet-normalised inputs as torchvision does; on by default with "
        "torchvision's weights (weights=GoogLeNet_Weights...). convert_weights loads torchvision state dicts (aux "
        "heads dropped if unused). "
        f"Below {SMALL_INPUT} px the stem is a 3x3 stride-1 conv without the first max-pool (output stride 8, "
        f"32 px ends at 4x4); small_stem=True/False forces a layout. Smallest img_size: {MIN_SIZE[True]} "
        f"(small stem), {MIN_SIZE[False]} (ImageNet stem)."
    ),
)
def googlenet(**kwargs) -> GoogLeNet:
    """GoogLeNet / Inception v1 (Szegedy et al., 2014) as torchvision builds it; 6,624,904 parameters at 3x224x224."""
    return GoogLeNet(**kwargs)


@hookimpl
def register_models(register):
    FAMILY.register_all(register)
