"""Hostile and malformed dataset inputs: every one ends in a one-line error naming the file (or is read correctly).

Three classes: hostile files (gzip bombs, IDX of other types, crafted CIFAR arrays, Python 3 CIFAR pickles,
decompression-bomb images), dataset lookup (``root=`` and ``$ZOO_DATA`` that do not exist), and image-folder layout
(empty class folders, classes only in ``test/``, too few images per class for the held-out split).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo import data as zd
from zoo.data import formats

pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest.py


def one_line(exc_info, *names) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for name in names:
        assert str(name) in msg, msg
    return msg


# --------------------------------------------------------------------------------------------------------------------
# file writers


IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    code = IDX_CODES[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_set(directory: Path, images=None, labels=None, n=6) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images is None else images
    labels = rng.integers(0, 10, len(images), dtype=np.uint8) if labels is None else labels
    directory.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))


def gzip_bomb(prefix: bytes, inflated_mib: int) -> bytes:
    """``prefix`` then ``inflated_mib`` MiB of zeros, as gzip members: about 1 KB on disk per inflated MiB."""
    member = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    return gzip.compress(prefix) + member * inflated_mib


def peak_bytes(fn) -> int:
    """The peak of Python-tracked allocations while ``fn`` runs (its exception is swallowed: check it separately)."""
    tracemalloc.start()
    try:
        fn()
    except Exception:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# --------------------------------------------------------------------------------------------------------------------
# Hostile files: gzip bombs


def test_idx_gzip_bomb_is_not_inflated(tmp_path):
    """A valid (3, 4, 4) header followed by 64 MiB of zeros: read what the header needs plus a byte, then stop."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_bomb(idx_bytes(np.zeros((3, 4, 4), np.uint8)), 64))
    assert path.stat().st_size < 200_000
    with pytest.raises(zd.DatasetFormatError, match="trailing bytes") as info:
        zd.read_idx(path)
    one_line(info, path)
    assert peak_bytes(lambda: zd.read_idx(path)) < 8 << 20


def test_idx_header_claiming_more_than_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "MAX_IDX_BYTES", 1 << 20)
    path = tmp_path / "big.gz"
    path.write_bytes(gzip_bomb(bytes([0, 0, 8, 3]) + struct.pack(">3I", 1 << 20, 64, 64), 32))
    with pytest.raises(zd.DatasetFormatError, match=r"\(1048576, 64, 64\).*limit") as info:
        zd.read_idx(path)
    one_line(info, path)
    assert peak_bytes(lambda: zd.read_idx(path)) < 4 << 20
    raw = tmp_path / "big"  # the same header, uncompressed and truncated: the limit speaks first
    raw.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 1 << 20, 64, 64) + b"\0" * 100)
    with pytest.raises(zd.DatasetFormatError, match="limit"):
        zd.read_idx(raw)


def test_cifar_gzip_bomb_is_capped(tmp_path, monkeypatch):
    zeros = tmp_path / "zeros"  # 2 GiB of zeros: not a pickle, which the first byte shows
    zeros.write_bytes(gzip_bomb(b"", 2048))
    with pytest.raises(zd.DatasetFormatError, match="byte 0x00 is no pickle opcode") as info:
        zd.read_cifar_batch(zeros)
    one_line(info, zeros)
    assert peak_bytes(lambda: zd.read_cifar_batch(zeros)) < 4 << 20
    monkeypatch.setattr(formats, "MAX_PICKLE_BYTES", 1 << 20)
    path = tmp_path / "data_batch_1"  # a pickle of 16 MiB of bytes, inflated from 16 KB: stopped at the limit
    path.write_bytes(gzip_bomb(b"\x80\x03B" + struct.pack("<I", 16 << 20), 16))
    with pytest.raises(zd.DatasetFormatError, match=r"more than 1\.0 MiB") as info:
        zd.read_cifar_batch(path)
    one_line(info, path)
    assert peak_bytes(lambda: zd.read_cifar_batch(path)) < 4 << 20
    plain = tmp_path / "test_batch"  # an uncompressed file over the limit is refused before it is read
    plain.write_bytes(b"\0" * ((1 << 20) + 10))
    with pytest.raises(zd.DatasetFormatError, match=r"more than 1\.0 MiB"):
        zd.read_cifar_batch(plain)


