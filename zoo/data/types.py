"""The data types zoo's loaders produce and the engine reads: ``Split``, ``Dataset``, and the errors (what is known
of some data besides its batches is an ``InputRecord``, ``zoo.inputs``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Split", "Dataset", "DatasetNotFoundError", "DatasetOptionError", "is_dataset", "is_split"]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are in none of the places zoo looks, and downloading is not allowed (or failed)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DatasetOptionError(TypeError):
    """``load_dataset`` was given an option the dataset does not accept, or a bad value."""


# --------------------------------------------------------------------------------------------------------------------
# Containers (the data <-> engine contract)


@dataclass(repr=False)
class Split:
    """One split held whole in memory: the inputs and the targets, as tensors.

    For images (zoo's datasets) ``images`` is uint8 N x C x H x W, normalised per batch by the loader; any other
    tensor (float images, N x F tables) is used as it is. ``labels`` holds int64 class indices, or float targets.
    """

    images: torch.Tensor  # uint8 N x C x H x W for images; any N x ... tensor otherwise (CPU)
    labels: torch.Tensor  # int64 N class indices, or float N / N x K targets
    # filled in by load_dataset so that a bare Split still carries how to normalise and augment it
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    hflip: bool | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return f"Split(images={tuple(self.images.shape)} {self.images.dtype}, labels={tuple(self.labels.shape)})"


@dataclass(repr=False)
class Dataset:
    """Train and test splits plus what a model and the engine need to know about them."""

    name: str
    train: Split
    test: Split
    num_classes: int
    in_chans: int
    img_size: int  # H (== W; images are square after loading)
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]
    classes: list[str] | None = None
    source: str | None = None  # a path, "embedded" or "synthetic"
    hflip: bool = False  # whether horizontal flips are a valid augmentation (yes for CIFAR, not for digits)

    def __post_init__(self) -> None:
        for split in (self.train, self.test):
            split.mean = split.mean or tuple(self.mean)
            split.std = split.std or tuple(self.std)
            split.hflip = self.hflip if split.hflip is None else split.hflip

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (self.in_chans, self.img_size, self.img_size)

    def __repr__(self) -> str:
        return (
            f"Dataset('{self.name}', train={len(self.train)}, test={len(self.test)}, num_classes={self.num_classes}, "
            f"input_size={self.input_size}, source={self.source!r})"
        )


def is_dataset(data: Any) -> bool:
    """A zoo ``Dataset`` (or anything shaped like one: train and test splits and a class count)."""
    return hasattr(data, "train") and hasattr(data, "test") and hasattr(data, "num_classes")


def is_split(data: Any) -> bool:
    """A zoo ``Split`` (whole tensors of inputs and targets)."""
    return hasattr(data, "images") and hasattr(data, "labels") and isinstance(data.images, torch.Tensor)
