"""The image cache: images decoded once into a memory-mapped uint8 array, reopened in milliseconds.

One file per split (``.zooc``), written to a temporary name, synced and renamed into place, so a reader only ever
sees a complete file:

    [header, 4096 bytes][uint8 N x C x S x S images][JSON index: labels, fingerprint, classes, mean/std, hashes]

The header holds a magic number, the format version, the zoo version, the sizes of both parts, N, C, S and the
CRC-32 of the index: each is checked against the others and the file's real size before anything else is read (an
index is at most ``max_index_bytes(N)``). The index holds the fingerprint of the sources (every file's path, size,
mtime and label; a Dataset's content or its ``key``: ``zoo.data.prepare``) and a BLAKE2 hash of every chunk of about
1 MiB of images. On every open the hashes of a sample of chunks are checked (every chunk of a small cache;
``verify=True`` checks them all), and the labels are compared with those the folder gives. A file that is
truncated, whose index is damaged, whose images or labels differ from what was written, that comes from another
format or zoo version, or whose fingerprint no longer matches its sources is never trusted: it is rebuilt. Nothing
in it is pickled.

Writing checks the free space first and writes with plain ``write`` calls (no memory map: a full disk is an error
in one line, never a SIGBUS); a prebuilt cache on a read-only mount is opened without its lock.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import shutil
import stat
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
from zoo.data.slots import PREFETCH, EpochBatches, slot_count, whole
from zoo.files import atomic_write
from zoo.inputs import MAX_IMAGE_SIDE
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
    "stats_rows",
    "build_workers",
    "max_index_bytes",
]

MAGIC = b"ZOOIMGC\x00"
FORMAT_VERSION = 3  # 3: pixels interleaved (N x S x S x C); 2 stored planes (N x C x S x S)
HEADER_BYTES = 4096  # the images start on a page boundary, so the memory map is aligned
SUFFIX = ".zooc"
# magic, format, header bytes, image bytes, index bytes, index CRC, zoo version, N, C, S (format 1 ended at the version)
_HEADER = struct.Struct("<8sIIQQI32sQII")
_CHUNK_BYTES = 1 << 20  # images hashed together (at least one image per chunk)
_SAMPLE = 16  # chunks whose hashes are checked on every open (every chunk of a cache of up to 16 MiB)
_BATCH_BYTES = 64 << 20  # decoded images per DataLoader batch while building (at most 64 of them)


class CacheError(ValueError):
    """A cache file that cannot be trusted (missing, truncated, damaged, stale, or from another zoo version)."""


@dataclass
class CacheFile:
    """An open cache file: the images (a read-only memory map), the labels and the index."""

    path: Path
    images: torch.Tensor  # uint8 N x C x S x S, memory-mapped, channels_last (stored N x S x S x C)
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


def cache_file_name(name: str, part: str, size: int, channels: int, where: str) -> str:
    """``<name>-<part>-<C>x<S>-<hash of where the data is>.zooc``: one file per source, split and stored size."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:40] or "data"
    digest = hashlib.sha1(where.encode()).hexdigest()[:10]
    return f"{safe}-{part}-{channels}x{size}-{digest}{SUFFIX}"


# --------------------------------------------------------------------------------------------------------------------
# Reading


def max_index_bytes(n: int) -> int:
    """The largest index a cache of ``n`` images may have: labels and chunk hashes take < 64 bytes an image, the
    class names and the rest a few MiB; 256 MiB at most, whatever a header claims."""
    return min(256 << 20, (8 << 20) + 64 * n)


