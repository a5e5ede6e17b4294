"""``zoo.data.cache``: decode images once, ahead of training, into memory-mapped uint8 caches (``zoo cache DIR``).

Training then reads them at memory speed (``zoo.data.stream.ImageBatches``); the page cache keeps what fits in
RAM, and data larger than RAM is read from disk a batch at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.cachefile import CacheError, cache_file_name, cached_split, fingerprint_files, read_cache
from zoo.data.datasets import load_image_folder
from zoo.data.decode import SquareImages, stored_size, to_uint8_image
from zoo.data.sources import image_cache_dir
from zoo.data.types import Dataset, DatasetOptionError

__all__ = ["cache", "fingerprint_dataset"]


def _content_hash(dataset: Any) -> str | None:
    """A hash of every item of a Dataset that holds its content in arrays (torchvision's MNIST and CIFAR: ``data`` and
    ``targets``; ``TensorDataset``: ``tensors``), or lists its files (``samples``), or is a ``Subset`` of one, read
    without decoding anything; None for any other Dataset."""
    if isinstance(dataset, torch.utils.data.Subset):
        inner = _content_hash(dataset.dataset)
        indices = np.asarray([int(i) for i in dataset.indices], dtype=np.int64)
        return None if inner is None else hashlib.blake2b(indices.data, key=inner.encode()[:64]).hexdigest()
    samples = getattr(dataset, "samples", None)
    if isinstance(samples, list) and samples and all(isinstance(s, (tuple, list)) and len(s) == 2 for s in samples):
        return fingerprint_files([s[0] for s in samples], [s[1] for s in samples])
    arrays = getattr(dataset, "tensors", None)
    if not isinstance(arrays, (tuple, list)):
        arrays = [getattr(dataset, "data", None), getattr(dataset, "targets", None)]
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        elif isinstance(a, list) and all(isinstance(v, int) for v in a):
            a = np.asarray(a, dtype=np.int64)
        if not isinstance(a, np.ndarray) or a.dtype == object:
            return None
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def fingerprint_dataset(dataset: Any, squares: torch.utils.data.Dataset, key: str | None, **settings: Any) -> str:
    """A map-style Dataset's fingerprint, covering every item: its files when it lists them (torchvision's
    ``ImageFolder``: ``samples``), else the arrays that hold its content (``data``/``targets``, ``tensors``; or a
    ``Subset`` of such a Dataset), else the ``key`` that names its content (with its type, length and three of its
    images).

    Raises:
        DatasetOptionError: a Dataset of none of these kinds and no ``key``: zoo cannot tell when its content
            changes, so it will not cache it under a name that might serve stale images.
    """
    samples = getattr(dataset, "samples", None)
    if isinstance(samples, list) and samples and all(isinstance(s, (tuple, list)) and len(s) == 2 for s in samples):
        return fingerprint_files([s[0] for s in samples], [s[1] for s in samples], key=key, **settings)
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    n = len(dataset)
    h.update(f"{type(dataset).__module__}.{type(dataset).__qualname__}\0{n}\0{key}".encode())
    content = _content_hash(dataset)
    if content is None and key is None:
        raise DatasetOptionError(
            f"cache: zoo cannot tell when a {type(dataset).__name__}'s content changes (it lists no files and holds "
            "no data arrays); pass key= naming its content (a new key, or rebuild=True, when the content changes)"
        )
    h.update(str(content).encode())
    for i in sorted({0, n // 2, n - 1} if n else set()):
        x, y = squares[i]
        h.update(x.numpy().tobytes())
        h.update(str(int(y)).encode())
    return h.hexdigest()


def cache(
    source: str | os.PathLike | torch.utils.data.Dataset,
    *,
    img_size: int | None = None,
    resize: int | None = None,
    in_chans: int | None = None,
    to: str | os.PathLike | None = None,
    rebuild: bool = False,
    workers: int | None = None,
    key: str | None = None,
    progress: bool | None = None,
    verify: bool = False,
    **options: Any,
) -> Dataset | Any:
    """Cache an image folder or a map-style Dataset of images as uint8 squares on disk, or reopen its cache.

    Args:
        source: a directory of class subfolders (as ``zoo.load_dataset`` reads it) or a map-style Dataset giving
            ``(image, class index)`` (PIL images, C x H x W tensors, H x W x C arrays; e.g. torchvision's
            ``ImageFolder`` without transforms).
        img_size: the side of the square the model sees; a folder's default is ``load_dataset``'s (32), a
            Dataset's the short side of its first image.
        resize: the stored short side (default ``img_size * 8/7``: centre crops for evaluation and random resized
            crops for training are taken from it).
        in_chans: 1 or 3; default: a folder's images' own, a Dataset's first image's.
        to: the directory the cache files go in (default: ``zoo.data.image_cache_dir()``).
        rebuild: build anew even when a current cache exists.
        workers: DataLoader workers decoding (default: every core).
        key: for a Dataset that does not list its files or hold its content in arrays (``data``/``targets``,
            ``tensors``), a name for its content (part of its fingerprint); such a Dataset is not cached without one.
        progress: a progress bar while building (default: on a terminal).
        verify: check the hash of every image of an existing cache (it reads the whole file), not only a sample
            of them; a cache that fails is rebuilt, with a warning.
        **options: a folder's other ``load_dataset`` options (``test_fraction``, ``seed``, ``hflip``).

    Returns:
        For a folder the ``Dataset`` (``train`` and ``test`` cached ``ImageSplit``s); for a Dataset an ``ImageSplit``
        that ``zoo.fit`` and ``zoo.evaluate`` take directly.
    """
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).is_dir():
            raise DatasetOptionError(
                f"cache: {os.fspath(source)!r} is not a directory; give an image folder or a map-style Dataset"
            )
        opts = {"img_size": img_size, "resize": resize, "in_chans": in_chans, "workers": workers, **options}
        opts["progress"] = progress
        where = Path(to) if to is not None else True
        data = load_image_folder(source, cache=where, rebuild=rebuild, **opts)
        if verify and not rebuild and not all(_verified(split.path) for split in (data.train, data.test)):
            data = load_image_folder(source, cache=where, rebuild=True, **opts)
        return data
    return _cache_dataset(source, img_size, resize, in_chans, to, rebuild, workers, key, progress, verify)


def _verified(path: str) -> bool:
    """Whether every image of the cache at ``path`` has the hash it was written with (a warning when not)."""
    try:
        read_cache(path, verify=True)
    except CacheError as exc:
        warnings.warn(f"{exc}; rebuilding it", UserWarning, stacklevel=3)
        return False
    return True


def _first_channels(first: Any) -> int:
    """1 for a grey first image (a PIL mode without colour, a 1 x H x W tensor), else 3."""
    grey = getattr(first, "mode", None) in ("L", "1", "I", "I;16", "LA")
    return 1 if grey or (isinstance(first, torch.Tensor) and first.ndim == 3 and first.shape[0] == 1) else 3


def _cache_dataset(
    source: Any, img_size: int | None, resize: int | None, in_chans: int | None, to: Any, rebuild: bool,
    workers: int | None, key: str | None, progress: bool | None, verify: bool = False,
) -> Any:  # fmt: skip
    """``cache`` of a map-style Dataset: an ``ImageSplit``."""
    if not isinstance(source, torch.utils.data.Dataset) or isinstance(source, torch.utils.data.IterableDataset):
        raise DatasetOptionError(
            f"cache: expected an image folder path or a map-style torch Dataset, got {type(source).__name__}"
        )
    if len(source) == 0:  # type: ignore[arg-type]
        raise DatasetOptionError(f"cache: the {type(source).__name__} is empty; there is nothing to cache")
    first = source[0][0]
    if in_chans is None:
        in_chans = _first_channels(first)
    if in_chans not in (1, 3):
        raise DatasetOptionError(f"cache: in_chans must be 1 or 3, got {in_chans!r}")
    if img_size is None:
        img_size = min(to_uint8_image(first, in_chans).shape[-2:])
    stored = resize or stored_size(img_size)
    if stored < img_size:
        raise DatasetOptionError(f"cache: resize={stored} is smaller than img_size={img_size}")
    squares = SquareImages(source, stored, in_chans)
    classes = getattr(source, "classes", None)
    classes = list(classes) if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes) else None
    fingerprint = fingerprint_dataset(source, squares, key, size=stored, channels=in_chans)
    name = type(source).__name__ + (f"-{key}" if key else "")
    where = f"{type(source).__module__}.{type(source).__qualname__}:{key}:{len(source)}"  # type: ignore[arg-type]
    file = Path(to or image_cache_dir()).expanduser() / cache_file_name(name, "data", stored, in_chans, where)
    return cached_split(
        squares, file, fingerprint=fingerprint, img_size=img_size, classes=classes, hflip=True, rebuild=rebuild,
        workers=workers, progress=progress, verify=verify,
    )  # fmt: skip