def test_reading_allocates_what_the_file_holds_not_the_limit(tmp_path):
    """The bounds cap what is read; they are not buffer sizes (a 1 GiB buffer per file fails under a memory cap)."""
    batch = pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}, protocol=2)
    (tmp_path / "raw").write_bytes(batch)
    (tmp_path / "gz").write_bytes(gzip.compress(batch))
    for name in ("raw", "gz"):
        assert peak_bytes(lambda name=name: zd.read_cifar_batch(tmp_path / name)) < 4 << 20, name
    # a header claiming 3 GiB (under the limit) over a few bytes: truncated, found without a 3 GiB buffer
    claim = bytes([0, 0, 8, 3]) + struct.pack(">3I", 3 << 20, 32, 32) + b"\0" * 100
    (tmp_path / "claim").write_bytes(claim)
    (tmp_path / "claim.gz").write_bytes(gzip.compress(claim))
    for name in ("claim", "claim.gz"):
        with pytest.raises(zd.DatasetFormatError, match="truncated"):
            zd.read_idx(tmp_path / name)
        assert peak_bytes(lambda name=name: zd.read_idx(tmp_path / name)) < 4 << 20, name


def test_gzip_idx_still_reads_and_corruption_after_the_data_is_caught(tmp_path):
    arr = np.arange(48, dtype=np.uint8).reshape(3, 4, 4)
    good = gzip.compress(idx_bytes(arr))
    (tmp_path / "ok.gz").write_bytes(good)
    assert np.array_equal(zd.read_idx(tmp_path / "ok.gz"), arr)
    (tmp_path / "two.gz").write_bytes(gzip.compress(idx_bytes(arr)[:20]) + gzip.compress(idx_bytes(arr)[20:]))
    assert np.array_equal(zd.read_idx(tmp_path / "two.gz"), arr)  # multi-member gzip, as gzip.decompress reads it
    bad_crc = good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:]
    (tmp_path / "crc.gz").write_bytes(bad_crc)
    with pytest.raises(zd.DatasetFormatError, match="corrupt or truncated gzip") as info:
        zd.read_idx(tmp_path / "crc.gz")
    one_line(info, tmp_path / "crc.gz")


