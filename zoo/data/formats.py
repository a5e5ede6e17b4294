"""File readers for datasets: IDX (MNIST, Fashion-MNIST) and CIFAR python batches, with numpy only.

Every reader is bounded: a gzipped file is inflated in a stream and never past what it may hold (an IDX file: what
its header's shape needs, plus one byte to notice trailing data; a CIFAR pickle: ``MAX_PICKLE_BYTES``), so a gzip
bomb costs nothing. CIFAR's batches are pickles; they are read with an unpickler that allows only the few numpy
globals an array needs (in every pickle protocol, from Python 2 or 3), each checked for the arguments a real batch
passes, so a crafted file cannot run code or build an array larger than its own bytes. A corrupt, truncated or
crafted file raises ``DatasetFormatError``, one line naming the file and what is wrong.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from zoo.messages import exception_line

__all__ = [
    "DatasetFormatError",
    "read_idx",
    "check_idx_sizes",
    "read_cifar_batch",
    "read_cifar_meta",
    "MAX_IDX_BYTES",
    "MAX_PICKLE_BYTES",
]

MAX_IDX_BYTES = 4 << 30  # the most data an IDX header may claim (as load_dataset's MAX_LOAD_BYTES)
MAX_PICKLE_BYTES = 1 << 30  # the most a CIFAR pickle may take, inflated (the real ones: 31 MB and 155 MB)


class DatasetFormatError(ValueError):
    """A dataset file is corrupt, truncated or not in the expected format."""


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _open(path: Path) -> BinaryIO:
    """The file as a stream, gunzipped when it starts with the gzip magic (whatever its name says)."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise DatasetFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if f.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


_CHUNK = 1 << 20  # what one read of a gzip stream allocates


def _read(f: BinaryIO, n: int, path: Path) -> bytes:
    """At most ``n`` bytes: a gzip stream is inflated only as far as that.

    ``n`` is a bound, not a size: ``read(n)`` would allocate all of it up front, so a plain file is asked for no
    more than it holds, and a gzip stream is read in chunks.
    """
    try:
        if not isinstance(f, gzip.GzipFile):
            return f.read(max(0, min(n, os.fstat(f.fileno()).st_size - f.tell())))
        parts, got = [], 0
        while got < n:
            block = f.read(min(_CHUNK, n - got))
            if not block:
                break
            parts.append(block)
            got += len(block)
        return parts[0] if len(parts) == 1 else b"".join(parts)
    except (EOFError, OSError, zlib.error) as exc:
        raise DatasetFormatError(f"{path}: corrupt or truncated gzip stream ({exc})") from None


def _close(f: BinaryIO) -> None:
    inner = f.fileobj if isinstance(f, gzip.GzipFile) else None  # GzipFile does not close a file it was given
    f.close()
    if inner is not None:
        inner.close()


