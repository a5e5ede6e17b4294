"""Big image folders: the uint8 image cache (build, reopen, rebuild on change, never trust a damaged or half-written
file) and the streaming path, which gives the same batches as the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo import data as zd
from zoo.data.cachefile import HEADER_BYTES, read_cache
from zoo.data.slots import slot_count

pytestmark = pytest.mark.usefixtures("isolated_data", "one_thread")  # conftest.py

IMG = 16  # the size the model sees; stored at 18 (8/7)


def write_image(path: Path, seed: int, cls: int, fmt: str = "JPEG") -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(18, 40, 2))
    a = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
    a[..., cls % 3] = 230  # a class colour, so that a short fit can learn
    Image.fromarray(a).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))


@pytest.fixture
def folder(tmp_path) -> Path:
    """3 classes x 10 images of mixed sizes and aspect ratios (JPEG, a PNG in each class)."""
    root = tmp_path / "photos"
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(10):
            fmt = "PNG" if i == 0 else "JPEG"
            write_image(root / f"class{c}" / f"{i}.{'png' if fmt == 'PNG' else 'jpg'}", 100 * c + i, c, fmt)
    return root


def cache_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.zooc"))


def build_id(split: zd.ImageSplit) -> str:
    return read_cache(split.path).build_id


# --------------------------------------------------------------------------------------------------------------------
# The cache is built, reopened, and used for training


def test_folder_over_the_memory_limit_trains_through_the_cache(folder, monkeypatch, tmp_path):
    monkeypatch.setattr(zd.datasets, "MAX_LOAD_BYTES", 1000)  # 30 images x 3 x 16 x 16 is far more
    data = zoo.load_dataset(folder, img_size=IMG)
    assert isinstance(data.train, zd.ImageSplit) and data.train.cached
    assert data.train.stored_size == 18 and data.input_size == (3, IMG, IMG) and data.num_classes == 3
    assert len(data.train) + len(data.test) == 30
    files = cache_files(tmp_path / "xdg-cache" / "zoo" / "images")  # the user cache dir (isolated_data)
    assert len(files) == 2 and all(".tmp" not in f.name for f in files)
    model = zoo.create("lenet5", num_classes=3, in_chans=3, img_size=IMG)
    history = zoo.fit(model, data, epochs=2, batch_size=8, seed=0, num_workers=0)
    assert np.isfinite(history.epochs[-1]["loss"])
    assert 0.0 <= zoo.evaluate(model, data)["top1"] <= 1.0
    record = model.zoo_config["inputs"]  # how zoo.predict will prepare a new photo: as the cache did
    assert record["resize_size"] == 18 and record["crop_size"] == [IMG, IMG]
    # reopened, not rebuilt
    built = build_id(data.train)
    again = zoo.load_dataset(folder, img_size=IMG)
    assert build_id(again.train) == built
    assert torch.equal(again.train.images, data.train.images)


def test_under_the_limit_a_folder_still_loads_into_memory(folder):
    data = zoo.load_dataset(folder, img_size=IMG)
    assert isinstance(data.train, zd.Split) and data.train.images.shape[1:] == (3, IMG, IMG)


def test_cache_holds_what_the_decoder_gives(folder, tmp_path):
    data = zd.cache(folder, img_size=IMG, to=tmp_path / "c")
    streamed = zoo.load_dataset(folder, img_size=IMG, cache=False)
    idx = torch.arange(len(data.train))
    assert torch.equal(data.train.read(idx), streamed.train.read(idx))
    assert data.mean == streamed.mean and data.std == streamed.std
    assert data.train.labels.tolist() == streamed.train.labels.tolist()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_cache_built_in_small_batches_holds_the_same_rows_and_hashes(folder, tmp_path, monkeypatch, workers):
    # batches of 2 images and hash chunks of 3: chunks that straddle batches, several times more batches than the
    # workers' shared slots; every chunk's hash checked against the rows as stored (verify=True)
    from zoo.data import cachefile

    reference = zd.cache(folder, img_size=IMG, to=tmp_path / "ref", workers=0)
    image_bytes = 3 * 18 * 18
    monkeypatch.setattr(cachefile, "_BATCH_BYTES", 2 * image_bytes)
    monkeypatch.setattr(cachefile, "_CHUNK_BYTES", 3 * image_bytes)
    data = zd.cache(folder, img_size=IMG, to=tmp_path / "small", workers=workers)
    assert len(data.train) // 2 >= 2 * slot_count(2)
    for ours, ref in ((data.train, reference.train), (data.test, reference.test)):
        index = torch.arange(len(ref))
        assert torch.equal(ours.read(index), ref.read(index))
        assert ours.labels.tolist() == ref.labels.tolist()
        checked = read_cache(ours.path, verify=True)
        assert len(checked.index["hashes"]) == -(-len(ref) // 3)
    assert data.mean == reference.mean and data.std == reference.std


@pytest.mark.parametrize("change", ["modify", "add", "delete"])
def test_a_changed_folder_rebuilds_the_cache(folder, tmp_path, change):
    where = tmp_path / "c"
    first = zd.cache(folder, img_size=IMG, to=where)
    before = {p: build_id(getattr(first, p)) for p in ("train", "test")}
    target = folder / "class1" / "3.jpg"
    if change == "modify":
        write_image(target, 999, 1)
        os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    elif change == "add":
        write_image(folder / "class1" / "new.jpg", 998, 1)
    else:
        target.unlink()
    second = zd.cache(folder, img_size=IMG, to=where)
    changed = [p for p in ("train", "test") if build_id(getattr(second, p)) != before[p]]
    assert changed, "a changed folder must not reopen the old cache"
    total = len(second.train) + len(second.test)
    assert total == {"modify": 30, "add": 31, "delete": 29}[change]
    streamed = zoo.load_dataset(folder, img_size=IMG, cache=False)
    for part in ("train", "test"):
        split, ref = getattr(second, part), getattr(streamed, part)
        assert torch.equal(split.read(torch.arange(len(split))), ref.read(torch.arange(len(ref))))
    assert len(cache_files(where)) == 2  # rebuilt in place, not beside the old one


@pytest.mark.parametrize("damage", ["truncate", "index", "version", "image"])
def test_a_damaged_cache_is_detected_and_rebuilt(folder, tmp_path, damage):
    where = tmp_path / "c"
    first = zd.cache(folder, img_size=IMG, to=where)
    path = Path(first.train.path)
    expected = first.train.read(torch.arange(len(first.train))).clone()
    del first
    size = path.stat().st_size
    with open(path, "r+b") as f:
        if damage == "truncate":
            f.truncate(size - 100)
        elif damage == "index":
            f.seek(size - 5)
            f.write(b"XXXX")
        elif damage == "version":
            f.seek(32)  # the zoo version field of the header
            f.write(b"0.0.0-other\0")
        else:
            f.seek(HEADER_BYTES)  # the first image, which is probed on every open
            f.write(bytes(64))
    reason = {"truncate": "truncated", "index": "index is damaged", "version": "written by zoo", "image": "damaged"}
    with pytest.raises(zd.CacheError, match=reason[damage]):
        read_cache(path)
    with pytest.warns(UserWarning, match="rebuilding"):
        again = zd.cache(folder, img_size=IMG, to=where)
    assert path.stat().st_size == size
    assert torch.equal(again.train.read(torch.arange(len(again.train))), expected)


KILL_SCRIPT = """
import os, signal, sys
import zoo.data as zd
import zoo.data.cachefile as cf
import zoo.data.decode as dec

