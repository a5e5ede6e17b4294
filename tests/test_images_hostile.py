"""Images, the image cache, predict and reference weights tried as a hostile user would (issue 20): one decoder with
one behaviour on every path, bounds before allocation, a cache that verifies what it serves, non-regular files
refused before they are opened, and one line for every refusal. Every bad file is generated here."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo import data as zd
from zoo.data import cachefile
from zoo.data.images import read_image
from zoo.inputs import InputRecord
from zoo.train.preprocess import input_items, prepared_batches

pytestmark = pytest.mark.usefixtures("isolated_data", "one_thread")  # conftest.py

SIDE = 16


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and "Caught" not in text, text
    return text


@pytest.fixture
def alarm():
    """A test that would hang (a FIFO opened for reading) fails after 20 s instead."""

    def fire(*_):
        raise TimeoutError("blocked: a non-regular file was opened")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------------------------------------------------
# Generated hostile images, each with the pixels zoo must give (computed here with numpy / PIL, not with zoo)


def rng_image(seed: int, shape: tuple[int, ...], high: int = 256, dtype=np.uint8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


def png16(seed: int) -> tuple[bytes, np.ndarray]:
    """A 16-bit grey PNG; zoo keeps the high byte (as Pillow does for 16-bit colour), never clips or wraps."""
    from PIL import Image

    a = rng_image(seed, (SIDE, SIDE), 65536, np.uint16)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue(), (a >> 8).astype(np.uint8)


def gif_animated(seed: int) -> tuple[bytes, np.ndarray]:
    """An animated GIF: its first frame."""
    from PIL import Image

    frames = [Image.fromarray(rng_image(seed + k, (SIDE, SIDE, 3))).convert("P") for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue(), np.asarray(frames[0].convert("RGB"))


def cmyk_jpeg(seed: int) -> tuple[bytes, np.ndarray]:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng_image(seed, (SIDE, SIDE, 4)), "CMYK").save(buf, "JPEG", quality=95)
    return buf.getvalue(), np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def palette_alpha(seed: int) -> tuple[bytes, np.ndarray]:
    """A palette PNG with a transparent entry: the alpha is dropped, the palette's colours kept."""
    from PIL import Image

    im = Image.fromarray(rng_image(seed, (SIDE, SIDE), 16), "P")
    im.putpalette(rng_image(seed + 1, (768,)).tolist())
    buf = io.BytesIO()
    im.save(buf, "PNG", transparency=3)
    rgba = Image.open(io.BytesIO(buf.getvalue())).convert("RGBA")
    return buf.getvalue(), np.asarray(rgba)[..., :3]


def exif_rotated(seed: int) -> tuple[bytes, np.ndarray]:
    """A JPEG whose EXIF says 'rotate 90': the pixels as stored, as torchvision's ImageFolder gives them."""
    from PIL import Image

    im = Image.fromarray(rng_image(seed, (SIDE, SIDE, 3)))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue(), np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


KINDS = {"png16": (png16, ".png"), "gif": (gif_animated, ".gif"), "cmyk": (cmyk_jpeg, ".jpg"),
         "palette_alpha": (palette_alpha, ".png"), "exif": (exif_rotated, ".jpg")}  # fmt: skip