# --------------------------------------------------------------------------------------------------------------------
# Hostile files: IDX of other types


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float64, np.int16])
def test_idx_images_of_another_type_are_refused(tmp_path, dtype):
    write_idx_set(tmp_path / "d", images=np.zeros((3, 28, 28), dtype))
    with pytest.raises(zd.DatasetFormatError, match=rf"{np.dtype(dtype).name}.*accepted: uint8") as info:
        zoo.load_dataset("mnist", root=tmp_path / "d")
    one_line(info, tmp_path / "d" / "train-images-idx3-ubyte")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_idx_float_labels_are_refused_not_truncated(tmp_path, dtype):
    write_idx_set(tmp_path / "d", labels=np.array([0.5, 1.7, 2.0], dtype), images=np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(zd.DatasetFormatError, match=rf"labels.*{np.dtype(dtype).name}.*accepted") as info:
        zoo.load_dataset("mnist", root=tmp_path / "d")
    one_line(info, tmp_path / "d" / "train-labels-idx1-ubyte")


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_idx_integer_labels_in_range_are_read(tmp_path, dtype):
    labels = np.array([0, 9, 3], dtype)
    write_idx_set(tmp_path / "d", labels=labels, images=np.zeros((3, 28, 28), np.uint8))
    d = zoo.load_dataset("mnist", root=tmp_path / "d")
    assert d.train.labels.dtype == torch.int64 and d.train.labels.tolist() == [0, 9, 3]
    write_idx_set(tmp_path / "e", labels=np.array([0, 1, 70000 if dtype == np.int32 else -1], dtype),
                  images=np.zeros((3, 28, 28), np.uint8))  # fmt: skip
    with pytest.raises(zd.DatasetFormatError, match="out of range 0..9"):
        zoo.load_dataset("mnist", root=tmp_path / "e")


def test_idx_multibyte_types_read_in_native_byte_order(tmp_path):
    arr = np.array([[1.5, -2.0], [3.25, 1e6]], np.float32)
    (tmp_path / "f").write_bytes(idx_bytes(arr))
    out = zd.read_idx(tmp_path / "f")
    assert out.dtype == np.float32 and out.dtype.isnative and np.array_equal(out, arr)
    assert torch.from_numpy(out.copy()).sum().item() == pytest.approx(arr.sum())


def test_idx_with_no_images_is_refused(tmp_path):
    write_idx_set(tmp_path / "d", images=np.zeros((0, 28, 28), np.uint8), labels=np.zeros(0, np.uint8))
    with pytest.raises(zd.DatasetFormatError, match="no images") as info:
        zoo.load_dataset("mnist", root=tmp_path / "d")
    one_line(info, tmp_path / "d")
    write_idx_set(tmp_path / "e", images=np.zeros((4, 0, 0), np.uint8))
    with pytest.raises(zd.DatasetFormatError, match="at least 1 x 1 pixels") as info:
        zoo.load_dataset("mnist", root=tmp_path / "e")
    one_line(info, tmp_path / "e" / "train-images-idx3-ubyte")


# --------------------------------------------------------------------------------------------------------------------
# Hostile files: crafted CIFAR arrays


class _Call:
    """Pickles as ``fn(*args)``: how a crafted file calls an allowed global with arguments of its choosing."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _cifar_file(tmp_path, obj, protocol=3, name="data_batch_1") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def test_cifar_zero_stride_array_is_refused(tmp_path):
    """np.ndarray(shape, dtype, buffer, offset, strides): 200,000 images claimed over an 8-byte buffer."""
    fake = _Call(np.ndarray, (200_000, 3072), np.dtype("u1"), b"x" * 8, 0, (0, 0))
    zero_labels = _Call(np.ndarray, (200_000,), np.dtype("u1"), b"\0", 0, (0,))
    path = _cifar_file(tmp_path, {b"data": fake, b"labels": zero_labels})
    assert path.stat().st_size < 1000
    with pytest.raises(zd.DatasetFormatError) as info:
        zd.read_cifar_batch(path)
    one_line(info, path)


def test_cifar_overlapping_strides_are_refused(tmp_path):
    fake = _Call(np.ndarray, (1000, 3072), np.dtype("u1"), b"x" * 4096, 0, (1, 1))
    path = _cifar_file(tmp_path, {b"data": fake, b"labels": [0] * 1000})
    with pytest.raises(zd.DatasetFormatError) as info:
        zd.read_cifar_batch(path)
    one_line(info, path)


def test_cifar_shape_larger_than_the_buffer_is_refused(tmp_path):
    from numpy._core.numeric import _frombuffer

    fake = _Call(_frombuffer, b"x" * 3072, np.dtype("u1"), (200_000, 3072), "C")
    path = _cifar_file(tmp_path, {b"data": fake, b"labels": [0] * 10}, protocol=5)
    with pytest.raises(zd.DatasetFormatError) as info:
        zd.read_cifar_batch(path)
    one_line(info, path)


def test_cifar_labels_as_a_shared_nested_list_are_refused_quickly(tmp_path):
    """A list of 2 references to a list of 2 references ... 40 deep: 2**40 labels if expanded; a few bytes on disk."""
    nested: list = [0, 0]
    for _ in range(40):
        nested = [nested, nested]
    path = _cifar_file(tmp_path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": nested})
    with pytest.raises(zd.DatasetFormatError, match="refused a second reference") as info:
        zd.read_cifar_batch(path)
    one_line(info, path)
    same = [0, 1]  # even one list held twice: no CIFAR batch does that
    path = _cifar_file(tmp_path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": same, b"coarse": same})
    with pytest.raises(zd.DatasetFormatError, match="refused a second reference"):
        zd.read_cifar_batch(path)


def test_cifar_labels_that_are_not_a_flat_integer_list(tmp_path):
    data = np.zeros((2, 3072), np.uint8)
    for labels in ([[0], [1]], [0.5, 1.0], ["0", "1"], [True, False], np.zeros((2, 1), np.int64), [2**70, 0], {0: 1}):
        path = _cifar_file(tmp_path, {b"data": data, b"labels": labels})
        with pytest.raises(zd.DatasetFormatError, match="'labels'") as info:
            zd.read_cifar_batch(path)
        one_line(info, path)


def _raw_pickle(tmp_path, body: bytes) -> Path:
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02" + body + b".")
    return path


def test_pickles_that_would_crash_or_hang_the_interpreter(tmp_path):
    """Opcodes no CIFAR batch needs, whose effect is out of all proportion to the file's size."""
    # a tuple nested 300,000 deep as a dict key: hashing it recursively overflows the C stack (a segfault)
    deep = _raw_pickle(tmp_path, b"}" + b"K\x00\x85" + b"\x85" * 300_000 + b"K\x01s")
    with pytest.raises(zd.DatasetFormatError, match="dict key that is a tuple") as info:
        zd.read_cifar_batch(deep)
    one_line(info, deep)
    # a tuple of two references to a tuple of two references ... 60 deep, as a key: 2**60 steps to hash
    shared = b"K\x00K\x00\x86q\x00" + b"h\x00h\x00\x86q\x00" * 60
    with pytest.raises(zd.DatasetFormatError, match="second reference"):
        zd.read_cifar_batch(_raw_pickle(tmp_path, b"}" + shared + b"K\x01s"))
    # the same through DUP, which Python's pickler never writes
    with pytest.raises(zd.DatasetFormatError, match="second reference"):
        zd.read_cifar_batch(_raw_pickle(tmp_path, b"]K\x00a2K\x01\x86"))
    for body in (pickle.dumps({frozenset([1])}, 4)[2:-1], pickle.dumps({1, 2}, 4)[2:-1]):
        with pytest.raises(zd.DatasetFormatError, match="refused a set"):
            zd.read_cifar_batch(_raw_pickle(tmp_path, body))


def test_structured_and_object_dtypes_are_refused(tmp_path):
    for spec in ("V8", "O", "i4,i4", "(2,)u1"):
        fake = _Call(np.dtype, spec, False, True)
        path = _cifar_file(tmp_path, {b"data": fake, b"labels": []})
        with pytest.raises(zd.DatasetFormatError, match=r"refused numpy\.dtype") as info:
            zd.read_cifar_batch(path)
        one_line(info, path)
    nested = np.zeros(2, dtype=[("a", "u1", (3072,))])
    path = _cifar_file(tmp_path, {b"data": nested, b"labels": [0, 1]})
    with pytest.raises(zd.DatasetFormatError, match="refused"):
        zd.read_cifar_batch(path)


# --------------------------------------------------------------------------------------------------------------------
# Hostile files: genuine Python 3 CIFAR pickles go through the same allow-list


def _batch(n=4, seed=0, str_keys=False, label_form="list"):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    value = {"list": [int(v) for v in labels], "array": labels.astype(np.int64), "scalars": list(labels)}[label_form]
    key = str if str_keys else (lambda s: s.encode())
    return {key("batch_label"): key("training batch 1 of 5"), key("data"): images, key("labels"): value,
            key("filenames"): [key("a.png"), b""]}, images, [int(v) for v in labels]  # fmt: skip


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("str_keys", [False, True], ids=["bytes-keys", "str-keys"])
@pytest.mark.parametrize("label_form", ["list", "array", "scalars"])
def test_python3_cifar_pickles_are_read(tmp_path, protocol, str_keys, label_form):
    obj, images, labels = _batch(str_keys=str_keys, label_form=label_form)
    path = _cifar_file(tmp_path, obj, protocol=protocol)
    x, y = zd.read_cifar_batch(path)
    assert x.shape == (4, 3, 32, 32) and np.array_equal(x.reshape(4, -1), images)
    assert y.dtype == np.int64 and y.tolist() == labels


def test_python3_cifar10_dataset_end_to_end(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        (d / name).write_bytes(pickle.dumps(_batch(seed=i)[0], protocol=5 if i % 2 else 2))
    (d / "batches.meta").write_bytes(pickle.dumps({"label_names": ["plane"] + [f"c{i}" for i in range(9)]}, 2))
    data = zoo.load_dataset("cifar10", root=tmp_path)
    assert (len(data.train), len(data.test)) == (20, 4) and data.classes[0] == "plane"


class _Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
@pytest.mark.parametrize(
    "payload",
    [
        lambda p: _Evil(os.system, f"touch {p}"),
        lambda p: _Evil(eval, f"open({str(p)!r}, 'w')"),
        lambda p: _Evil(Path.touch, Path(p)),
        lambda p: _Evil(getattr, str(p), "upper"),
    ],
    ids=["os.system", "eval", "Path.touch", "getattr"],
)
def test_code_is_still_refused_in_every_protocol(tmp_path, protocol, payload):
    target = tmp_path / "pwned"
    path = _cifar_file(tmp_path, {b"data": payload(target), b"labels": [0]}, protocol=protocol)
    with pytest.raises(zd.DatasetFormatError, match="refused") as info:
        zd.read_cifar_batch(path)
    one_line(info, path)
    assert not target.exists()


def _refused(tmp_path, obj, protocol=2):
    path = _cifar_file(tmp_path, obj, protocol=protocol)
    with pytest.raises(zd.DatasetFormatError, match="refused") as info:
        zd.read_cifar_batch(path)
    return one_line(info, path)


def test_allowed_globals_refuse_arguments_a_real_batch_never_passes(tmp_path):
    import _codecs

    from numpy._core.multiarray import _reconstruct

    # _codecs.encode is allowed for protocol 2's bytes, which are always str encoded as latin1
    _refused(tmp_path, {b"data": _Call(_codecs.encode, "eJwLAAA=", "base64"), b"labels": []}, protocol=3)
    _refused(tmp_path, {b"data": _Call(_codecs.encode, b"x" * 10, "zlib"), b"labels": []}, protocol=3)
    # bytes() is allowed for protocol 2's empty bytes: bytes(10**12) would allocate a terabyte
    _refused(tmp_path, {b"data": _Call(bytes, 10**12), b"labels": []}, protocol=3)
    # numpy's _reconstruct makes ndarrays only
    _refused(tmp_path, {b"data": _Call(_reconstruct, np.dtype, (0,), b"b"), b"labels": []}, protocol=3)


# --------------------------------------------------------------------------------------------------------------------
# Hostile files: images


def _png(width: int, height: int) -> bytes:
    """A PNG header declaring width x height grey pixels, with a token IDAT: a decompression bomb's first bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _write_pngs(directory: Path, n: int, value=128, size=(8, 8)) -> None:
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("L", size, value + i).save(directory / f"{i}.png")


def test_decompression_bomb_png_in_an_image_folder(tmp_path):
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    for part in ("train", "test"):
        _write_pngs(tmp_path / "f" / part / "a", 2)
        _write_pngs(tmp_path / "f" / part / "b", 2)
    bomb = tmp_path / "f" / "train" / "b" / "bomb.png"
    bomb.write_bytes(_png(40_000, 40_000))  # 1.6 G pixels: over twice the limit, Pillow raises
    with pytest.raises(zd.DatasetFormatError, match="decompression bomb") as info:
        zoo.load_dataset(tmp_path / "f")
    one_line(info, bomb)
    assert limit == Image.MAX_IMAGE_PIXELS


def test_image_over_the_pixel_limit_is_refused_not_decoded(tmp_path, monkeypatch):
    """Between the limit and twice it, Pillow only warns and decodes anyway: zoo refuses those too."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _write_pngs(tmp_path / "f" / "a", 3)
    _write_pngs(tmp_path / "f" / "b", 3)
    _write_pngs(tmp_path / "f" / "b", 1, size=(40, 40))  # 1,600 pixels overwrites b/0.png
    with pytest.raises(zd.DatasetFormatError, match="decompression bomb") as info:
        zoo.load_dataset(tmp_path / "f", in_chans=1)
    one_line(info, tmp_path / "f" / "b" / "0.png")
    assert Image.MAX_IMAGE_PIXELS == 1000


@pytest.mark.parametrize(
    "content",
    [b"", b"not an image at all", _png(8, 8)[:40], b"\x89PNG\r\n\x1a\n" + b"\0" * 30, _png(0, 0)],
    ids=["empty", "text", "truncated", "bad-chunks", "zero-size"],
)
def test_broken_image_files_give_one_line(tmp_path, content):
    _write_pngs(tmp_path / "f" / "a", 3)
    _write_pngs(tmp_path / "f" / "b", 3)
    bad = tmp_path / "f" / "b" / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(zd.DatasetFormatError) as info:
        zoo.load_dataset(tmp_path / "f", in_chans=1)
    one_line(info, bad)


# --------------------------------------------------------------------------------------------------------------------
# Dataset lookup: root= and $ZOO_DATA that do not exist


def test_missing_root_does_not_fall_through(tmp_path):
    write_idx_set(tmp_path / "xdg-cache" / "zoo" / "mnist")  # it is in the cache, but root= names another place
    assert len(zoo.load_dataset("mnist").train) == 6
    missing = tmp_path / "typo"
    with pytest.raises(zd.DatasetNotFoundError, match="does not exist") as info:
        zoo.load_dataset("mnist", root=missing)
    one_line(info, missing)
    with pytest.raises(zd.DatasetNotFoundError, match="does not exist"):
        zoo.load_dataset("mnist", root=str(missing), download=True)  # and nothing is downloaded instead


def test_root_that_is_a_file(tmp_path):
    write_idx_set(tmp_path / "xdg-cache" / "zoo" / "mnist")
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"x")
    with pytest.raises(zd.DatasetNotFoundError, match="not a directory") as info:
        zoo.load_dataset("mnist", root=path)
    one_line(info, path)


def test_missing_zoo_data_entries_are_listed(tmp_path, monkeypatch):
    gone, present = tmp_path / "gone", tmp_path / "present"
    present.mkdir()
    (tmp_path / "a-file").write_bytes(b"")
    monkeypatch.setenv(zd.ENV_DATA, os.pathsep.join([str(gone), str(tmp_path / "a-file"), str(present)]))
    with pytest.raises(zd.DatasetNotFoundError) as info:
        zoo.load_dataset("cifar10")
    msg = one_line(info, gone, present)
    assert f"{gone} ($ZOO_DATA, missing)" in msg and f"{tmp_path / 'a-file'} ($ZOO_DATA, not a directory)" in msg
    assert f"{present} [" in msg  # searched, with its subfolders
    write_idx_set(present / "mnist")  # a missing entry is skipped, not fatal
    assert len(zoo.load_dataset("mnist").train) == 6


def test_image_folder_path_that_is_a_file(tmp_path):
    path = tmp_path / "pets.zip"
    path.write_bytes(b"PK")
    with pytest.raises(zd.DatasetNotFoundError, match="not a directory") as info:
        zoo.load_dataset(path)
    one_line(info, path)


# --------------------------------------------------------------------------------------------------------------------
# Image folder layout


def test_empty_class_folder_is_an_error(tmp_path):
    _write_pngs(tmp_path / "f" / "cat", 5)
    _write_pngs(tmp_path / "f" / "dog", 5)
    (tmp_path / "f" / "emu").mkdir()
    (tmp_path / "f" / "emu" / "notes.txt").write_text("no images here")
    (tmp_path / "f" / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    with pytest.raises(zd.DatasetFormatError, match="class folder 'emu' holds no images") as info:
        zoo.load_dataset(tmp_path / "f")
    one_line(info, tmp_path / "f" / "emu")
    (tmp_path / "f" / "emu" / "notes.txt").unlink()
    (tmp_path / "f" / "emu").rmdir()
    assert zoo.load_dataset(tmp_path / "f").classes == ["cat", "dog"]


def test_empty_class_folder_in_the_test_split(tmp_path):
    for part in ("train", "test"):
        _write_pngs(tmp_path / "f" / part / "cat", 2)
    _write_pngs(tmp_path / "f" / "train" / "dog", 2)
    (tmp_path / "f" / "test" / "dog").mkdir()
    with pytest.raises(zd.DatasetFormatError, match="'dog' holds no images") as info:
        zoo.load_dataset(tmp_path / "f")
    one_line(info, tmp_path / "f" / "test" / "dog")


@pytest.mark.parametrize("held_out", ["test", "val"])
def test_class_only_in_the_test_split_is_an_error(tmp_path, held_out):
    for part in ("train", held_out):
        _write_pngs(tmp_path / "f" / part / "cat", 2)
        _write_pngs(tmp_path / "f" / part / "dog", 2)
    _write_pngs(tmp_path / "f" / held_out / "zebra", 2)
    with pytest.raises(zd.DatasetFormatError, match=rf"'zebra'.*{held_out}/.*not in train/") as info:
        zoo.load_dataset(tmp_path / "f")
    one_line(info, tmp_path / "f" / held_out / "zebra")


def test_class_missing_from_the_test_split_is_allowed(tmp_path):
    for name in ("cat", "dog"):
        _write_pngs(tmp_path / "f" / "train" / name, 2)
    _write_pngs(tmp_path / "f" / "test" / "cat", 2)
    d = zoo.load_dataset(tmp_path / "f")
    assert d.classes == ["cat", "dog"] and d.num_classes == 2 and d.test.labels.tolist() == [0, 0]


def test_empty_test_folder_is_an_error(tmp_path):
    _write_pngs(tmp_path / "f" / "train" / "cat", 2)
    (tmp_path / "f" / "test").mkdir()
    with pytest.raises(zd.DatasetFormatError, match="no images") as info:
        zoo.load_dataset(tmp_path / "f")
    one_line(info, tmp_path / "f" / "test")


def test_train_folder_alone_is_split_not_taken_for_a_class(tmp_path):
    for name in ("cat", "dog"):
        _write_pngs(tmp_path / "f" / "train" / name, 5)
    d = zoo.load_dataset(tmp_path / "f")
    assert d.classes == ["cat", "dog"] and (len(d.train), len(d.test)) == (8, 2)


def test_test_folder_without_train_is_an_error(tmp_path):
    for name in ("cat", "dog"):
        _write_pngs(tmp_path / "f" / "test" / name, 5)
    with pytest.raises(zd.DatasetFormatError, match="no train/") as info:
        zoo.load_dataset(tmp_path / "f")
    one_line(info, tmp_path / "f")


def test_class_too_small_for_the_held_out_split(tmp_path):
    _write_pngs(tmp_path / "f" / "cat", 10)
    _write_pngs(tmp_path / "f" / "dog", 1)
    with pytest.raises(zd.DatasetFormatError, match=r"'dog' has 1 image.*at least 3 images") as info:
        zoo.load_dataset(tmp_path / "f")
    one_line(info, tmp_path / "f")


def test_every_class_too_small_gives_the_needed_count(tmp_path):
    for name in ("a", "b"):
        _write_pngs(tmp_path / "f" / name, 2)  # round(2 * 0.2) == 0: the test split would be empty
    with pytest.raises(zd.DatasetFormatError, match="at least 3 images"):
        zoo.load_dataset(tmp_path / "f")
    d = zoo.load_dataset(tmp_path / "f", test_fraction=0.5)
    assert (len(d.train), len(d.test)) == (2, 2) and d.test.labels.tolist() == [0, 1]
    with pytest.raises(zd.DatasetFormatError, match="at least 17 images"):
        zoo.load_dataset(tmp_path / "f", test_fraction=0.03)
    with pytest.raises(zd.DatasetFormatError, match="at least 3 images"):
        zoo.load_dataset(tmp_path / "f", test_fraction=0.8)  # round(2 * 0.8) == 2: nothing left to train on


@pytest.mark.parametrize(
    "opts, match",
    [
        (dict(test_fraction="0.2"), "test_fraction must be a number"),
        (dict(test_fraction=True), "test_fraction must be a number"),
        (dict(test_fraction=1.0), r"test_fraction must be in \(0, 1\)"),
        (dict(test_fraction=float("nan")), r"test_fraction must be in \(0, 1\)"),
        (dict(seed="x"), "seed must be an integer"),
        (dict(seed=1.5), "seed must be an integer"),
    ],
)
def test_image_folder_split_options_are_checked(tmp_path, opts, match):
    for name in ("a", "b"):
        _write_pngs(tmp_path / "f" / name, 5)
    with pytest.raises(zd.DatasetOptionError, match=match) as info:
        zoo.load_dataset(tmp_path / "f", **opts)
    one_line(info)


def test_the_split_is_unchanged_for_valid_folders(tmp_path):
    """The checks only add errors: a folder that loaded before gives the same seeded split."""
    bases = {"a": (10, 7), "b": (50, 4), "c": (100, 3)}  # grey value of image 0, images in the class
    for name, (base, n) in bases.items():
        _write_pngs(tmp_path / "f" / name, n, value=base)
    d = zoo.load_dataset(tmp_path / "f", img_size=8, in_chans=1, seed=1)
    rng = np.random.default_rng(1)
    expected = []
    for base, n in bases.values():  # the split as it has always been drawn: a permutation per class, in order
        expected += [base + int(i) for i in rng.permutation(n)[: int(round(n * 0.2))]]
    assert d.test.images[:, 0, 0, 0].tolist() == expected and d.test.labels.tolist() == [0, 1, 2]
    assert len(d.train) == 14 - 3
