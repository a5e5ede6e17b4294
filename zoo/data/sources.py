"""Where dataset files are looked for, offline first: ``root=``, ``$ZOO_DATA``, the cache dir, then
``/usr/share/datasets/<name>`` (Debian's dataset-* packages); torchvision's download only when allowed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from zoo.data.types import DatasetNotFoundError
from zoo.messages import exception_line

SYSTEM_DATA_DIR = Path("/usr/share/datasets")  # Debian's dataset-* packages install here
ENV_DATA = "ZOO_DATA"
ENV_DOWNLOAD = "ZOO_DOWNLOAD"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/zoo`` or ``~/.cache/zoo``: where downloads go."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zoo"


def image_cache_dir() -> Path:
    """``<cache dir>/images``: where image folders and Datasets are cached as uint8 arrays (``zoo.data.cache``)."""
    return cache_dir() / "images"


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
class FileSpec:
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

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# the mean/std are the usual per-channel statistics of each training split (torchvision's references, airbench)
FILE_DATASETS = {
    "mnist": FileSpec(
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
    "fashion-mnist": FileSpec(
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
    "cifar10": FileSpec(
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
    "cifar100": FileSpec(
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


def find_files(spec: FileSpec, directory: Path) -> dict[str, Path] | None:
    found = {}
    for role, names in spec.files.items():
        path = next((directory / n for n in names if (directory / n).is_file()), None)
        if path is None:
            return None
        found[role] = path
    return found


def check_root(root: str | os.PathLike | None) -> None:
    """``root=`` must be an existing directory: a typo must not fall through to the other places silently."""
    if root is None:
        return
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(
            f"root={os.fspath(root)!r} does not exist; root= must be an existing directory that holds the dataset's "
            "files (or leave it out to search $ZOO_DATA, the cache and the system dataset directory)"
        )
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"root={os.fspath(root)!r} is not a directory; root= must be the directory that holds the dataset's "
            "files, not one of the files"
        )


def locate(spec: FileSpec, root: str | os.PathLike | None) -> tuple[dict[str, Path] | None, list[str]]:
    """The first directory holding every file of ``spec``, and the list of places looked (for the error).

    ``root=`` that does not exist (or is a file) is an error; other places that do not exist are skipped, and
    listed as missing.
    """
    check_root(root)
    looked = []
    for origin, base in search_paths(spec.name, root):
        if not base.is_dir():
            looked.append(f"{base} ({origin}, {'not a directory' if base.exists() else 'missing'})")
            continue
        # $ZOO_DATA and the cache are shared by every dataset (MNIST and Fashion-MNIST use the same file names):
        # only a subdirectory named for the dataset counts there
        dirnames = spec.dirnames if origin in ("root=", "system") else spec.dirnames[1:]
        for d in dirnames:
            directory = base / d if d else base
            files = find_files(spec, directory) if directory.is_dir() else None
            if files:
                return files, looked
        subdirs = ", ".join(d or "." for d in dirnames)
        looked.append(f"{base} [{subdirs}] ({origin})")
    return None, looked


def download_allowed(option: bool | None) -> bool:
    if option is not None:
        return bool(option)
    return os.environ.get(ENV_DOWNLOAD, "").strip().lower() in ("1", "true", "yes", "on")


def download(spec: FileSpec) -> None:
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
            f"downloading '{spec.name}' into {target} failed: {exception_line(exc, 300)}"
        ) from None


def not_found(spec: FileSpec, looked: list[str]) -> DatasetNotFoundError:
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
