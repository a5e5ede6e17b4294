"""The image cache: images decoded once into a memory-mapped uint8 array, reopened in milliseconds.

One file per split (``.zooc``), written to a temporary name, synced and renamed into place, so a reader only ever
sees a complete file:

    [header, 4096 bytes][uint8 N x C x S x S images][JSON index: labels, fingerprint, classes, mean/std, probes]

The header holds a magic number, the format version, the zoo version, the sizes of both parts and the CRC-32 of
the index; the index holds the fingerprint of the sources (every file's path, size and mtime, or a Dataset's
identity), and the CRC-32 of a few images. A file that is truncated, whose index is damaged, whose probed images
differ, that comes from another format or zoo version, or whose fingerprint no longer matches its sources is
never trusted: it is rebuilt. Nothing in it is pickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import sys
import time
import uuid
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.images import channel_stats
from zoo.data.imagesplit import ImageSplit
from zoo.files import atomic_write
from zoo.version import __version__

__all__ = [
    "CacheError",
    "CacheFile",
    "FORMAT_VERSION",
    "SUFFIX",
    "read_cache",
    "write_cache",
    "cached_split",
    "cache_file_name",
    "fingerprint_files",
    "fingerprint_dataset",
    "stats_rows",
    "build_workers",
]

MAGIC = b"ZOOIMGC\x00"
FORMAT_VERSION = 1
HEADER_BYTES = 4096  # the images start on a page boundary, so the memory map is aligned
SUFFIX = ".zooc"
_HEADER = struct.Struct("<8sIIQQI32s")  # magic, format, header bytes, image bytes, index bytes, index CRC, zoo version
_PROBES = 16  # images whose CRC-32 is checked on every open (a cheap guard against a file that was overwritten)
_BUILD_BATCH = 64


class CacheError(ValueError):
    """A cache file that cannot be trusted (missing, truncated, damaged, stale, or from another zoo version)."""


@dataclass
class CacheFile:
    """An open cache file: the images (a read-only memory map), the labels and the index."""

    path: Path
    images: torch.Tensor  # uint8 N x C x S x S, memory-mapped
    labels: torch.Tensor  # int64 N
    index: dict[str, Any]  # fingerprint, classes, mean, std, build id, ...

    @property
    def build_id(self) -> str:
        return str(self.index["build_id"])


def stats_rows(n: int) -> torch.Tensor:
    """The rows the channel statistics are computed from (<= 256, evenly spaced): the same for a cache and for
    the files it was built from, so both give the same mean and std."""
    return torch.arange(0, n, max(1, n // 256))


def build_workers() -> int:
    """DataLoader workers for building a cache: every core (nothing else is running)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores))


# --------------------------------------------------------------------------------------------------------------------
# Fingerprints and names


def fingerprint_files(paths: Sequence[str | os.PathLike], labels: Sequence[int], **settings: Any) -> str:
    """SHA-256 of the settings and of every file's path, size, mtime and label: any change gives a new one."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for p, y in zip(paths, labels):
        st = os.stat(p)
        h.update(f"{os.fspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\0{int(y)}\n".encode())
    return h.hexdigest()


def fingerprint_dataset(dataset: Any, squares: torch.utils.data.Dataset, key: str | None, **settings: Any) -> str:
    """A map-style Dataset's fingerprint: its files when it lists them (torchvision's ``ImageFolder``: ``samples``),
    else its type, length, ``key`` and three of its images (first, middle, last)."""
    samples = getattr(dataset, "samples", None)
    if isinstance(samples, list) and samples and all(isinstance(s, (tuple, list)) and len(s) == 2 for s in samples):
        return fingerprint_files([s[0] for s in samples], [s[1] for s in samples], key=key, **settings)
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    n = len(dataset)
    h.update(f"{type(dataset).__module__}.{type(dataset).__qualname__}\0{n}\0{key}".encode())
    for i in sorted({0, n // 2, n - 1} if n else set()):
        x, y = squares[i]
        h.update(x.numpy().tobytes())
        h.update(str(int(y)).encode())
    return h.hexdigest()


def cache_file_name(name: str, part: str, size: int, channels: int, where: str) -> str:
    """``<name>-<part>-<C>x<S>-<hash of where the data is>.zooc``: one file per source, split and stored size."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:40] or "data"
    digest = hashlib.sha1(where.encode()).hexdigest()[:10]
    return f"{safe}-{part}-{channels}x{size}-{digest}{SUFFIX}"


