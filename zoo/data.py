"""Datasets: offline-first lookup, safe file readers, and the tensor pipeline that feeds the engine.

A dataset is loaded once as whole uint8 tensors (``Split.images``: N x C x H x W) and ``BatchLoader`` cuts it into
batches on the training device, normalising and augmenting a whole batch at a time: no per-sample Python work and
no DataLoader workers (the airbench recipe; on a 2-core machine workers only compete with the model for the cores).

Built-in datasets (registered through the ``register_datasets`` hook, like any plugin's):

- ``digits``: 1,797 handwritten 8x8 digits (UCI optdigits via scikit-learn, CC BY 4.0) embedded in the package,
  upscaled on load; needs no download and no scikit-learn.
- ``synthetic``: seeded, learnable random images of any shape.
- ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``: read from IDX files / CIFAR python batches found in
  ``root=``, ``$ZOO_DATA``, the cache dir, ``/usr/share/datasets/<name>``; downloaded through torchvision only when
  ``download=True`` or ``ZOO_DOWNLOAD=1``.

Any directory path is an image folder (one subfolder per class, ``train/``/``test/`` subfolders if present).
"""

from __future__ import annotations

import difflib
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.formats import DatasetFormatError, _read_cifar_meta, read_cifar_batch, read_idx
from zoo.hookspecs import hookimpl
from zoo.loader import BatchLoader

__all__ = [
    "Split",
    "Dataset",
    "BatchLoader",
    "load_dataset",
    "search_paths",
    "read_idx",
    "read_cifar_batch",
    "DatasetNotFoundError",
    "DatasetFormatError",
    "DatasetOptionError",
]

SYSTEM_DATA_DIR = Path("/usr/share/datasets")  # Debian's dataset-* packages install here
ENV_DATA = "ZOO_DATA"
ENV_DOWNLOAD = "ZOO_DOWNLOAD"
DIGITS_FILE = Path(__file__).parent / "datasets" / "digits.npz"
MAX_LOAD_BYTES = 4 << 30  # refuse to build a resized split larger than this; resize per batch instead
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are in none of the places zoo looks, and downloading is not allowed (or failed)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DatasetOptionError(TypeError):
    """``load_dataset`` was given an option the dataset does not accept, or a bad value."""


# --------------------------------------------------------------------------------------------------------------------
# Containers (the data <-> engine contract)


@dataclass(repr=False)
class Split:
    """One split: the whole set of images as a uint8 tensor, and the labels."""

    images: torch.Tensor  # uint8, N x C x H x W, contiguous, CPU
    labels: torch.Tensor  # int64, N
    # filled in by load_dataset so that a bare Split still carries how to normalise and augment it
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    hflip: bool | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return f"Split(images={tuple(self.images.shape)} {self.images.dtype}, labels={tuple(self.labels.shape)})"


@dataclass(repr=False)
class Dataset:
    """Train and test splits plus what a model and the engine need to know about them."""

    name: str
    train: Split
    test: Split
    num_classes: int
    in_chans: int
    img_size: int  # H (== W; images are square after loading)
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]
    classes: list[str] | None = None
    source: str | None = None  # a path, "embedded" or "synthetic"
    hflip: bool = False  # whether horizontal flips are a valid augmentation (yes for CIFAR, not for digits)

    def __post_init__(self) -> None:
        for split in (self.train, self.test):
            split.mean = split.mean or tuple(self.mean)
            split.std = split.std or tuple(self.std)
            split.hflip = self.hflip if split.hflip is None else split.hflip

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (self.in_chans, self.img_size, self.img_size)

    def __repr__(self) -> str:
        return (
            f"Dataset('{self.name}', train={len(self.train)}, test={len(self.test)}, num_classes={self.num_classes}, "
            f"input_size={self.input_size}, source={self.source!r})"
        )


# --------------------------------------------------------------------------------------------------------------------
# Options


