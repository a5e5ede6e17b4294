"""BatchLoader: a whole uint8 split cut into batches on the training device, normalised and augmented a batch at a
time (random crop with padding, horizontal flip), with deterministic per-epoch shuffling and DDP sharding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from zoo.data import Split

__all__ = ["BatchLoader"]


def _as_channel_tuple(value: float | Sequence[float], channels: int, what: str) -> tuple[float, ...]:
    values = (float(value),) if isinstance(value, int | float) else tuple(float(v) for v in value)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ValueError(f"BatchLoader: {what} has {len(values)} values for {channels}-channel images")
    return values


class BatchLoader:
    """Iterates a ``Split`` in batches on the training device; normalises (and augments) per batch, on the device.

    The whole uint8 split is moved to ``device`` once and indexed there. Each batch is gathered with one indexing
    operation that also applies the augmentation (random crop with zero padding ``img_size // 8`` and, where the
    split allows it, a horizontal flip: both are just the gathered row/column indices), then converted to float
    and normalised in place. Order and augmentation come from a generator seeded with ``(seed, epoch)``: call
    ``set_epoch(epoch)`` before each epoch (as with ``DistributedSampler``), the same on every rank.

    Args:
        split: the images and labels.
        batch_size: images per batch (per rank).
        shuffle: a new permutation each epoch.
        augment: random crop with padding and (if ``hflip``) horizontal flips.
        mean, std: per channel in [0, 1] units; default: the split's own (set by ``load_dataset``) or 0.5.
        device: where batches are produced (and where the split is kept).
        channels_last: yield batches in ``torch.channels_last`` memory format.
        drop_last: drop the last incomplete batch.
        seed: base seed for the order and the augmentation.
        rank, world_size: this process's shard. With ``shuffle`` or ``drop_last``, every rank gets the same number
            of samples (the shuffled indices are padded by wrapping around, or cut with ``drop_last``), like
            ``DistributedSampler``; otherwise (evaluation) the shards are disjoint and together cover every sample
            exactly once (their sizes may differ by one).
        hflip: whether augmentation flips; default: the split's ``hflip`` (False for digits and MNIST).
        resize_to: resize each batch (bilinear) to this square size, after augmentation: for large inputs that
            would not fit in memory when resized once on load.
        in_chans: repeat grey channels to 3 per batch (after normalisation).
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: bool = False,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        device: str | torch.device = "cpu",
        channels_last: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        hflip: bool | None = None,
        resize_to: int | None = None,
        in_chans: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"BatchLoader: batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"BatchLoader: rank {rank} is not in 0..{world_size - 1} (world_size={world_size})")
        images = split.images
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"BatchLoader: expected uint8 N x C x H x W images, got {images.dtype} {tuple(images.shape)}"
            )
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = split.labels.to(self.device, dtype=torch.int64)
        self.batch_size, self.shuffle, self.augment = int(batch_size), bool(shuffle), bool(augment)
        self.channels_last, self.drop_last = bool(channels_last), bool(drop_last)
        self.seed, self.rank, self.world_size, self.epoch = int(seed), int(rank), int(world_size), 0
        self.hflip = bool(getattr(split, "hflip", None) if hflip is None else hflip)
        self.resize_to, self.in_chans = resize_to, in_chans
        self._padded_images: torch.Tensor | None = None
        c = images.shape[1]
        if in_chans not in (None, c) and not (c == 1 and in_chans == 3):
            raise ValueError(f"BatchLoader: cannot turn {c}-channel images into in_chans={in_chans}")
        mean = _as_channel_tuple(getattr(split, "mean", None) or 0.5 if mean is None else mean, c, "mean")
        std = _as_channel_tuple(getattr(split, "std", None) or 0.5 if std is None else std, c, "std")
        self.mean, self.std = mean, std
        # x_norm = (x / 255 - mean) / std = x * scale + shift
        self._scale = torch.tensor([1 / (255 * s) for s in std], device=self.device).view(1, c, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=self.device).view(1, c, 1, 1)
        n = len(split)
        if world_size > 1 and (shuffle or drop_last):
            self._total = n // world_size * world_size if drop_last else math.ceil(n / world_size) * world_size
        else:
            self._total = n
        self._num_samples = len(range(self.rank, self._total, self.world_size))
        full, rest = divmod(self._num_samples, self.batch_size)
        self._len = full if (drop_last or rest == 0) else full + 1

    def set_epoch(self, epoch: int) -> None:
        """Deterministic reshuffle: the order (and augmentation) comes from ``(seed, epoch)``; same on all ranks."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._len

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (``len(self) * batch_size`` or fewer)."""
        return min(self._num_samples, self._len * self.batch_size)

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, in order (CPU)."""
        n = len(self.labels)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self._total > n:  # pad by wrapping around so that every rank gets as many samples
            order = torch.cat([order, order[: self._total - n]])
        return order[: self._total][self.rank :: self.world_size]

    def _padded(self) -> torch.Tensor:
        """The split zero-padded by ``img_size // 8`` on each side, built once (uint8, on the device)."""
        if self._padded_images is None:
            pad = self.images.shape[-2] // 8
            self._padded_images = F.pad(self.images, (pad, pad, pad, pad)).contiguous()
        return self._padded_images

    def _augment_params(self, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample crop offsets (dy, dx) and flip flags for the whole epoch, drawn for the global order."""
        _, _, h, w = self.images.shape
        pad = h // 8
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + 0x5EED)
        total = self._total
        dy = torch.randint(0, 2 * pad + 1, (total,), generator=g)
        dx = torch.randint(0, 2 * pad + 1, (total,), generator=g)
        flip = torch.randint(0, 2, (total,), generator=g, dtype=torch.bool) & self.hflip
        sl = slice(self.rank, total, self.world_size)
        return dy[sl][:count], dx[sl][:count], flip[sl][:count]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx_all = self.indices()[: self.num_samples].to(self.device)
        _, c, h, w = self.images.shape
        if self.augment:
            dy, dx, flip = (t.to(self.device) for t in self._augment_params(self.num_samples))
            padded = self._padded()
            wp = padded.shape[-1]
            ar_h = torch.arange(h, device=self.device)
            ar_w = torch.arange(w, device=self.device)
        for start in range(0, self.num_samples, self.batch_size):
            idx = idx_all[start : start + self.batch_size]
            b = len(idx)
            if self.augment:
                # crop and flip in one gather: source pixel (dy + r, dx + c), or (dy + r, dx + w - 1 - c) if flipped
                sl = slice(start, start + b)
                rows = dy[sl, None] + ar_h  # B x H
                cols = torch.where(flip[sl, None], dx[sl, None] + (w - 1 - ar_w), dx[sl, None] + ar_w)  # B x W
                flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
                x = padded.index_select(0, idx).view(b, c, -1).gather(2, flat).view(b, c, h, w)  # uint8
            else:
                x = self.images.index_select(0, idx)
            x = x.float().mul_(self._scale).add_(self._shift)  # (x / 255 - mean) / std
            if self.resize_to and self.resize_to != x.shape[-1]:
                x = F.interpolate(
                    x, size=(self.resize_to, self.resize_to), mode="bilinear", align_corners=False,
                    antialias=self.resize_to < x.shape[-1],
                )  # fmt: skip
            if self.in_chans == 3 and x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            elif not x.is_contiguous():
                x = x.contiguous()
            yield x, self.labels.index_select(0, idx)
