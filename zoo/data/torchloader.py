"""A torch ``DataLoader`` behind the ``Batches`` contract (``TorchLoader``), and the DataLoader zoo builds for a
map-style or iterable torch ``Dataset`` (``torch_batches``: workers, pinned memory, seeded order, DDP sampler)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch

from zoo.data.batching import BatchOptions
from zoo.data.describe import channel_tuple, source_len, source_record

__all__ = ["TorchLoader", "torch_batches", "default_workers", "pair"]


def _floats(value: Any) -> tuple[float, ...]:
    return (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)


def pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        x, y = batch
        if isinstance(y, (list, tuple)) and y and isinstance(y[0], (str, bytes)):  # collated string labels
            raise TypeError(
                f"the targets are strings ({y[0]!r}, ...); zoo trains on numbers: map each class name to an index "
                "in the Dataset (e.g. target = classes.index(name))"
            )
        if not isinstance(y, torch.Tensor):
            y = torch.as_tensor(y)
        if isinstance(x, torch.Tensor):
            return x, y
    what = f"a {type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    if isinstance(batch, dict):
        what = f"a dict with keys {sorted(map(str, batch))}"
    raise TypeError(f"a batch must be an (inputs, targets) pair of tensors; the loader gave {what}")


class TorchLoader:
    """A torch ``DataLoader`` behind the ``Batches`` contract.

    Each batch is moved to the device (non-blocking from pinned memory); uint8 image batches are scaled and
    normalised there, as zoo's own images are (``options.mean``/``std``, else 0.5); image batches are made
    ``channels_last`` when asked; ``set_epoch`` is passed on to a sampler that has one (``DistributedSampler``) and
    reseeds the generator of a loader zoo built (``given=False``, from ``options.seed``). A user's loader is used as
    given (``given=True``): its batch size is its own, so ``batch_size`` must be None or equal to it.
    """

    labels = None  # a loader's targets are not known without iterating it

    def __init__(
        self,
        loader: torch.utils.data.DataLoader,
        batch_size: int | None = None,
        options: BatchOptions | None = None,
        *,
        given: bool = True,
        **kw: Any,
    ) -> None:
        options = BatchOptions.of(options, "TorchLoader", **kw)
        if given and batch_size not in (None, loader.batch_size):
            raise ValueError(
                f"batch_size={batch_size} but the DataLoader batches {loader.batch_size}: a DataLoader is used as "
                "given; drop batch_size= or pass the Dataset instead"
            )
        self.loader, self.given, self.options = loader, bool(given), options
        self.device = torch.device(options.device)
        self.channels_last = bool(options.channels_last)
        self.seed = None if given else int(options.seed)  # zoo built the loader, and owns its generator
        self.non_blocking = bool(getattr(loader, "pin_memory", False)) and self.device.type == "cuda"
        self.inputs = source_record(loader)
        self.mean, self.std = options.mean, options.std
        self._norm: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def batch_size(self) -> int | None:
        return self.loader.batch_size

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """The mean/std given in the options (uint8 batches are normalised with them, else with 0.5)."""
        if self.mean is None or self.std is None:
            return None
        return _floats(self.mean), _floats(self.std)

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
                mean = channel_tuple(0.5 if self.mean is None else self.mean, c, "mean")
                std = channel_tuple(0.5 if self.std is None else self.std, c, "std")
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
            yield self._prepare(*pair(batch))

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
        x, y = self._prepare(*pair(batch))
        return x[:2], y[:2]


def default_workers(device: torch.device) -> int:
    """DataLoader workers for a Dataset zoo wraps: on a GPU half the cores (up to 8) decode while it computes; on a
    CPU the workers compete with the model for the cores, so 0 below 4 cores (measured: 2 workers on 2 cores train
    0.87x as fast, BASELINES.md) and up to 4 above."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cuda":
        return max(1, min(8, cores // 2))
    return 0 if cores < 4 else min(4, cores // 2 - 1)


def torch_batches(source: torch.utils.data.Dataset, batch_size: int | None, options: BatchOptions) -> TorchLoader:
    """A torch Dataset in a DataLoader zoo builds: ``num_workers`` (default ``default_workers(device)``), pinned
    memory on CUDA, a generator reseeded each epoch from ``seed``, a ``DistributedSampler`` under torchrun."""
    o, device = options, torch.device(options.device)
    workers = default_workers(device) if o.num_workers is None else int(o.num_workers)
    pin = (device.type == "cuda") if o.pin_memory is None else bool(o.pin_memory)
    iterable = isinstance(source, torch.utils.data.IterableDataset)
    sampler = None
    generator = None
    if o.world_size > 1 and not iterable:
        sampler = torch.utils.data.DistributedSampler(
            source, num_replicas=o.world_size, rank=o.rank, shuffle=o.shuffle, seed=o.seed, drop_last=o.drop_last
        )
    elif o.shuffle and not iterable:
        generator = torch.Generator().manual_seed(o.seed * 1_000_003)
    loader = torch.utils.data.DataLoader(
        source,
        batch_size=batch_size,
        shuffle=o.shuffle and sampler is None and not iterable,
        sampler=sampler,
        generator=generator,
        num_workers=workers,
        pin_memory=pin,
        drop_last=o.drop_last,
        persistent_workers=workers > 0,
    )
    return TorchLoader(loader, batch_size, options, given=False)