class _Capped:
    """A stream's ``read``/``readline`` for the unpickler, failing past ``limit`` bytes: nothing is inflated ahead."""

    def __init__(self, f: BinaryIO, limit: int, path: Path) -> None:
        self.f, self.limit, self.path, self.used = f, limit, path, 0

    def _count(self, data: bytes) -> bytes:
        self.used += len(data)
        if self.used > self.limit:
            raise DatasetFormatError(
                f"{self.path}: holds more than {_size(self.limit)} (a gzip bomb?); zoo reads at most that from a "
                "CIFAR file"
            )
        return data

    def read(self, n: int = -1) -> bytes:
        n = self.limit - self.used + 1 if n is None or n < 0 else min(n, self.limit - self.used + 1)
        if n > _CHUNK:  # a large read: bounded by the file's size or in chunks
            return self._count(_read(self.f, n, self.path))
        try:  # the unpickler's many small reads: straight from the buffered stream
            return self._count(self.f.read(n))
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetFormatError(f"{self.path}: corrupt or truncated gzip stream ({exc})") from None

    def readline(self) -> bytes:
        try:
            return self._count(self.f.readline(self.limit - self.used + 1))
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetFormatError(f"{self.path}: corrupt or truncated gzip stream ({exc})") from None


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a numpy array of its type, in native byte order.

    Reads what the header's shape needs and one byte more (to notice trailing data), never the rest of a gzip
    stream; a header claiming more than ``MAX_IDX_BYTES`` is refused. ``DatasetFormatError`` naming the file if it
    is bad.
    """
    path = Path(path)
    f = _open(path)
    try:
        head = _read(f, 4, path)
        if len(head) < 4:
            raise DatasetFormatError(f"{path}: not an IDX file: only {len(head)} bytes, the header alone takes 4+")
        if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
            raise DatasetFormatError(
                f"{path}: not an IDX file: bad magic number 0x{head.hex()} "
                f"(expected 0x0000TTDD: two zero bytes, a type code such as 0x08 for uint8, the number of dimensions)"
            )
        ndim = head[3]
        dims = _read(f, 4 * ndim, path)
        if ndim == 0 or len(dims) < 4 * ndim:
            raise DatasetFormatError(f"{path}: truncated IDX header ({4 + len(dims)} bytes, {ndim} dimensions)")
        shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
        dtype = np.dtype(_IDX_DTYPES[head[2]])
        expected = math.prod(shape) * dtype.itemsize
        if expected > MAX_IDX_BYTES:
            raise DatasetFormatError(
                f"{path}: the IDX header claims shape {shape} of {dtype.name}, {_size(expected)} of data: more than "
                f"the limit of {_size(MAX_IDX_BYTES)} zoo reads from one file"
            )
        data = _read(f, expected + 1, path)
    finally:
        _close(f)
    found = len(data)
    if found != expected:
        if found < expected:
            what, count = "truncated", f"found {found}"
        elif isinstance(f, gzip.GzipFile):
            what, count = "has trailing bytes", "found more (the rest was not inflated)"
        else:
            what, count = "has trailing bytes", f"found {path.stat().st_size - 4 - 4 * ndim}"
        raise DatasetFormatError(
            f"{path}: size mismatch, file {what}: shape {shape} needs {expected} data bytes, {count}"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape)).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)  # torch reads native byte order only


def check_idx_sizes(
    files: dict[str, Path], train_hw: Sequence[int], test_hw: Sequence[int], img_size: int | None
) -> None:
    """Train and test images of one size, square unless ``img_size`` asks to resize them (which stretches them: said
    in a warning); ``DatasetFormatError`` naming the file otherwise. Without it a 28 x 10 set would be resized to
    28 x 28 without a word.

    Args:
        files: the dataset's files (``train_images``, ``test_images``, ...).
        train_hw, test_hw: ``(H, W)`` of the train and test images.
        img_size: the size asked for on load, or ``None``.
    """
    (h, w), (th, tw) = tuple(train_hw), tuple(test_hw)
    if (h, w) != (th, tw):
        raise DatasetFormatError(
            f"{files['test_images']}: test images are {th} x {tw} pixels but the train images "
            f"({files['train_images'].name}) are {h} x {w}; both splits hold images of one size"
        )
    if h == w:
        return
    if img_size is None:
        raise DatasetFormatError(
            f"{files['train_images']}: images of {h} x {w} pixels (H x W) are not square; zoo's datasets hold square "
            f"images: pass img_size=N to resize them to N x N (stretching them), e.g. img_size={max(h, w)}"
        )
    warnings.warn(
        f"{files['train_images'].name}: images of {h} x {w} pixels are stretched to {img_size} x {img_size} "
        "(img_size=); their aspect ratio changes",
        stacklevel=4,
    )


# --------------------------------------------------------------------------------------------------------------------
# CIFAR pickles: an allow-list of globals, each checked for the arguments real batches pass


class _Refused(pickle.UnpicklingError):
    """A global, or a call of an allowed one, that no real CIFAR batch contains."""


def _numpy(name: str, modules: tuple[str, ...]) -> Callable[..., Any]:
    import importlib

    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise _Refused(f"numpy has no {name}")


class _NdarrayType:
    """Stands for ``numpy.ndarray`` in a pickle: accepted as ``_reconstruct``'s first argument, never called.

    Called directly, ``numpy.ndarray(shape, dtype, buffer, offset, strides)`` builds an array of any shape and
    strides over any buffer (200,000 images over 8 bytes with zero strides); numpy's own pickles never do that.
    """

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _Refused("refused to call numpy.ndarray directly (only numpy's own _reconstruct may make arrays)")


def _allowed_global(module: str, name: str) -> Any:
    """A fresh callable for each allowed global (so that a pickle's BUILD cannot alter one shared by later loads)."""
    key = (module.replace("numpy._core", "numpy.core"), name)
    if key == ("numpy", "dtype"):  # dtype("u1", False, True): a simple type by its string, never a structured one

        def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
            if not isinstance(spec, str) or spec[:1] in ("V", "O", "(", "[", "{") or "," in spec:
                raise _Refused(f"refused numpy.dtype({spec!r}) (a CIFAR batch's arrays have a plain numeric type)")
            dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
            if dtype.kind not in "biufcSU":
                raise _Refused(f"refused numpy.dtype({spec!r}) (a CIFAR batch's arrays have a plain numeric type)")
            return dtype

        return _dtype
    if key == ("numpy", "ndarray"):
        return _NdarrayType()
    if key == ("numpy.core.multiarray", "_reconstruct"):  # protocols 0-4: _reconstruct(ndarray, (0,), b"b")
        reconstruct = _numpy("_reconstruct", ("numpy._core.multiarray", "numpy.core.multiarray"))

        def _reconstruct(cls: Any, shape: Any, typecode: Any) -> Any:
            if not isinstance(cls, _NdarrayType):
                raise _Refused(f"refused numpy _reconstruct of {type(cls).__name__} (it makes numpy.ndarray only)")
            return reconstruct(np.ndarray, shape, typecode)

        return _reconstruct
    if key == ("numpy.core.numeric", "_frombuffer"):  # protocol 5: _frombuffer(bytes, dtype, shape, order)
        frombuffer = _numpy("_frombuffer", ("numpy._core.numeric", "numpy.core.numeric"))

        def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any, axis_order: Any = None) -> Any:
            if not isinstance(buf, (bytes, bytearray)):
                raise _Refused(f"refused numpy _frombuffer over a {type(buf).__name__} (a pickle holds bytes)")
            extra = () if axis_order is None else (axis_order,)  # numpy < 2.1 has no axis_order
            return frombuffer(buf, dtype, shape, order, *extra)

        return _frombuffer
    if key == ("numpy.core.multiarray", "scalar"):  # numpy integers, e.g. labels pickled as list(array)
        scalar = _numpy("scalar", ("numpy._core.multiarray", "numpy.core.multiarray"))

        def _scalar(dtype: Any, obj: Any = None) -> Any:
            if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(obj, bytes):
                raise _Refused("refused numpy scalar other than a number from its bytes")
            return scalar(dtype, obj)

        return _scalar
    if key == ("_codecs", "encode"):  # protocols 0-2 written by Python 3 spell bytes as _codecs.encode(str, "latin1")

        def _encode(text: Any, encoding: Any) -> bytes:
            if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
                raise _Refused(f"refused _codecs.encode(..., {encoding!r}) (bytes in a pickle are latin1 text)")
            return text.encode("latin1")

        return _encode
    if key in (("__builtin__", "bytes"), ("builtins", "bytes")):  # protocols 0-2 spell b"" as bytes()

        def _bytes(*args: Any) -> bytes:
            if args:
                raise _Refused("refused bytes(...) with arguments (a pickle's empty bytes is bytes())")
            return b""

        return _bytes
    raise _Refused(f"refused to load global '{module}.{name}'")


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _not_shared(u: pickle._Unpickler) -> None:
    """After a memo get or DUP: the object pushed must not be a non-empty container."""
    if isinstance(u.stack[-1], _CONTAINERS) and len(u.stack[-1]):
        raise _Refused("refused a second reference to a list, tuple or dict (no CIFAR batch shares them)")


