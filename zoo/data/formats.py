"""File readers for datasets: IDX (MNIST, Fashion-MNIST) and CIFAR python batches, with numpy only.

CIFAR's batches are pickles; they are read with an unpickler that allows only the numpy globals an array needs, so
a crafted file cannot run code. A corrupt or truncated file raises ``DatasetFormatError``, one line naming the file
and what is wrong.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DatasetFormatError", "read_idx", "read_cifar_batch", "read_cifar_meta"]


class DatasetFormatError(ValueError):
    """A dataset file is corrupt, truncated or not in the expected format."""


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when it starts with the gzip magic (whatever its name says)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetFormatError(f"{path}: corrupt or truncated gzip stream ({exc})") from None
    return raw


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a numpy array; ``DatasetFormatError`` naming the file if it is bad."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetFormatError(f"{path}: not an IDX file: only {len(data)} bytes, the header alone takes 4+")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetFormatError(
            f"{path}: not an IDX file: bad magic number 0x{data[:4].hex()} "
            f"(expected 0x0000TTDD: two zero bytes, a type code such as 0x08 for uint8, the number of dimensions)"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetFormatError(f"{path}: truncated IDX header ({len(data)} bytes, {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DatasetFormatError(
            f"{path}: size mismatch, file {what}: shape {shape} needs {expected} data bytes, found {found}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _numpy_reconstruct() -> Callable[..., Any]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: every other global (os.system, ...) is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),  # how numpy < 2 (and the real CIFAR files) spell it
        ("numpy._core.multiarray", "_reconstruct"),  # numpy >= 2
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load global '{module}.{name}'")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def _safe_unpickle(path: Path) -> Any:
    data = _read_bytes(path)
    try:
        return _CifarUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if "refused to load global" in str(exc):
            raise DatasetFormatError(
                f"{path}: {exc}: a CIFAR batch holds only dicts, lists and numpy arrays, so this file is not one "
                "(and was not executed)"
            ) from None
        raise DatasetFormatError(f"{path}: corrupt or truncated pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as exc:
        raise DatasetFormatError(f"{path}: corrupt or truncated pickle ({type(exc).__name__}: {exc})") from None


def read_cifar_batch(path: str | os.PathLike, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR python batch: ``(images uint8 N x 3 x 32 x 32, labels int64 N)``.

    ``label_key`` is ``"labels"`` for CIFAR-10 and ``"fine_labels"`` for CIFAR-100.
    """
    path = Path(path)
    obj = _safe_unpickle(path)
    if not isinstance(obj, dict):
        raise DatasetFormatError(f"{path}: not a CIFAR batch: holds a {type(obj).__name__}, expected a dict")
    obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    if "data" not in obj or label_key not in obj:
        raise DatasetFormatError(
            f"{path}: not a CIFAR batch: keys {sorted(map(str, obj))}, expected 'data' and '{label_key}'"
        )
    data, labels = obj["data"], np.asarray(obj[label_key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{path}: 'data' is a {desc}, expected a uint8 array of shape (N, 3072)")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(
            f"{path}: size mismatch: {len(data)} images but '{label_key}' has shape {labels.shape} ({labels.dtype})"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_cifar_meta(path: Path, key: str) -> list[str] | None:
    if not path.is_file():
        return None
    try:
        obj = _safe_unpickle(path)
        names = obj.get(key) if isinstance(obj, dict) else None
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names else None
    except DatasetFormatError:
        return None
