"""The built-in datasets and ``load_dataset``.

A dataset is loaded once as whole uint8 tensors (``Split.images``: N x C x H x W); ``zoo.data.BatchLoader`` then cuts it
into batches on the training device, normalising and augmenting a whole batch at a time.

Built-in datasets (registered through the ``register_datasets`` hook, like any plugin's):

- ``digits``: 1,797 handwritten 8x8 digits (UCI optdigits via scikit-learn, CC BY 4.0) embedded in the package,
  upscaled on load; needs no download and no scikit-learn.
- ``synthetic``: seeded, learnable random images of any shape.
- ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``: read from IDX files / CIFAR python batches found by
  ``zoo.data.sources`` (``root=``, ``$ZOO_DATA``, the cache dir, ``/usr/share/datasets/<name>``); downloaded through
  torchvision only when ``download=True`` or ``ZOO_DOWNLOAD=1``.

Any directory path is an image folder (one subfolder per class, ``train/``/``test/`` subfolders if present).
Every dataset, a plugin's too, takes ``limit=N``: a stratified, seeded subset of at most N images per split.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import zoo.data.sources as sources
from zoo.data.cachefile import cache_file_name, cached_split, fingerprint_files, stats_rows
from zoo.data.decode import ImageFiles, stored_size
from zoo.data.folders import scan_folder, split_options
from zoo.data.formats import DatasetFormatError, check_idx_sizes, read_cifar_batch, read_cifar_meta, read_idx
from zoo.data.images import channel_stats, convert_channels, image_mode, read_images, resize_images
from zoo.data.imagesplit import ImageSplit
from zoo.data.sources import FILE_DATASETS, FileSpec, image_cache_dir
from zoo.data.splitting import stratified_order
from zoo.data.types import Dataset, DatasetNotFoundError, DatasetOptionError, Split
from zoo.hookspecs import hookimpl
from zoo.suggest import suggest

__all__ = ["load_dataset", "load_image_folder", "subset", "write_digits_file", "digits_arrays_from_sklearn"]

DIGITS_FILE = Path(__file__).parent / "digits.npz"
MAX_LOAD_BYTES = 4 << 30  # refuse to build a resized split larger than this; resize per batch instead


# --------------------------------------------------------------------------------------------------------------------
# Options


def _options(dataset: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``given``; an unknown option is an error naming the accepted ones."""
    unknown = [k for k in given if k not in defaults]
    if unknown:
        key = unknown[0]
        raise DatasetOptionError(
            f"dataset '{dataset}' got an unknown option '{key}'; accepted: {', '.join(sorted(defaults))}"
            + suggest(key, defaults)
        )
    opts = {**defaults, **{k: v for k, v in given.items() if v is not None}}  # None means the default
    for key in ("img_size", "train_size", "test_size", "num_classes", "resize"):
        value = opts.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise DatasetOptionError(f"dataset '{dataset}': {key} must be a positive integer, got {value!r}")
    in_chans = opts.get("in_chans")
    if in_chans is not None and in_chans not in (1, 3):
        raise DatasetOptionError(f"dataset '{dataset}': in_chans must be 1 or 3, got {in_chans!r}")
    return opts


def _check_memory(name: str, n: int, chans: int, size: int) -> None:
    total = n * chans * size * size
    if total > MAX_LOAD_BYTES:
        raise DatasetOptionError(
            f"dataset '{name}' at {chans}x{size}x{size} would take {total / 2**30:.1f} GiB as uint8 "
            f"(limit {MAX_LOAD_BYTES / 2**30:.0f} GiB); load it at its native size and resize per batch with "
            f"BatchLoader(..., resize_to={size}, in_chans={chans}) instead"
        )


def _finish(
    name: str,
    train: Split,
    test: Split,
    *,
    num_classes: int,
    img_size: int | None,
    in_chans: int | None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    classes: list[str] | None = None,
    source: str | None = None,
    hflip: bool = True,
) -> Dataset:
    """Resize and convert channels once, for the whole tensors; fill in mean/std."""
    native_c, native_h = train.images.shape[1], train.images.shape[2]
    size = img_size or native_h
    chans = in_chans or native_c
    _check_memory(name, len(train) + len(test), chans, size)
    if mean is not None and std is not None and chans != native_c:
        # grey repeated to RGB keeps its statistics per channel; colour turned grey needs new ones
        mean, std = (tuple(mean) * 3, tuple(std) * 3) if native_c == 1 else (None, None)
    for split in (train, test):
        split.images = convert_channels(resize_images(split.images, size), chans).contiguous()
    if mean is None or std is None:
        mean, std = channel_stats(train.images)
    return Dataset(
        name=name,
        train=train,
        test=test,
        num_classes=num_classes,
        in_chans=chans,
        img_size=size,
        mean=tuple(mean),
        std=tuple(std),
        classes=classes,
        source=source,
        hflip=hflip,
    )


