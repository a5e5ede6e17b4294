"""Multilayer perceptron.

Paper: "Learning representations by back-propagating errors", Rumelhart, Hinton and Williams, 1986.

Fully connected layers on the flattened input: ``Linear -> [BatchNorm] -> activation -> [Dropout]`` per hidden
layer, then a linear classifier (optionally followed by an output activation such as a sigmoid). Images are
flattened to ``in_chans * img_size * img_size`` features; plain feature vectors are taken with ``in_features=``::

    zoo.create("mlp")                                             # 1x28x28 -> 512 -> 256 -> 10
    zoo.create("mlp", in_features=10, hidden_sizes=(5,), num_classes=1, out_activation="sigmoid")  # 10-5-1
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from zoo.features import StagedFeatures
from zoo.hookspecs import hookimpl
from zoo.models.family import Family
from zoo.models.layers import get_act

PAPER = "Learning representations by back-propagating errors"


@torch.fx.wrap  # one call in a traced graph (torch.fx, create_feature_extractor), so the check still runs there
def check_num_features(x: torch.Tensor, in_features: int) -> torch.Tensor:
    """``x`` unchanged if it holds ``in_features`` values per sample, else a ValueError saying how to build it."""
    if x[0].numel() != in_features:
        raise ValueError(
            f"mlp was built for {in_features} input features per sample, got input of shape {list(x.shape)} "
            f"({x[0].numel()} features); build it with the matching in_chans/img_size or in_features"
        )
    return x


class MLP(StagedFeatures, nn.Module):
    """Flatten -> (Linear -> [BatchNorm1d] -> activation -> [Dropout]) per hidden size -> Linear -> [out act].

    Each hidden layer is a feature stage (``forward_intermediates``, ``features_only``): an ``N x width`` vector,
    with the whole image as its one position (``reduction`` the image side; 1 with ``in_features=``).

    Args:
        hidden_sizes: widths of the hidden layers; ``()`` gives a linear (softmax regression) classifier.
        activation: after each hidden layer (``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"gelu"``, ...).
        batch_norm: BatchNorm1d between each hidden Linear and its activation.
        in_features: take flat feature vectors of this length instead of images (``in_chans``/``img_size``
            are then ignored).
        out_activation: applied to the logits, e.g. ``"sigmoid"`` for one-output binary classification with
            ``BCELoss``; leave ``None`` for ``CrossEntropyLoss`` or ``BCEWithLogitsLoss``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int | tuple[int, int] = 28,
        drop_rate: float = 0.0,
        hidden_sizes: Sequence[int] = (512, 256),
        activation: str | Callable[[], nn.Module] = "relu",
        batch_norm: bool = False,
        in_features: int | None = None,
        out_activation: str | Callable[[], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(hidden_sizes, int):
            hidden_sizes = (hidden_sizes,)
        if any(not isinstance(h, int) or h < 1 for h in hidden_sizes):
            raise ValueError(f"mlp: hidden_sizes must be positive integers, got {tuple(hidden_sizes)}")
        from_image = in_features is None
        if from_image:
            h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
            if h < 1 or w < 1 or in_chans < 1:
                raise ValueError(f"mlp needs img_size >= 1 and in_chans >= 1 (got {img_size}, {in_chans})")
            in_features = in_chans * h * w
        elif in_features < 1:
            raise ValueError(f"mlp: in_features must be >= 1, got {in_features}")
        self.in_features = in_features
        self.num_classes = num_classes
        reduction = max(h, w) if from_image else 1  # the whole image is one position
        self.feature_info: list[dict] = []
        self.layer_modules: list[list[int]] = []  # the indices in ``features`` of each hidden layer's modules

        layers: list[nn.Module] = [nn.Flatten()]  # N x in_features
        width = in_features
        for hidden in hidden_sizes:
            first = len(layers)
            layers.append(nn.Linear(width, hidden, bias=not batch_norm))  # N x hidden
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(get_act(activation))
            if drop_rate > 0:
                layers.append(nn.Dropout(drop_rate))
            width = hidden
            self.layer_modules.append(list(range(first, len(layers))))
            self.feature_info.append(dict(num_chs=hidden, reduction=reduction, module=f"features.{len(layers) - 1}"))
        self.features = nn.Sequential(*layers)
        self.num_features = width
        self.fc = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()
        self.out_act = get_act(out_activation)

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        return check_num_features(x, self.in_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.check_input(x))  # N x hidden_sizes[-1]

    def feature_stages(self) -> list:
        stages = [[self.features[j] for j in idx] for idx in self.layer_modules]
        if stages:
            stages[0] = [self.check_input, self.features[0], *stages[0]]  # the input check and the Flatten
        return stages

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.out_act(self.fc(x))  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: one per hidden layer (its Linear and BatchNorm together), the head last."""
        layers = [(rf"^features\.(?:{'|'.join(map(str, idx))})\.", (i,)) for i, idx in enumerate(self.layer_modules)]
        return dict(blocks=layers)

    def no_weight_decay(self) -> set[str]:
        return set()


FAMILY = Family(
    "mlp",
    MLP,
    paper=PAPER,
    year=1986,
    url="https://www.nature.com/articles/323533a0",
    input_size=(1, 28, 28),
    num_classes=10,
    tags=("mlp", "classic", "small"),
)


@FAMILY.variant(
    description="Fully connected layers on the flattened image: the first network of every course.",
    notes=(
        "Any input size: images are flattened to in_chans*img_size*img_size features; feature vectors via "
        "in_features=. hidden_sizes=(...) sets the layers, () gives softmax regression."
    ),
)
def mlp(**kwargs) -> MLP:
    """Multilayer perceptron (Rumelhart et al., 1986); 1x28x28 -> 512 -> 256 -> 10 by default (keywords: ``MLP``)."""
    return MLP(**kwargs)


@hookimpl
def register_models(register):
    FAMILY.register_all(register)
