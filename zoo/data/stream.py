"""``ImageBatches``: an ``ImageSplit`` (cached or streamed) behind the ``Batches`` contract.

Each epoch's order is the one ``BatchLoader`` uses (``shard_order``: seeded with ``(seed, epoch)``, sharded per
rank). The uint8 squares of a batch come from the memory-mapped cache (only this rank's rows) or from decoding the
files (streaming); either way they then go through one per-batch pipeline: a random resized crop and a flip for
training (the crop boxes and flips drawn for the whole epoch from ``(seed, epoch)``), the centre crop otherwise,
then scaling and normalisation on the device. On a CPU a cache is read, cropped and normalised in the main
process, and DataLoader workers cut the crops of a streamed split as they decode its files (``_Crops``); on a GPU
a thread reads ahead and one ``grid_sample`` crops the batch. The same seed gives the same batches from the cache
and from the files.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F

from zoo.data.batching import BatchOptions, IndexedBatches, affine_coefficients, affine_into, normalize
from zoo.data.imagesplit import ImageSplit, center_crop
from zoo.data.slots import PREFETCH, EpochBatches, empty_batches, slot_count, whole
from zoo.data.torchloader import default_workers
from zoo.memory import reuse_freed_memory
from zoo.threads import use_threads

__all__ = ["ImageBatches", "random_boxes", "resized_crop", "resized_crops"]

CROP_SCALE = (0.25, 1.0)  # area of a training crop, as a fraction of the stored square
CROP_RATIO = (3 / 4, 4 / 3)  # its aspect ratio (width / height), drawn log-uniformly, as torchvision's


def random_boxes(
    n: int, size: int, generator: torch.Generator, scale: Sequence[float] = CROP_SCALE,
    ratio: Sequence[float] = CROP_RATIO,
) -> torch.Tensor:  # fmt: skip
    """``n`` random crop boxes in a ``size`` square: int64 n x 4 (top, left, height, width), torchvision's
    ``RandomResizedCrop`` sampling without its retries (a side that would overflow is cut to the square)."""
    area = size * size * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator, dtype=torch.float64))
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    r = torch.exp(lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64))
    w = (area * r).sqrt().round().clamp(1, size)
    h = (area / r).sqrt().round().clamp(1, size)
    top = (torch.rand(n, generator=generator, dtype=torch.float64) * (size - h + 1)).floor()
    left = (torch.rand(n, generator=generator, dtype=torch.float64) * (size - w + 1)).floor()
    return torch.stack([top, left, h, w], 1).long()


def resized_crop(
    image: torch.Tensor, box: Sequence[int], flip: bool, size: int, channels_last: bool = False
) -> torch.Tensor:
    """One uint8 C x S x S image cropped to ``box`` (top, left, height, width), resized to ``size`` (bilinear,
    antialiased) and mirrored if ``flip``: the CPU crop, the same in the main process and in a DataLoader worker.
    ``channels_last``: resize (and return) in that layout, the same pixels; torch's uint8 resize has a vectorised
    kernel for 3 channels there, worth it only when the batch is wanted channels_last."""
    t, left, h, w = (int(v) for v in box)
    crop = image[None, :, t : t + h, left : left + w]
    if h != size or w != size:
        if channels_last:
            crop = crop.contiguous(memory_format=torch.channels_last)
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return crop[0].flip(-1) if flip else crop[0]


def resized_crops(
    images: torch.Tensor | Sequence[torch.Tensor], boxes: torch.Tensor, flip: torch.Tensor, size: int,
    channels_last: bool = False, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Crop each image to its box, resize it to ``size`` (bilinear) and mirror it where ``flip``.

    ``images``: uint8 B x C x S x S, or on the CPU a sequence of B images C x S x S (views of a memory-mapped cache:
    each crop then reads only its box, and nothing is copied before).

    With ``scale`` and ``shift`` (1 x C x 1 x 1) the CPU crops come normalised, ``crop * scale + shift`` in float
    (``zoo.data.batching.normalize``'s values): each crop while it is in the processor's cache, instead of three
    passes over the whole float batch (38.5 MB at 224 px) after it.

    On a GPU one ``grid_sample`` does the whole batch (float out); on the CPU each crop goes through torch's uint8
    antialiased resize (``resized_crop``), several times faster there than any batched float resampling (uint8
    out, in the layout asked: measured at 224 px, a planar batch made channels_last afterwards cost 1.5x, and
    channels_last crops copied into a planar batch 1.7x, what the matching layout costs). That resize runs on one
    thread whatever torch's count, so with N intra-op threads the crops are cut N parts at a time, each part on one
    thread (``_crop_parts``).
    """
    if not isinstance(images, torch.Tensor):
        if not images:
            raise ValueError("resized_crops: no images; an empty batch is a 0 x C x S x S tensor")
        return _crop_parts(list(images), images[0].shape[0], boxes, flip, size, channels_last, scale, shift)
    b, c, s, _ = images.shape
    if images.device.type != "cpu":
        top, left, h, w = (v.to(images.device, torch.float32) for v in boxes.t())
        theta = torch.zeros(b, 2, 3, device=images.device)
        sign = 1.0 - 2.0 * flip.to(images.device, torch.float32)
        theta[:, 0, 0] = w / s * sign
        theta[:, 1, 1] = h / s
        theta[:, 0, 2] = (2 * left + w) / s - 1
        theta[:, 1, 2] = (2 * top + h) / s - 1
        grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
        return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return _crop_parts(list(images), c, boxes, flip, size, channels_last, scale, shift)