def _check_idx_types(images_path: Path, images: np.ndarray, labels_path: Path, labels: np.ndarray) -> None:
    """Images must be uint8 (IDX type 0x08); labels any integer type (range-checked later), never floats."""
    if images.dtype != np.uint8:
        raise DatasetFormatError(
            f"{images_path}: IDX images of type {images.dtype.name}; accepted: uint8 (type code 0x08), "
            "as in MNIST and Fashion-MNIST"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(
            f"{labels_path}: IDX labels of type {labels.dtype.name}; accepted: class indices of an integer type "
            "(uint8, int8, int16, int32)"
        )


def _idx_splits(spec: FileSpec, files: dict[str, Path]) -> tuple[list[Split], list[str] | None]:
    """The train and test splits of IDX files (MNIST's format), checked, and the spec's class names."""
    splits = []
    for part in ("train", "test"):
        images = read_idx(files[f"{part}_images"])
        labels = read_idx(files[f"{part}_labels"])
        _check_idx_types(files[f"{part}_images"], images, files[f"{part}_labels"], labels)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetFormatError(
                f"{files[f'{part}_images']}: size mismatch: images of shape {images.shape} but "
                f"{files[f'{part}_labels'].name} holds labels of shape {labels.shape}"
            )
        if images.shape[1] == 0 or images.shape[2] == 0:
            raise DatasetFormatError(
                f"{files[f'{part}_images']}: images of shape {images.shape[1:]}; an image has at least 1 x 1 pixels"
            )
        splits.append(Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))))
    return splits, list(spec.classes) if spec.classes else None


def _cifar_splits(spec: FileSpec, files: dict[str, Path]) -> tuple[list[Split], list[str] | None]:
    """The train and test splits of CIFAR batch files, and the class names of their meta file."""
    label_key = "labels" if spec.num_classes == 10 else "fine_labels"
    parts = {"train": [r for r in files if r.startswith("train")], "test": ["test"]}
    splits = []
    for part in ("train", "test"):
        arrays = [read_cifar_batch(files[r], label_key) for r in parts[part]]
        images = np.concatenate([a[0] for a in arrays])
        labels = np.concatenate([a[1] for a in arrays])
        splits.append(Split(torch.from_numpy(images), torch.from_numpy(labels)))
    directory = files["test"].parent
    meta = ("batches.meta", "label_names") if spec.num_classes == 10 else ("meta", "fine_label_names")
    return splits, read_cifar_meta(directory / meta[0], meta[1]) or (list(spec.classes) if spec.classes else None)


def _load_file_dataset(spec: FileSpec, root: str | os.PathLike | None, options: dict[str, Any]) -> Dataset:
    opts = _options(spec.name, options, {"img_size": None, "in_chans": None, "download": None})
    files, looked = sources.locate(spec, root)
    if files is None and sources.download_allowed(opts["download"]):
        sources.download(spec)
        files, looked = sources.locate(spec, root)
    if files is None:
        raise sources.not_found(spec, looked)
    splits, classes = _idx_splits(spec, files) if spec.kind == "idx" else _cifar_splits(spec, files)
    for split, part in zip(splits, ("train", "test")):
        if len(split) == 0:
            where = files.get(f"{part}_images") or files.get(part) or files["test"].parent
            raise DatasetFormatError(f"{where}: the {part} split holds no images; a dataset file holds at least one")
        bad = (split.labels < 0) | (split.labels >= spec.num_classes)
        if bool(bad.any()):
            where = files.get(f"{part}_labels") or files.get(part) or files["test"].parent
            raise DatasetFormatError(
                f"{where}: {part} label {int(split.labels[bad][0])} out of range 0..{spec.num_classes - 1}"
            )
    if spec.kind == "idx":
        check_idx_sizes(files, splits[0].images.shape[2:], splits[1].images.shape[2:], opts["img_size"])
    source = str(next(iter(files.values())).parent)
    return _finish(
        spec.name,
        splits[0],
        splits[1],
        num_classes=spec.num_classes,
        img_size=opts["img_size"],
        in_chans=opts["in_chans"],
        mean=spec.mean,
        std=spec.std,
        classes=classes,
        source=source,
        hflip=spec.hflip,
    )


# --------------------------------------------------------------------------------------------------------------------
# digits: embedded