def _chunk_images(image_bytes: int) -> int:
    return max(1, _CHUNK_BYTES // max(1, image_bytes))


def _chunk_hasher() -> Any:
    """The hash of a chunk of images (their bytes as stored), fed in one piece (``_hash``) or as they come."""
    return hashlib.blake2b(digest_size=16)


def _hash(block: Any) -> str:
    h = _chunk_hasher()
    h.update(np.ascontiguousarray(block).data)
    return h.hexdigest()


def _header(path: Path, f: Any, size: int) -> tuple[int, int, tuple[int, int, int, int], int]:
    """``(index offset, index bytes, shape, index CRC)`` of a cache file's header, each field checked against the
    others and against the file's real ``size`` before anything they describe is read."""
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise CacheError(f"{path}: truncated ({size} bytes, shorter than its header)")
    magic, fmt, header_bytes, data_bytes, index_bytes, index_crc, version, n, c, side = _HEADER.unpack(head)
    if magic != MAGIC:
        raise CacheError(f"{path}: not a zoo image cache (or its header is damaged)")
    version = version.rstrip(b"\0").decode(errors="replace")
    if fmt != FORMAT_VERSION or version != __version__:
        raise CacheError(
            f"{path}: written by zoo {version} (format {fmt}); this is zoo {__version__} (format {FORMAT_VERSION})"
        )
    expected = header_bytes + data_bytes + index_bytes
    if header_bytes != HEADER_BYTES or size != expected:
        raise CacheError(f"{path}: truncated or damaged ({size:,} bytes; its header says {expected:,})")
    if c not in (1, 3) or not 1 <= side <= MAX_IMAGE_SIDE or n * c * side * side != data_bytes:
        raise CacheError(f"{path}: its header is damaged ({n} images of {c} x {side} x {side} in {data_bytes:,} bytes)")
    if index_bytes > max_index_bytes(n):
        raise CacheError(f"{path}: its header is damaged (an index of {index_bytes:,} bytes for {n:,} images)")
    return header_bytes + data_bytes, index_bytes, (n, c, side, side), index_crc


def _read_index(path: Path, raw: bytes, shape: tuple[int, ...]) -> tuple[dict[str, Any], torch.Tensor]:
    try:
        index = json.loads(raw)
        labels = torch.tensor(index["labels"], dtype=torch.int64)
        hashes, per = index["hashes"], int(index["chunk"])
        ok = tuple(int(v) for v in index["shape"]) == shape and isinstance(hashes, list) and per >= 1
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise CacheError(f"{path}: its index cannot be read ({type(exc).__name__})") from None
    if not ok or labels.shape != (shape[0],) or len(hashes) != -(-shape[0] // per):
        raise CacheError(f"{path}: its index does not match its images ({shape[0]:,} images)")
    if shape[0] and int(labels.min()) < 0:
        raise CacheError(f"{path}: its index holds negative labels")
    return index, labels


def _check_chunks(path: Path, images: np.ndarray, index: dict[str, Any], verify: bool) -> None:
    """Compare the hashes of a sample of chunks (a new random sample each time; all of them when ``verify``)."""
    per, hashes = int(index["chunk"]), index["hashes"]
    chunks = range(len(hashes))
    if not verify and len(hashes) > _SAMPLE:
        rng = random.Random(os.urandom(8))
        chunks = sorted({0, len(hashes) - 1, *rng.sample(range(len(hashes)), _SAMPLE - 2)})
    for k in chunks:
        if _hash(images[k * per : (k + 1) * per]) != hashes[k]:
            rows = f"{k * per}..{min(len(images), (k + 1) * per) - 1}"
            raise CacheError(f"{path}: damaged (images {rows} differ from what was written)")


def read_cache(path: str | os.PathLike, fingerprint: str | None = None, *, verify: bool = False) -> CacheFile:
    """Open a cache file; ``CacheError`` (one line: why) for anything that cannot be trusted.

    Args:
        path: the ``.zooc`` file.
        fingerprint: the sources' fingerprint it must have been built from (None: any).
        verify: check the hash of every chunk of images (reads the whole file), not only a sample.
    """
    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read below
            raise CacheError(f"{path}: not a regular file, so not a cache")
        size = st.st_size
        with open(path, "rb") as f:
            offset, index_bytes, shape, index_crc = _header(path, f, size)
            f.seek(offset)
            raw = f.read(index_bytes)
    except FileNotFoundError:
        raise CacheError(f"{path}: no cache yet") from None
    except OSError as exc:
        raise CacheError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if zlib.crc32(raw) != index_crc:
        raise CacheError(f"{path}: its index is damaged (CRC mismatch)")
    index, labels = _read_index(path, raw, shape)
    if fingerprint is not None and index.get("fingerprint") != fingerprint:
        raise CacheError(f"{path}: stale (its sources changed since it was built)")
    if not shape[0]:
        return CacheFile(path, torch.empty(shape, dtype=torch.uint8), labels, index)
    mapped = _memmap(path, shape)
    _check_chunks(path, mapped, index, verify)
    return CacheFile(path, _as_tensor(mapped), labels, index)


def _memmap(path: str | os.PathLike, shape: tuple[int, ...]) -> np.ndarray:
    """The stored images: N x S x S x C, pixel-interleaved (channels_last), the layout in which a crop is cut and
    resized fastest (torch's vectorised uint8 resize; 8 against 15 ms for 64 crops at 224 px from planes)."""
    n, c, h, w = shape
    return np.memmap(path, dtype=np.uint8, mode="r", offset=HEADER_BYTES, shape=(n, h, w, c))


def _as_tensor(mapped: np.ndarray) -> torch.Tensor:
    """N x S x S x C stored pixels as the N x C x S x S tensor every reader sees (channels_last strides)."""
    with warnings.catch_warnings():  # a read-only map: torch warns that it cannot write to it, and never does
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(mapped).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------------------------------
# Writing


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """One builder per cache file across processes (ranks under torchrun, two notebooks): an exclusive lock. Yields
    False, holding no lock, where the lock file cannot be created (a read-only mount of a prebuilt cache)."""
    lock = path.with_name(path.name + ".lock")
    try:  # never through a link, and never blocking on a FIFO planted under the lock's name
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            raise CacheError(f"{lock}: a link or a special file where the cache's lock belongs; remove it") from None
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        yield False
        return
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CacheError(f"{lock}: not a regular file where the cache's lock belongs; remove it")
    with open(fd, "a+b") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield True
            return
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except OSError as exc:  # ENOLCK: a file system without locks (some NFS mounts)
            warnings.warn(f"{lock}: cannot be locked ({exc.strerror}); building without a lock", stacklevel=4)
            yield True
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _check_space(path: Path, needed: int) -> None:
    """Refuse to start a cache the disk cannot hold (rather than fail, or worse, after minutes of decoding)."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    if free < needed:
        raise CacheError(
            f"{path}: not enough disk space for the cache ({needed / 2**20:,.1f} MiB needed, {free / 2**20:,.1f} MiB "
            f"free in {path.parent}); free some, or pass to= (zoo cache --to) another folder"
        )


def _progress(enabled: bool | None, total: int, desc: str) -> Any:
    if enabled is None:
        off = os.environ.get("ZOO_PROGRESS", "1").strip().lower() in ("0", "false", "no")
        enabled = not off and bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True)


class _Builder:
    """What is computed while the images stream into the file: the labels, each chunk's hash (fed as the rows come:
    a batch's memory is reused for a later batch), the rows the channel statistics are measured on."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.n, self.per = shape[0], _chunk_images(int(np.prod(shape[1:])))
        self.labels = np.empty(self.n, dtype=np.int64)
        self.hashes: list[str] = []
        self.chunk = _chunk_hasher()  # the chunk being hashed: _hash of its rows, fed in parts
        self.wanted = {int(i): k for k, i in enumerate(stats_rows(self.n).tolist())}
        self.stats = np.empty((len(self.wanted), shape[2], shape[3], shape[1]), dtype=np.uint8)  # as stored
        self.pos = 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Rows ``pos ...`` as stored (contiguous B x S x S x C) and their labels."""
        b = len(x)
        self.labels[self.pos : self.pos + b] = y
        for i in range(b):
            if self.pos + i in self.wanted:
                self.stats[self.wanted[self.pos + i]] = x[i]
        i = 0
        while i < b:  # each run of rows within one chunk hashed at once
            row = self.pos + i
            j = min(b, i + self.per - row % self.per)
            self.chunk.update(x[i:j].data)
            if (self.pos + j) % self.per == 0 or self.pos + j == self.n:
                self.hashes.append(self.chunk.hexdigest())
                self.chunk = _chunk_hasher()
            i = j
        self.pos += b


class _StoredRows(torch.utils.data.Dataset):
    """The squares of a cache being built (``(uint8 C x S x S, label)`` items), a batch per fetch as the file stores
    them (B x S x S x C): in a DataLoader worker, written into a slot of shared memory made once (``zoo.data.slots``)
    and sent back as ``(slot, labels)``; without slots (no workers), ``(rows, labels)``. Cut this way the main
    process only writes and hashes: collated by torch as C x S x S and turned back into rows by the main process,
    the same 2,000 photos at 224 px took 3.5 s to cache, 0.84 s of them in that one copy."""

    def __init__(self, squares: torch.utils.data.Dataset, shape: tuple[int, ...], slots: torch.Tensor | None) -> None:
        self.squares, self.shape, self.slots = squares, shape, slots  # shape: C x S x S

    def __len__(self) -> int:
        return len(self.squares)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        return self.squares[i]

    def __getitems__(self, batch: Any) -> tuple[Any, list[int]]:
        slot, rows = batch if self.slots is not None else (None, batch)
        c, h, w = self.shape
        out = torch.empty((len(rows), h, w, c), dtype=torch.uint8) if slot is None else self.slots[slot]
        labels = []
        for i, row in enumerate(rows):
            x, y = self.squares[row]
            out[i] = x.permute(1, 2, 0)
            labels.append(int(y))
        return (out if slot is None else slot), labels


def _one_line(exc: BaseException) -> BaseException:
    """An error from a DataLoader worker with torch's wrapper ("Caught X in DataLoader worker process 0. Original
    Traceback ...") cut back to its own last line, as the same type where it can be rebuilt from a message."""
    text = str(exc)
    if not (text.startswith("Caught ") and "Original Traceback" in text):
        return exc
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    message = last.partition(": ")[2] or last
    try:
        return type(exc)(message)
    except Exception:
        return CacheError(message)


def _build_batch(image_bytes: int) -> int:
    return max(1, min(64, _BATCH_BYTES // max(1, image_bytes)))


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
    into a new cache file at ``path``, atomically: a temporary file, synced, then renamed over ``path``.

    The free space is checked first; the images are written with ``write`` (no memory map), so a disk that fills
    anyway is a one-line ``CacheError``, not a SIGBUS. An error in a worker is re-raised as its own one line."""
    path = Path(path)
    n = len(squares)
    first = squares[0][0] if n else None
    if first is None:
        raise ValueError(f"{path}: nothing to cache (no images)")
    shape = (n, *first.shape)
    image_bytes = int(np.prod(shape[1:]))
    data_bytes = n * image_bytes
    _check_space(path, HEADER_BYTES + data_bytes + max_index_bytes(n) // 4)
    workers = build_workers() if workers is None else int(workers)
    bar = _progress(progress, n, f"caching {path.name}")

    def write(f: Any) -> None:  # into the temporary file that atomic_write renames over path once synced
        f.write(bytes(HEADER_BYTES))  # zero until the end: an unfinished file is never a cache
        built = _Builder(shape)
        batch = _build_batch(image_bytes)
        slots = None
        if workers > 0:  # rows as stored, written by the workers into slots of shared memory (zoo.data.slots)
            slots = torch.empty((slot_count(workers), batch, shape[2], shape[3], shape[1]), dtype=torch.uint8)
            slots = slots.share_memory_()
        sampler = EpochBatches(slots=None if slots is None else len(slots))
        sampler.batches = [list(range(i, min(n, i + batch))) for i in range(0, n, batch)]
        loader = torch.utils.data.DataLoader(
            _StoredRows(squares, shape[1:], slots), batch_sampler=sampler, num_workers=workers, collate_fn=whole,
            prefetch_factor=PREFETCH if workers > 0 else None,
        )  # fmt: skip
        try:
            for x, y in loader:
                rows = (x if slots is None else slots[x][: len(y)]).numpy()  # done with before the next batch
                f.write(rows.data)
                built.add(rows, np.asarray(y, dtype=np.int64))
                if bar is not None:
                    bar.update(len(y))
        except Exception as exc:
            raise _one_line(exc) from None
        # over planes, as the streamed files' statistics are computed: the same mean and std to the last bit
        mean, std = channel_stats(torch.from_numpy(built.stats).permute(0, 3, 1, 2).contiguous())
        index = {
            "shape": list(shape),
            "labels": built.labels.tolist(),
            "fingerprint": fingerprint,
            "mean": list(mean),
            "std": list(std),
            "chunk": built.per,
            "hashes": built.hashes,
            "build_id": uuid.uuid4().hex,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(extra or {}),
        }
        raw = json.dumps(index, separators=(",", ":")).encode()
        version = __version__.encode()[:32]
        f.write(raw)
        f.seek(0)
        f.write(
            _HEADER.pack(
                MAGIC, FORMAT_VERSION, HEADER_BYTES, data_bytes, len(raw), zlib.crc32(raw), version, n, *shape[1:3]
            )
        )

    try:
        atomic_write(path, write)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise CacheError(
            f"{path}: the disk filled while the cache was written ({exc.strerror}); nothing was kept: free "
            f"{(HEADER_BYTES + data_bytes) / 2**20:,.1f} MiB in {path.parent}, or pass to= another folder"
        ) from None
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


def _trusted(path: Path, fingerprint: str, labels: list[int] | None, verify: bool) -> CacheFile:
    """The cache at ``path`` when it is sound, current, and its labels are those of its sources; else CacheError."""
    cached = read_cache(path, fingerprint, verify=verify)
    if labels is not None and cached.labels.tolist() != [int(v) for v in labels]:
        raise CacheError(f"{path}: damaged (its labels differ from those of its sources)")
    return cached


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
    verify: bool = False,
) -> ImageSplit:
    """The cache at ``path`` as an ``ImageSplit``: reopened when it is sound, its fingerprint matches and its labels
    are those ``squares`` gives (its ``labels``, when it lists them), else (re)built from ``squares``. A damaged
    cache is reported in a warning and rebuilt; a stale one is rebuilt. In a folder zoo cannot write to (a
    read-only mount), a sound cache is opened without its lock and anything else is a one-line ``CacheError``.

    Args:
        verify: check every image's hash on opening (reads the whole cache), not only a sample.
    """
    path = Path(path)
    with contextlib.suppress(OSError):  # a read-only mount: the folder is there, or reading says so
        path.parent.mkdir(parents=True, exist_ok=True)
    labels = getattr(squares, "labels", None)
    with _locked(path) as writable:
        cached = None
        if not rebuild:
            try:
                cached = _trusted(path, fingerprint, labels, verify)
            except CacheError as exc:
                if not writable:
                    raise CacheError(f"{exc}; the folder is read-only, so zoo cannot rebuild it there") from None
                if path.exists() and "stale" not in str(exc):
                    warnings.warn(f"{exc}; rebuilding it", UserWarning, stacklevel=3)
        elif not writable:
            raise CacheError(f"{path}: cannot rebuild a cache in a read-only folder; pass to= a writable one")
        if cached is None:
            _remove_leftovers(path)
            cached = write_cache(
                path, squares, fingerprint=fingerprint, extra={"classes": classes}, workers=workers, progress=progress
            )
    return ImageSplit(
        images=cached.images, labels=cached.labels, img_size=img_size, mean=tuple(cached.index["mean"]),
        std=tuple(cached.index["std"]), hflip=hflip, classes=classes, path=str(path),
    )  # fmt: skip