_PARTS_FROM_PIXELS = 1 << 20  # a batch's crops are cut in parts from this many output pixels (64 at 128 px)
_crop_pool: tuple[ThreadPoolExecutor, int] | None = None  # threads cutting crops beside the caller, and how many


def _crop_parts(
    images: list[torch.Tensor], c: int, boxes: torch.Tensor, flip: torch.Tensor, size: int, channels_last: bool,
    scale: torch.Tensor | None, shift: torch.Tensor | None,
) -> torch.Tensor:  # fmt: skip
    """``resized_crops`` on the CPU: the crops cut in as many parts as torch has intra-op threads, one part per
    thread, each op inside single-threaded (a second torch thread per op would only wait for a core). Measured on
    2 cores at 224 px, a cached batch of 64 cut and normalised this way: 4,900-7,700 img/s against 3,400-5,100 on
    one thread (the same values: each crop is written by one thread only)."""
    global _crop_pool
    b = len(images)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    normalise = scale is not None and shift is not None
    dtype = torch.float32 if normalise else (images[0].dtype if images else torch.uint8)
    out = torch.empty((b, c, size, size), dtype=dtype, memory_format=fmt)
    coefficients = affine_coefficients(out, scale, shift) if normalise else None  # type: ignore[arg-type]
    box_list, flip_list = boxes.tolist(), flip.tolist()

    def cut(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            crop = resized_crop(images[i], box_list[i], flip_list[i], size, channels_last)
            if coefficients is not None:
                affine_into(out[i : i + 1], crop[None], coefficients)
            else:
                out[i] = crop

    # small crops (64 px: ~15 us each) gain nothing: handing out the parts costs more (the loader 0.6-0.8x)
    parts = min(torch.get_num_threads(), b, 8) if b * size * size >= _PARTS_FROM_PIXELS else 1
    if parts <= 1:
        cut(0, b)
        return out
    if _crop_pool is None or _crop_pool[1] < parts - 1:
        if _crop_pool is not None:
            _crop_pool[0].shutdown(wait=False)
        _crop_pool = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="zoo-crops"), parts - 1
    pool = _crop_pool[0]
    bounds = [b * k // parts for k in range(parts + 1)]
    with use_threads(1):
        others = [pool.submit(cut, bounds[k], bounds[k + 1]) for k in range(1, parts)]
        try:
            cut(bounds[0], bounds[1])
        finally:
            for f in others:
                f.result()
    return out


class _Crops(torch.utils.data.Dataset):
    """A streamed split's crops cut in the DataLoader workers that decode its files (CPU training), a whole batch
    per fetch: key ``(row, top, left, height, width, flip)`` is the store's square ``row`` as ``resized_crop`` cuts
    it, key ``(row,)`` its centre crop. The workers run one thread each; cropping in the main process instead ran
    its threads against them (on 2 busy cores, 4-6x slower at 224 px).

    With ``slots`` (``zoo.data.slots``: batches in shared memory made before the workers start) the sampler gives
    ``(slot, keys)``, a worker writes the batch into its slot and sends back ``(slot, n)``; without (no workers) the
    batch itself is returned."""

    def __init__(self, split: ImageSplit, channels_last: bool, slots: torch.Tensor | None = None) -> None:
        self.files = split.files
        self.channels, self.size, self.channels_last = split.channels, split.img_size, bool(channels_last)
        self.slots = slots

    def __len__(self) -> int:
        return len(self.files)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, ...]) -> torch.Tensor:
        return self._cut([key], empty_batches((1, self.channels, self.size, self.size), self.channels_last))[0]

    def __getitems__(self, batch: Any) -> torch.Tensor | tuple[int, int]:
        if self.slots is None:
            shape = (len(batch), self.channels, self.size, self.size)
            return self._cut(batch, empty_batches(shape, self.channels_last))
        slot, keys = batch
        self._cut(keys, self.slots[slot][: len(keys)])
        return slot, len(keys)

    def _cut(self, keys: list[tuple[int, ...]], out: torch.Tensor) -> torch.Tensor:
        for i, key in enumerate(keys):
            square = self.files[key[0]][0]  # type: ignore[index]
            if len(key) == 1:
                out[i] = center_crop(square, self.size)
            else:
                out[i] = resized_crop(square, key[1:5], bool(key[5]), self.size, self.channels_last)
        return out


