"""LeNet-5.

Paper: "Gradient-Based Learning Applied to Document Recognition", LeCun, Bottou, Bengio and Haffner, 1998.

Two convolution + subsampling stages and three fully connected layers: the classic 61,706-parameter layout at
1x32x32. At 28x28 (MNIST without padding) the same layers give a 16*4*4 flatten, computed here from
``img_size`` so users never work out flatten sizes by hand.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from zoo.hookspecs import hookimpl
from zoo.models.layers import check_img_size, get_act

PAPER = "Gradient-Based Learning Applied to Document Recognition"


class LeNet5(nn.Module):
    """LeNet-5: conv(6, 5x5) -> pool -> conv(16, 5x5) -> pool -> fc 120 -> fc 84 -> fc num_classes."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int = 32,
        drop_rate: float = 0.0,
        activation: str = "relu",
        pool: str = "max",
    ) -> None:
        super().__init__()
        size = check_img_size("lenet5", img_size, 16)
        if pool not in ("max", "avg"):
            raise ValueError(f"lenet5: pool must be 'max' or 'avg', got {pool!r}")
        # Deliberate deviation: the paper used scaled tanh and trainable average subsampling; ReLU and max
        # pooling train faster and are what most courses use. activation="tanh", pool="avg" gives the original.
        pool_layer = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5),  # N x 6 x (S-4) x (S-4)
            get_act(activation),
            pool_layer(2),  # N x 6 x (S-4)/2
            nn.Conv2d(6, 16, 5),  # N x 16 x ((S-4)/2 - 4)
            get_act(activation),
            pool_layer(2),  # N x 16 x F x F; F = 5 at 32 px, 4 at 28 px
        )
        feat = ((size - 4) // 2 - 4) // 2
        self.flat_features = 16 * feat * feat
        self.head = nn.Sequential(
            nn.Flatten(),  # N x 16*F*F
            nn.Linear(self.flat_features, 120),
            get_act(activation),
            nn.Dropout(drop_rate),
            nn.Linear(120, 84),
            get_act(activation),
            nn.Dropout(drop_rate),
        )
        self.fc = nn.Linear(84, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head(x)  # N x 84
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(84, num_classes) if num_classes > 0 else nn.Identity()


def _create_lenet(**kwargs) -> LeNet5:
    return LeNet5(**kwargs)


def lenet5(
    *,
    num_classes: int = 10,
    in_chans: int = 1,
    img_size: int = 32,
    drop_rate: float = 0.0,
    activation: str = "relu",
    pool: str = "max",
) -> LeNet5:
    """LeNet-5 (LeCun et al., 1998); 61,706 parameters at 1x32x32 and 10 classes."""
    return _create_lenet(
        num_classes=num_classes,
        in_chans=in_chans,
        img_size=img_size,
        drop_rate=drop_rate,
        activation=activation,
        pool=pool,
    )


@hookimpl
def register_models(register):
    register(
        "lenet5",
        lenet5,
        family="lenet",
        paper=PAPER,
        year=1998,
        input_size=(1, 32, 32),
        num_classes=10,
        tags=("cnn", "classic", "small"),
        description="Two conv layers and three fully connected: the network that started CNNs on digits.",
        url="http://yann.lecun.com/exdb/publis/pdf/lecun-01a.pdf",
        notes=(
            "Any img_size >= 16; at 28 px the flatten is 16*4*4. "
            "The paper's tanh and average subsampling: activation='tanh', pool='avg'."
        ),
    )
