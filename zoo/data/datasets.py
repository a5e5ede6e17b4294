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
from zoo.data.formats import DatasetFormatError, read_cifar_batch, read_cifar_meta, read_idx
from zoo.data.images import IMAGE_EXTENSIONS, channel_stats, convert_channels, image_mode, read_images, resize_images
from zoo.data.loaders import stratified_order
from zoo.data.sources import FILE_DATASETS, FileSpec
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
    for key in ("img_size", "train_size", "test_size", "num_classes"):
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


def _load_file_dataset(spec: FileSpec, root: str | os.PathLike | None, options: dict[str, Any]) -> Dataset:
    opts = _options(spec.name, options, {"img_size": None, "in_chans": None, "download": None})
    files, looked = sources.locate(spec, root)
    if files is None and sources.download_allowed(opts["download"]):
        sources.download(spec)
        files, looked = sources.locate(spec, root)
    if files is None:
        raise sources.not_found(spec, looked)
    if spec.kind == "idx":
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
            splits.append(
                Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
            )
        classes = list(spec.classes) if spec.classes else None
    else:
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
        classes = read_cifar_meta(directory / meta[0], meta[1]) or (list(spec.classes) if spec.classes else None)
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


_EXAMPLES = "/".join(e[1:] for e in IMAGE_EXTENSIONS[:4])
_SPLIT_DIRS = ("train", "test", "val")


def _list_classes(directory: Path) -> list[str]:
    """Subfolder names, sorted; hidden ones (``.ipynb_checkpoints``) are not classes."""
    return sorted(d.name for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))