def as_chw(expected: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(expected.reshape(SIDE, SIDE, -1).copy()).permute(2, 0, 1)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_decoder_one_behaviour_in_memory_cache_stream_and_predict(kind, tmp_path):
    make, ext = KINDS[kind]
    root = tmp_path / "photos"
    expected = []
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(5):
            raw, pixels = make(10 * c + i)
            (root / f"c{c}" / f"{i}{ext}").write_bytes(raw)
            expected.append(as_chw(pixels))
    channels = expected[0].shape[0]
    # the decoder itself
    first = root / "c0" / f"0{ext}"
    assert torch.equal(read_image(first, channels), expected[0])
    assert torch.equal(read_image(first.read_bytes(), channels), expected[0])
    # every path holds the same pixels (16 px: no resize anywhere)
    memory = zoo.load_dataset(root, img_size=SIDE)
    cached = zd.cache(root, img_size=SIDE, resize=SIDE, to=tmp_path / "c", workers=0)
    streamed = zoo.load_dataset(root, img_size=SIDE, resize=SIDE, cache=False)
    for part in ("train", "test"):
        a = getattr(memory, part).images
        idx = torch.arange(len(a))
        assert torch.equal(a, getattr(cached, part).read(idx)) and torch.equal(a, getattr(streamed, part).read(idx))
    # ... and the decoded set is exactly the expected one
    got = torch.cat([memory.train.images, memory.test.images])
    assert sorted(x.numpy().tobytes() for x in got) == sorted(x.numpy().tobytes() for x in expected)
    # predict prepares the file as the folder was read
    record = InputRecord(input_size=(channels, SIDE, SIDE), input_dtype="uint8")
    (x, _), *_ = prepared_batches(input_items(str(first)), record, 4)
    assert torch.equal(x[0].mul(255).round().to(torch.uint8), expected[0])


def test_sixteen_bit_tensors_are_scaled_not_wrapped_in_a_cached_dataset(tmp_path):
    a = torch.from_numpy(rng_image(0, (4, 1, SIDE, SIDE), 65536, np.uint16))
    ds = torch.utils.data.TensorDataset(a, torch.tensor([0, 1, 0, 1]))
    split = zd.cache(ds, img_size=SIDE, resize=SIDE, in_chans=1, to=tmp_path / "c", workers=0)
    ref = (a.numpy() >> 8).astype(np.uint8)
    assert np.array_equal(split.read(torch.arange(4)).numpy(), ref)


# --------------------------------------------------------------------------------------------------------------------
# Bounds before allocation


PEAK = """
import resource, sys, numpy as np, torch
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
import zoo, zoo.data as zd
from zoo.data.images import read_image
from zoo.inputs import InputRecord
from zoo.train.preprocess import input_items, prepared_batches
root, what = sys.argv[1], sys.argv[2]
before = rss()
try:
    if what == "strip":
        data = zoo.load_dataset(root, img_size=32)  # in memory
        zd.cache(root, img_size=32, to=root + "-cache", workers=0, progress=False)
        strip = next(p for p in __import__("pathlib").Path(root).rglob("strip.png"))
        record = InputRecord(input_size=(3, 32, 32), input_dtype="uint8", resize_size=36, crop_size=(32, 32))
        for x, _ in prepared_batches(input_items(str(strip)), record, 1):
            assert x.shape == (1, 3, 32, 32)
        record = InputRecord(input_size=(3, 32, 32), input_dtype="uint8")
        for x, _ in prepared_batches(input_items(str(strip)), record, 1):
            assert x.shape == (1, 3, 32, 32)
    else:
        read_image(root, 3)
except Exception as exc:
    print("ERROR", type(exc).__name__, str(exc).splitlines()[0][:200])
print("GROWTH", rss() - before)
"""


def peak_growth(*args: str) -> tuple[int, str]:
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PEAK), *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    growth = int(run.stdout.split("GROWTH")[-1])
    return growth, run.stdout


@pytest.mark.slow  # a fresh process, to measure its peak memory
def test_an_extreme_strip_costs_no_gigabytes_in_a_folder_the_cache_or_predict(tmp_path):
    from PIL import Image

    root = tmp_path / "photos"
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng_image(c * 10 + i, (24, 24, 3))).save(root / f"c{c}" / f"{i}.png")
    strip = np.tile(np.arange(3_000_000, dtype=np.int64)[None, :] % 251, (1, 1)).astype(np.uint8)
    Image.fromarray(strip, "L").convert("RGB").save(root / "c0" / "strip.png")  # 1 x 3,000,000 px
    growth, out = peak_growth(str(root), "strip")
    assert "ERROR" not in out, out
    assert growth < 600 << 20, f"{growth / 2**20:.0f} MiB for a 1 x 3,000,000 px image"


@pytest.mark.slow  # a fresh process, to measure its peak memory
def test_a_large_file_that_is_not_an_image_is_not_read_whole(tmp_path):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:  # sparse: 1 GiB on paper, nothing on disk
        f.write(b"\0" * 64)
        f.truncate(1 << 30)
    growth, out = peak_growth(str(big), "file")
    assert "ERROR ImageFileError" in out and "cannot read image" in out, out
    assert growth < 300 << 20, f"{growth / 2**20:.0f} MiB read to refuse a non-image"


