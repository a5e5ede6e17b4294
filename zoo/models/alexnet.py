"""AlexNet.

Paper: "ImageNet Classification with Deep Convolutional Neural Networks", Krizhevsky, Sutskever and Hinton, 2012.

Five convolutions (the first 11x11 at stride 4), three max-pools and three fully connected layers with dropout:
the network that won ImageNet 2012. This is torchvision's single-tower layout (64-192-384-256-256 channels, the
"one weird trick" version of Krizhevsky, 2014) rather than the paper's two-GPU split, with torchvision's adaptive
6x6 average pool before the classifier, so any input that survives the convolutions gives the same 9216 features.
Parameters equal torchvision's ``alexnet`` (61,100,840 at 1000 classes); its state dicts load through
``convert_weights``.

Small inputs: the ImageNet stem divides the image by 32 and needs at least 63 px. Below ``SMALL_INPUT`` px
the stem becomes a CIFAR-style one (3x3 stride-1 first convolution, 2x2 max-pools): output stride 8, so a
32 px image ends at 4 x 4 and a 28 px one at 3 x 3 before the 6x6 pool. The rest of the network is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from zoo.features import StagedFeatures, features_at_downsampling
from zoo.hookspecs import hookimpl
from zoo.models.family import Family
from zoo.models.layers import SMALL_INPUT, choose_stem
from zoo.specs import Reported

PAPER = "ImageNet Classification with Deep Convolutional Neural Networks"
MIN_SIZE = {False: 63, True: 8}  # smallest img_size of the ImageNet and the small-input layouts


# ---------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------


class AlexNet(StagedFeatures, nn.Module):
    """AlexNet: ``features`` (5 convs, 3 max-pools) -> adaptive 6x6 average pool -> ``head`` (two 4096-wide
    Linear + ReLU layers, each preceded by dropout) -> ``fc``.

    Args:
        small_stem: ``True`` for the small-input layout (3x3 stride-1 first conv, 2x2 pools), ``False`` for the
            ImageNet layout; ``None`` picks it from ``img_size`` (small below ``SMALL_INPUT`` px).
    """

    # Without normalisation layers AlexNet dies at zoo.fit's default AdamW peak of 1e-2 (stuck at chance on
    # digits); 1e-3 reaches 93% there in 2 epochs. fit uses this when the caller gives no lr.
    default_lr = 1e-3

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        drop_rate: float = 0.5,
        small_stem: bool | None = None,
    ) -> None:
        super().__init__()
        small = choose_stem("alexnet", img_size, small_stem, MIN_SIZE)
        self.num_classes = num_classes
        self.small_stem = small
        if small:
            # Deliberate deviation for small images: an 11x11 stride-4 kernel would see a 32 px image in a
            # handful of windows. CIFAR versions of AlexNet use small kernels and 2x2 pools instead.
            conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1)  # N x 64 x S x S
            pool_kernel = 2  # 2x2 pools halve the size: 32 -> 16 -> 8 -> 4
        else:
            conv1 = nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2)  # N x 64 x 55 x 55 at 224
            pool_kernel = 3  # the paper's overlapping 3x3 stride-2 pools: 55 -> 27 -> 13 -> 6

        self.features = nn.Sequential(
            conv1,
            nn.ReLU(inplace=True),
            nn.MaxPool2d(pool_kernel, stride=2),  # N x 64 x 27 x 27 at 224 (16 x 16 at 32)
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(pool_kernel, stride=2),  # N x 192 x 13 x 13 (8 x 8)
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(pool_kernel, stride=2),  # N x 256 x 6 x 6 (4 x 4)
        )
        # feature points as timm's VGG: the activation before each max-pool, and the last pool
        imagenet_strides = [4, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2]
        strides = [1, *imagenet_strides[1:]] if small else imagenet_strides
        channels = [64] * 3 + [192] * 3 + [384] * 2 + [256] * 5
        self.feature_info = features_at_downsampling(strides, channels, layout=imagenet_strides)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))  # N x 256 x 6 x 6 whatever the input size
        self.num_features = 4096
        self.head = nn.Sequential(
            nn.Dropout(drop_rate),
            nn.Linear(256 * 6 * 6, 4096),  # N x 4096
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, 4096),  # N x 4096
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(4096, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x 256 x H' x W'

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # N x 9216
        x = self.head(x)  # N x 4096
        return x if pre_logits else self.fc(x)  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: conv1, each later conv, each hidden Linear, then the classifier."""
        return dict(stem=r"^features\.0\.", blocks=r"^features\.(\d+)\.", pre_logits=r"^head\.(\d+)\.")

    def no_weight_decay(self) -> set[str]:
        return set()


# ---------------------------------------------------------------------------------------------------------
# torchvision weights
# ---------------------------------------------------------------------------------------------------------

_TV_CLASSIFIER = {"classifier.1.": "head.1.", "classifier.4.": "head.4.", "classifier.6.": "fc."}


def convert_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map torchvision's ``alexnet`` state dict onto zoo's names: ``features`` is the same, torchvision's
    ``classifier.1`` / ``classifier.4`` are zoo's ``head.1`` / ``head.4`` and its ``classifier.6`` is ``fc``."""
    out = {}
    for k, v in state_dict.items():
        for old, new in _TV_CLASSIFIER.items():
            if k.startswith(old):
                k = new + k[len(old) :]
                break
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------


FAMILY = Family(
    "alexnet",
    AlexNet,
    paper=PAPER,
    year=2012,
    url="https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks",
    input_size=(3, 224, 224),
    num_classes=1000,
    tags=("cnn", "classic"),
    convert_weights=convert_weights,
    twin="alexnet",
)


@FAMILY.variant(
    description="Five convolutions and three dropout-regularised fully connected layers: ImageNet 2012's winner.",
    # Table 2, the row "1 CNN" (one model, ILSVRC-2012 validation set); the paper reports error rates.
    reported=(
        Reported("ImageNet-1k", "top-1 error %", 40.7, "Krizhevsky et al. 2012, Table 2 (1 CNN, validation)"),
        Reported("ImageNet-1k", "top-5 error %", 18.2, "Krizhevsky et al. 2012, Table 2 (1 CNN, validation)"),
    ),
    notes=(
        "Parameters equal torchvision/alexnet's; convert_weights loads torchvision state dicts. "
        f"Below {SMALL_INPUT} px a CIFAR-style stem (3x3 stride-1 first conv, 2x2 max-pools; output stride 8, "
        f"32 px ends at 4x4) replaces the 11x11 stride-4 one; small_stem=True/False forces a layout. "
        f"Smallest img_size: {MIN_SIZE[True]} (small stem), {MIN_SIZE[False]} (ImageNet stem). "
        "drop_rate (default 0.5) is the dropout before each hidden Linear."
    ),
)
def alexnet(**kwargs) -> AlexNet:
    """AlexNet (Krizhevsky et al., 2012), torchvision's single-tower layout; 61,100,840 parameters at 3x224x224."""
    return AlexNet(**kwargs)


@hookimpl
def register_models(register):
    FAMILY.register_all(register)
