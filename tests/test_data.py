"""Datasets: embedded digits, synthetic, offline-first lookup, IDX / CIFAR readers, image folders, BatchLoader."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo import data as zd
from zoo.plugin_manager import UnknownDatasetError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest.py


# --------------------------------------------------------------------------------------------------------------------
# file writers for the tests


def idx_bytes(array: np.ndarray) -> bytes:
    assert array.dtype == np.uint8
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_set(directory: Path, n_train=12, n_test=6, size=28, gz=True, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        raw = idx_bytes(arr)
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)
    return arrays


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the real CIFAR files (pickled by Python 2) do."""

    def save_bytes(self, obj):
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def cifar_batch_bytes(n=20, seed=0, label_key=b"labels", num_classes=10) -> tuple[bytes, np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, num_classes, n)]
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump({b"batch_label": b"testing batch", b"data": images, label_key: labels})
    # numpy >= 2 names its reconstructor numpy._core; the real files (numpy 1, Python 2) say numpy.core
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"), images, labels


def write_cifar10(directory: Path, n=20) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        (directory / name).write_bytes(cifar_batch_bytes(n, seed=i)[0])


# --------------------------------------------------------------------------------------------------------------------
# registry, digits, synthetic


def test_builtin_datasets_are_registered():
    assert {"digits", "synthetic", "mnist", "fashion-mnist", "cifar10", "cifar100"} <= set(zoo.list_datasets())


def test_digits_loads_offline_with_shapes_and_all_classes():
    d = zoo.load_dataset("digits")
    assert (len(d.train), len(d.test)) == (1438, 359) and len(d.train) + len(d.test) == 1797
    assert d.input_size == (1, 32, 32) and d.num_classes == 10 and d.source == "embedded" and not d.hflip
    assert d.train.images.dtype == torch.uint8 and d.train.images.is_contiguous()
    assert d.train.labels.dtype == torch.int64
    for split in (d.train, d.test):
        assert torch.bincount(split.labels, minlength=10).min() >= 0.9 * len(split) / 10  # stratified
    assert int(d.train.images.max()) == 255 and int(d.train.images.min()) == 0
    small = zoo.load_dataset("digits", img_size=28, in_chans=3)
    assert small.train.images.shape == (1438, 3, 28, 28)
    assert torch.equal(small.train.images[:, 0], small.train.images[:, 2])
    assert len(small.mean) == 3


def test_digits_native_size_is_the_raw_values_scaled():
    d = zoo.load_dataset("digits", img_size=8)
    with np.load(zd.DIGITS_FILE) as f:
        raw = f["train_images"]
    assert raw.max() == 16 and d.train.images.shape == (1438, 1, 8, 8)
    assert torch.equal(d.train.images[:, 0], torch.from_numpy(np.round(raw * (255 / 16)).astype(np.uint8)))
    assert zd.DIGITS_FILE.stat().st_size < 100_000


def test_embedded_digits_match_scikit_learn():
    pytest.importorskip("sklearn", reason="scikit-learn regenerates the embedded digits file")
    expected = zd.digits_arrays_from_sklearn()
    with np.load(zd.DIGITS_FILE) as f:
        assert sorted(f.files) == sorted(expected)
        for key, arr in expected.items():
            assert f[key].dtype == np.uint8 and np.array_equal(f[key], arr), key


def test_synthetic_any_shape_seeded_and_learnable():
    kw = dict(num_classes=4, in_chans=1, img_size=12, train_size=64, test_size=16, seed=3)
    a, b = zoo.load_dataset("synthetic", **kw), zoo.load_dataset("synthetic", **kw)
    assert a.train.images.shape == (64, 1, 12, 12) and a.num_classes == 4 and len(a.test) == 16
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.images, zoo.load_dataset("synthetic", **{**kw, "seed": 4}).train.images)
    # learnable: nearest class mean (from train) beats chance on test by far
    x, y = a.train.images.flatten(1).float(), a.train.labels
    means = torch.stack([x[y == k].mean(0) for k in range(4)])
    pred = torch.cdist(a.test.images.flatten(1).float(), means).argmin(1)
    assert (pred == a.test.labels).float().mean() > 0.6


