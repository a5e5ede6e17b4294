"""Image tensors: resizing, channel conversion, statistics, and decoding image files (shared by image folders
and ``zoo.predict``, so that a new image is prepared exactly as the training images were).

Image files are resized to cover the target size with their aspect ratio kept, then centre-cropped to it
(``resize_crop``), as torchvision's ``Resize`` + ``CenterCrop`` evaluation transform does: a 640 x 480 photo becomes
a 32 x 32 crop of its middle, not a squashed whole.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data.formats import DatasetFormatError
from zoo.messages import exception_line

__all__ = [
    "IMAGE_EXTENSIONS",
    "resize_images",
    "convert_channels",
    "channel_stats",
    "read_images",
    "resize_short",
    "center_crop_image",
    "resize_crop",
    "image_mode",
    "bombs_refused",
    "image_error",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def resize_images(images: torch.Tensor, size: int, chunk: int = 2048) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 N x C x size x size, bilinear (antialiased when shrinking), in chunks."""
    n, c, h, w = images.shape
    if h == size and w == size:
        return images
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    chunk = max(1, min(chunk, (1 << 24) // (c * max(size, h) * max(size, w))))  # <= 64 MB of float32 at a time
    for i in range(0, n, chunk):
        x = images[i : i + chunk].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < min(h, w))
        out[i : i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def convert_channels(images: torch.Tensor, in_chans: int) -> torch.Tensor:
    c = images.shape[1]
    if c == in_chans:
        return images
    if c == 1 and in_chans == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and in_chans == 1:  # ITU-R 601 luma, as PIL's convert("L")
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {c}-channel images to in_chans={in_chans}; accepted: 1 or 3")


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units."""
    x = images[:: max(1, len(images) // 20000)]  # a strided sample of <= ~20k images is plenty
    n, c, h, w = x.shape
    total, squares = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
    step = max(1, (1 << 22) // (c * h * w))
    for i in range(0, n, step):
        chunk = x[i : i + step].double().div_(255)
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square_().sum(dim=(0, 2, 3))
    count = n * h * w
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-6).sqrt()
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


@contextmanager
def bombs_refused() -> Iterator[None]:
    """Pillow's decompression-bomb warning (an image over ``PIL.Image.MAX_IMAGE_PIXELS``) raised as an error.

    Above twice the limit Pillow raises; between the limit and twice it, it only warns and decodes anyway, up to
    half a gigabyte per image. zoo refuses both, and never raises the limit itself.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def image_error(path: Path, exc: BaseException) -> DatasetFormatError:
    """One line for an image file that cannot be read: a refused decompression bomb, or why decoding failed."""
    from PIL import Image

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return DatasetFormatError(
            f"{path}: refused as a possible decompression bomb ({str(exc).rstrip('.')}); images may have at most "
            f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS:,} pixels: shrink the image or leave it out"
        )
    return DatasetFormatError(f"{path}: cannot read image ({exception_line(exc)})")


def resize_crop(im, size: tuple[int, int], resample: int | None = None):
    """A PIL image resized, aspect ratio kept, just enough to cover ``size`` = (H, W), then centre-cropped to it:
    for a square size, torchvision's ``Resize(size)`` then ``CenterCrop(size)``, with their rounding.

    ``resample``: a ``PIL.Image.Resampling`` filter (default bilinear; PIL antialiases when shrinking)."""
    from PIL import Image

    h, w = size
    width, height = im.size
    if width * h <= height * w:  # relatively taller than the target: the width fits, the height is cropped
        new_w, new_h = w, max(h, int(w * height / width))
    else:
        new_w, new_h = max(w, int(h * width / height)), h
    if (new_w, new_h) != (width, height):
        im = im.resize((new_w, new_h), Image.Resampling.BILINEAR if resample is None else resample)
    top, left = int(round((new_h - h) / 2.0)), int(round((new_w - w) / 2.0))
    return im.crop((left, top, left + w, top + h))


def resize_short(im, size: int | tuple[int, int], resample: int):
    """torchvision's ``Resize(size)`` on a PIL image: an int sets the shorter side (aspect kept), a pair (H, W)."""
    w, h = im.size
    if isinstance(size, int):
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    else:
        new_h, new_w = size
    if (new_w, new_h) == (w, h):
        return im
    return im.resize((new_w, new_h), resample)


def center_crop_image(im, size: tuple[int, int]):
    """torchvision's ``CenterCrop((H, W))`` on a PIL image (zero-padded where the image is smaller)."""
    from PIL import Image

    ch, cw = size
    w, h = im.size
    if cw > w or ch > h:
        left, top = ((cw - w) // 2 if cw > w else 0), ((ch - h) // 2 if ch > h else 0)
        canvas = Image.new(im.mode, (max(w, cw), max(h, ch)), 0)
        canvas.paste(im, (left, top))
        im, (w, h) = canvas, canvas.size
        if (w, h) == (cw, ch):
            return im
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return im.crop((left, top, left + cw, top + ch))


def read_images(paths: list[Path], size: int, mode: str) -> torch.Tensor:
    """Decode, convert to ``mode`` ("L" or "RGB"), resize and centre-crop image files (``resize_crop``): uint8
    N x C x size x size.

    A file that is not an image, is broken, or is over Pillow's decompression-bomb limit gives a one-line
    ``DatasetFormatError`` naming it.
    """
    from PIL import Image

    c = 1 if mode == "L" else 3
    out = torch.empty((len(paths), c, size, size), dtype=torch.uint8)
    with bombs_refused():
        for i, p in enumerate(paths):
            try:
                with Image.open(p) as im:
                    im = resize_crop(im.convert(mode), (size, size))
                    arr = np.array(im, dtype=np.uint8)  # a writable copy
            except Exception as exc:  # a broken file can make a Pillow plugin raise almost anything
                raise image_error(p, exc) from None
            out[i] = torch.from_numpy(arr.reshape(size, size, c)).permute(2, 0, 1)
    return out


def image_mode(paths: list[Path]) -> str:
    """'L' when every image (of a sample of up to 64) is greyscale, else 'RGB'.

    Only headers are read; a file that cannot be opened is skipped here (``read_images`` names it), but one over
    the decompression-bomb limit is refused at once.
    """
    from PIL import Image

    step = max(1, len(paths) // 64)
    with bombs_refused():
        for p in paths[::step]:
            try:
                with Image.open(p) as im:
                    if im.mode not in ("L", "1", "I", "I;16", "LA"):
                        return "RGB"
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise image_error(p, exc) from None
            except Exception:
                continue
    return "L"