# --------------------------------------------------------------------------------------------------------------------
# Reading


def _probe_rows(n: int) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, n - 1, num=min(n, _PROBES))}) if n else []


def _crc(images: Any, rows: list[int]) -> dict[str, int]:
    return {str(i): zlib.crc32(np.ascontiguousarray(images[i]).tobytes()) for i in rows}


def read_cache(path: str | os.PathLike, fingerprint: str | None = None) -> CacheFile:
    """Open a cache file; ``CacheError`` (one line: why) for anything that cannot be trusted.

    Args:
        path: the ``.zooc`` file.
        fingerprint: the sources' fingerprint it must have been built from (None: any).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                raise CacheError(f"{path}: truncated ({size} bytes, shorter than its header)")
            magic, fmt, header_bytes, data_bytes, index_bytes, index_crc, version = _HEADER.unpack(head)
            if magic != MAGIC:
                raise CacheError(f"{path}: not a zoo image cache (or its header is damaged)")
            version = version.rstrip(b"\0").decode(errors="replace")
            if fmt != FORMAT_VERSION or version != __version__:
                raise CacheError(
                    f"{path}: written by zoo {version} (format {fmt}); this is zoo {__version__} (format "
                    f"{FORMAT_VERSION})"
                )
            expected = header_bytes + data_bytes + index_bytes
            if header_bytes != HEADER_BYTES or size != expected:
                raise CacheError(f"{path}: truncated or damaged ({size:,} bytes; its header says {expected:,})")
            f.seek(header_bytes + data_bytes)
            raw = f.read(index_bytes)
    except FileNotFoundError:
        raise CacheError(f"{path}: no cache yet") from None
    except OSError as exc:
        raise CacheError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if zlib.crc32(raw) != index_crc:
        raise CacheError(f"{path}: its index is damaged (CRC mismatch)")
    try:
        index = json.loads(raw)
        shape = tuple(int(v) for v in index["shape"])
        labels = torch.tensor(index["labels"], dtype=torch.int64)
    except (ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"{path}: its index cannot be read ({type(exc).__name__})") from None
    if len(shape) != 4 or int(np.prod(shape)) != data_bytes or labels.shape != (shape[0],):
        raise CacheError(f"{path}: its index does not match its images (shape {shape}, {data_bytes:,} bytes)")
    if fingerprint is not None and index.get("fingerprint") != fingerprint:
        raise CacheError(f"{path}: stale (its sources changed since it was built)")
    mapped = np.memmap(path, dtype=np.uint8, mode="r", offset=HEADER_BYTES, shape=shape) if shape[0] else None
    if mapped is not None and _crc(mapped, [int(i) for i in index.get("probes", {})]) != index.get("probes"):
        raise CacheError(f"{path}: damaged (probed images differ from what was written)")
    with warnings.catch_warnings():  # a read-only map: torch warns that it cannot write to it, and never does
        warnings.simplefilter("ignore", UserWarning)
        images = torch.from_numpy(mapped) if mapped is not None else torch.empty(shape, dtype=torch.uint8)
    return CacheFile(path, images, labels, index)


# --------------------------------------------------------------------------------------------------------------------
# Writing


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per cache file across processes (ranks under torchrun, two notebooks): an exclusive lock."""
    with open(path.with_name(path.name + ".lock"), "a+b") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _progress(enabled: bool | None, total: int, desc: str) -> Any:
    if enabled is None:
        off = os.environ.get("ZOO_PROGRESS", "1").strip().lower() in ("0", "false", "no")
        enabled = not off and bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True)