def test_unknown_name_and_unknown_option():
    with pytest.raises(UnknownDatasetError, match="did you mean 'fashion-mnist'"):
        zoo.load_dataset("fashion_mnist")
    with pytest.raises(
        zd.DatasetOptionError, match=r"unknown option .img_sz.; accepted: img_size, in_chans; did you mean .img_size."
    ):
        zoo.load_dataset("digits", img_sz=28)
    with pytest.raises(zd.DatasetOptionError, match="in_chans must be 1 or 3"):
        zoo.load_dataset("synthetic", in_chans=4)
    with pytest.raises(zd.DatasetOptionError, match="accepted: download, img_size, in_chans"):
        zoo.load_dataset("mnist", downlod=True)


# --------------------------------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_idx_dataset_from_root(tmp_path, gz):
    arrays = write_idx_set(tmp_path / "fm", gz=gz)
    d = zoo.load_dataset("fashion-mnist", root=tmp_path / "fm")
    assert d.input_size == (1, 28, 28) and d.source == str(tmp_path / "fm") and d.hflip
    assert torch.equal(d.train.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.equal(d.test.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)))
    big = zoo.load_dataset("fashion-mnist", root=tmp_path / "fm", img_size=32, in_chans=3)
    assert big.train.images.shape == (12, 3, 32, 32) and big.img_size == 32


def test_idx_torchvision_layout(tmp_path):
    write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False)
    write_idx_set(tmp_path / "MNIST" / "raw", gz=True, n_train=5)
    assert len(zoo.load_dataset("fashion-mnist", root=tmp_path).train) == 12
    assert len(zoo.load_dataset("mnist", root=tmp_path).train) == 5


def test_lookup_order(tmp_path, monkeypatch):
    """root= beats $ZOO_DATA beats the cache dir beats the system dir."""
    write_idx_set(tmp_path / "root", n_train=1)
    write_idx_set(tmp_path / "env" / "fashion-mnist", n_train=2)
    write_idx_set(tmp_path / "xdg-cache" / "zoo" / "fashion-mnist", n_train=3)
    write_idx_set(tmp_path / "system" / "fashion-mnist", n_train=4)
    monkeypatch.setenv(zd.ENV_DATA, str(tmp_path / "env"))

    def n_train(**kw):
        return len(zoo.load_dataset("fashion-mnist", **kw).train)

    assert n_train(root=tmp_path / "root") == 1
    assert n_train() == 2
    monkeypatch.delenv(zd.ENV_DATA)
    assert n_train() == 3
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))
    assert n_train() == 4
    # $ZOO_DATA itself is shared by all datasets: files right in it are not taken for fashion-mnist
    write_idx_set(tmp_path / "flat", n_train=7)
    monkeypatch.setenv(zd.ENV_DATA, str(tmp_path / "flat"))
    assert n_train() == 4


def test_missing_dataset_fails_fast_listing_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv(zd.ENV_DATA, str(tmp_path / "env"))  # missing: skipped, and listed as missing
    (tmp_path / "root").mkdir()  # root= must exist (tests/test_data_hostile.py checks one that does not)
    attempts = []  # failing fast means looking in the listed places only: no download is tried
    monkeypatch.delenv(zd.ENV_DOWNLOAD, raising=False)
    monkeypatch.setattr(zd.sources, "download", lambda spec: attempts.append(spec.name))
    with pytest.raises(zd.DatasetNotFoundError) as info:
        zoo.load_dataset("fashion-mnist", root=tmp_path / "root")
    assert attempts == []
    msg = str(info.value)
    assert "\n" not in msg
    for place in ("root", "env", "xdg-cache", str(tmp_path / "system" / "fashion-mnist")):
        assert str(tmp_path / place) in msg or place in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "download=True" in msg and "ZOO_DATA" in msg
    assert f"{tmp_path / 'env'} ($ZOO_DATA, missing)" in msg


def test_download_only_when_allowed(tmp_path, monkeypatch):
    calls = []

    def fake_download(spec):
        calls.append(spec.name)
        write_idx_set(zd.cache_dir() / "MNIST" / "raw", n_train=3)

    monkeypatch.setattr(zd.sources, "download", fake_download)
    with pytest.raises(zd.DatasetNotFoundError):
        zoo.load_dataset("mnist")
    assert calls == []
    assert len(zoo.load_dataset("mnist", download=True).train) == 3 and calls == ["mnist"]
    monkeypatch.setenv(zd.ENV_DOWNLOAD, "1")
    assert len(zoo.load_dataset("mnist").train) == 3 and calls == ["mnist"]  # found in the cache now


