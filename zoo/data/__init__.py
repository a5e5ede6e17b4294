"""Data: the types the engine reads, the loaders that feed it, the dataset files and where they are found.

- ``types``: ``Split``, ``Dataset`` and the errors.
- ``loaders``: the ``Batches`` contract, ``BatchLoader`` (zoo's in-memory fast path) and ``make_batches``, the one
  adapter from what users hold to the contract; ``torchloader``: ``TorchLoader`` (any torch DataLoader);
  ``describe``: what a source is; ``splitting``: validation splits and per-epoch orders.
- ``cachefile``, ``prepare``: images decoded once into memory-mapped uint8 cache files (``cache()``); ``imagesplit`` and
  ``stream``: ``ImageSplit`` and ``ImageBatches``, which read them (or decode files as they stream) a batch at a
  time; ``decode``: torchvision decoding into squares.
- ``formats``: safe readers of IDX files and CIFAR batches.  ``images``: resizing, channels, image files.
- ``sources``: offline-first lookup of dataset files.  ``datasets``: the built-in datasets and ``load_dataset``;
  ``folders``: the layout of image folders.
"""

from __future__ import annotations

from zoo.data.batching import BatchOptions
from zoo.data.cachefile import CacheError, read_cache
from zoo.data.datasets import (
    DIGITS_FILE,
    MAX_LOAD_BYTES,
    digits_arrays_from_sklearn,
    load_dataset,
    load_image_folder,
    subset,
    write_digits_file,
)
from zoo.data.formats import DatasetFormatError, read_cifar_batch, read_idx
from zoo.data.images import IMAGE_EXTENSIONS, resize_images
from zoo.data.imagesplit import ImageSplit
from zoo.data.loaders import Batches, BatchLoader, make_batches
from zoo.data.prepare import cache
from zoo.data.sources import ENV_DATA, ENV_DOWNLOAD, SYSTEM_DATA_DIR, cache_dir, image_cache_dir, search_paths
from zoo.data.stream import ImageBatches
from zoo.data.torchloader import TorchLoader
from zoo.data.types import Dataset, DatasetNotFoundError, DatasetOptionError, Split

__all__ = [
    "Split",
    "Dataset",
    "Batches",
    "BatchOptions",
    "BatchLoader",
    "TorchLoader",
    "ImageSplit",
    "ImageBatches",
    "make_batches",
    "cache",
    "read_cache",
    "CacheError",
    "image_cache_dir",
    "load_dataset",
    "load_image_folder",
    "subset",
    "search_paths",
    "cache_dir",
    "read_idx",
    "read_cifar_batch",
    "resize_images",
    "write_digits_file",
    "digits_arrays_from_sklearn",
    "DatasetNotFoundError",
    "DatasetFormatError",
    "DatasetOptionError",
    "DIGITS_FILE",
    "MAX_LOAD_BYTES",
    "IMAGE_EXTENSIONS",
    "ENV_DATA",
    "ENV_DOWNLOAD",
    "SYSTEM_DATA_DIR",
]