folder, where, point = sys.argv[1], sys.argv[2], sys.argv[3]
if point == "writing":  # die in the middle of decoding into the temporary file
    original = dec.ImageFiles.__getitem__
    def dying(self, i):
        if i == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, i)
    dec.ImageFiles.__getitem__ = dying
else:  # die after the file is written and synced, before it is renamed into place
    def dying_replace(src, dst):
        os.kill(os.getpid(), signal.SIGKILL)
    cf.os.replace = dying_replace
zd.cache(folder, img_size=16, to=where, workers=0, progress=False)
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["writing", "before-rename"])
def test_a_process_killed_while_writing_leaves_nothing_trusted(folder, tmp_path, point):
    where = tmp_path / "c"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(folder), str(where), point],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == -9, run.stderr[-2000:]
    assert cache_files(where) == []  # nothing under a name that is ever opened
    leftovers = list(where.glob(".*.tmp"))
    assert leftovers  # the half- (or wholly) written temporary file
    data = zd.cache(folder, img_size=IMG, to=where)  # rebuilt from the images, not from the leftover
    assert list(where.glob(".*.tmp")) == []
    streamed = zoo.load_dataset(folder, img_size=IMG, cache=False)
    assert torch.equal(data.train.read(torch.arange(len(data.train))), streamed.train.read(torch.arange(24)))


