"""The data contract the engine reads, and the loaders that honour it.

The engine (``zoo.fit``, ``zoo.evaluate``) never looks at a concrete loader: it reads a ``Batches`` object, which
yields ``(inputs, targets)`` already on the training device, says how many batches and samples an epoch holds when
that is known, reshuffles on ``set_epoch(epoch)``, gives a small ``sample()`` for the checks before training, and
carries a ``DataInfo`` (input size, normalisation, class names). ``make_batches`` turns each kind of data a user
may hold into one:

- a zoo ``Split`` or ``(inputs, targets)`` tensors / numpy arrays -> ``BatchLoader``: the whole split on the
  device, cut into batches by indexing; uint8 images are normalised and augmented a whole batch at a time there
  (the airbench recipe: no per-sample Python work, no workers). Other inputs (float images, tables) are used as
  they are.
- a ``torch.utils.data.DataLoader`` -> ``TorchLoader``, used as given: its batches are moved to the device.
- a map-style ``torch.utils.data.Dataset`` (torchvision's, with transforms) or an ``IterableDataset`` -> a
  DataLoader zoo builds (batch size, shuffling, workers and pinned memory chosen for the device, seeded per epoch,
  sharded under torchrun), then ``TorchLoader``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data.types import DataInfo, Split, is_dataset, is_split

__all__ = [
    "Batches",
    "BatchLoader",
    "TorchLoader",
    "as_source",
    "make_batches",
    "source_info",
    "source_len",
    "split_off",
    "stratified_order",
    "subset_source",
    "default_workers",
]

ACCEPTED = (
    "a zoo Dataset (zoo.load_dataset) or Split, an (inputs, targets) pair of tensors or numpy arrays, "
    "a torch.utils.data.Dataset, IterableDataset or DataLoader"
)


@runtime_checkable
class Batches(Protocol):
    """What the engine reads from data: the one contract every source is adapted to (``make_batches``)."""

    info: DataInfo  # what is known of the data (input size, normalisation, classes)

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
        split: the inputs and targets (uint8 images are normalised and may be augmented; others pass as given).
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
        # uint8 N x C x H x W: images, scaled and normalised per batch (and augmented); anything else is used as given
        self.is_image = images.dtype == torch.uint8 and images.ndim == 4
        if augment and not self.is_image:
            raise ValueError(
                f"augment=True needs uint8 N x C x H x W images, got {images.dtype} {tuple(images.shape)}; "
                "for other data put the augmentation in a torch Dataset's transform"
            )
        if (resize_to or in_chans) and not self.is_image:
            raise ValueError(f"BatchLoader: resize_to and in_chans need uint8 images, got {images.dtype}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        labels = split.labels
        self.labels = labels.to(self.device, dtype=torch.int64 if not labels.is_floating_point() else None)
        self.batch_size, self.shuffle, self.augment = int(batch_size), bool(shuffle), bool(augment)
        self.channels_last = bool(channels_last) and images.ndim == 4
        self.drop_last = bool(drop_last)
        self.seed, self.rank, self.world_size, self.epoch = int(seed), int(rank), int(world_size), 0
        self.hflip = bool(getattr(split, "hflip", None) if hflip is None else hflip)
        self.resize_to, self.in_chans = resize_to, in_chans
        self._padded_images: torch.Tensor | None = None
        self.mean = self.std = None
        if self.is_image:
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
        self.info = source_info(split)
        if self.is_image:
            self.info.mean, self.info.std = self.mean, self.std

    def set_epoch(self, epoch: int) -> None:
        """Deterministic reshuffle: the order (and augmentation) comes from ``(seed, epoch)``; same on all ranks."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._len

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (``len(self) * batch_size`` or fewer)."""
        return min(self._num_samples, self._len * self.batch_size)

    @property
    def num_batches(self) -> int:
        return self._len

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


# --------------------------------------------------------------------------------------------------------------------
# torch DataLoaders and Datasets


def _pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        x, y = batch
        if not isinstance(y, torch.Tensor):
            y = torch.as_tensor(y)
        if isinstance(x, torch.Tensor):
            return x, y
    what = f"a {type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    if isinstance(batch, dict):
        what = f"a dict with keys {sorted(map(str, batch))}"
    raise TypeError(f"a batch must be an (inputs, targets) pair of tensors; the loader gave {what}")


class TorchLoader:
    """A torch ``DataLoader`` behind the ``Batches`` contract, used as given.

    Each batch is moved to the device (non-blocking from pinned memory); uint8 image batches are scaled and
    normalised there, as zoo's own images are; image batches are made ``channels_last`` when asked; ``set_epoch`` is
    passed on to a sampler that has one (``DistributedSampler``) and reseeds the generator of a loader zoo built.
    """

    def __init__(
        self,
        loader: torch.utils.data.DataLoader,
        *,
        device: str | torch.device = "cpu",
        channels_last: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        seed: int | None = None,
        info: DataInfo | None = None,
    ) -> None:
        self.loader = loader
        self.device = torch.device(device)
        self.channels_last = bool(channels_last)
        self.seed = seed  # set when zoo built the loader (and owns its generator)
        self.non_blocking = bool(getattr(loader, "pin_memory", False)) and self.device.type == "cuda"
        self.info = info or source_info(loader)
        self.mean, self.std = mean, std
        self._norm: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def set_epoch(self, epoch: int) -> None:
        for sampler in (getattr(self.loader, "sampler", None), getattr(self.loader, "batch_sampler", None)):
            for s in (sampler, getattr(sampler, "sampler", None)):
                if hasattr(s, "set_epoch"):
                    s.set_epoch(epoch)
                    return
        generator = getattr(self.loader, "generator", None)
        if self.seed is not None and generator is not None:
            generator.manual_seed(self.seed * 1_000_003 + int(epoch))

    @property
    def num_batches(self) -> int | None:
        try:
            return len(self.loader)
        except TypeError:  # an IterableDataset without __len__
            return None

    @property
    def num_samples(self) -> int | None:
        n = source_len(self.loader)
        batches, size = self.num_batches, getattr(self.loader, "batch_size", None)
        if n is not None and batches is not None and size and getattr(self.loader, "drop_last", False):
            n = min(n, batches * size)
        return n

    def __len__(self) -> int:
        n = self.num_batches
        if n is None:
            raise TypeError("this loader streams: its length is unknown")
        return n

    def _prepare(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, non_blocking=self.non_blocking)
        y = y.to(self.device, non_blocking=self.non_blocking)
        if x.dtype == torch.uint8 and x.ndim == 4:
            c = x.shape[1]
            if c not in self._norm:
                mean = _as_channel_tuple(0.5 if self.mean is None else self.mean, c, "mean")
                std = _as_channel_tuple(0.5 if self.std is None else self.std, c, "std")
                self._norm[c] = (
                    torch.tensor([1 / (255 * s) for s in std], device=self.device).view(1, c, 1, 1),
                    torch.tensor([-m / s for m, s in zip(mean, std)], device=self.device).view(1, c, 1, 1),
                )
            scale, shift = self._norm[c]
            x = x.float().mul_(scale).add_(shift)
        elif x.dtype == torch.float64:
            x = x.float()
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if y.dtype == torch.float64:
            y = y.float()
        return x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self.loader:
            yield self._prepare(*_pair(batch))

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):  # a random transform must not shift the training run's draws
            dataset = self.loader.dataset
            if not isinstance(dataset, torch.utils.data.IterableDataset) and self.loader.batch_size is not None:
                n = len(dataset)  # type: ignore[arg-type]
                if n == 0:
                    raise ValueError("the data is empty")
                batch = self.loader.collate_fn([dataset[i] for i in range(min(2, n))])
            else:
                try:
                    batch = next(iter(self.loader))
                except StopIteration:
                    raise ValueError("the data is empty: the loader yielded no batch") from None
        x, y = self._prepare(*_pair(batch))
        return x[:2], y[:2]


def default_workers(device: torch.device) -> int:
    """DataLoader workers for a Dataset zoo wraps: on a GPU half the cores (up to 8) decode while it computes; on a
    CPU the workers compete with the model for the cores, so 0 below 4 cores (measured: 2 workers on 2 cores train
    0.87x as fast, BASELINES.md) and up to 4 above."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cuda":
        return max(1, min(8, cores // 2))
    return 0 if cores < 4 else min(4, cores // 2 - 1)


# --------------------------------------------------------------------------------------------------------------------
# From what the user holds to the contract


def _tensor(value: Any, what: str, role: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{what}: {role} is a numpy array of Python objects; expected numbers")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{what}: {role} is a {type(value).__name__}; expected a tensor or a numpy array")


def as_source(data: Any, what: str = "fit") -> Split | torch.utils.data.Dataset | torch.utils.data.DataLoader:
    """One piece of data as zoo holds it: a ``Split`` (whole tensors), a torch ``Dataset`` or a ``DataLoader``.

    ``(inputs, targets)`` tensors or numpy arrays become a ``Split``: N x H x W uint8 images gain a channel axis,
    float64 becomes float32 (the dtype of model weights), integer targets int64. Raises a one-line ``TypeError`` /
    ``ValueError`` for anything else, naming what is accepted.
    """
    if is_split(data):
        return data
    if isinstance(data, (torch.utils.data.DataLoader, torch.utils.data.Dataset)):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and not is_dataset(data):
        x, y = (_tensor(v, what, r) for v, r in zip(data, ("inputs", "targets")))
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"{what}: inputs and targets need a first (sample) axis; got shapes {tuple(x.shape)}, "
                             f"{tuple(y.shape)}")  # fmt: skip
        if len(x) != len(y):
            raise ValueError(
                f"{what}: {len(x)} inputs but {len(y)} targets; inputs and targets must have one row per sample"
            )
        if x.dtype == torch.uint8 and x.ndim == 3:
            x = x.unsqueeze(1)  # N x H x W -> N x 1 x H x W
        if x.dtype == torch.float64:
            x = x.float()
        if y.dtype == torch.float64 or y.dtype == torch.bool:
            y = y.float()
        elif not y.is_floating_point():
            y = y.long()
        return Split(images=x.contiguous(), labels=y.contiguous())
    raise TypeError(f"{what}: expected {ACCEPTED}; got {type(data).__name__}")


def source_len(source: Any) -> int | None:
    """Samples in a source, or None for a stream."""
    if is_split(source):
        return len(source)
    dataset = source.dataset if isinstance(source, torch.utils.data.DataLoader) else source
    if isinstance(dataset, torch.utils.data.IterableDataset):
        try:
            return len(dataset)  # type: ignore[arg-type]
        except TypeError:
            return None
    try:
        return len(dataset)
    except TypeError:
        return None


def _transform_info(dataset: Any) -> dict[str, Any]:
    """mean/std, resize and crop read from a torchvision transform pipeline (``Compose`` of ``Normalize``,
    ``Resize``, ``CenterCrop``, ...), v1 or v2; whatever is not found stays unknown."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    transform = getattr(dataset, "transform", None)
    steps = list(getattr(transform, "transforms", None) or ([transform] if transform is not None else []))
    found: dict[str, Any] = {}
    for t in steps:
        name = type(t).__name__
        if name == "Normalize":
            found["mean"] = tuple(float(v) for v in t.mean)
            found["std"] = tuple(float(v) for v in t.std)
        elif name == "Resize" and "crop" not in found:
            size = t.size
            found["resize"] = int(size) if isinstance(size, int) else [int(v) for v in size]
            if isinstance(found["resize"], list) and len(found["resize"]) == 1:
                found["resize"] = found["resize"][0]
        elif name == "CenterCrop":
            size = t.size
            found["crop"] = [int(size), int(size)] if isinstance(size, int) else [int(v) for v in size]
    return found


def source_info(source: Any, sample: tuple[torch.Tensor, torch.Tensor] | None = None) -> DataInfo:
    """What can be told of a source without iterating it (a ``sample`` batch fills in the input size)."""
    info = DataInfo()
    if is_split(source):
        x = source.images
        info.input_size = tuple(int(v) for v in x.shape[1:])
        info.input_dtype = "uint8" if x.dtype == torch.uint8 and x.ndim == 4 else str(x.dtype).replace("torch.", "")
        info.mean = tuple(source.mean) if getattr(source, "mean", None) else None
        info.std = tuple(source.std) if getattr(source, "std", None) else None
        info.hflip = bool(getattr(source, "hflip", False))
        return info
    dataset = source.dataset if isinstance(source, torch.utils.data.DataLoader) else source
    found = _transform_info(dataset)
    info.mean, info.std = found.pop("mean", None), found.pop("std", None)
    info.extra.update(found)
    base = dataset
    while isinstance(base, torch.utils.data.Subset):
        base = base.dataset
    classes = getattr(base, "classes", None)
    if isinstance(classes, (list, tuple)) and classes and all(isinstance(c, str) for c in classes):
        info.classes = list(classes)
        info.num_classes = len(classes)
    info.name = type(base).__name__
    if sample is not None:
        info.input_size = tuple(int(v) for v in sample[0].shape[1:])
        info.input_dtype = str(sample[0].dtype).replace("torch.", "")
    return info


def split_off(source: Any, fraction: float, seed: int = 0) -> tuple[Any, Any]:
    """Hold out a seeded ``fraction`` of a source for validation: ``(train, val)``.

    A Split with class labels is split per class (stratified), so every class keeps its share; a map-style
    Dataset by a seeded permutation. A DataLoader or a stream cannot be split: pass ``val=`` for those.
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
    labels = source.labels if is_split(source) else None
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
    """The samples at ``indices`` of a Split (a new Split with the same statistics) or a map-style Dataset."""
    if is_split(source):
        return Split(
            source.images[indices].contiguous(),
            source.labels[indices].contiguous(),
            mean=getattr(source, "mean", None),
            std=getattr(source, "std", None),
            hflip=getattr(source, "hflip", None),
        )
    return torch.utils.data.Subset(source, indices.tolist())


def make_batches(
    source: Any,
    batch_size: int,
    *,
    device: torch.device,
    shuffle: bool,
    drop_last: bool = False,
    augment: bool = False,
    channels_last: bool = False,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_workers: int | None = None,
    pin_memory: bool | None = None,
) -> BatchLoader | TorchLoader:
    """The one adapter: any source (``as_source``) as ``Batches`` on ``device``.

    ``mean``/``std`` override the normalisation of uint8 images (default: the source's own, else 0.5). A Dataset
    is wrapped in a DataLoader with ``num_workers`` (default ``default_workers(device)``), ``pin_memory`` (default:
    on CUDA), a generator reseeded each epoch from ``seed``, and a ``DistributedSampler`` under torchrun.
    """
    if is_split(source):
        return BatchLoader(
            source, batch_size, shuffle=shuffle, augment=augment, mean=mean, std=std, device=device,
            channels_last=channels_last, drop_last=drop_last, seed=seed, rank=rank, world_size=world_size,
        )  # fmt: skip
    if augment:
        raise ValueError(
            "augment=True works on zoo's in-memory uint8 images; for a torch Dataset or DataLoader put the "
            "augmentation in its transform"
        )
    if isinstance(source, torch.utils.data.DataLoader):
        return TorchLoader(source, device=device, channels_last=channels_last, mean=mean, std=std)
    workers = default_workers(device) if num_workers is None else int(num_workers)
    pin = (device.type == "cuda") if pin_memory is None else bool(pin_memory)
    iterable = isinstance(source, torch.utils.data.IterableDataset)
    sampler = None
    generator = None
    if world_size > 1 and not iterable:
        sampler = torch.utils.data.DistributedSampler(
            source, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    elif shuffle and not iterable:
        generator = torch.Generator().manual_seed(seed * 1_000_003)
    loader = torch.utils.data.DataLoader(
        source,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None and not iterable,
        sampler=sampler,
        generator=generator,
        num_workers=workers,
        pin_memory=pin,
        drop_last=drop_last,
        persistent_workers=workers > 0,
    )
    return TorchLoader(loader, device=device, channels_last=channels_last, mean=mean, std=std, seed=seed)