def test_explicit_download_false_beats_the_environment(monkeypatch):
    monkeypatch.setenv(zd.ENV_DOWNLOAD, "1")
    with pytest.raises(zd.DatasetNotFoundError):  # the autouse fixture's _download would raise AssertionError
        zoo.load_dataset("mnist", download=False)


def test_resize_on_load_refuses_huge_tensors(monkeypatch):
    monkeypatch.setattr(zd.datasets, "MAX_LOAD_BYTES", 1 << 20)
    with pytest.raises(zd.DatasetOptionError, match=r"resize_to=224, in_chans=3"):
        zoo.load_dataset("digits", img_size=224, in_chans=3)


def test_corrupt_idx_files_give_one_line_errors(tmp_path):
    good = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    cases = {
        "truncated": (good[:-5], "size mismatch, file truncated"),
        "trailing": (good + b"xx", "trailing bytes"),
        "magic": (b"\x08\x03" + good[2:], "bad magic number"),
        "short": (b"\x00\x00", "not an IDX file"),
        "header": (good[:9], "truncated IDX header"),
        "gz": (gzip.compress(good)[:-12], "corrupt or truncated gzip"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(zd.DatasetFormatError, match=expected) as info:
            zd.read_idx(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value), name
    # labels and images of different lengths
    arrays = write_idx_set(tmp_path / "mismatch", gz=False)
    (tmp_path / "mismatch" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["train-labels-idx1-ubyte"][:-1]))
    with pytest.raises(zd.DatasetFormatError, match="size mismatch"):
        zoo.load_dataset("mnist", root=tmp_path / "mismatch")


# --------------------------------------------------------------------------------------------------------------------
# CIFAR


def test_cifar_batch_roundtrip(tmp_path):
    content, images, labels = cifar_batch_bytes(20)
    (tmp_path / "b").write_bytes(content)
    x, y = zd.read_cifar_batch(tmp_path / "b")
    assert x.shape == (20, 3, 32, 32) and np.array_equal(x.reshape(20, -1), images) and y.tolist() == labels


def test_cifar10_and_cifar100_datasets(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", n=20)
    d = zoo.load_dataset("cifar10", root=tmp_path)
    assert (len(d.train), len(d.test)) == (100, 20) and d.input_size == (3, 32, 32) and d.classes[0] == "airplane"
    c100 = tmp_path / "c100" / "cifar-100-python"
    c100.mkdir(parents=True)
    for name, seed in (("train", 0), ("test", 1)):
        (c100 / name).write_bytes(cifar_batch_bytes(10, seed, label_key=b"fine_labels", num_classes=100)[0])
    assert zoo.load_dataset("cifar100", root=tmp_path / "c100", in_chans=1).input_size == (1, 32, 32)


def test_restricted_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
    with pytest.raises(zd.DatasetFormatError, match=r"refused to load global '(posix|os|nt)\.system'"):
        zd.read_cifar_batch(path)
    assert not (tmp_path / "pwned").exists()


def test_corrupt_cifar_files(tmp_path):
    content, _, _ = cifar_batch_bytes(20)
    cases = {
        "truncated": (content[: len(content) // 2], "corrupt or truncated pickle"),
        "garbage": (b"\x80\x02}q\x00garbage", "corrupt"),
        "notdict": (pickle.dumps([1, 2, 3], protocol=2), "expected a dict"),
        "nokeys": (pickle.dumps({"x": 1}, protocol=2), "expected 'data' and 'labels'"),
        "badshape": (pickle.dumps({"data": np.zeros((2, 5), np.uint8), "labels": [0, 1]}, protocol=3), "(N, 3072)"),
        "badlabels": (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, protocol=3), "mismatch"),
    }
    for name, (blob, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(zd.DatasetFormatError, match=expected) as info:
            zd.read_cifar_batch(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value), name


# --------------------------------------------------------------------------------------------------------------------
# image folders


def _write_pngs(directory: Path, n: int, colour, mode="RGB"):
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new(mode, (10 + i, 12), colour).save(directory / f"{i}.png")


def test_image_folder_seeded_split(tmp_path):
    for name, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        _write_pngs(tmp_path / "pets" / name, 10, colour)
    d = zoo.load_dataset(str(tmp_path / "pets"), img_size=16)
    assert d.classes == ["cat", "dog"] and d.input_size == (3, 16, 16) and (len(d.train), len(d.test)) == (16, 4)
    assert torch.bincount(d.test.labels).tolist() == [2, 2]
    red = d.train.images[d.train.labels == 0]
    assert int(red[:, 0].min()) == 255 and int(red[:, 2].max()) == 0
    again = zoo.load_dataset(tmp_path / "pets", img_size=16)
    assert torch.equal(d.test.images, again.test.images)


def test_image_folder_train_test_and_grey(tmp_path):
    for part, n in (("train", 3), ("test", 2)):
        for name, v in (("a", 10), ("b", 200)):
            _write_pngs(tmp_path / "g" / part / name, n, v, mode="L")
    d = zoo.load_dataset(str(tmp_path / "g"), img_size=8)
    assert d.input_size == (1, 8, 8) and (len(d.train), len(d.test)) == (6, 4)
    with pytest.raises(zd.DatasetNotFoundError, match="does not exist"):
        zoo.load_dataset(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(zd.DatasetNotFoundError, match="no images found"):
        zoo.load_dataset(str(tmp_path / "empty"))


# --------------------------------------------------------------------------------------------------------------------
# BatchLoader


def _split(n=10, c=1, s=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return zd.Split(torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8), torch.arange(n))


def test_normalisation_values():
    split = _split(6, c=3)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.5)
    x, y = next(iter(zd.BatchLoader(split, 6, mean=mean, std=std)))
    expected = (split.images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert x.dtype == torch.float32 and torch.allclose(x, expected, atol=1e-5) and torch.equal(y, split.labels)
    d = zoo.load_dataset("digits")  # a Split from load_dataset carries its dataset's statistics
    x, _ = next(iter(zd.BatchLoader(d.train, 1438)))
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2
    bare = zd.Split(split.images, split.labels)  # a bare Split defaults to 0.5 / 0.5
    x, _ = next(iter(zd.BatchLoader(bare, 6)))
    assert torch.allclose(x, split.images.float() / 127.5 - 1, atol=1e-5)


def test_every_sample_once_and_deterministic_per_seed_epoch():
    split = _split(23)
    loader = zd.BatchLoader(split, 5, shuffle=True, seed=1)
    assert len(loader) == 5 and loader.num_samples == 23

    def epoch_labels(ld, epoch):
        ld.set_epoch(epoch)
        return torch.cat([y for _, y in ld])

    a0, a1 = epoch_labels(loader, 0), epoch_labels(loader, 1)
    assert sorted(a0.tolist()) == list(range(23)) and sorted(a1.tolist()) == list(range(23))
    assert not torch.equal(a0, a1)
    other = zd.BatchLoader(split, 5, shuffle=True, seed=1)
    assert torch.equal(epoch_labels(other, 1), a1) and torch.equal(epoch_labels(other, 0), a0)
    assert not torch.equal(epoch_labels(zd.BatchLoader(split, 5, shuffle=True, seed=2), 0), a0)
    dropped = zd.BatchLoader(split, 5, shuffle=True, drop_last=True)
    assert len(dropped) == 4 and dropped.num_samples == 20 and [len(y) for _, y in dropped] == [5] * 4
    # images travel with their labels
    x, y = next(iter(zd.BatchLoader(split, 23, shuffle=True, mean=0, std=1)))
    assert torch.allclose(x * 255, split.images[y].float(), atol=1e-3)


@pytest.mark.parametrize("n", [23, 24])
def test_ddp_shards(n):
    split = _split(n)
    # evaluation: disjoint, covering every sample exactly once
    shards = [torch.cat([y for _, y in zd.BatchLoader(split, 4, rank=r, world_size=3)]) for r in range(3)]
    assert sorted(torch.cat(shards).tolist()) == list(range(n))
    # training: same number of batches on every rank, disjoint up to the wrap-around padding, covering all
    loaders = [zd.BatchLoader(split, 4, shuffle=True, rank=r, world_size=3, seed=5) for r in range(3)]
    for ld in loaders:
        ld.set_epoch(2)
    assert len({len(ld) for ld in loaders}) == 1 and len({ld.num_samples for ld in loaders}) == 1
    train = torch.cat([torch.cat([y for _, y in ld]) for ld in loaders])
    assert set(train.tolist()) == set(range(n)) and len(train) - n == (-n) % 3
    dropped = [zd.BatchLoader(split, 4, shuffle=True, drop_last=True, rank=r, world_size=3) for r in range(3)]
    seen = torch.cat([torch.cat([y for _, y in ld]) for ld in dropped])
    assert len(set(seen.tolist())) == len(seen) and all(len(ld) == n // 3 // 4 for ld in dropped)


def test_augment_keeps_shape_dtype_and_is_a_crop():
    split = _split(16, c=3, s=16)
    plain = zd.BatchLoader(split, 8, mean=0, std=1)
    aug = zd.BatchLoader(split, 8, augment=True, mean=0, std=1, hflip=True, seed=3)
    xa, ya = next(iter(aug))
    xp, _ = next(iter(plain))
    assert xa.shape == xp.shape == (8, 3, 16, 16) and xa.dtype == torch.float32 and torch.equal(ya, torch.arange(8))
    assert not torch.equal(xa, xp)
    # every augmented image is a padded (pad = 16 // 8 = 2) shift of the original, possibly mirrored
    padded = torch.nn.functional.pad(split.images[:8].float() / 255, (2, 2, 2, 2))
    for i in range(8):
        candidates = [
            padded[i, :, dy : dy + 16, dx : dx + 16].flip(-1) if f else padded[i, :, dy : dy + 16, dx : dx + 16]
            for dy in range(5)
            for dx in range(5)
            for f in (False, True)
        ]
        assert any(torch.allclose(xa[i], cand, atol=1e-5) for cand in candidates)
    again = zd.BatchLoader(split, 8, augment=True, mean=0, std=1, hflip=True, seed=3)
    assert torch.equal(next(iter(again))[0], xa)  # deterministic per (seed, epoch)


def test_no_flip_for_digits_and_per_batch_resize_and_channels():
    split = zd.Split(
        torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8).repeat(32, 1, 1, 1), torch.zeros(32, dtype=torch.long)
    )
    split.hflip = False
    pad = 8 // 8
    loader = zd.BatchLoader(split, 32, augment=True, mean=0, std=1)
    x, _ = next(iter(loader))
    # without flips, along a row values never decrease (zero padding aside), as in the source image
    interior = x[:, 0, :, pad:-pad] if pad else x[:, 0]
    assert bool((interior.diff(dim=-1) >= 0).all())
    flipping = zd.BatchLoader(split, 32, augment=True, mean=0, std=1, hflip=True)
    x, _ = next(iter(flipping))
    assert bool((x[:, 0, :, pad:-pad].diff(dim=-1) < 0).any())
    big = zd.BatchLoader(split, 4, resize_to=20, in_chans=3, channels_last=True)
    xb, yb = next(iter(big))
    assert xb.shape == (4, 3, 20, 20) and xb.is_contiguous(memory_format=torch.channels_last)
    assert yb.dtype == torch.int64


def test_bad_loader_arguments():
    with pytest.raises(ValueError, match="rank 3 is not in 0..1"):
        zd.BatchLoader(_split(), 2, rank=3, world_size=2)
    with pytest.raises(ValueError, match="mean has 2 values for 1-channel"):
        zd.BatchLoader(_split(), 2, mean=(0.1, 0.2))


# --------------------------------------------------------------------------------------------------------------------
# the real Fashion-MNIST (Debian's dataset-fashion-mnist)


@pytest.mark.skipif(
    not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Fashion-MNIST is not installed in /usr/share/datasets (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_from_system_dir(monkeypatch):
    monkeypatch.setattr(zd.sources, "SYSTEM_DATA_DIR", FASHION_DIR.parent)
    d = zoo.load_dataset("fashion-mnist")
    assert (len(d.train), len(d.test)) == (60000, 10000) and d.input_size == (1, 28, 28)
    assert d.source == str(FASHION_DIR)
    assert torch.bincount(d.train.labels).tolist() == [6000] * 10