class ImageBatches(IndexedBatches):
    """Batches of an ``ImageSplit`` on the device: the ``Batches`` contract for cached and streamed images.

    Args:
        split: the images (``zoo.load_dataset(folder, cache=...)``, ``zoo.data.cache``).
        batch_size: images per batch (per rank).
        options: a ``BatchOptions``, or its fields as keywords, as ``BatchLoader`` takes them. ``augment``: a random
            resized crop (area ``CROP_SCALE`` of the stored square, aspect ``CROP_RATIO``) and, if ``hflip``, a
            horizontal flip; otherwise the centre ``img_size`` crop. ``num_workers``: DataLoader workers decoding
            a streamed split (default ``default_workers(device)``); ``pin_memory``: pin host batches for a fast
            copy to the GPU (default: on CUDA).
    """

    def __init__(self, split: ImageSplit, batch_size: int, options: BatchOptions | None = None, **kw: Any) -> None:
        options = BatchOptions.of(options, "ImageBatches", **kw)
        self._setup(len(split), batch_size, options, split.hflip, "ImageBatches")
        self.split = split
        self.workers = default_workers(self.device) if options.num_workers is None else int(options.num_workers)
        self.pin = (self.device.type == "cuda") if options.pin_memory is None else bool(options.pin_memory)
        self._set_normalization(split.channels, split.mean, split.std, "ImageBatches")
        self.labels = split.labels.to(self.device)
        self._sampler = EpochBatches()
        self._loader: torch.utils.data.DataLoader | None = None
        self.inputs = split.input_record()
        self.inputs.mean, self.inputs.std = self.mean, self.std

    def _crops(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's crop boxes and flips for the epoch, drawn for the global order (as ``BatchLoader``'s)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + 0x5EED)
        boxes = random_boxes(self._total, self.split.stored_size, g)
        flip = (torch.rand(self._total, generator=g) < 0.5) & self.hflip
        sl = slice(self.rank, self._total, self.world_size)
        return boxes[sl][: self.num_samples], flip[sl][: self.num_samples]

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (or float, from a GPU crop) images -> normalised float, channels_last as asked."""
        x = normalize(x, self._scale, self._shift)  # (x / 255 - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def _prepare_alongside(self, x: torch.Tensor) -> torch.Tensor:
        """``_prepare`` on one thread while worker processes crop: a second thread only spin-waits for a core the
        workers hold (the 224-px loader: 3,100-3,300 img/s on 2 cores against 2,300-2,800 with 2 threads)."""
        if self.workers == 0:
            return self._prepare(x)
        with use_threads(1):
            return self._prepare(x)

    def _streamed(self, keys: list[list]) -> Iterator[torch.Tensor]:
        """uint8 batches from DataLoader workers (kept alive between epochs): on the CPU ``_Crops`` keys (the
        workers crop what they decode), else store rows (squares decoded from the files)."""
        on_cpu = self.device.type == "cpu"
        if self._loader is None:
            dataset: torch.utils.data.Dataset = self.split.files  # type: ignore[assignment]
            if on_cpu:  # the workers crop, into slots of shared memory (zoo.data.slots)
                slots = None
                if self.workers > 0:
                    shape = (slot_count(self.workers), self.batch_size, self.split.channels, self.split.img_size,
                             self.split.img_size)  # fmt: skip
                    slots = empty_batches(shape, self.channels_last).share_memory_()
                    self._sampler = EpochBatches(slots=len(slots))
                dataset = _Crops(self.split, self.channels_last, slots)
            self._loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=self._sampler, num_workers=self.workers, pin_memory=self.pin,
                persistent_workers=self.workers > 0, collate_fn=whole if on_cpu else None,
                prefetch_factor=PREFETCH if self.workers > 0 else None,
            )  # fmt: skip
        self._sampler.batches = keys
        slots = getattr(self._loader.dataset, "slots", None)
        for batch in self._loader:
            if not on_cpu:
                yield batch[0]
            elif slots is not None:  # the main process is done with it before it asks for the next batch
                slot, n = batch
                yield slots[slot][:n]
            else:
                yield batch

    def _mapped(self, groups: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Batches read from the memory map (and pinned, for a GPU) by a background thread, a couple of batches
        ahead of the device's work.

        On the CPU the cache is read in the main process instead, batch by batch: the same thread cropping in the
        background made every op in it 1.7x slower (read, crops, normalisation: 33 against 19 ms a batch of 64 at
        224 px) and took cores from the training step, so the main process read the loader at 3,200-4,100 img/s
        against 1,900-2,500 and trained a small CNN at 367-374 against 340-357 img/s (2 cores, interleaved)."""
        ahead: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def offer(item: object) -> bool:
            while not stop.is_set():
                try:
                    ahead.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for g in groups:
                    x = self.split.read(g)
                    x = x.pin_memory() if self.pin else x
                    if not offer(x):
                        return
            except BaseException as exc:  # handed to the consumer, which raises it
                offer(exc)

        thread = threading.Thread(target=read, name="zoo-cache-reader", daemon=True)
        thread.start()
        try:
            for _ in groups:
                x = ahead.get()
                if isinstance(x, BaseException):
                    raise x
                yield x
        finally:
            stop.set()
            thread.join()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices()[: self.num_samples]
        groups = list(order.split(self.batch_size))
        starts = [0, *torch.tensor([len(g) for g in groups]).cumsum(0).tolist()]
        boxes, flips = self._crops() if self.augment else (None, None)
        non_blocking = self.pin and self.device.type == "cuda"

        def prepare(k: int, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
            if boxes is not None and (not isinstance(x, torch.Tensor) or self.device.type == "cpu"):
                # normalised crop by crop, while each is in the processor's cache: the same values
                sl = slice(starts[k], starts[k + 1])
                return resized_crops(x, boxes[sl], flips[sl], self.split.img_size, self.channels_last,
                                     scale=self._scale, shift=self._shift)  # fmt: skip
            assert isinstance(x, torch.Tensor)
            x = x.to(self.device, non_blocking=non_blocking)
            if boxes is not None:
                sl = slice(starts[k], starts[k + 1])
                crops = resized_crops(x, boxes[sl], flips[sl], self.split.img_size, self.channels_last)
                return self._prepare(crops)
            return self._prepare(center_crop(x, self.split.img_size))

        on_cpu = self.device.type == "cpu"
        with reuse_freed_memory() if on_cpu else contextlib.nullcontext():  # a float batch is 38.5 MB at 224 px
            yield from self._batches(groups, prepare, boxes, flips)

    def _batches(self, groups: list[torch.Tensor], prepare: Callable, boxes: Any, flips: Any) -> Iterator:
        on_cpu = self.device.type == "cpu"
        if on_cpu and self.split.cached:  # read, cropped and normalised here, in the main process (see _mapped)

            def read(g: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:  # a crop reads only its box
                return self.split.stored_rows(g) if boxes is not None and len(g) else self.split.read(g)

            raw = (prepare(k, read(g)) for k, g in enumerate(groups))
        elif on_cpu:  # DataLoader workers decode and crop: batches ready to normalise
            raw = map(self._prepare_alongside, self._streamed(self._crop_keys(groups, boxes, flips)))
        elif self.split.cached:  # a thread reads ahead and pins; the device crops
            raw = self._mapped(groups)
        else:
            raw = self._streamed([self.split.base_index(g).tolist() for g in groups])
        for k, x in enumerate(raw):
            if not on_cpu:
                x = prepare(k, x)
            yield x, self.labels.index_select(0, groups[k].to(self.device))

    def _crop_keys(self, groups: list[torch.Tensor], boxes: torch.Tensor | None, flips: torch.Tensor | None) -> list:
        """The ``_Crops`` keys of each batch: (row, top, left, height, width, flip), or (row,) for the centre."""
        keys, start = [], 0
        for g in groups:
            rows = self.split.base_index(g).tolist()
            if boxes is None:
                keys.append([(r,) for r in rows])
            else:
                sl = slice(start, start + len(rows))
                keys.append([(r, *b, f) for r, b, f in zip(rows, boxes[sl].tolist(), flips[sl].tolist())])
            start += len(rows)
        return keys

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.arange(min(2, len(self.split)))
        if len(idx) == 0:
            raise ValueError("the data is empty")
        x = center_crop(self.split.read(idx), self.split.img_size).to(self.device)
        return self._prepare(x), self.labels.index_select(0, idx.to(self.device))
