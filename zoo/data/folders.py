"""Image folders on disk: the classes, the files, and the train/test split of a folder (``scan_folder``).

A folder has one subfolder per class, or ``train/`` and ``test/`` (or ``val/``) subfolders that have them; with
neither ``test/`` nor ``val/``, a seeded, stratified fraction of each class is held out for testing. Every problem
in the layout is a one-line ``DatasetFormatError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.formats import DatasetFormatError
from zoo.data.images import IMAGE_EXTENSIONS, check_image_file
from zoo.data.types import DatasetNotFoundError, DatasetOptionError

__all__ = ["FolderLayout", "scan_folder", "split_options"]


@dataclass
class FolderLayout:
    """The classes of an image folder and the files of its two splits, each with its class index."""

    classes: list[str]
    train_paths: list[Path]
    train_labels: list[int]
    test_paths: list[Path]
    test_labels: list[int]


_EXAMPLES = "/".join(e[1:] for e in IMAGE_EXTENSIONS[:4])
_SPLIT_DIRS = ("train", "test", "val")


def _list_classes(directory: Path) -> list[str]:
    """Subfolder names, sorted; hidden ones (``.ipynb_checkpoints``) are not classes."""
    return sorted(d.name for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))


def _list_images(directory: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    """Every image under ``directory/<class>``, labelled by its class's index; a class folder with none is an error.

    As torchvision's ImageFolder, which raises for a class without a valid file: an empty class folder is more
    often a copy that went wrong than a class meant to have no images. ``classes`` missing from ``directory`` are
    skipped (a test split may lack a class). A file with an image's name that is not a regular file (a FIFO, a
    device, a broken link) is refused in one line.
    """
    paths, labels = [], []
    for i, c in enumerate(classes):
        if not (directory / c).is_dir():
            continue
        found = [p for p in sorted((directory / c).rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
        found = [p for p in found if not p.is_dir()]
        for p in found:
            check_image_file(p)  # a FIFO named x.png would block the decoder: refused here, never opened
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


def split_options(directory: Path, opts: dict[str, Any]) -> tuple[float, int]:
    frac, seed = opts["test_fraction"], opts["seed"]
    if isinstance(frac, bool) or not isinstance(frac, (int, float, np.integer, np.floating)):
        raise DatasetOptionError(f"image folder {directory}: test_fraction must be a number in (0, 1), got {frac!r}")
    if not 0 < frac < 1:
        raise DatasetOptionError(f"image folder {directory}: test_fraction must be in (0, 1), got {frac!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DatasetOptionError(f"image folder {directory}: seed must be an integer, got {seed!r}")
    return float(frac), int(seed)


def scan_folder(directory: Path, frac: float, seed: int) -> FolderLayout:
    """The layout of the image folder ``directory`` (``test_fraction`` ``frac`` held out, seeded, when it has no
    ``test/`` or ``val/``)."""
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
    return FolderLayout(classes, train_paths, train_labels, test_paths, test_labels)