DIGITS_TEST_FRACTION = 0.2
DIGITS_SEED = 0


def digits_arrays_from_sklearn() -> dict[str, np.ndarray]:
    """Rebuild the embedded ``digits.npz`` content from scikit-learn (needed only to regenerate or verify it).

    A stratified split: within each class, a seeded permutation sends ``round(20%)`` of the images to the test split.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = raw.images.astype(np.uint8)  # 1797 x 8 x 8, values 0..16
    labels = raw.target.astype(np.uint8)
    rng = np.random.default_rng(DIGITS_SEED)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * DIGITS_TEST_FRACTION))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = np.sort(np.concatenate(test_idx))
    return {
        "train_images": images[train_idx],
        "train_labels": labels[train_idx],
        "test_images": images[test_idx],
        "test_labels": labels[test_idx],
    }


def write_digits_file(path: str | os.PathLike = DIGITS_FILE) -> Path:
    """Regenerate the embedded digits file from scikit-learn.

    ``python -c "import zoo.data as d; d.write_digits_file()"``; ``tests/test_data.py`` checks that the shipped file
    equals what this produces whenever scikit-learn is installed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **digits_arrays_from_sklearn())
    return path


def _upscale_digits(images: np.ndarray, size: int) -> torch.Tensor:
    """8x8 values 0..16 -> size x size uint8 0..255 (bilinear)."""
    x = torch.from_numpy(images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < 8)
    return x.round_().clamp_(0, 255).to(torch.uint8).contiguous()


def _load_digits(root: str | None = None, **options: Any) -> Dataset:
    opts = _options("digits", options, {"img_size": 32, "in_chans": 1})
    if root is not None:
        raise DatasetOptionError("dataset 'digits' is embedded in zoo and takes no root=")
    try:
        with np.load(DIGITS_FILE) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise DatasetNotFoundError(f"the embedded digits file {DIGITS_FILE} is missing; reinstall zoo") from None
    except (ValueError, OSError, zlib.error) as exc:
        raise DatasetFormatError(f"{DIGITS_FILE}: corrupt ({exc}); reinstall zoo") from None
    size = opts["img_size"]
    _check_memory("digits", sum(len(arrays[f"{p}_labels"]) for p in ("train", "test")), opts["in_chans"], size)
    splits = [
        Split(_upscale_digits(arrays[f"{p}_images"], size), torch.from_numpy(arrays[f"{p}_labels"].astype(np.int64)))
        for p in ("train", "test")
    ]
    return _finish(
        "digits",
        splits[0],
        splits[1],
        num_classes=10,
        img_size=size,
        in_chans=opts["in_chans"],
        classes=[str(i) for i in range(10)],
        source="embedded",
        hflip=False,
    )


# --------------------------------------------------------------------------------------------------------------------
# synthetic: seeded, learnable random images


def _load_synthetic(root: str | None = None, **options: Any) -> Dataset:
    """Class-dependent smooth mean patterns plus Gaussian noise: learnable, so a short fit beats chance."""
    opts = _options(
        "synthetic",
        options,
        {"num_classes": 10, "in_chans": 3, "img_size": 32, "train_size": 1000, "test_size": 200, "seed": 0,
         "noise": 0.25},
    )  # fmt: skip
    if root is not None:
        raise DatasetOptionError("dataset 'synthetic' is generated and takes no root=")
    k, c, s = opts["num_classes"], opts["in_chans"], opts["img_size"]
    g = torch.Generator().manual_seed(int(opts["seed"]))
    coarse = max(2, min(4, s))
    prototypes = F.interpolate(torch.rand(k, c, coarse, coarse, generator=g), size=(s, s), mode="bilinear")

    def make(n: int) -> Split:
        labels = torch.arange(n) % k
        labels = labels[torch.randperm(n, generator=g)]
        x = 0.2 + 0.6 * prototypes[labels] + float(opts["noise"]) * torch.randn(n, c, s, s, generator=g)
        return Split(x.mul_(255).round_().clamp_(0, 255).to(torch.uint8).contiguous(), labels)

    train, test = make(opts["train_size"]), make(opts["test_size"])
    return _finish("synthetic", train, test, num_classes=k, img_size=s, in_chans=c, source="synthetic", hflip=False)


# --------------------------------------------------------------------------------------------------------------------
# image folders