def _options(dataset: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``given``; an unknown option is an error naming the accepted ones."""
    unknown = [k for k in given if k not in defaults]
    if unknown:
        key = unknown[0]
        near = difflib.get_close_matches(key, list(defaults), n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        raise DatasetOptionError(
            f"dataset '{dataset}' got an unknown option '{key}'.{hint} Accepted: {', '.join(sorted(defaults))}"
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


# --------------------------------------------------------------------------------------------------------------------
# Tensor helpers


def resize_images(images: torch.Tensor, size: int, chunk: int = 2048) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 N x C x size x size, bilinear (antialiased when shrinking), in chunks."""
    n, c, h, w = images.shape
    if h == size and w == size:
        return images
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    chunk = max(1, min(chunk, (1 << 24) // (c * max(size, h) * max(size, w))))  # <= 64 MB of float32 at a time
    for i in range(0, n, chunk):
        x = images[i : i + chunk].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < min(h, w))
        out[i : i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _convert_channels(images: torch.Tensor, in_chans: int) -> torch.Tensor:
    c = images.shape[1]
    if c == in_chans:
        return images
    if c == 1 and in_chans == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and in_chans == 1:  # ITU-R 601 luma, as PIL's convert("L")
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise DatasetOptionError(f"cannot convert {c}-channel images to in_chans={in_chans}; accepted: 1 or 3")


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units."""
    x = images[:: max(1, len(images) // 20000)]  # a strided sample of <= ~20k images is plenty
    n, c, h, w = x.shape
    total, squares = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
    step = max(1, (1 << 22) // (c * h * w))
    for i in range(0, n, step):
        chunk = x[i : i + step].double().div_(255)
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square_().sum(dim=(0, 2, 3))
    count = n * h * w
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-6).sqrt()
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


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
        split.images = _convert_channels(resize_images(split.images, size), chans).contiguous()
    if mean is None or std is None:
        mean, std = _channel_stats(train.images)
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


# --------------------------------------------------------------------------------------------------------------------
# Lookup: root=, $ZOO_DATA, the cache dir, /usr/share/datasets/<name>, then (only if allowed) torchvision's download


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/zoo`` or ``~/.cache/zoo``: where downloads go."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zoo"


def search_paths(name: str, root: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The base directories searched for dataset ``name``, in order, each with where it came from."""
    bases: list[tuple[str, Path]] = []
    if root is not None:
        bases.append(("root=", Path(root).expanduser()))
    if os.environ.get(ENV_DATA):
        bases += [(f"${ENV_DATA}", Path(p).expanduser()) for p in os.environ[ENV_DATA].split(os.pathsep) if p]
    bases.append(("cache", cache_dir()))
    bases.append(("system", SYSTEM_DATA_DIR / name))
    return bases


@dataclass(frozen=True)
class _FileSpec:
    """How a file-backed dataset lays out its files, and where torchvision would put them."""

    name: str
    dirnames: tuple[str, ...]  # subdirectories of a base directory that may hold the files
    files: dict[str, tuple[str, ...]]  # role -> accepted file names (first found wins)
    torchvision_class: str
    num_classes: int
    classes: tuple[str, ...] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool
    url: str
    description: str
    kind: str = "idx"  # "idx" or "cifar"
    apt: str | None = None  # Debian package that installs the files under SYSTEM_DATA_DIR


def _idx_names(stem: str) -> tuple[str, ...]:
    dotted = stem.replace("-idx", ".idx", 1)  # the original MNIST site spells 'train-images.idx3-ubyte'
    return (stem, stem + ".gz", dotted, dotted + ".gz")


_IDX_FILES = {
    "train_images": _idx_names("train-images-idx3-ubyte"),
    "train_labels": _idx_names("train-labels-idx1-ubyte"),
    "test_images": _idx_names("t10k-images-idx3-ubyte"),
    "test_labels": _idx_names("t10k-labels-idx1-ubyte"),
}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# the mean/std are the usual per-channel statistics of each training split (torchvision's references, airbench)
_FILE_DATASETS = {
    "mnist": _FileSpec(
        name="mnist",
        dirnames=("", "mnist", "MNIST", "MNIST/raw", "mnist/MNIST/raw"),
        files=_IDX_FILES,
        torchvision_class="MNIST",
        num_classes=10,
        classes=tuple(str(i) for i in range(10)),
        mean=(0.1307,),
        std=(0.3081,),
        hflip=False,
        url="http://yann.lecun.com/exdb/mnist/",
        description="MNIST handwritten digits, 60,000 / 10,000 grey 28x28 images (LeCun et al., 1998)",
    ),
    "fashion-mnist": _FileSpec(
        name="fashion-mnist",
        dirnames=("", "fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "fashion-mnist/FashionMNIST/raw"),
        files=_IDX_FILES,
        torchvision_class="FashionMNIST",
        num_classes=10,
        classes=FASHION_CLASSES,
        mean=(0.2860,),
        std=(0.3530,),
        hflip=True,
        url="https://github.com/zalandoresearch/fashion-mnist",
        description="Fashion-MNIST: Zalando article images, 60,000 / 10,000 grey 28x28 images in 10 classes "
        "(Xiao et al., 2017)",
        apt="dataset-fashion-mnist",
    ),
    "cifar10": _FileSpec(
        name="cifar10",
        dirnames=("", "cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py"),
        files={**{f"train_{i}": (f"data_batch_{i}",) for i in range(1, 6)}, "test": ("test_batch",)},
        torchvision_class="CIFAR10",
        num_classes=10,
        classes=CIFAR10_CLASSES,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        hflip=True,
        url="https://www.cs.toronto.edu/~kriz/cifar.html",
        description="CIFAR-10: 50,000 / 10,000 colour 32x32 images in 10 classes (Krizhevsky, 2009)",
        kind="cifar",
    ),
    "cifar100": _FileSpec(
        name="cifar100",
        dirnames=("", "cifar-100-python", "cifar100", "cifar100/cifar-100-python"),
        files={"train": ("train",), "test": ("test",)},
        torchvision_class="CIFAR100",
        num_classes=100,
        classes=None,  # read from the 'meta' file next to the batches
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        hflip=True,
        url="https://www.cs.toronto.edu/~kriz/cifar.html",
        description="CIFAR-100: 50,000 / 10,000 colour 32x32 images in 100 fine classes (Krizhevsky, 2009)",
        kind="cifar",
    ),
}


def _find_files(spec: _FileSpec, directory: Path) -> dict[str, Path] | None:
    found = {}
    for role, names in spec.files.items():
        path = next((directory / n for n in names if (directory / n).is_file()), None)
        if path is None:
            return None
        found[role] = path
    return found


def _locate(spec: _FileSpec, root: str | os.PathLike | None) -> tuple[dict[str, Path] | None, list[str]]:
    """The first directory holding every file of ``spec``, and the list of places looked (for the error)."""
    looked = []
    for origin, base in search_paths(spec.name, root):
        # $ZOO_DATA and the cache are shared by every dataset (MNIST and Fashion-MNIST use the same file names):
        # only a subdirectory named for the dataset counts there
        dirnames = spec.dirnames if origin in ("root=", "system") else spec.dirnames[1:]
        for d in dirnames:
            directory = base / d if d else base
            files = _find_files(spec, directory) if directory.is_dir() else None
            if files:
                return files, looked
        subdirs = ", ".join(d or "." for d in dirnames)
        looked.append(f"{base} [{subdirs}] ({origin})")
    return None, looked


def _download_allowed(option: bool | None) -> bool:
    if option is not None:
        return bool(option)
    return os.environ.get(ENV_DOWNLOAD, "").strip().lower() in ("1", "true", "yes", "on")


def _download(spec: _FileSpec) -> None:
    """Fetch with torchvision into the cache dir (torchvision's own layout, which ``_locate`` knows)."""
    try:
        import torchvision.datasets as tvd
    except ImportError as exc:
        raise DatasetNotFoundError(f"cannot download '{spec.name}': torchvision is not installed ({exc})") from None
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    cls = getattr(tvd, spec.torchvision_class)
    try:
        for train in (True, False):
            cls(str(target), train=train, download=True)
    except Exception as exc:  # network errors come in many types; all mean the same thing here
        raise DatasetNotFoundError(
            f"downloading '{spec.name}' into {target} failed: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None


def _not_found(spec: _FileSpec, looked: list[str]) -> DatasetNotFoundError:
    wanted = ", ".join(names[0] for names in spec.files.values())
    gz = " (gzipped or not)" if spec.kind == "idx" else ""
    how = [
        f"pass root=DIR, a directory holding {wanted}{gz}",
        f"or set ${ENV_DATA}=DIR where DIR/{spec.name} holds them",
        f"or allow a download from {spec.url} with load_dataset('{spec.name}', download=True) or {ENV_DOWNLOAD}=1",
    ]
    if spec.apt:
        how.insert(0, f"apt-get install {spec.apt} (installs {SYSTEM_DATA_DIR / spec.name})")
    return DatasetNotFoundError(
        f"dataset '{spec.name}' not found; looked in (subdirectories in brackets): {'; '.join(looked)}. "
        f"To get it: {'; '.join(how)}"
    )


def _load_file_dataset(spec: _FileSpec, root: str | os.PathLike | None, options: dict[str, Any]) -> Dataset:
    opts = _options(spec.name, options, {"img_size": None, "in_chans": None, "download": None})
    files, looked = _locate(spec, root)
    if files is None and _download_allowed(opts["download"]):
        _download(spec)
        files, looked = _locate(spec, root)
    if files is None:
        raise _not_found(spec, looked)
    if spec.kind == "idx":
        splits = []
        for part in ("train", "test"):
            images = read_idx(files[f"{part}_images"])
            labels = read_idx(files[f"{part}_labels"])
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DatasetFormatError(
                    f"{files[f'{part}_images']}: size mismatch: images of shape {images.shape} but "
                    f"{files[f'{part}_labels'].name} holds labels of shape {labels.shape}"
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
        classes = _read_cifar_meta(directory / meta[0], meta[1]) or (list(spec.classes) if spec.classes else None)
    for split, part in zip(splits, ("train", "test")):
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


def _list_classes(directory: Path) -> list[str]:
    return sorted(d.name for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))


def _list_images(directory: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for i, c in enumerate(classes):
        for p in sorted((directory / c).rglob("*")):
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                paths.append(p)
                labels.append(i)
    return paths, labels


def _read_images(paths: list[Path], size: int, mode: str) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    c = 1 if mode == "L" else 3
    out = torch.empty((len(paths), c, size, size), dtype=torch.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                im = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                arr = np.array(im, dtype=np.uint8)  # a writable copy
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DatasetFormatError(f"{p}: cannot read image ({exc})") from None
        out[i] = torch.from_numpy(arr.reshape(size, size, c)).permute(2, 0, 1)
    return out


def _image_mode(paths: list[Path]) -> str:
    """'L' when every image (of a sample of up to 64) is greyscale, else 'RGB'."""
    from PIL import Image

    step = max(1, len(paths) // 64)
    for p in paths[::step]:
        try:
            with Image.open(p) as im:
                if im.mode not in ("L", "1", "I", "I;16", "LA"):
                    return "RGB"
        except OSError:
            continue
    return "L"


def load_image_folder(path: str | os.PathLike, **options: Any) -> Dataset:
    """A directory with one subfolder per class (like torchvision's ImageFolder).

    If it has ``train/`` and ``test/`` (or ``val/``) subfolders, those are the splits; otherwise a seeded,
    stratified ``test_fraction`` of each class is held out. Images are resized to ``img_size`` on load.
    """
    directory = Path(path)
    opts = _options(
        str(directory),
        options,
        {"img_size": 32, "in_chans": None, "test_fraction": 0.2, "seed": 0, "hflip": True},
    )
    size = opts["img_size"]
    test_dir = next((directory / d for d in ("test", "val") if (directory / d).is_dir()), None)
    if (directory / "train").is_dir() and test_dir is not None:
        classes = _list_classes(directory / "train")
        train_paths, train_labels = _list_images(directory / "train", classes)
        test_paths, test_labels = _list_images(test_dir, classes)
    else:
        classes = _list_classes(directory)
        paths, labels = _list_images(directory, classes)
        frac = float(opts["test_fraction"])
        if not 0 < frac < 1:
            raise DatasetOptionError(f"image folder {directory}: test_fraction must be in (0, 1), got {frac!r}")
        rng = np.random.default_rng(int(opts["seed"]))
        lab = np.asarray(labels)
        test_mask = np.zeros(len(paths), dtype=bool)
        for i in range(len(classes)):
            idx = rng.permutation(np.flatnonzero(lab == i))
            test_mask[idx[: int(round(len(idx) * frac))]] = True
        train_paths = [p for p, m in zip(paths, test_mask) if not m]
        train_labels = [int(x) for x in lab[~test_mask]]
        test_paths = [p for p, m in zip(paths, test_mask) if m]
        test_labels = [int(x) for x in lab[test_mask]]
    if not classes or not train_paths:
        raise DatasetNotFoundError(
            f"{directory}: no images found; expected one subfolder per class holding "
            f"{'/'.join(e[1:] for e in IMAGE_EXTENSIONS[:4])}... files (optionally under train/ and test/)"
        )
    mode = {1: "L", 3: "RGB"}.get(opts["in_chans"]) or _image_mode(train_paths)
    train = Split(_read_images(train_paths, size, mode), torch.tensor(train_labels, dtype=torch.int64))
    test = Split(_read_images(test_paths, size, mode), torch.tensor(test_labels, dtype=torch.int64))
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


def load_dataset(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None, **options: Any) -> Dataset:
    """Load a registered dataset by name, or an image folder by path.

    Args:
        name_or_path: a registered name (``zoo.list_datasets()``) or a directory of class subfolders.
        root: a directory to look in first (file-backed datasets).
        **options: per dataset; every built-in accepts ``img_size`` (resize once, on load) and ``in_chans``
            (1 or 3: grey images are repeated, colour ones converted to luma). File-backed ones accept
            ``download`` (allow torchvision's download into the cache dir); ``synthetic`` accepts
            ``num_classes``, ``train_size``, ``test_size``, ``seed``, ``noise``.
    """
    from zoo import registry

    name = os.fspath(name_or_path)
    if name not in registry.list_datasets() and (os.path.isdir(name) or os.sep in name or name.startswith(".")):
        if not os.path.isdir(name):
            raise DatasetNotFoundError(f"image folder '{name}' does not exist (and no dataset has that name)")
        if root is not None:
            raise DatasetOptionError("an image folder path takes no root=")
        return load_image_folder(name, **options)
    spec = registry.get_dataset_spec(name)
    return spec.loader(root=root, **options)


def _file_loader(name: str) -> Callable[..., Dataset]:
    def loader(root: str | os.PathLike | None = None, **options: Any) -> Dataset:
        return _load_file_dataset(_FILE_DATASETS[name], root, options)

    loader.__name__ = loader.__qualname__ = f"load_{name.replace('-', '_')}"
    loader.__doc__ = f"{_FILE_DATASETS[name].description}. Options: img_size, in_chans, download."
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
    for name, spec in _FILE_DATASETS.items():
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


__all__ += ["cache_dir", "load_image_folder", "resize_images", "write_digits_file", "digits_arrays_from_sklearn"]