# --------------------------------------------------------------------------------------------------------------------
# The cached and the streaming paths give the same batches


@pytest.mark.parametrize("world_size", [1, 2])
def test_cached_and_streaming_batches_are_the_same(folder, tmp_path, world_size):
    cached = zd.cache(folder, img_size=IMG, to=tmp_path / "c")
    streamed = zoo.load_dataset(folder, img_size=IMG, cache=False)
    assert not streamed.train.cached
    for train in (True, False):
        for rank in range(world_size):
            kw = dict(device=torch.device("cpu"), shuffle=train, augment=train, seed=7, rank=rank,
                      world_size=world_size, num_workers=0)  # fmt: skip
            a = zd.make_batches(cached.train, 5, **kw)
            b = zd.make_batches(streamed.train, 5, **kw)
            assert isinstance(a, zd.ImageBatches) and a.num_batches == b.num_batches
            seen = []
            for epoch in (1, 2):
                a.set_epoch(epoch)
                b.set_epoch(epoch)
                pairs = list(zip(a, b, strict=True))
                assert len(pairs) == a.num_batches
                for (xa, ya), (xb, yb) in pairs:
                    assert xa.shape[1:] == (3, IMG, IMG) and xa.dtype == torch.float32
                    assert torch.equal(xa, xb) and torch.equal(ya, yb)
                seen.append(torch.cat([x for (x, _), _ in pairs]))
            assert not torch.equal(seen[0], seen[1]) if train else torch.equal(seen[0], seen[1])


@pytest.mark.parametrize("channels_last", [False, True])
def test_workers_crop_the_same_batches_as_the_main_process(folder, tmp_path, channels_last):
    # the cache read and cropped in the main process is the reference; DataLoader worker processes crop the
    # decoded files in the same order, with the same boxes and flips, in the layout asked (a cache is read in the
    # main process whatever num_workers says)
    cached = zd.cache(folder, img_size=IMG, to=tmp_path / "c")
    streamed = zoo.load_dataset(folder, img_size=IMG, cache=False)
    for train in (True, False):
        kw = dict(device=torch.device("cpu"), shuffle=train, augment=train, seed=1, channels_last=channels_last)
        reference = zd.make_batches(cached.train, 8, num_workers=0, **kw)
        others = [zd.make_batches(s.train, 8, num_workers=2, **kw) for s in (cached, streamed)]
        for epoch in (1, 2):  # persistent workers, a new order each epoch
            for b in (reference, *others):
                b.set_epoch(epoch)
            for (xa, ya), *rest in zip(reference, *others, strict=True):
                for xb, yb in rest:
                    assert torch.equal(xa, xb) and torch.equal(ya, yb)
                    assert xb.is_contiguous(memory_format=torch.channels_last) == channels_last


@pytest.mark.parametrize("channels_last", [False, True])
def test_crops_cut_in_parts_on_several_threads_are_those_of_one_thread(monkeypatch, channels_last):
    from zoo.data import stream
    from zoo.threads import use_threads

    monkeypatch.setattr(stream, "_PARTS_FROM_PIXELS", 0)  # parts even for these small crops
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 40, 40), dtype=torch.uint8, generator=g)
    views = [im.permute(1, 2, 0).contiguous().permute(2, 0, 1) for im in images]  # interleaved, as a cache's rows
    boxes, flips = stream.random_boxes(10, 40, g), torch.rand(10, generator=g) < 0.5
    scale, shift = torch.tensor([0.02, 0.03, 0.04]).view(1, 3, 1, 1), torch.tensor([-1.0, 0.5, 2.0]).view(1, 3, 1, 1)
    for norm in ({}, {"scale": scale, "shift": shift}):
        with use_threads(1):
            expected = stream.resized_crops(images, boxes, flips, 32, channels_last, **norm)
        with use_threads(3):
            for given in (images, views):
                got = stream.resized_crops(given, boxes, flips, 32, channels_last, **norm)
                assert torch.equal(got, expected)
                assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert stream._crop_pool is not None and stream._crop_pool[1] == 2  # the caller and two threads


