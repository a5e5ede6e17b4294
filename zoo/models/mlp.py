"""Multilayer perceptron.

Paper: "Learning representations by back-propagating errors", Rumelhart, Hinton and Williams, 1986.

Fully connected layers on the flattened input: ``Linear -> [BatchNorm] -> activation -> [Dropout]`` per hidden
layer, then a linear classifier (optionally followed by an output activation such as a sigmoid). Images are
flattened to ``in_chans * img_size * img_size`` features; plain feature vectors are taken with ``in_features=``::

    zoo.create("mlp")                                             # 1x28x28 -> 512 -> 256 -> 10
    zoo.create("mlp", in_features=10, hidden_sizes=(5,), num_classes=1, out_activation="sigmoid")  # 10-5-1
"""

from __future__ import annotations

import re
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


def convert_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict in zoo's old key names (``features.1.weight``... in one ``nn.Sequential``, the classifier
    ``fc``) in today's (``fc1.weight``, ``bn1.running_mean``, ..., the classifier ``fc{N+1}``); today's keys pass."""
    return rename_old_keys(state_dict)


def rename_old_keys(state_dict: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Rename the old keys under ``prefix``: a ``features`` index with a 2-d weight starts hidden layer ``i``
    (``fc{i}``), one with running statistics is its BatchNorm (``bn{i}``); ``fc`` becomes ``fc{N+1}``."""
    old = re.compile(re.escape(prefix) + r"features\.(\d+)\.(.+)")
    found = {k: old.fullmatch(k) for k in state_dict}
    indices = sorted({int(m.group(1)) for m in found.values() if m})
    names, layer = {}, 0
    for j in indices:
        weight = state_dict.get(f"{prefix}features.{j}.weight")
        if weight is not None and weight.ndim == 2:
            layer += 1
            names[j] = f"fc{layer}"
        else:  # BatchNorm1d: 1-d weight, running statistics
            names[j] = f"bn{layer}"
    renamed = {}
    for key, value in state_dict.items():
        m = found[key]
        if m:
            key = f"{prefix}{names[int(m.group(1))]}.{m.group(2)}"
        elif key.startswith(prefix + "fc."):  # no module is named "fc" today
            key = f"{prefix}fc{layer + 1}.{key[len(prefix) + 3 :]}"
        renamed[key] = value
    return renamed


def _load_old_keys(module, state_dict, prefix, *args) -> None:
    """load_state_dict pre-hook: old checkpoints (``features.1.weight``, ``fc.weight``) load into the named layers."""
    if any(k.startswith((prefix + "features.", prefix + "fc.")) for k in state_dict):
        renamed = rename_old_keys(state_dict, prefix)
        state_dict.clear()
        state_dict.update(renamed)


class MLP(StagedFeatures, nn.Module):
    """Flatten -> (fc{i} -> [bn{i}] -> act{i} -> [drop{i}]) per hidden size -> fc{N+1} -> [out act].

    The layers are named as in the course notebooks (``fc1``, ``fc2``, ... the classifier last), so
    ``net.fc1.weight.grad`` works; checkpoints with zoo's older names (``features.1.weight``, ``fc.weight``) still
    load. Each hidden layer is a feature stage (``forward_intermediates``, ``features_only``): an ``N x width``
    vector, with the whole image as its one position (``reduction`` the image side; 1 with ``in_features=``).

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
        self.layer_names: list[list[str]] = []  # each hidden layer's modules, by attribute name

        self.flatten = nn.Flatten()  # N x in_features
        width = in_features
        for i, hidden in enumerate(hidden_sizes, start=1):
            layer = {f"fc{i}": nn.Linear(width, hidden, bias=not batch_norm)}  # N x hidden
            if batch_norm:
                layer[f"bn{i}"] = nn.BatchNorm1d(hidden)
            layer[f"act{i}"] = get_act(activation)
            if drop_rate > 0:
                layer[f"drop{i}"] = nn.Dropout(drop_rate)
            for name, module in layer.items():
                self.add_module(name, module)
            width = hidden
            self.layer_names.append(list(layer))
            self.feature_info.append(dict(num_chs=hidden, reduction=reduction, module=list(layer)[-1]))
        self.num_features = width
        self.head_name = f"fc{len(hidden_sizes) + 1}"  # the classifier: fc3 after two hidden layers
        self.reset_classifier(num_classes)
        self.out_act = get_act(out_activation)
        self.register_load_state_dict_pre_hook(_load_old_keys)

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        return check_num_features(x, self.in_features)

    def feature_stages(self) -> list:
        stages = [[getattr(self, name) for name in names] for names in self.layer_names]
        if stages:
            stages[0] = [self.check_input, self.flatten, *stages[0]]  # the input check and the Flatten
        return stages

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.check_input(x))
        for names in self.layer_names:
            for name in names:
                x = getattr(self, name)(x)
        return x  # N x hidden_sizes[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.out_act(self.get_classifier()(x))  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # forward_head(forward_features(x)), spelt so TorchScript compiles it (it cannot look modules up by a name
        # held in a variable, but unrolls a loop over the children): they are registered in the order they run,
        # flatten, fc1, [bn1], act1, [drop1], ..., the classifier, out_act (reset_classifier keeps its place)
        x = self.check_input(x)
        for module in self.children():
            x = module(x)
        return x

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.head_name)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.add_module(self.head_name, head)

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: one per hidden layer (its Linear and BatchNorm together), the head last."""
        return dict(blocks=[(rf"^(?:fc|bn){i}\.", (i,)) for i in range(1, len(self.layer_names) + 1)])

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
    convert_weights=convert_weights,
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