def test_stored_sizes_over_the_limit_are_refused_before_decoding(tmp_path):
    a = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    ds = torch.utils.data.TensorDataset(a, torch.tensor([0, 1]))
    with pytest.raises(zd.DatasetOptionError) as exc:
        zd.cache(ds, img_size=12000, to=tmp_path / "c", workers=0)
    assert "13714" in one_line(exc) and "8192" in str(exc.value)
    with pytest.raises(zd.DatasetOptionError):
        zd.decode.ImageFiles([tmp_path / "x.png"], [0], size=20000, channels=3)
    root = tmp_path / "photos"  # a folder small enough to be loaded into memory at 12,000 px
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(3):
            (root / f"c{c}" / f"{i}.png").write_bytes(png16(i)[0])
    for cache in (None, True):
        with pytest.raises(zd.DatasetOptionError, match="8192") as exc:
            zoo.load_dataset(root, img_size=12000, cache=cache)
        one_line(exc)


@pytest.mark.parametrize(
    "field, value",
    [("input_size", "abc"), ("input_size", (3, 60000, 60000)), ("std", (0.0,)), ("std", (1e-30,)), ("std", (-1.0,)),
     ("mean", (float("nan"),)), ("crop_size", (0, 0)), ("resize_size", 10**6)],
)  # fmt: skip
def test_input_records_asking_for_too_much_or_dividing_by_zero_are_refused(field, value):
    with pytest.raises(ValueError) as exc:
        InputRecord(**{field: value})
    assert field in one_line(exc) and "accepted" in str(exc.value)
    with pytest.raises(ValueError) as exc:
        InputRecord.from_dict({field: value})
    one_line(exc)


@pytest.mark.parametrize("std", [0.0, 1e-30])
def test_predict_and_evaluate_refuse_a_record_with_zero_std(std):
    model = zoo.create("lenet5", num_classes=3, in_chans=1, img_size=SIDE)
    record = InputRecord(input_size=(1, SIDE, SIDE), input_dtype="uint8", mean=(0.5,), std=(0.5,)).to_dict()
    model.zoo_config["inputs"] = {**record, "std": [std]}
    x = torch.randint(0, 256, (2, 1, SIDE, SIDE), dtype=torch.uint8)
    with pytest.raises(ValueError, match="std") as exc:
        zoo.predict(model, x)
    one_line(exc)
    with pytest.raises(ValueError, match="std") as exc:
        zoo.evaluate(model, (x, torch.tensor([0, 1])))
    one_line(exc)


# --------------------------------------------------------------------------------------------------------------------
# Non-regular files are refused before they are opened


def test_fifos_are_refused_never_opened(tmp_path, alarm):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    model = zoo.create("lenet5", num_classes=3, in_chans=1, img_size=SIDE)
    with pytest.raises(ValueError, match="FIFO") as exc:
        zoo.predict(model, fifo)
    one_line(exc)
    with pytest.raises(zd.DatasetFormatError, match="FIFO"):
        read_image(fifo, 3)
    root = tmp_path / "photos"
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(4):
            (root / f"c{c}" / f"{i}.png").write_bytes(png16(i)[0])
    os.mkfifo(root / "c1" / "pipe.jpg")
    with pytest.raises(zd.DatasetFormatError, match=r"pipe\.jpg: not a regular file") as exc:
        zoo.load_dataset(root, img_size=SIDE)
    one_line(exc)
    with pytest.raises(zd.DatasetFormatError, match="FIFO"):
        zd.cache(root, img_size=SIDE, to=tmp_path / "c", workers=0)


def test_a_fifo_in_the_hub_cache_is_refused(tmp_path, monkeypatch, alarm):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    member = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1
    path = zoo.weights.hub_file(member)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    with pytest.raises(zoo.weights.CheckpointError, match="not a regular file") as exc:
        zoo.create("googlenet", weights="DEFAULT")
    one_line(exc)


# --------------------------------------------------------------------------------------------------------------------
# Broken files through the cache's DataLoader workers: zoo's one line, not torch's wrapper


