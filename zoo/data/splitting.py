"""Splitting and ordering samples: the held-out validation split (``split_off``), stratified orders and subsets,
and the per-epoch, per-rank order every zoo loader reads (``shard_order``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.data.describe import source_len
from zoo.data.imagesplit import ImageSplit
from zoo.data.types import Split, is_split

__all__ = ["split_off", "stratified_order", "subset_source", "shard_total", "shard_order"]


def split_off(source: Any, fraction: float, seed: int = 0) -> tuple[Any, Any]:
    """Hold out a seeded ``fraction`` of a source for validation: ``(train, val)``.

    A Split or an ``ImageSplit`` with class labels is split per class (stratified), so every class keeps its
    share; a map-style Dataset by a seeded permutation. A DataLoader or a stream cannot be split: pass ``val=``
    for those.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction!r}")
    n = source_len(source)
    if n is None or isinstance(source, (torch.utils.data.DataLoader, torch.utils.data.IterableDataset)):
        raise ValueError(
            f"val_fraction needs data zoo can index (a zoo Dataset, tensors or a map-style Dataset); "
            f"got a {type(source).__name__}: pass val= instead"
        )
    k = max(1, int(round(n * fraction)))
    if k >= n:
        raise ValueError(f"val_fraction={fraction} of {n} samples leaves no training data; choose a smaller fraction")
    labels = source.labels if is_split(source) or isinstance(source, ImageSplit) else None
    val = stratified_order(labels, n, seed)[:k].sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    train = keep.nonzero().flatten()
    return subset_source(source, train), subset_source(source, val)


def stratified_order(labels: torch.Tensor | None, n: int, seed: int = 0) -> torch.Tensor:
    """A seeded order of ``n`` samples in which every prefix holds each class in proportion (to within one).

    Samples are ranked by their place in a seeded permutation of their own class, relative to the class's size;
    without class labels (None, float or N x K targets) it is a plain seeded permutation. ``split_off`` and
    ``zoo.data.subset`` take prefixes of it.
    """
    g = torch.Generator().manual_seed(int(seed))
    if labels is None or labels.is_floating_point() or labels.ndim != 1:
        return torch.randperm(n, generator=g)
    rank = torch.empty(n, dtype=torch.float64)
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().flatten()
        order = torch.randperm(len(idx), generator=g)
        rank[idx[order]] = (torch.arange(len(idx), dtype=torch.float64) + 0.5) / len(idx)
    return torch.argsort(rank, stable=True)


def subset_source(source: Any, indices: torch.Tensor) -> Any:
    """The samples at ``indices`` of a Split (a new Split with the same statistics), an ``ImageSplit`` (a view that
    copies no image) or a map-style Dataset."""
    if isinstance(source, ImageSplit):
        return source.subset(indices)
    if is_split(source):
        return Split(
            source.images[indices].contiguous(),
            source.labels[indices].contiguous(),
            mean=getattr(source, "mean", None),
            std=getattr(source, "std", None),
            hflip=getattr(source, "hflip", None),
        )
    return torch.utils.data.Subset(source, indices.tolist())


def shard_total(n: int, world_size: int, shuffle: bool, drop_last: bool) -> int:
    """Samples in an epoch's order over all ranks: with ``shuffle`` or ``drop_last`` under DDP, every rank gets the
    same number (the order is padded by wrapping around, or cut with ``drop_last``), like ``DistributedSampler``;
    otherwise (evaluation) ``n``, so that the shards together cover every sample exactly once."""
    if world_size > 1 and (shuffle or drop_last):
        return n // world_size * world_size if drop_last else math.ceil(n / world_size) * world_size
    return n


def shard_order(n: int, total: int, shuffle: bool, seed: int, epoch: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's sample indices for an epoch (CPU): a permutation seeded with ``(seed, epoch)`` (or ``0..n-1``),
    padded to ``total`` by wrapping around, then every ``world_size``-th from ``rank``."""
    if shuffle:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    if total > n:  # pad by wrapping around so that every rank gets as many samples
        order = torch.cat([order, order[: total - n]])
    return order[:total][rank::world_size]