def _keys_plain(keys: list[Any]) -> None:
    if any(isinstance(k, _CONTAINERS) for k in keys):
        raise _Refused("refused a dict key that is a tuple (a CIFAR batch's keys are strings)")


def _no_sets(u: pickle._Unpickler) -> None:
    raise _Refused("refused a set (a CIFAR batch holds dicts, lists and arrays)")


def _guarded(opcode: bytes, before: Callable[..., None] | None = None, after: Callable[..., None] | None = None):
    load = pickle._Unpickler.dispatch[opcode[0]]

    def guarded(u: pickle._Unpickler) -> None:
        if before is not None:
            before(u)
        load(u)
        if after is not None:
            after(u)

    return guarded


class _CifarUnpickler(pickle._Unpickler):
    """Unpickles plain containers and numpy arrays only: every other global (os.system, ...) is refused.

    Python's own pure-Python unpickler, so that a few opcodes can be checked too. A CIFAR batch never needs them, and
    a crafted file uses them to make a few kilobytes cost unbounded time or crash the interpreter: a second reference
    (memo get, DUP) to a non-empty container (a list of two references to a list of two references ... 40 deep
    expands to 2**40 items when walked), a tuple as a dict key (hashed recursively: nested a million deep it
    overflows the C stack) and sets.
    """

    dispatch = dict(pickle._Unpickler.dispatch)
    for _op in (pickle.GET, pickle.BINGET, pickle.LONG_BINGET, pickle.DUP):
        dispatch[_op[0]] = _guarded(_op, after=_not_shared)
    dispatch[pickle.SETITEM[0]] = _guarded(pickle.SETITEM, before=lambda u: _keys_plain(u.stack[-2:-1]))
    for _op in (pickle.SETITEMS, pickle.DICT):  # the items since the last MARK: key, value, key, value, ...
        dispatch[_op[0]] = _guarded(_op, before=lambda u: _keys_plain(u.stack[0::2]))
    for _op in (pickle.EMPTY_SET, pickle.ADDITEMS, pickle.FROZENSET):
        dispatch[_op[0]] = _no_sets
    del _op

    def find_class(self, module: str, name: str) -> Any:
        return _allowed_global(module, name)


