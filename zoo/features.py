"""Feature extraction the timm way, shared by every family.

A model lists its feature points in ``feature_info`` (one dict per point: ``num_chs``, ``reduction`` -- the
downsampling from the input --, ``module`` -- the module whose output the feature is), as timm's models do, and
how to reach them in ``feature_stages()``: callables run in order, stage ``i`` ending at feature ``i``. From these,
:class:`StagedFeatures` gives timm's ``forward_intermediates`` and ``prune_intermediate_layers``, and
:class:`FeatureListNet` is what ``zoo.create(name, features_only=True, out_indices=...)`` returns: a module whose
forward gives the list of feature maps, with ``feature_info.channels()`` / ``.reduction()`` as timm's::

    model = zoo.create("densenet121", features_only=True, out_indices=(1, -1))
    maps = model(torch.randn(1, 3, 224, 224))        # [N x 256 x 56 x 56, N x 1024 x 7 x 7]
    model.feature_info.channels(), model.feature_info.reduction()   # [256, 1024], [4, 32]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "MATCH_PREV_GROUP",
    "FeatureInfo",
    "FeatureListNet",
    "StagedFeatures",
    "create_features_only",
    "feature_take_indices",
    "features_at_downsampling",
    "split_at_features",
]

Stage = Sequence[Callable[[torch.Tensor], torch.Tensor]]
# In a group_matcher, this suffix puts a match in the group of the one before it (timm's constant).
MATCH_PREV_GROUP = (99999,)


def feature_take_indices(num_features: int, indices: int | Sequence[int] | None = None) -> tuple[list[int], int]:
    """The absolute feature indices to take, and the largest (timm's rule): ``None`` all, an int ``n`` the last
    ``n``, a sequence those indices (negative ones count from the end)."""
    if num_features < 1:
        raise ValueError("this model has no feature stages to take")
    if indices is None:
        indices = num_features
    if isinstance(indices, int):
        if not 0 < indices <= num_features:
            raise ValueError(f"last-n features: {indices} is out of range; accepted: 1 to {num_features}")
        take = list(range(num_features - indices, num_features))
    else:
        take = []
        for i in indices:
            if not -num_features <= i < num_features:
                raise ValueError(f"feature index {i} is out of range; accepted: {-num_features} to {num_features - 1}")
            take.append(i % num_features)
    return take, max(take)


class FeatureInfo:
    """timm's ``FeatureInfo``: the model's feature dicts seen through ``out_indices`` (``channels()``,
    ``reduction()``, ``module_name()`` give one value per selected feature; ``info[i]`` is feature ``i``)."""

    def __init__(self, feature_info: list[dict[str, Any]], out_indices: Sequence[int]) -> None:
        self.info = [dict(fi, index=i) for i, fi in enumerate(deepcopy(feature_info))]
        self.out_indices = tuple(out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: Sequence[int] | None = None) -> list[dict]:
        picked = [self.info[i] for i in (self.out_indices if idx is None else idx)]
        return picked if keys is None else [{k: d[k] for k in keys} for d in picked]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)


def features_at_downsampling(
    strides: Sequence[int], channels: Sequence[int], prefix: str = "features", layout: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """``feature_info`` for a network run as one ``nn.Sequential``: a feature at the last layer before each
    downsampling and at the last layer (timm's taps), the reduction being the product of the strides so far.

    Args:
        strides, channels: the stride and output channels of each child of the Sequential.
        prefix: the Sequential's module name.
        layout: the strides that place the taps, when ``strides`` is a small-input layout (stride 1 where the
            ImageNet layout, given here, has 2): the feature points stay the same, only their reductions change.
    """
    layout = strides if layout is None else layout
    info, reduction = [], 1
    for i, (stride, chs) in enumerate(zip(strides, channels, strict=True)):
        reduction *= stride
        if i == len(strides) - 1 or layout[i + 1] > 1:
            info.append(dict(num_chs=chs, reduction=reduction, module=f"{prefix}.{i}"))
    return info


def split_at_features(seq: nn.Sequential, feature_info: list[dict[str, Any]], prefix: str = "features") -> list[Stage]:
    """Cut the children of ``seq`` (named ``prefix``) into stages, each ending at the module of one feature."""
    ends = {fi["module"] for fi in feature_info}
    stages: list[Stage] = [[]]
    for name, module in seq.named_children():
        stages[-1].append(module)
        if f"{prefix}.{name}" in ends:
            stages.append([])
    if stages[-1]:
        raise ValueError(f"{prefix}: the last feature must end the Sequential; modules after it: {stages[-1]}")
    return stages[:-1]


class StagedFeatures:
    """Mixin: timm's ``forward_intermediates`` and ``prune_intermediate_layers`` from ``feature_stages()`` and
    ``feature_info``. Running every stage in order must give ``forward_features``; stage ``i`` ends at feature ``i``.
    """

    feature_info: list[dict[str, Any]]
    __jit_ignored_attributes__ = ["feature_info"]  # plain data: torch.jit.script cannot type it, forward never reads it

    def feature_stages(self) -> list[Stage]:
        """Default: ``self.features`` (an ``nn.Sequential``) cut at the feature modules."""
        return split_at_features(self.features, self.feature_info)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The final features (``forward_features``) and the feature maps named by ``indices`` (timm's signature).

        Args:
            indices: ``None`` every feature, an int ``n`` the last ``n``, a sequence those (negative from the end).
            norm: accepted for timm's signature; these features carry their own normalisation.
            stop_early: stop after the last feature asked for (the final features are then that stage's output).
            output_fmt: ``"NCHW"`` (an MLP's features are ``N x C`` vectors).
            intermediates_only: return the list only.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW' for {type(self).__name__}, got {output_fmt!r}")
        stages = self.feature_stages()
        take, last = feature_take_indices(len(stages), indices)
        intermediates = []
        for i, stage in enumerate(stages[: last + 1] if stop_early else stages):
            for layer in stage:
                x = layer(x)
            if i in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop what the features named by ``indices`` do not need (later stages, the head, whatever
        ``prune_norm`` / ``prune_head`` say: both are accepted for timm's signature); returns their absolute
        indices. The model then serves ``forward_intermediates(..., stop_early=True)`` only."""
        take, last = feature_take_indices(len(self.feature_info), indices)
        if prune_head:
            self.reset_classifier(0)
        needed = [layer for stage in self.feature_stages()[: last + 1] for layer in stage]
        _replace_unused(self, {id(m) for layer in needed if isinstance(layer, nn.Module) for m in layer.modules()})
        return take


def _replace_unused(module: nn.Module, keep: set[int]) -> bool:
    """Replace every child holding tensors that no kept module needs with ``nn.Identity``; whether any kept."""
    kept_any = id(module) in keep
    if kept_any:
        return True
    for name, child in list(module.named_children()):
        if _replace_unused(child, keep):
            kept_any = True
        elif any(True for _ in child.parameters()) or any(True for _ in child.buffers()):
            module.register_module(name, nn.Identity())
    return kept_any


class FeatureListNet(nn.Module):
    """What ``zoo.create(name, features_only=True, out_indices=...)`` returns: ``forward(x)`` gives the list of
    feature maps at ``out_indices``; ``feature_info`` is a :class:`FeatureInfo` (``channels()``, ``reduction()``).

    The wrapped model is pruned to what those features need (timm's ``FeatureGetterNet``).
    """

    def __init__(self, model: nn.Module, out_indices: int | Sequence[int] | None = None) -> None:
        super().__init__()
        if out_indices is None:
            out_indices = len(model.feature_info)  # every feature
        take = model.prune_intermediate_layers(out_indices, prune_head=True)
        self.model = model
        self.out_indices = tuple(take)
        self.feature_info = FeatureInfo(model.feature_info, self.out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, indices=self.out_indices, stop_early=True, intermediates_only=True)


def create_features_only(model: nn.Module, out_indices: int | Sequence[int] | None = None) -> FeatureListNet:
    """``model`` as a feature extractor (timm's ``features_only=True``); ``out_indices`` defaults to every
    feature. A model without ``forward_intermediates`` and ``feature_info`` is refused in one line."""
    if not (hasattr(model, "forward_intermediates") and hasattr(model, "feature_info")):
        raise ValueError(
            f"{type(model).__name__} has no forward_intermediates/feature_info, so features_only=True cannot "
            "work; use torchvision's create_feature_extractor, or timm/<name> models"
        )
    if not hasattr(model, "prune_intermediate_layers"):
        raise ValueError(f"{type(model).__name__} has no prune_intermediate_layers; features_only needs it")
    net = FeatureListNet(model, out_indices)
    if isinstance(getattr(model, "pretrained_cfg", None), dict):
        net.pretrained_cfg = model.pretrained_cfg  # how to prepare inputs is the backbone's (timm keeps it too)
    return net