def load_image_folder(path: str | os.PathLike, **options: Any) -> Dataset:
    """A directory with one subfolder per class (like torchvision's ImageFolder).

    If it has ``train/`` and ``test/`` (or ``val/``) subfolders, those are the splits; otherwise a seeded,
    stratified ``test_fraction`` of each class is held out (of ``train/``'s classes when ``train/`` is the only
    subfolder). The layout is checked (``zoo.data.folders``), each problem a one-line ``DatasetFormatError``.

    Where the images go depends on ``cache``:

    - ``None`` (default): decoded into memory and resized to ``img_size`` on load when they fit in
      ``MAX_LOAD_BYTES`` as uint8; otherwise cached, as with ``True``.
    - ``True`` or a directory: decoded once (torchvision's decoders, in DataLoader workers) into a memory-mapped
      uint8 cache per split in the user cache dir (``zoo.data.image_cache_dir()``) or that directory, at
      ``resize`` (the short side; default ``img_size * 8/7``) and centre-cropped square; reopened in milliseconds
      while the folder is unchanged. Training takes random resized crops of ``img_size`` from it, on the device.
    - ``False``: nothing cached; DataLoader workers decode the files every epoch (as the cache would), for data
      that changes between runs.
    """
    directory = Path(path)
    opts = _options(
        str(directory),
        options,
        {"img_size": 32, "in_chans": None, "test_fraction": 0.2, "seed": 0, "hflip": True, "cache": None,
         "resize": None, "workers": None, "rebuild": False, "progress": None},
    )  # fmt: skip
    frac, seed = split_options(directory, opts)
    size = opts["img_size"]
    layout = scan_folder(directory, frac, seed)
    mode = {1: "L", 3: "RGB"}.get(opts["in_chans"]) or image_mode(layout.train_paths)
    chans = 1 if mode == "L" else 3
    name = directory.name or str(directory)
    n = len(layout.train_paths) + len(layout.test_paths)
    if opts["cache"] is None and n * chans * size * size <= MAX_LOAD_BYTES:
        train = Split(read_images(layout.train_paths, size, mode), torch.tensor(layout.train_labels))
        test = Split(read_images(layout.test_paths, size, mode), torch.tensor(layout.test_labels))
        return _finish(
            name, train, test, num_classes=len(layout.classes), img_size=size, in_chans=None,
            classes=layout.classes, source=str(directory), hflip=bool(opts["hflip"]),
        )  # fmt: skip
    return _stored_folder(directory, name, layout, size, chans, opts)


