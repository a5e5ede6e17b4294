"""Decoding images into squares of one stored size: the preparation the image cache and the streaming loader share,
so that both give the same pixels.

Files are decoded by zoo's one decoder (``zoo.data.images.read_image``: PIL, the same pixels as an in-memory
image folder and ``zoo.predict`` get); the short side is resized to the stored size (bilinear, antialiased, uint8 all
the way) and the centre square is kept. ``ImageFiles`` and ``SquareImages`` are map-style Datasets of such squares,
for DataLoader workers. A stored side is at most ``zoo.inputs.MAX_IMAGE_SIDE``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data.images import as_mode, bounded_box, read_image
from zoo.data.jpeg import read_scaled
from zoo.data.types import DatasetOptionError
from zoo.inputs import MAX_IMAGE_SIDE

__all__ = [
    "MODES",
    "read_image_file",
    "fit_square",
    "to_uint8_image",
    "ImageFiles",
    "SquareImages",
    "stored_size",
    "check_stored_size",
]

MODES = {1: "L", 3: "RGB"}  # channels -> PIL mode


def stored_size(img_size: int) -> int:
    """The square side kept in a cache for models of ``img_size``: the 8/7 margin of the usual 256 -> 224 (a
    centre crop of ``img_size`` for evaluation, random resized crops of it for training)."""
    return max(int(img_size), round(int(img_size) * 8 / 7))


def check_stored_size(size: int, what: str = "cache") -> int:
    """``size`` when it is a sane stored side (1..``MAX_IMAGE_SIDE``), else a one-line ``DatasetOptionError``: one
    image of 12,000 px squared is 430 MB, and a batch of them exhausts memory."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_IMAGE_SIDE:
        raise DatasetOptionError(
            f"{what}: a stored image side of {size!r} px is outside 1..{MAX_IMAGE_SIDE} (zoo's limit; the stored side "
            f"is resize=, or img_size x 8/7); pass a smaller img_size or resize="
        )
    return size


def fit_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 C x H x W -> uint8 C x size x size: the short side resized to ``size`` (bilinear, antialiased when
    shrinking; the long side as torchvision's ``Resize(size)`` computes it), then the centre square. Pixels that
    come interleaved (a decoded image: channel stride 1) stay so, a resized one's square as a view."""
    box = bounded_box(image.shape[2], image.shape[1], 1, 1)  # an extreme strip: only its middle is resized
    if box is not None:
        image = image[:, box[1] : box[3], box[0] : box[2]]
    c, h, w = image.shape
    short, long = min(h, w), max(h, w)
    if short != size:
        new_long = max(size, int(size * long / short))
        new_h, new_w = (size, new_long) if h <= w else (new_long, size)
        image = F.interpolate(
            image.unsqueeze(0), size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=size < short
        )[0]
        h, w = new_h, new_w
    top, left = (h - size) // 2, (w - size) // 2
    square = image[:, top : top + size, left : left + size]
    if image.stride(0) == 1 and c > 1:  # decoded pixels come interleaved: kept so (a crop is cut fastest there)
        # a view of the image this call resized (nobody else holds it): the crops copy what they cut anyway
        return square if short != size else square.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    return square.contiguous()


def read_image_file(path: str | os.PathLike | bytes, channels: int) -> torch.Tensor:
    """Decode an image file (a path, or its bytes): uint8 ``channels`` x H x W (``zoo.data.images.read_image``). A
    broken file, a non-regular one or one over Pillow's decompression-bomb limit gives a one-line
    ``DatasetFormatError`` naming it."""
    return read_image(path, channels)


def to_uint8_image(item: Any, channels: int) -> torch.Tensor:
    """A PIL image, a uint8 or [0, 1] float tensor (C x H x W) or a uint8 H x W x C array as uint8 C x H x W with
    ``channels`` channels (grey repeated, colour turned to luma as PIL's ``convert("L")``; 16-bit scaled by its high
    byte, as the decoder does)."""
    if hasattr(item, "convert") and hasattr(item, "size"):  # a PIL image
        arr = np.array(as_mode(item, channels), dtype=np.uint8)
        return torch.from_numpy(arr.reshape(arr.shape[0], arr.shape[1], channels)).permute(2, 0, 1)
    if isinstance(item, np.ndarray):
        if item.ndim == 2:
            item = item[:, :, None]
        item = torch.from_numpy(np.ascontiguousarray(item)).permute(2, 0, 1)
    if not isinstance(item, torch.Tensor) or item.ndim not in (2, 3):
        raise TypeError(
            f"cannot cache a {type(item).__name__} as an image; accepted: PIL images, C x H x W tensors (uint8, or "
            "float in [0, 1]) and H x W x C uint8 arrays"
        )
    x = item if item.ndim == 3 else item.unsqueeze(0)
    if x.dtype == torch.uint16:  # 16-bit: the high byte, never wrapped modulo 256
        x = (x.to(torch.int32) >> 8).to(torch.uint8)
    elif not x.is_floating_point() and x.dtype != torch.uint8:
        raise TypeError(
            f"cannot cache a {str(x.dtype).replace('torch.', '')} image tensor; accepted: uint8, uint16 (scaled to 8 "
            "bits) or float in [0, 1]"
        )
    if x.is_floating_point():
        x = x.mul(255).round_().clamp_(0, 255)
    x = x.to(torch.uint8)
    if x.shape[0] == channels:
        return x
    if x.shape[0] == 1 and channels == 3:
        return x.expand(3, -1, -1)
    if x.shape[0] == 3 and channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
        w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        return (x.float() * w).sum(0, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"cannot turn a {x.shape[0]}-channel image into {channels} channels; accepted: 1 or 3")


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded into uint8 squares: item ``i`` is ``(C x size x size, label)``.

    Args:
        paths: the files, in index order.
        labels: one class index per file.
        size: the stored square side (``stored_size(img_size)``).
        channels: 1 (grey) or 3 (RGB).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], labels: Sequence[int], size: int, channels: int) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"ImageFiles: {len(paths)} paths but {len(labels)} labels; give one label per file")
        self.paths = [Path(p) for p in paths]
        self.labels = [int(v) for v in labels]
        self.size, self.channels = check_stored_size(int(size)), int(channels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = read_scaled(self.paths[i], self.channels, self.size, read_image_file)  # JPEGs: DCT-scaled
        return fit_square(image, self.size), self.labels[i]


class SquareImages(torch.utils.data.Dataset):
    """Any map-style Dataset of ``(image, label)`` (PIL images, tensors, arrays) as uint8 squares of ``size``."""

    def __init__(self, dataset: Any, size: int, channels: int) -> None:
        self.dataset, self.size, self.channels = dataset, check_stored_size(int(size)), int(channels)

    @property
    def labels(self) -> list[int] | None:
        """The class of every item when the Dataset lists them without decoding (``targets``, ``samples``)."""
        targets = getattr(self.dataset, "targets", None)
        if targets is None and isinstance(getattr(self.dataset, "samples", None), list):
            targets = [s[1] for s in self.dataset.samples]
        try:
            return [int(t) for t in targets] if targets is not None and len(targets) == len(self) else None
        except (TypeError, ValueError):
            return None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.dataset[i]
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise TypeError(
                f"item {i} of the {type(self.dataset).__name__} is a {type(item).__name__}; a Dataset to cache "
                "gives (image, class index) pairs"
            )
        label = item[1]
        return fit_square(to_uint8_image(item[0], self.channels), self.size), int(label)