@pytest.mark.parametrize("path", ["cache", "stream", "memory"])
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_broken_jpeg_is_one_line_also_from_a_worker(damage, path, tmp_path):
    from PIL import Image

    root = tmp_path / "photos"
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng_image(c * 10 + i, (20, 20, 3))).save(root / f"c{c}" / f"{i}.jpg", quality=90)
    bad = root / "c1" / "bad.jpg"
    buf = io.BytesIO()
    Image.fromarray(rng_image(99, (64, 64, 3))).save(buf, "JPEG")
    bad.write_bytes(b"" if damage == "empty" else buf.getvalue()[:300])
    with pytest.raises(zd.DatasetFormatError, match=r"bad\.jpg: cannot read image") as exc:
        if path == "cache":
            zd.cache(root, img_size=SIDE, to=tmp_path / "c", workers=2)
        elif path == "memory":
            zoo.load_dataset(root, img_size=SIDE, in_chans=3)
        else:  # decoded by persistent DataLoader workers as the batches are read
            data = zoo.load_dataset(root, img_size=SIDE, in_chans=3, cache=False, test_fraction=0.5)
            for part in (data.train, data.test):
                for _ in zd.make_batches(part, 2, device=torch.device("cpu"), shuffle=False, num_workers=2):
                    pass
    one_line(exc)


# --------------------------------------------------------------------------------------------------------------------
# A cache that verifies what it serves


@pytest.fixture
def folder(tmp_path) -> Path:
    from PIL import Image

    root = tmp_path / "photos"
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng_image(c * 100 + i, (20, 24, 3))).save(root / f"c{c}" / f"{i}.png")
    return root


def rewrite_index(path: Path, change) -> None:
    """Change a cache's index and fix its CRC (and its size in the header), as a forger would."""
    head = bytearray(path.read_bytes()[: cachefile._HEADER.size])
    fields = list(cachefile._HEADER.unpack(head))
    raw = path.read_bytes()
    offset = cachefile.HEADER_BYTES + fields[3]
    index = json.loads(raw[offset:])
    change(index)
    new = json.dumps(index, separators=(",", ":")).encode()
    fields[4], fields[5] = len(new), zlib.crc32(new)
    path.write_bytes(cachefile._HEADER.pack(*fields) + raw[cachefile._HEADER.size : offset] + new)


def test_one_changed_image_anywhere_is_detected(folder, tmp_path):
    split = zd.cache(folder, img_size=SIDE, to=tmp_path / "c", workers=0).train
    path = Path(split.path)
    image_bytes = 3 * split.stored_size**2
    for row in (2, 11, 22):  # rows the 16 probes of old did not cover among 24
        with open(path, "r+b") as f:
            f.seek(cachefile.HEADER_BYTES + row * image_bytes + 5)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
        with pytest.raises(zd.CacheError, match="damaged") as exc:
            zd.read_cache(path)
        one_line(exc)
        with open(path, "r+b") as f:  # undo
            f.seek(cachefile.HEADER_BYTES + row * image_bytes + 5)
            f.write(byte)
        zd.read_cache(path)