def test_workers_reusing_their_shared_batches_never_overwrite_one_in_use(folder, tmp_path):
    # batches of 2: several times more batches than the shared slots the workers write into (PREFETCH x workers
    # + 2), over epochs, after an epoch abandoned with batches still in flight, each equal to the main process's
    cached = zd.cache(folder, img_size=IMG, to=tmp_path / "c")
    streamed = zoo.load_dataset(folder, img_size=IMG, cache=False)
    kw = dict(device=torch.device("cpu"), shuffle=True, augment=True, seed=2, channels_last=True)
    reference = zd.make_batches(cached.train, 2, num_workers=0, **kw)
    workers = zd.make_batches(streamed.train, 2, num_workers=2, **kw)
    assert workers.num_batches >= 2 * slot_count(2)
    workers.set_epoch(0)
    next(iter(workers))  # abandoned: the workers hold the next batches of epoch 0 in their slots
    for epoch in (1, 2):
        reference.set_epoch(epoch)
        workers.set_epoch(epoch)
        batches = [(x.clone(), y) for x, y in workers]  # each kept while the workers go on writing
        expected = list(reference)
        assert len(batches) == len(expected) == reference.num_batches
        for (xa, ya), (xb, yb) in zip(expected, batches):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_fit_on_the_cache_and_on_the_stream_trains_the_same_weights(folder, tmp_path, states_equal):
    cached = zd.cache(folder, img_size=IMG, to=tmp_path / "c")
    streamed = zoo.load_dataset(folder, img_size=IMG, cache=False)
    models = []
    for data in (cached, streamed):
        torch.manual_seed(0)
        model = zoo.create("lenet5", num_classes=3, in_chans=3, img_size=IMG)
        zoo.fit(model, data, epochs=2, batch_size=8, seed=3, num_workers=0)
        models.append(model)
    assert states_equal(*models)


# --------------------------------------------------------------------------------------------------------------------
# Datasets, the command line, errors


def test_cache_a_map_style_dataset(folder, tmp_path):
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(folder))
    split = zd.cache(ds, img_size=IMG, to=tmp_path / "c")
    assert isinstance(split, zd.ImageSplit) and len(split) == 30 and split.classes == ds.classes
    built = build_id(split)
    assert build_id(zd.cache(ds, img_size=IMG, to=tmp_path / "c")) == built  # reopened
    x, y = split[0]
    assert x.shape == (3, IMG, IMG) and x.dtype == torch.uint8 and y == 0
    model = zoo.create("lenet5", num_classes=3, in_chans=3, img_size=IMG)
    zoo.fit(model, split, epochs=1, batch_size=8, num_workers=0)
    record = model.zoo_config["inputs"]
    assert record["resize_size"] == 18 and record["crop_size"] == [IMG, IMG] and record["classes"] == ds.classes


def test_zoo_cache_command(folder, tmp_path, capsys):
    from zoo.cli import main

    assert main(["cache", str(folder), "--img-size", str(IMG), "--to", str(tmp_path / "c"), "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert [s["images"] for s in out["splits"]] == [24, 6] and out["img_size"] == IMG
    assert all(Path(s["path"]).is_file() for s in out["splits"])


def test_a_broken_image_is_named_in_one_line(folder, tmp_path):
    (folder / "class2" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(zd.DatasetFormatError, match=r"broken\.jpg: cannot read image"):
        zd.cache(folder, img_size=IMG, to=tmp_path / "c", workers=0)
    assert cache_files(tmp_path / "c") == [] and list((tmp_path / "c").glob(".*.tmp")) == []


def test_bad_options(folder):
    with pytest.raises(zd.DatasetOptionError, match="resize=10 is smaller than img_size=16"):
        zoo.load_dataset(folder, img_size=IMG, cache=True, resize=10)
    with pytest.raises(zd.DatasetOptionError, match="not a directory"):
        zd.cache(folder / "nothing-here")


def test_limit_keeps_a_stratified_view_of_the_cache(folder, tmp_path):
    data = zoo.load_dataset(folder, img_size=IMG, cache=tmp_path / "c", limit=6)
    assert isinstance(data.train, zd.ImageSplit) and len(data.train) == 6 and len(data.test) == 6
    assert sorted(data.train.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    full = zoo.load_dataset(folder, img_size=IMG, cache=tmp_path / "c")
    x, y = data.train[0]
    i = int(data.train.indices[0])
    assert torch.equal(x, full.train[i][0]) and y == full.train[i][1]
