"""LeNet-5.

Paper: "Gradient-Based Learning Applied to Document Recognition", LeCun, Bottou, Bengio and Haffner, 1998.

Two convolution + subsampling stages and three fully connected layers: the classic 61,706-parameter layout at
1x32x32. The paper centred its 28x28 digits in a 32x32 field; so does this model: inputs smaller than 32 px are
zero-padded by the first convolution up to the paper's field, giving the paper's feature maps (28x28 -> 14x14 ->
10x10 -> 5x5) and parameter count on 28 px MNIST. Larger inputs keep their size and the flatten is computed from
``img_size``, so users never work out flatten sizes by hand.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from zoo.features import StagedFeatures
from zoo.hookspecs import hookimpl
from zoo.models.family import Family
from zoo.models.layers import check_img_size, get_act
from zoo.specs import Reported

PAPER = "Gradient-Based Learning Applied to Document Recognition"
FIELD = 32  # the paper's input field: 28x28 digits centred in 32x32
# Max pooling commutes with a non-decreasing activation, so for these the pooling runs first and the activation
# (forward and backward) touches a quarter of the values: the same outputs and gradients, 4-6% faster training.
_MONOTONIC = {"relu", "relu6", "tanh", "sigmoid", "hardsigmoid", "identity"}


# zoo's key names before the layers took the tutorial's names (zoo 0.x wrote these into checkpoints)
OLD_KEYS = {"features.0.": "conv1.", "features.3.": "conv2.", "head.1.": "fc1.", "head.4.": "fc2.", "fc.": "fc3."}


def convert_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict in zoo's old key names (``features.0.weight``, ``head.1.bias``, ``fc.weight``) in today's
    (``conv1.weight``, ``fc1.bias``, ``fc3.weight``); keys already in today's names pass unchanged."""
    return {rename_key(key): value for key, value in state_dict.items()}


def rename_key(key: str, prefix: str = "") -> str:
    """``key`` (under ``prefix``) in today's names when it is in the old ones, else unchanged."""
    if not key.startswith(prefix):
        return key
    rest = key[len(prefix) :]
    for old, new in OLD_KEYS.items():
        if rest.startswith(old):
            return prefix + new + rest[len(old) :]
    return key


