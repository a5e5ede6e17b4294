"""How batches are built (``BatchOptions``, the one options object of ``make_batches`` and every loader), and what
zoo's indexed loaders share (``IndexedBatches``: the per-epoch, per-rank order, the counts, the normalisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from zoo.data.describe import channel_tuple
from zoo.data.splitting import shard_order, shard_total
from zoo.suggest import suggest

__all__ = ["BatchOptions", "IndexedBatches", "affine_coefficients", "affine_into", "normalize"]


def normalize(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Images B x C x H x W (uint8, or float to be changed in place off the CPU) as float ``x * scale + shift``
    (``scale`` and ``shift``: 1 x C x 1 x 1), in ``x``'s memory layout.

    On the CPU the batch is computed about 4 MiB at a time (``affine_into``), each part converted, scaled and
    shifted while it is in the processor's cache, not in three passes over the whole batch (38.5 MB as float at
    224 px); the values are those of ``x.float().mul_(scale).add_(shift)``."""
    if x.device.type != "cpu":
        return x.float().mul_(scale).add_(shift)
    b, c, h, w = x.shape
    interleaved = c > 1 and x.stride(1) == 1 and not x.is_contiguous()  # channels_last, or a crop of it
    out = torch.empty(x.shape, dtype=torch.float32, memory_format=torch.channels_last if interleaved else None)
    coefficients = affine_coefficients(out, scale, shift)
    per = max(1, _CHUNK_BYTES // (4 * c * h * w))
    for i in range(0, b, per):
        affine_into(out[i : i + per], x[i : i + per], coefficients)
    return out


def affine_coefficients(
    out: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale`` and ``shift`` (1 x C x 1 x 1) as ``affine_into`` applies them to ``out``'s layout.

    In channels_last a per-channel ``scale`` varies along the innermost dimension, and torch's broadcast of
    1 x C x 1 x 1 there runs element by element: 16 ms for a batch of 64 at 224 px against 2 ms planar. So a
    channels_last ``out`` is computed as rows of W x C values, ``scale`` and ``shift`` tiled along a row:
    vectorised, and the same values (the same two roundings per element)."""
    c, w = out.shape[1], out.shape[3]
    if c > 1 and out.stride(1) == 1:
        return scale.reshape(c).repeat(w), shift.reshape(c).repeat(w)
    return scale, shift


def affine_into(out: torch.Tensor, x: torch.Tensor, coefficients: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``out`` (float B x C x H x W, planar or channels_last) set to ``x * scale + shift``, with the coefficients
    ``affine_coefficients`` gave for ``out``'s layout."""
    b, c, h, w = out.shape
    scale, shift = coefficients
    if c > 1 and out.stride(1) == 1:
        rows = out.permute(0, 2, 3, 1).view(b, h, w * c)
        rows.view(b, h, w, c).copy_(x.permute(0, 2, 3, 1))
        rows.mul_(scale).add_(shift)
    else:
        out.copy_(x).mul_(scale).add_(shift)
    return out


_CHUNK_BYTES = 4 << 20  # a part that stays in the cache: 2.6 against 3.1 ms (1 MiB) a 224-px batch of 64, 2 threads


@dataclass(frozen=True)
class BatchOptions:
    """How to turn data into batches on a device: one object, passed whole to ``make_batches`` and the loaders."""

    device: str | torch.device = "cpu"  # where batches are produced
    shuffle: bool = False  # a new (seeded) order each epoch
    augment: bool = False  # random crops and (if hflip) flips of zoo's uint8 images
    channels_last: bool = False  # yield image batches in torch.channels_last memory format
    drop_last: bool = False  # drop the last incomplete batch
    seed: int = 0  # base seed of the order and the augmentation (with the epoch)
    rank: int = 0  # this process's shard ...
    world_size: int = 1  # ... of this many
    mean: float | Sequence[float] | None = None  # normalisation of uint8 images, per channel in [0, 1] units;
    std: float | Sequence[float] | None = None  # default: the data's own, else 0.5
    hflip: bool | None = None  # whether augmentation flips; default: the data's own (False for digits)
    num_workers: int | None = None  # DataLoader workers for a Dataset zoo wraps (default: chosen for the device)
    pin_memory: bool | None = None  # pin host batches (default: on CUDA)

    @classmethod
    def of(cls, options: BatchOptions | None = None, what: str = "make_batches", **changes: Any) -> BatchOptions:
        """``options`` (default: the defaults) with ``changes``; a one-line error naming an unknown option."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise TypeError(
                f"{what}: unknown option {unknown[0]!r}{suggest(unknown[0], names)}; options: {', '.join(names)}"
            )
        return replace(options or cls(), **changes)


class IndexedBatches:
    """What ``BatchLoader`` and ``ImageBatches`` share: samples read by index in an order seeded with
    ``(seed, epoch)`` and sharded per rank (``shard_order``), uint8 images normalised per batch on the device."""

    given = False  # zoo chose the batch size (and may drop a last batch of one)

    def _setup(self, n: int, batch_size: int | None, options: BatchOptions, hflip: bool | None, what: str) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{what}: batch_size must be an integer >= 1, got {batch_size!r}")
        o = options
        if not 0 <= o.rank < o.world_size:
            raise ValueError(f"{what}: rank {o.rank} is not in 0..{o.world_size - 1} (world_size={o.world_size})")
        self.options = o
        self.device = torch.device(o.device)
        self.batch_size, self.shuffle, self.augment = int(batch_size), bool(o.shuffle), bool(o.augment)
        self.channels_last, self.drop_last = bool(o.channels_last), bool(o.drop_last)
        self.seed, self.rank, self.world_size, self.epoch = int(o.seed), int(o.rank), int(o.world_size), 0
        self.hflip = bool(hflip if o.hflip is None else o.hflip)
        self._n = n
        self._total = shard_total(n, o.world_size, o.shuffle, o.drop_last)
        self._num_samples = len(range(self.rank, self._total, self.world_size))
        full, rest = divmod(self._num_samples, self.batch_size)
        self._len = full if (o.drop_last or rest == 0) else full + 1
        self.mean: tuple[float, ...] | None = None
        self.std: tuple[float, ...] | None = None

    def _set_normalization(self, channels: int, own_mean: Any, own_std: Any, what: str) -> None:
        """The mean/std of uint8 images: the options', else the data's own, else 0.5; as ``x * scale + shift``."""
        o = self.options
        self.mean = channel_tuple((own_mean or 0.5) if o.mean is None else o.mean, channels, f"{what}: mean")
        self.std = channel_tuple((own_std or 0.5) if o.std is None else o.std, channels, f"{what}: std")
        # x_norm = (x / 255 - mean) / std = x * scale + shift
        c, dev = channels, self.device
        self._scale = torch.tensor([1 / (255 * s) for s in self.std], device=dev).view(1, c, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], device=dev).view(1, c, 1, 1)

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """``(mean, std)`` the uint8 images are normalised with; None when the inputs are used as given."""
        return None if self.mean is None or self.std is None else (self.mean, self.std)

    def set_epoch(self, epoch: int) -> None:
        """Deterministic reshuffle: the order (and augmentation) comes from ``(seed, epoch)``; same on all ranks."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._len

    @property
    def num_batches(self) -> int:
        return self._len

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (``len(self) * batch_size`` or fewer)."""
        return min(self._num_samples, self._len * self.batch_size)

    def indices(self) -> torch.Tensor:
        """This rank's sample indices (positions in the data) for the current epoch, in order (CPU)."""
        return shard_order(self._n, self._total, self.shuffle, self.seed, self.epoch, self.rank, self.world_size)