def _stored_folder(directory: Path, name: str, layout: Any, size: int, chans: int, opts: dict[str, Any]) -> Dataset:
    """An image folder kept as uint8 squares: in a cache file per split, or decoded as it streams (``cache=False``)."""
    stored = opts["resize"] or stored_size(size)
    if stored < size:
        raise DatasetOptionError(f"image folder {directory}: resize={stored} is smaller than img_size={size}")
    cache = opts["cache"] if opts["cache"] is not None else True
    where = image_cache_dir() if cache is True else (None if cache is False else Path(cache).expanduser())
    splits = []
    for part, paths, labels in (
        ("train", layout.train_paths, layout.train_labels), ("test", layout.test_paths, layout.test_labels)
    ):  # fmt: skip
        files = ImageFiles(paths, labels, stored, chans)
        if where is None:
            splits.append(ImageSplit(files=files, labels=torch.tensor(labels), img_size=size, classes=layout.classes))
            continue
        resolved = [p.resolve() for p in paths]
        fingerprint = fingerprint_files(resolved, labels, size=stored, channels=chans, classes=layout.classes)
        file = where / cache_file_name(name, part, stored, chans, str(directory.resolve()))
        splits.append(
            cached_split(
                files, file, fingerprint=fingerprint, img_size=size, classes=layout.classes, rebuild=opts["rebuild"],
                workers=opts["workers"], progress=opts["progress"],
            )
        )  # fmt: skip
    train, test = splits
    if train.mean is None:  # streamed: the statistics of the rows a cache would have measured them on
        train.mean, train.std = channel_stats(train.read(stats_rows(len(train))))
    return Dataset(
        name=name, train=train, test=test, num_classes=len(layout.classes), in_chans=chans, img_size=size,
        mean=tuple(train.mean), std=tuple(train.std), classes=layout.classes, source=str(directory),
        hflip=bool(opts["hflip"]),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# The public entry point and the registration hook


def load_dataset(
    name_or_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
    **options: Any,
) -> Dataset:
    """Load a registered dataset by name, or an image folder by path.

    Args:
        name_or_path: a registered name (``zoo.list_datasets()``) or a directory of class subfolders.
        root: a directory to look in first (file-backed datasets).
        limit: keep at most this many images of each split: a stratified, seeded subset (every class keeps its
            share, the same images every time; ``zoo.data.subset``). For a quick run on a laptop.
        **options: per dataset; every built-in accepts ``img_size`` (resize once, on load) and ``in_chans``
            (1 or 3: grey images are repeated, colour ones converted to luma). File-backed ones accept
            ``download`` (allow torchvision's download into the cache dir); ``synthetic`` accepts
            ``num_classes``, ``train_size``, ``test_size``, ``seed``, ``noise``; an image folder ``test_fraction``,
            ``seed``, ``hflip``, and ``cache``, ``resize``, ``workers``, ``rebuild``, ``progress`` for folders
            too big for memory (``load_image_folder``, docs/big-images.md).
    """
    from zoo import registry
    from zoo.containment import run_plugin

    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise DatasetOptionError(f"limit must be a positive integer (images per split), got {limit!r}")
    name = os.fspath(name_or_path)
    if name not in registry.list_datasets() and (os.path.isdir(name) or os.sep in name or name.startswith(".")):
        if os.path.exists(name) and not os.path.isdir(name):
            raise DatasetNotFoundError(
                f"image folder '{name}' is not a directory (it is a file); an image folder is a directory with one "
                "subfolder per class"
            )
        if not os.path.isdir(name):
            raise DatasetNotFoundError(f"image folder '{name}' does not exist (and no dataset has that name)")
        if root is not None:
            raise DatasetOptionError("an image folder path takes no root=")
        data = load_image_folder(name, **options)
    else:
        spec = registry.get_dataset_spec(name)
        who = f"dataset '{name}' (plugin '{spec.plugin}')"
        # a plugin's loader runs contained: whatever it raises (SystemExit too) comes back as one error naming it
        data = run_plugin(who, spec.loader, root=root, **options)
        _check_loaded(who, data)
    if limit is not None:
        data.train, data.test = subset(data.train, limit), subset(data.test, limit)
    return data


def _check_loaded(who: str, data: Any) -> None:
    """A plugin's loader returned a ``Dataset`` of splits, or the plugin is at fault (not the user): ``PluginError``."""
    from zoo.containment import PluginError

    if not isinstance(data, Dataset):
        raise PluginError(f"{who}: the loader returned {type(data).__name__}, not a zoo.data.Dataset (a plugin bug)")
    for part in ("train", "test"):
        split = getattr(data, part)
        if not isinstance(split, Split | ImageSplit):
            raise PluginError(
                f"{who}: the loader's Dataset has a {part} split of type {type(split).__name__}, not a "
                "zoo.data.Split (a plugin bug)"
            )


def subset(split: Split | ImageSplit, limit: int, seed: int = 0) -> Split | ImageSplit:
    """At most ``limit`` samples of ``split``, stratified by class and seeded, in their original order.

    Each class keeps its share of the split (to within one image): the samples are ranked by their position in a
    seeded permutation of their own class, relative to the class's size, and the ``limit`` lowest ranks are kept.
    """
    n = len(split)
    if limit >= n:
        return split
    keep = torch.sort(stratified_order(split.labels, n, seed)[:limit]).values
    if isinstance(split, ImageSplit):
        return split.subset(keep)
    return Split(
        split.images[keep].contiguous(), split.labels[keep].contiguous(), mean=split.mean, std=split.std,
        hflip=split.hflip,
    )  # fmt: skip


def _file_loader(name: str) -> Callable[..., Dataset]:
    def loader(root: str | os.PathLike | None = None, **options: Any) -> Dataset:
        return _load_file_dataset(FILE_DATASETS[name], root, options)

    loader.__name__ = loader.__qualname__ = f"load_{name.replace('-', '_')}"
    loader.__doc__ = f"{FILE_DATASETS[name].description}. Options: img_size, in_chans, download."
    return loader


@hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    register(
        "digits",
        _load_digits,
        num_classes=10,
        input_size=(1, 32, 32),
        description="1,797 handwritten 8x8 digits (UCI optdigits via scikit-learn, CC BY 4.0), embedded, upscaled",
        url="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        tags=("embedded", "grey"),
    )
    register(
        "synthetic",
        _load_synthetic,
        num_classes=10,
        input_size=(3, 32, 32),
        description="seeded learnable random images of any shape (class patterns + noise)",
        tags=("generated",),
    )
    for name, spec in FILE_DATASETS.items():
        c = len(spec.mean)
        size = 28 if spec.kind == "idx" else 32
        tags = ("files", "grey" if c == 1 else "colour")
        register(
            name,
            _file_loader(name),
            num_classes=spec.num_classes,
            input_size=(c, size, size),
            description=spec.description,
            url=spec.url,
            tags=tags,
        )
