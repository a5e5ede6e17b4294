"""Reduced-size JPEG decoding (``zoo.data.jpeg``) and the CPU crops of ``zoo.data.stream``: close to (or equal to)
the full-size reference computed here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.data.decode import ImageFiles, fit_square, read_image_file
from zoo.data.formats import DatasetFormatError
from zoo.data.jpeg import draft_scale, read_scaled
from zoo.data.stream import random_boxes, resized_crop, resized_crops

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def photo(path: Path, width: int = 400, height: int = 300, fmt: str = "JPEG", seed: int = 0) -> Path:
    """A photo-like image: smooth colour waves plus sensor noise (as benchmarks/bench_image_cache.py makes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    f = rng.uniform(10, 60, 6)
    img = np.stack([np.sin(xx / f[k] + k) * 70 + np.cos(yy / f[k + 3]) * 50 + 120 for k in range(3)], -1)
    img += rng.normal(0, 10, img.shape)
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path


def full(path: Path, channels: int) -> torch.Tensor:
    return read_image_file(path, channels)


@pytest.mark.parametrize("size", [73, 37, 128])
@pytest.mark.parametrize("channels", [3, 1])
def test_reduced_decode_stays_close_to_the_full_decode_and_resize(tmp_path, size, channels):
    p = photo(tmp_path / "a.jpg")
    reduced = read_scaled(p, channels, size, full)
    scale = draft_scale(400, 300, size)
    assert scale > 1
    assert tuple(reduced.shape) == (channels, -(-300 // scale), -(-400 // scale))  # decoded small, not resized
    assert min(reduced.shape[1:]) >= size
    ours = fit_square(reduced, size).float()
    ref = fit_square(read_image_file(p, channels), size).float()
    assert ours.shape == ref.shape == (channels, size, size)
    assert (ours - ref).abs().mean() < 2.0  # of 255; a 1/8 scale was ~7 on this image


def test_scale_keeps_both_sides_at_least_the_stored_size():
    for w, h in [(400, 300), (300, 400), (4000, 3000), (73, 73), (146, 500), (145, 500), (50, 20)]:
        for size in (18, 73, 256):
            s = draft_scale(w, h, size)
            assert s in (1, 2, 4)
            assert s == 1 or (w // s >= size and h // s >= size)
            assert s == 4 or w // (2 * s) < size or h // (2 * s) < size  # the largest such scale (up to 4)


def test_what_gains_nothing_is_decoded_by_the_full_decoder(tmp_path):
    small = photo(tmp_path / "small.jpg", 100, 80)
    png = photo(tmp_path / "big.png", 400, 300, fmt="PNG")
    for p in (small, png):
        assert torch.equal(read_scaled(p, 3, 73, full), read_image_file(p, 3))


@pytest.mark.parametrize(
    "kind", ["4:2:0", "4:4:4", "4:2:2", "progressive", "grey", "cmyk", "restart-markers", "odd-size"]
)
@pytest.mark.parametrize("channels", [3, 1])
def test_a_jpeg_decoded_whole_has_the_full_decoders_pixels(tmp_path, kind, channels):
    # JPEGs too small to be reduced are decoded by torchvision's libjpeg-turbo when plain (YCbCr or grey), by PIL
    # otherwise: every pixel as zoo's one decoder (PIL) gives it
    from PIL import Image

    w, h = (397, 251) if kind == "odd-size" else (400, 300)
    base = Image.open(photo(tmp_path / "base.png", w, h, fmt="PNG"))
    options = {
        "4:2:0": {"subsampling": 2}, "4:4:4": {"subsampling": 0}, "4:2:2": {"subsampling": 1},
        "progressive": {"progressive": True}, "restart-markers": {"restart_marker_rows": 1},
    }.get(kind, {})  # fmt: skip
    image = base.convert("L") if kind == "grey" else base.convert("CMYK") if kind == "cmyk" else base
    p = tmp_path / "a.jpg"
    image.save(p, "JPEG", quality=90, **options)
    ours = read_scaled(p, channels, 256, full)  # 300 px: no scale reduces it
    assert ours.shape == (channels, h, w)
    assert torch.equal(ours, read_image_file(p, channels))


def test_a_broken_jpeg_gets_the_full_decoders_error(tmp_path):
    good = photo(tmp_path / "good.jpg").read_bytes()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good[:200])  # the header survives, the scan does not
    with pytest.raises(DatasetFormatError, match="bad.jpg"):
        read_scaled(bad, 3, 73, full)


def test_image_files_decode_jpegs_reduced(tmp_path):
    p = photo(tmp_path / "a.jpg")
    x, label = ImageFiles([p], [4], 73, 3)[0]
    assert label == 4 and x.shape == (3, 73, 73)
    assert torch.equal(x, fit_square(read_scaled(p, 3, 73, full), 73))


def planar_crops(images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """The reference: each crop resized in the planar layout, as torchvision's uint8 resize of a C x H x W crop."""
    out = []
    for img, (t, left, h, w), f in zip(images, boxes.tolist(), flip.tolist()):
        crop = img[None, :, t : t + h, left : left + w].contiguous()
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
        out.append(crop.flip(-1) if f else crop)
    return torch.stack(out)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("channels", [3, 1])
def test_cpu_crops_equal_the_planar_resize_in_either_layout(channels, channels_last):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, channels, 40, 40), dtype=torch.uint8, generator=g)
    boxes = random_boxes(6, 40, g)
    flip = torch.rand(6, generator=g) < 0.5
    ref = planar_crops(images, boxes, flip, 35)
    out = resized_crops(images, boxes, flip, 35, channels_last)
    assert torch.equal(out, ref)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    one = [resized_crop(im, b, f, 35, channels_last) for im, b, f in zip(images, boxes, flip)]
    assert torch.equal(torch.stack(one), ref)