def test_a_large_cache_checks_a_sample_at_open_and_everything_when_asked(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(cachefile, "_CHUNK_BYTES", 1)  # one image per chunk: 24 chunks, more than the sample
    split = zd.cache(folder, img_size=SIDE, to=tmp_path / "c", workers=0).train
    path = Path(split.path)
    index = zd.read_cache(path).index
    assert len(index["hashes"]) == 24 and index["chunk"] == 1
    with open(path, "r+b") as f:
        f.seek(cachefile.HEADER_BYTES + 7 * 3 * split.stored_size**2)
        f.write(b"\xff" * 8)
    with pytest.raises(zd.CacheError, match=r"images 7\.\.7 differ"):
        zd.read_cache(path, verify=True)
    with pytest.warns(UserWarning, match="rebuilding"):
        again = zd.cache(folder, img_size=SIDE, to=tmp_path / "c", workers=0, verify=True)
    streamed = zoo.load_dataset(folder, img_size=SIDE, cache=False)
    idx = torch.arange(len(again.train))
    assert torch.equal(again.train.read(idx), streamed.train.read(idx))


def test_forged_labels_in_the_index_are_caught_and_rebuilt(folder, tmp_path):
    data = zd.cache(folder, img_size=SIDE, to=tmp_path / "c", workers=0)
    truth = data.train.labels.tolist()
    path = Path(data.train.path)
    rewrite_index(path, lambda index: index.update(labels=[(v + 1) % 3 for v in index["labels"]]))
    assert zd.read_cache(path).labels.tolist() != truth  # the forgery is a sound file on its own
    with pytest.warns(UserWarning, match="labels differ"):
        again = zd.cache(folder, img_size=SIDE, to=tmp_path / "c", workers=0)
    assert again.train.labels.tolist() == truth


def test_a_header_claiming_a_huge_index_is_refused_before_reading_it(folder, tmp_path):
    path = Path(zd.cache(folder, img_size=SIDE, to=tmp_path / "c", workers=0).train.path)
    fields = list(cachefile._HEADER.unpack(path.read_bytes()[: cachefile._HEADER.size]))
    huge = 300 << 20
    fields[4] = huge
    with open(path, "r+b") as f:
        f.write(cachefile._HEADER.pack(*fields))
        f.truncate(cachefile.HEADER_BYTES + fields[3] + huge)  # sparse: the file's size agrees with the header
    with pytest.raises(zd.CacheError, match="header is damaged") as exc:
        zd.read_cache(path)
    one_line(exc)


def test_a_changed_map_style_dataset_is_not_served_from_its_old_cache(tmp_path):
    images = torch.randint(0, 256, (9, 3, SIDE, SIDE), dtype=torch.uint8)
    ds = torch.utils.data.TensorDataset(images, torch.arange(9) % 3)
    first = zd.read_cache(zd.cache(ds, img_size=SIDE, resize=SIDE, to=tmp_path / "c", workers=0).path).build_id
    images[2] ^= 0xFF  # neither the first, the middle nor the last item
    again = zd.cache(ds, img_size=SIDE, resize=SIDE, to=tmp_path / "c", workers=0)
    assert zd.read_cache(again.path).build_id != first
    assert torch.equal(again.read(torch.arange(9)), images)
    part = torch.utils.data.Subset(ds, [1, 4, 7, 8])  # a Subset is fingerprinted through its Dataset
    before = zd.read_cache(zd.cache(part, img_size=SIDE, resize=SIDE, to=tmp_path / "s", workers=0).path).build_id
    images[4] ^= 0xFF
    after = zd.cache(part, img_size=SIDE, resize=SIDE, to=tmp_path / "s", workers=0)
    assert zd.read_cache(after.path).build_id != before
    assert torch.equal(after.read(torch.arange(4)), images[[1, 4, 7, 8]])


def test_a_dataset_zoo_cannot_fingerprint_needs_a_key(tmp_path):
    class Opaque(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.full((3, SIDE, SIDE), i, dtype=torch.uint8), i % 2

    with pytest.raises(zd.DatasetOptionError, match="key=") as exc:
        zd.cache(Opaque(), img_size=SIDE, to=tmp_path / "c", workers=0)
    one_line(exc)
    split = zd.cache(Opaque(), img_size=SIDE, to=tmp_path / "c", workers=0, key="opaque-v1")
    assert len(split) == 4


def test_a_prebuilt_cache_on_a_read_only_mount_is_usable(folder, tmp_path, monkeypatch):
    where = tmp_path / "c"
    built = zd.cache(folder, img_size=SIDE, to=where, workers=0)
    for lock in where.glob("*.lock"):
        lock.unlink()
    real_open = os.open

    def read_only(file, flags, *args, **kwargs):  # the mount refuses to create or write anything
        if str(file).startswith(str(where)) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    again = zd.cache(folder, img_size=SIDE, to=where, workers=0)
    assert zd.read_cache(again.train.path).build_id == zd.read_cache(built.train.path).build_id
    with pytest.raises(zd.CacheError, match="read-only") as exc:
        zd.cache(folder, img_size=SIDE + 2, to=where, workers=0)  # no cache of that size there
    one_line(exc)


def test_a_full_disk_is_refused_before_writing(folder, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(zd.CacheError, match="not enough disk space") as exc:
        zd.cache(folder, img_size=SIDE, to=tmp_path / "c", workers=0)
    one_line(exc)
    assert list((tmp_path / "c").glob("*.zooc")) == [] and list((tmp_path / "c").glob(".*.tmp")) == []


def test_a_disk_that_fills_while_writing_is_one_line_not_sigbus(folder, tmp_path, monkeypatch):
    real = cachefile.atomic_write

    class Filling:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(memoryview(data).cast("B"))
            if self.written > cachefile.HEADER_BYTES + 2000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(cachefile, "atomic_write", lambda path, fn: real(path, lambda f: fn(Filling(f))))
    with pytest.raises(zd.CacheError, match="disk filled") as exc:
        zd.cache(folder, img_size=SIDE, to=tmp_path / "c", workers=0)
    one_line(exc)
    assert list((tmp_path / "c").glob("*.zooc")) == [] and list((tmp_path / "c").glob(".*.tmp")) == []


# --------------------------------------------------------------------------------------------------------------------
# predict: non-finite inputs, shapes that do not fit


def test_predict_refuses_non_finite_inputs():
    model = zoo.create("lenet5", num_classes=3, in_chans=1, img_size=SIDE)
    InputRecord(input_size=(1, SIDE, SIDE), input_dtype="uint8", mean=(0.5,), std=(0.5,)).attach(model)
    x = torch.zeros(5, 1, SIDE, SIDE)
    x[3, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="sample 3 holds NaN") as exc:
        zoo.predict(model, x, batch_size=2)
    one_line(exc)
    x[3] = 0
    x[4, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="sample 4"):
        zoo.embed(model, x)


def test_predict_refuses_a_prepared_batch_the_model_cannot_take():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(SIDE * SIDE, 3))  # torch's matmul message
    InputRecord(input_size=(1, SIDE, SIDE), input_dtype="uint8", mean=(0.5,), std=(0.5,)).attach(model)
    with pytest.raises(ValueError, match=r"\(2, 1, 20, 20\) does not fit the model, which takes N x 1 x 16 x 16") as e:
        zoo.predict(model, torch.zeros(2, 1, 20, 20))
    one_line(e)


# --------------------------------------------------------------------------------------------------------------------
# Reference weights: the hash in the file's name


def test_a_hub_file_is_checked_against_the_hash_in_its_name_once(tmp_path, monkeypatch):
    from zoo.weights import CheckpointError, check_hub_hash

    content = b"weights" * 1000
    prefix = hashlib.sha256(content).hexdigest()[:8]
    good = tmp_path / f"net-{prefix}.pth"
    good.write_bytes(content)
    check_hub_hash(good)
    monkeypatch.setattr(zoo.weights.hashlib, "sha256", None)  # the verdict is kept: no second hash
    check_hub_hash(good)
    zoo.weights._VERIFIED.clear()  # a new process reads the sidecar
    check_hub_hash(good)
    monkeypatch.undo()
    good.write_bytes(content[:-1] + b"X")  # changed: hashed again, and refused
    with pytest.raises(CheckpointError, match=f"not {prefix} as its name says") as exc:
        check_hub_hash(good)
    one_line(exc)


def test_torchvision_weights_whose_file_does_not_match_its_name_are_refused(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    member = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1
    path = zoo.weights.hub_file(member)
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True).state_dict(), path)
    with pytest.raises(zoo.weights.CheckpointError, match="as its name says") as exc:
        zoo.create("googlenet", weights="DEFAULT")
    one_line(exc)


def test_special_files_where_a_cache_or_its_lock_belong(folder, tmp_path, alarm):
    where = tmp_path / "c"
    path = Path(zd.cache(folder, img_size=SIDE, to=where, workers=0).train.path)
    path.unlink()
    os.mkfifo(path)  # a FIFO under the cache's name is not read (it would block), but replaced by a new cache
    with pytest.raises(zd.CacheError, match="not a regular file"):
        zd.read_cache(path)
    with pytest.warns(UserWarning, match="rebuilding"):
        again = zd.cache(folder, img_size=SIDE, to=where, workers=0)
    assert path.is_file() and len(again.train) == 24
    lock = path.with_name(path.name + ".lock")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    lock.unlink()
    lock.symlink_to(victim)  # never followed: the file it points to keeps its bytes
    with pytest.raises(zd.CacheError, match="lock belongs") as exc:
        zd.cache(folder, img_size=SIDE, to=where, workers=0)
    one_line(exc)
    assert victim.read_text() == "precious"
    lock.unlink()
    os.mkfifo(lock)
    with pytest.raises(zd.CacheError, match="lock belongs"):
        zd.cache(folder, img_size=SIDE, to=where, workers=0)


def test_a_datasets_error_in_a_cache_worker_is_its_own_line(tmp_path):
    class Strings(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return "not a pair" if i == 4 else (torch.zeros(3, SIDE, SIDE, dtype=torch.uint8), 0)

    # items 0, 3 and 5 are fingerprinted in this process: item 4 fails in a worker
    with pytest.raises(TypeError, match="item 4 of the Strings is a str") as exc:
        zd.cache(Strings(), img_size=SIDE, to=tmp_path / "c", workers=2, key="strings")
    one_line(exc)