def _load_old_keys(module, state_dict, prefix, *args) -> None:
    """load_state_dict pre-hook: old checkpoints (``features.0.weight``...) load into the renamed layers."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        renamed = rename_key(key, prefix)
        if renamed != key and renamed not in state_dict:
            state_dict[renamed] = state_dict.pop(key)


class LeNet5(StagedFeatures, nn.Module):
    """LeNet-5: conv1 (6, 5x5) -> pool -> conv2 (16, 5x5) -> pool -> fc1 120 -> fc2 84 -> fc3 num_classes.

    The layers have the names of PyTorch's 60-minute blitz convnet (``conv1``, ``conv2``, ``fc1``, ``fc2``,
    ``fc3``), so ``net.conv1.bias.grad`` works as in the tutorial; checkpoints with zoo's older names
    (``features.0.weight``...) still load. 61,706 parameters at 1x32x32 (and at 1x28x28, padded) and 10 classes.
    Inputs smaller than the paper's 32x32 field are zero-padded up to it by the first convolution, as the paper did
    for 28x28 MNIST; ``pad_input=False`` keeps them unpadded (a 16*4*4 flatten and 44,426 parameters at 28 px).
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int = 32,
        drop_rate: float = 0.0,
        activation: str = "relu",
        pool: str = "max",
        pad_input: bool = True,
    ) -> None:
        super().__init__()
        check_img_size("lenet5", img_size, 16)
        self.head_modules = ("fc1", "fc2", "fc3")  # the classifier head (zoo.transfer: fc1's input follows the size)
        if pool not in ("max", "avg"):
            raise ValueError(f"lenet5: pool must be 'max' or 'avg', got {pool!r}")
        # Deliberate deviation: the paper used scaled tanh and trainable average subsampling; ReLU and max
        # pooling train faster and are what most courses use. activation="tanh", pool="avg" gives the original.
        self.pool_first = pool == "max" and isinstance(activation, str) and activation.lower() in _MONOTONIC
        subsample = nn.MaxPool2d if pool == "max" else nn.AvgPool2d

        h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
        # pad what is missing to the 32x32 field, rounded up to keep the padding symmetric (28 px -> 2 a side)
        pad = ((max(FIELD - h, 0) + 1) // 2, (max(FIELD - w, 0) + 1) // 2) if pad_input else (0, 0)
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, 6, 5, padding=pad)  # N x 6 x S-4 x S-4, S = padded size
        self.act1, self.pool1 = get_act(activation), subsample(2)  # N x 6 x (S-4)/2 x (S-4)/2
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.act2, self.pool2 = get_act(activation), subsample(2)  # N x 16 x F x F; F = 5 at 32 px and 28 padded
        # the two conv-subsampling stages are the feature stages (each halves the size; the 5x5 convs trim 4 px)
        last1, last2 = ("act1", "act2") if self.pool_first else ("pool1", "pool2")
        self.feature_info = [
            dict(num_chs=6, reduction=2, module=last1),
            dict(num_chs=16, reduction=4, module=last2),
        ]
        fh, fw = (((size + 2 * p - 4) // 2 - 4) // 2 for size, p in zip((h, w), pad, strict=True))
        self.flat_features = 16 * fh * fw
        self.flatten = nn.Flatten()  # N x 16*F*F
        self.fc1 = nn.Linear(self.flat_features, 120)
        self.act3, self.drop1 = get_act(activation), nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(120, 84)  # N x 84
        self.act4, self.drop2 = get_act(activation), nn.Dropout(drop_rate)
        self.num_features = 84
        self.fc3 = nn.Linear(84, num_classes) if num_classes > 0 else nn.Identity()  # 0: no head (timm)
        self.register_load_state_dict_pre_hook(_load_old_keys)

    def feature_stages(self) -> list[list[nn.Module]]:
        # max pooling commutes with a non-decreasing activation: pooled first, the activation sees a quarter
        if self.pool_first:
            return [[self.conv1, self.pool1, self.act1], [self.conv2, self.pool2, self.act2]]
        return [[self.conv1, self.act1, self.pool1], [self.conv2, self.act2, self.pool2]]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # feature_stages() spelt out: TorchScript (zoo export --format torchscript) cannot type a list of modules
        if self.pool_first:
            x = self.act1(self.pool1(self.conv1(x)))
            return self.act2(self.pool2(self.conv2(x)))
        x = self.pool1(self.act1(self.conv1(x)))
        return self.pool2(self.act2(self.conv2(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop1(self.act3(self.fc1(self.flatten(x))))  # N x 120
        x = self.drop2(self.act4(self.fc2(x)))  # N x 84
        return x if pre_logits else self.fc3(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc3

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc3 = nn.Linear(84, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: the first conv, the second, then each hidden Linear, the classifier last."""
        return dict(stem=r"^conv1\.", blocks=[(r"^conv2\.", (0,)), (r"^fc1\.", (1,)), (r"^fc2\.", (2,))])

    def no_weight_decay(self) -> set[str]:
        return set()


FAMILY = Family(
    "lenet",
    LeNet5,
    paper=PAPER,
    year=1998,
    url="http://yann.lecun.com/exdb/publis/pdf/lecun-01a.pdf",
    input_size=(1, 32, 32),
    num_classes=10,
    tags=("cnn", "classic", "small"),
    convert_weights=convert_weights,
)


@FAMILY.variant(
    description="Two conv layers and three fully connected: the network that started CNNs on digits.",
    # The paper's LeNet-5 (tanh, trainable subsampling, RBF outputs), not zoo's ReLU/max-pool default: its MNIST test
    # error without and with distorted training images (also in Section III.C and Fig. 9's caption).
    reported=(
        Reported("MNIST", "test error %", 0.95, "LeCun et al. 1998, Fig. 14 (LeNet-5)"),
        Reported("MNIST", "test error %", 0.8, "LeCun et al. 1998, Fig. 14 (LeNet-5, distorted training images)"),
    ),
    notes=(
        "Any img_size >= 16; smaller than 32 px is zero-padded to the paper's 32x32 field (pad_input=False: not). "
        "The paper's tanh and average subsampling: activation='tanh', pool='avg'."
    ),
)
def lenet5(**kwargs) -> LeNet5:
    """LeNet-5 (LeCun et al., 1998); 61,706 parameters at 1x32x32 and at 1x28x28, padded (keywords: ``LeNet5``)."""
    return LeNet5(**kwargs)


@hookimpl
def register_models(register):
    FAMILY.register_all(register)