def write_cache(
    path: str | os.PathLike,
    squares: torch.utils.data.Dataset,
    *,
    fingerprint: str,
    extra: dict[str, Any] | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> CacheFile:
    """Decode every item of ``squares`` (``(uint8 C x S x S, label)``, e.g. ``ImageFiles``) in DataLoader workers
    into a new cache file at ``path``, atomically: a temporary file, synced, then renamed over ``path``."""
    path = Path(path)
    n = len(squares)
    first = squares[0][0] if n else None
    if first is None:
        raise ValueError(f"{path}: nothing to cache (no images)")
    shape = (n, *first.shape)
    data_bytes = int(np.prod(shape))
    workers = build_workers() if workers is None else int(workers)
    bar = _progress(progress, n, f"caching {path.name}")

    def write(f: Any) -> None:  # into the temporary file that atomic_write renames over path once synced
        f.truncate(HEADER_BYTES + data_bytes)  # sparse until written; the header stays zero until the end
        mapped = np.memmap(f, dtype=np.uint8, mode="r+", offset=HEADER_BYTES, shape=shape)
        labels = np.empty(n, dtype=np.int64)
        loader = torch.utils.data.DataLoader(squares, batch_size=_BUILD_BATCH, num_workers=workers)
        pos = 0
        for x, y in loader:
            b = len(y)
            mapped[pos : pos + b] = x.numpy()
            labels[pos : pos + b] = torch.as_tensor(y).numpy()
            pos += b
            if bar is not None:
                bar.update(b)
        mapped.flush()
        mean, std = channel_stats(torch.from_numpy(np.ascontiguousarray(mapped[stats_rows(n).numpy()])))
        index = {
            "shape": list(shape),
            "labels": labels.tolist(),
            "fingerprint": fingerprint,
            "mean": list(mean),
            "std": list(std),
            "probes": _crc(mapped, _probe_rows(n)),
            "build_id": uuid.uuid4().hex,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(extra or {}),
        }
        del mapped
        raw = json.dumps(index, separators=(",", ":")).encode()
        version = __version__.encode()[:32]
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, HEADER_BYTES, data_bytes, len(raw), zlib.crc32(raw), version)
        f.seek(HEADER_BYTES + data_bytes)
        f.write(raw)
        f.seek(0)
        f.write(header)

    try:
        atomic_write(path, write)
    finally:
        if bar is not None:
            bar.close()
    return read_cache(path, fingerprint)


def _remove_leftovers(path: Path) -> None:
    """Temporary files of this cache left by a process that was killed while writing (the lock is held: no one
    else is writing one)."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def cached_split(
    squares: torch.utils.data.Dataset,
    path: str | os.PathLike,
    *,
    fingerprint: str,
    img_size: int,
    classes: list[str] | None = None,
    hflip: bool | None = None,
    rebuild: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
) -> ImageSplit:
    """The cache at ``path`` as an ``ImageSplit``: reopened when it is sound and its fingerprint matches, else
    (re)built from ``squares``. A damaged cache is reported in a warning and rebuilt; a stale one is rebuilt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        cached = None
        if not rebuild:
            try:
                cached = read_cache(path, fingerprint)
            except CacheError as exc:
                if path.exists() and "stale" not in str(exc):
                    warnings.warn(f"{exc}; rebuilding it", UserWarning, stacklevel=3)
        if cached is None:
            _remove_leftovers(path)
            cached = write_cache(
                path, squares, fingerprint=fingerprint, extra={"classes": classes}, workers=workers, progress=progress
            )
    return ImageSplit(
        images=cached.images, labels=cached.labels, img_size=img_size, mean=tuple(cached.index["mean"]),
        std=tuple(cached.index["std"]), hflip=hflip, classes=classes, path=str(path),
    )  # fmt: skip