def _list_images(directory: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    """Every image under ``directory/<class>``, labelled by its class's index; a class folder with none is an error.

    As torchvision's ImageFolder, which raises for a class without a valid file: an empty class folder is more
    often a copy that went wrong than a class meant to have no images. ``classes`` missing from ``directory`` are
    skipped (a test split may lack a class).
    """
    paths, labels = [], []
    for i, c in enumerate(classes):
        if not (directory / c).is_dir():
            continue
        found = [p for p in sorted((directory / c).rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        if not found:
            raise DatasetFormatError(
                f"{directory / c}: class folder '{c}' holds no images ({_EXAMPLES}... files); every subfolder is a "
                "class: add its images, remove it, or hide it with a name starting with '.'"
            )
        paths += found
        labels += [i] * len(found)
    return paths, labels


def _min_per_class(frac: float) -> int:
    """The fewest images a class needs so that the held-out split gives it at least one test and one train image."""
    n = max(2, int(0.5 / min(frac, 1 - frac)))  # below this, round(n * frac) is 0 or n
    while not 1 <= round(n * frac) <= n - 1:
        n += 1
    return n


def _held_out_split(
    directory: Path, paths: list[Path], labels: list[int], classes: list[str], frac: float, seed: int
) -> tuple[list[Path], list[int], list[Path], list[int]]:
    """A seeded, stratified split: within each class, ``round(n * frac)`` images of a permutation go to test."""
    lab = np.asarray(labels)
    counts = np.bincount(lab, minlength=len(classes))
    need = _min_per_class(frac)
    small = [i for i, n in enumerate(counts) if not 1 <= round(int(n) * frac) <= n - 1]
    if small:
        i = min(small, key=lambda k: counts[k])
        n = int(counts[i])
        lacks = "test" if round(n * frac) < 1 else "training"
        raise DatasetFormatError(
            f"image folder {directory}: class '{classes[i]}' has {n} image{'s' if n != 1 else ''}, so the held-out "
            f"split (test_fraction={frac}) leaves it no {lacks} image; every class needs at least {need} images at "
            "that test_fraction (or pass another test_fraction, or give train/ and test/ subfolders)"
        )
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(paths), dtype=bool)
    for i in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(lab == i))
        test_mask[idx[: int(round(len(idx) * frac))]] = True
    return (
        [p for p, m in zip(paths, test_mask) if not m],
        [int(x) for x in lab[~test_mask]],
        [p for p, m in zip(paths, test_mask) if m],
        [int(x) for x in lab[test_mask]],
    )


def _split_options(directory: Path, opts: dict[str, Any]) -> tuple[float, int]:
    frac, seed = opts["test_fraction"], opts["seed"]
    if isinstance(frac, bool) or not isinstance(frac, (int, float, np.integer, np.floating)):
        raise DatasetOptionError(f"image folder {directory}: test_fraction must be a number in (0, 1), got {frac!r}")
    if not 0 < frac < 1:
        raise DatasetOptionError(f"image folder {directory}: test_fraction must be in (0, 1), got {frac!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DatasetOptionError(f"image folder {directory}: seed must be an integer, got {seed!r}")
    return float(frac), int(seed)


def load_image_folder(path: str | os.PathLike, **options: Any) -> Dataset:
    """A directory with one subfolder per class (like torchvision's ImageFolder).

    If it has ``train/`` and ``test/`` (or ``val/``) subfolders, those are the splits; otherwise a seeded,
    stratified ``test_fraction`` of each class is held out (of ``train/``'s classes when ``train/`` is the only
    subfolder). Images are resized to ``img_size`` on load.

    The layout is checked, each problem a one-line ``DatasetFormatError``: a class folder without images (as
    torchvision's ImageFolder), a class in ``test/`` but not in ``train/``, a ``test/`` without images or without a
    ``train/``, and a class too small for the held-out split to leave it a test and a training image. A class in
    ``train/`` but not in ``test/`` is allowed.
    """
    directory = Path(path)
    opts = _options(
        str(directory),
        options,
        {"img_size": 32, "in_chans": None, "test_fraction": 0.2, "seed": 0, "hflip": True},
    )
    frac, seed = _split_options(directory, opts)
    size = opts["img_size"]
    subdirs = _list_classes(directory)
    test_dir = next((directory / d for d in ("test", "val") if d in subdirs), None)
    if "train" in subdirs and test_dir is not None:
        classes = _list_classes(directory / "train")
        extra = [c for c in _list_classes(test_dir) if c not in classes]
        if extra:
            raise DatasetFormatError(
                f"{test_dir / extra[0]}: class '{extra[0]}' is in {test_dir.name}/ but not in train/; every class in "
                f"{test_dir.name}/ needs training images in train/<class>/ (train/ has: {', '.join(classes) or 'none'})"
            )
        train_paths, train_labels = _list_images(directory / "train", classes)
        test_paths, test_labels = _list_images(test_dir, classes)
        if train_paths and not test_paths:
            raise DatasetFormatError(
                f"{test_dir}: no images; {test_dir.name}/ needs one subfolder per class, as train/ has, holding "
                f"{_EXAMPLES}... files"
            )
    elif subdirs and set(subdirs) <= set(_SPLIT_DIRS):
        if subdirs != ["train"]:
            raise DatasetFormatError(
                f"image folder {directory} has {'/ and '.join(subdirs)}/ but no train/; expected train/ and test/ "
                "(or val/) subfolders, or one subfolder per class"
            )
        classes = _list_classes(directory / "train")  # train/ alone: hold out a split of it
        paths, labels = _list_images(directory / "train", classes)
        if paths:
            train_paths, train_labels, test_paths, test_labels = _held_out_split(
                directory / "train", paths, labels, classes, frac, seed
            )
        else:
            train_paths = []
    else:
        classes = subdirs
        paths, labels = _list_images(directory, classes)
        if paths:
            train_paths, train_labels, test_paths, test_labels = _held_out_split(
                directory, paths, labels, classes, frac, seed
            )
        else:
            train_paths = []
    if not classes or not train_paths:
        raise DatasetNotFoundError(
            f"{directory}: no images found; expected one subfolder per class holding "
            f"{_EXAMPLES}... files (optionally under train/ and test/)"
        )
    mode = {1: "L", 3: "RGB"}.get(opts["in_chans"]) or image_mode(train_paths)
    train = Split(read_images(train_paths, size, mode), torch.tensor(train_labels, dtype=torch.int64))
    test = Split(read_images(test_paths, size, mode), torch.tensor(test_labels, dtype=torch.int64))
    return _finish(
        directory.name or str(directory),
        train,
        test,
        num_classes=len(classes),
        img_size=size,
        in_chans=None,
        classes=classes,
        source=str(directory),
        hflip=bool(opts["hflip"]),
    )


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
            ``num_classes``, ``train_size``, ``test_size``, ``seed``, ``noise``.
    """
    from zoo import registry

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
        # a plugin's loader runs contained: whatever it raises (SystemExit too) comes back as one error naming it
        data = registry.run_plugin(f"dataset '{name}' (plugin '{spec.plugin}')", spec.loader, root=root, **options)
    if limit is not None:
        data.train, data.test = subset(data.train, limit), subset(data.test, limit)
    return data


def subset(split: Split, limit: int, seed: int = 0) -> Split:
    """At most ``limit`` samples of ``split``, stratified by class and seeded, in their original order.

    Each class keeps its share of the split (to within one image): the samples are ranked by their position in a
    seeded permutation of their own class, relative to the class's size, and the ``limit`` lowest ranks are kept.
    """
    n = len(split)
    if limit >= n:
        return split
    keep = torch.sort(stratified_order(split.labels, n, seed)[:limit]).values
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