def _safe_unpickle(path: Path) -> Any:
    """Unpickle straight from the (possibly gzipped) file, at most ``MAX_PICKLE_BYTES`` of it."""
    if path.is_file() and path.stat().st_size > MAX_PICKLE_BYTES:
        size = path.stat().st_size
        raise DatasetFormatError(
            f"{path}: {_size(size)}, more than {_size(MAX_PICKLE_BYTES)}: too large for a CIFAR file (the real ones "
            "are 31 MB and 155 MB)"
        )
    f = _open(path)
    try:
        return _CifarUnpickler(_Capped(f, MAX_PICKLE_BYTES, path), encoding="latin1").load()
    except DatasetFormatError:
        raise
    except _Refused as exc:
        raise DatasetFormatError(
            f"{path}: {exc}: a CIFAR batch holds only dicts, lists and numpy arrays, so this file is not one "
            "(and was not executed)"
        ) from None
    except pickle.UnpicklingError as exc:
        raise DatasetFormatError(f"{path}: corrupt or truncated pickle ({exc})") from None
    except KeyError as exc:  # how the pure-Python unpickler reports a byte that is no opcode
        what = f"byte 0x{exc.args[0]:02x} is no pickle opcode" if exc.args and isinstance(exc.args[0], int) else exc
        raise DatasetFormatError(f"{path}: corrupt or not a pickle ({what})") from None
    except Exception as exc:  # with every global refused, any other failure is a corrupt file (struct.error, ...)
        raise DatasetFormatError(f"{path}: corrupt or truncated pickle ({exception_line(exc)})") from None
    finally:
        _close(f)


def _check_array(path: Path, key: str, arr: np.ndarray) -> None:
    """An array must be one block of its own bytes: no zero or overlapping strides claiming more than the file has."""
    if arr.size > 1 and not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        raise DatasetFormatError(
            f"{path}: '{key}' is an array of shape {arr.shape} with strides {arr.strides}, not one contiguous block "
            f"of its {arr.nbytes} bytes: refused (a crafted array can claim more images than the file holds)"
        )


def _labels(path: Path, key: str, value: Any) -> np.ndarray:
    """A CIFAR batch's labels: a list of integers or a 1-D integer array, as int64."""
    if isinstance(value, np.ndarray):
        _check_array(path, key, value)
        ok = value.ndim == 1 and np.issubdtype(value.dtype, np.integer)
    else:
        ok = isinstance(value, list) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
        )
    if not ok:
        desc = f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise DatasetFormatError(f"{path}: '{key}' is a {desc}, expected a list of integers or a 1-D integer array")
    try:
        return np.asarray(value).astype(np.int64)
    except (OverflowError, ValueError, TypeError) as exc:
        raise DatasetFormatError(f"{path}: '{key}' holds a label out of the int64 range ({exc})") from None


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
    data = obj["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{path}: 'data' is a {desc}, expected a uint8 array of shape (N, 3072)")
    _check_array(path, "data", data)
    labels = _labels(path, label_key, obj[label_key])
    if len(labels) != len(data):
        raise DatasetFormatError(
            f"{path}: size mismatch: {len(data)} images but '{label_key}' has shape {labels.shape} ({labels.dtype})"
        )
    return np.ascontiguousarray(data).reshape(-1, 3, 32, 32), labels


def read_cifar_meta(path: Path, key: str) -> list[str] | None:
    if not path.is_file():
        return None
    try:
        obj = _safe_unpickle(path)
        names = obj.get(key) if isinstance(obj, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
            return None  # names of another form are not CIFAR's: use the built-in ones
        return [n.decode("latin1") if isinstance(n, bytes) else n for n in names] or None
    except DatasetFormatError:
        return None
