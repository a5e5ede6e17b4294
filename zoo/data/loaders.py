"""The data contract the engine reads, and the loaders that honour it.

The engine (``zoo.fit``, ``zoo.evaluate``) never looks at a concrete loader: it reads a ``Batches`` object, which
yields ``(inputs, targets)`` already on the training device, says how many batches and samples an epoch holds when
that is known, reshuffles on ``set_epoch(epoch)``, gives a small ``sample()`` for the checks before training, and
carries an ``InputRecord`` (input size, normalisation, class names), and says what the engine needs to know
besides: the normalisation, whether a user's DataLoader is used as given, the batch size, the labels when known
(the options of every loader: ``zoo.data.batching.BatchOptions``). ``make_batches`` turns each kind of data a user
may hold into one:

- a zoo ``Split`` or ``(inputs, targets)`` tensors / numpy arrays -> ``BatchLoader``: the whole split on the
  device, cut into batches by indexing; uint8 images are normalised and augmented a whole batch at a time there
  (the airbench recipe: no per-sample Python work, no workers). Other inputs (float images, tables) are used as
  they are.
- a ``torch.utils.data.DataLoader`` -> ``TorchLoader``, used as given: its batches are moved to the device.
- a map-style ``torch.utils.data.Dataset`` (torchvision's, with transforms) or an ``IterableDataset`` -> a
  DataLoader zoo builds (batch size, shuffling, workers and pinned memory chosen for the device, seeded per epoch,
  sharded under torchrun), then ``TorchLoader`` (``zoo.data.torchloader``).
- an ``ImageSplit`` (an image folder or Dataset cached on disk, or decoded as it streams; ``zoo.data.cache``) ->
  ``ImageBatches`` (``zoo.data.stream``): uint8 batches read from the memory-mapped cache or decoded in DataLoader
  workers, then cropped, flipped and normalised a whole batch at a time on the device, as ``BatchLoader`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from zoo.data.batching import BatchOptions, IndexedBatches
from zoo.data.describe import source_record
from zoo.data.imagesplit import ImageSplit
from zoo.data.stream import ImageBatches
from zoo.data.torchloader import TorchLoader, torch_batches
from zoo.data.types import Split, is_split
from zoo.inputs import InputRecord

__all__ = ["Batches", "BatchLoader", "make_batches"]


@runtime_checkable
class Batches(Protocol):
    """What the engine reads from data: the one contract every source is adapted to (``make_batches``)."""

    inputs: InputRecord  # what is known of the inputs (size, normalisation, classes)
    given: bool  # a user's DataLoader used as given: its batch size is fixed and zoo drops no last batch
    batch_size: int | None  # samples per batch on this rank (None: a loader that yields ready-made batches)
    labels: torch.Tensor | None  # every target of the data, when known without iterating (checked before training)

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """``(mean, std)`` uint8 images are normalised with (to normalise other data alike), or None: the inputs
        are used as given, or the normalisation is zoo's default 0.5, chosen per batch."""
        ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(inputs, targets)`` batches, already on the device (inputs normalised, ready for the model)."""
        ...

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch: a new (deterministic) order and augmentation, the same on every rank."""
        ...

    @property
    def num_batches(self) -> int | None:
        """Batches per epoch on this rank; None when unknown (a stream)."""
        ...

    @property
    def num_samples(self) -> int | None:
        """Samples per epoch on this rank; None when unknown."""
        ...

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of one or two samples on the device, prepared like every batch, for the checks before training;
        taking it does not advance any random generator."""
        ...


class BatchLoader(IndexedBatches):
    """Iterates a ``Split`` in batches on the training device; normalises (and augments) per batch, on the device.

    The whole uint8 split is moved to ``device`` once and indexed there. Each batch is gathered with one indexing
    operation that also applies the augmentation (random crop with zero padding ``img_size // 8`` and, where the
    split allows it, a horizontal flip: both are just the gathered row/column indices), then converted to float
    and normalised in place. Order and augmentation come from a generator seeded with ``(seed, epoch)``: call
    ``set_epoch(epoch)`` before each epoch (as with ``DistributedSampler``), the same on every rank.

    Args:
        split: the inputs and targets (uint8 images are normalised and may be augmented; others pass as given).
        batch_size: images per batch (per rank).
        options: a ``BatchOptions`` (device, shuffle, augment, mean/std, seed, rank/world_size, ...); its fields may
            also be given as keywords (``BatchLoader(split, 64, shuffle=True, seed=1)``). With ``shuffle`` or
            ``drop_last`` every rank gets the same number of samples (the shuffled indices are padded by wrapping
            around, or cut with ``drop_last``), like ``DistributedSampler``; otherwise (evaluation) the shards are
            disjoint and together cover every sample exactly once (their sizes may differ by one). mean/std default
            to the split's own (set by ``load_dataset``), else 0.5; ``hflip`` to the split's.
        resize_to: resize each batch (bilinear) to this square size, after augmentation: for large inputs that
            would not fit in memory when resized once on load.
        in_chans: repeat grey channels to 3 per batch (after normalisation).
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        options: BatchOptions | None = None,
        *,
        resize_to: int | None = None,
        in_chans: int | None = None,
        **kw: Any,
    ) -> None:
        options = BatchOptions.of(options, "BatchLoader", **kw)
        self._setup(len(split), batch_size, options, getattr(split, "hflip", None), "BatchLoader")
        images = split.images
        # uint8 N x C x H x W: images, scaled and normalised per batch (and augmented); anything else is used as given
        self.is_image = images.dtype == torch.uint8 and images.ndim == 4
        if self.augment and not self.is_image:
            raise ValueError(
                f"augment=True needs uint8 N x C x H x W images, got {images.dtype} {tuple(images.shape)}; "
                "for other data put the augmentation in a torch Dataset's transform"
            )
        if (resize_to or in_chans) and not self.is_image:
            raise ValueError(f"BatchLoader: resize_to and in_chans need uint8 images, got {images.dtype}")
        self.images = images.to(self.device)
        labels = split.labels
        self.labels = labels.to(self.device, dtype=torch.int64 if not labels.is_floating_point() else None)
        self.channels_last = self.channels_last and images.ndim == 4
        self.resize_to, self.in_chans = resize_to, in_chans
        self._padded_images: torch.Tensor | None = None
        if self.is_image:
            c = images.shape[1]
            if in_chans not in (None, c) and not (c == 1 and in_chans == 3):
                raise ValueError(f"BatchLoader: cannot turn {c}-channel images into in_chans={in_chans}")
            self._set_normalization(c, getattr(split, "mean", None), getattr(split, "std", None), "BatchLoader")
        self.inputs = source_record(split)
        if self.is_image:
            self.inputs.mean, self.inputs.std = self.mean, self.std

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.arange(min(2, len(self.labels)), device=self.device)
        return self._prepare(self.images.index_select(0, idx)), self.labels.index_select(0, idx)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalised float (resized, channels repeated, channels_last as asked); others as given."""
        if not self.is_image:
            return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
        x = x.float().mul_(self._scale).add_(self._shift)  # (x / 255 - mean) / std
        if self.resize_to and self.resize_to != x.shape[-1]:
            x = F.interpolate(
                x, size=(self.resize_to, self.resize_to), mode="bilinear", align_corners=False,
                antialias=self.resize_to < x.shape[-1],
            )  # fmt: skip
        if self.in_chans == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x if x.is_contiguous() else x.contiguous()

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
        if self.augment:
            _, c, h, w = self.images.shape
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
            yield self._prepare(x), self.labels.index_select(0, idx)


def make_batches(
    source: Any, batch_size: int | None = None, options: BatchOptions | None = None, **kw: Any
) -> BatchLoader | ImageBatches | TorchLoader:
    """The one adapter: any source (``as_source``) as ``Batches``, built with ``options`` (a ``BatchOptions``; its
    fields may also be given as keywords, ``make_batches(split, 64, device=dev, shuffle=True)``).

    ``mean``/``std`` override the normalisation of uint8 images (default: the source's own, else 0.5). A Dataset
    is wrapped in a DataLoader with ``num_workers`` (default ``default_workers(device)``), ``pin_memory`` (default:
    on CUDA), a generator reseeded each epoch from ``seed``, and a ``DistributedSampler`` under torchrun. A
    DataLoader is used as given: its own batch size, whatever ``batch_size`` says (``batches.given``).
    """
    options = BatchOptions.of(options, "make_batches", **kw)
    if isinstance(source, ImageSplit):  # a cached or streamed image split: read per batch, prepared on the device
        return ImageBatches(source, batch_size, options)
    if is_split(source):
        return BatchLoader(source, batch_size, options)
    if options.augment:
        raise ValueError(
            "augment=True works on zoo's in-memory uint8 images; for a torch Dataset or DataLoader put the "
            "augmentation in its transform"
        )
    if isinstance(source, torch.utils.data.DataLoader):
        return TorchLoader(source, None, options)
    return torch_batches(source, batch_size, options)
