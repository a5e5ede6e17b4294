"""Image tensors: resizing, channel conversion, statistics, and decoding image files (shared by image folders
and ``zoo.predict``, so that a new image is prepared exactly as the training images were).

Image files are resized to cover the target size with their aspect ratio kept, then centre-cropped to it
(``resize_crop``), as torchvision's ``Resize`` + ``CenterCrop`` evaluation transform does: a 640 x 480 photo becomes
a 32 x 32 crop of its middle, not a squashed whole.

One decoder (``open_image``, ``read_image``) reads every image file zoo reads, in memory, in the cache, streaming
and in ``predict``, with one behaviour (as torchvision's ``ImageFolder`` and timm's loaders, which ``convert`` with
PIL): the first frame of an animated image; 16-bit samples scaled to 8 bits by their high byte (as Pillow does for
16-bit colour and torchvision's ``to_dtype(..., scale=True)``), never clipped; palette, CMYK and other modes
converted by PIL; an alpha channel dropped (not composited); the EXIF orientation *not* applied (the pixels as
stored, as ``ImageFolder`` gives them). Bounds come before allocation: a non-regular file (a FIFO, a device) is
refused before it is opened, the header is read before any pixel (Pillow's decompression-bomb limit), a file is
never read whole to find out it is not an image, and a resize of an extreme aspect ratio keeps only the middle that
its centre crop can use (``MAX_ASPECT``).
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data.formats import DatasetFormatError
from zoo.data.types import DatasetOptionError
from zoo.inputs import MAX_IMAGE_SIDE
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
    "ImageFileError",
    "MAX_ASPECT",
    "check_image_file",
    "as_mode",
    "open_image",
    "read_image",
    "bounded_box",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
MAX_ASPECT = 16  # a resize keeps at most this many times the target's aspect ratio; beyond, only the middle
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # PIL's modes of 16-bit (and 32-bit integer) grey


class ImageFileError(DatasetFormatError):
    """An image file that cannot be read, in one line.

    Raised in a DataLoader worker, torch re-raises it in the main process with its own message ("Caught
    ImageFileError in DataLoader worker process 0. Original Traceback ..."): that is cut back to zoo's line."""

    def __init__(self, message: Any = "") -> None:
        text = str(message)
        if text.startswith("Caught ") and "Original Traceback" in text:
            last = [line for line in text.strip().splitlines() if line.strip()][-1]
            name, sep, rest = last.partition(": ")
            text = rest if sep and name.rsplit(".", 1)[-1] == type(self).__name__ else text
        super().__init__(text)


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


def image_error(path: Path | str, exc: BaseException) -> DatasetFormatError:
    """One line for an image file that cannot be read: a refused decompression bomb, or why decoding failed."""
    from PIL import Image

    if isinstance(exc, ImageFileError):
        return exc
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageFileError(
            f"{path}: refused as a possible decompression bomb ({str(exc).rstrip('.')}); images may have at most "
            f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS:,} pixels: shrink the image or leave it out"
        )
    return ImageFileError(f"{path}: cannot read image ({exception_line(exc)})")


# --------------------------------------------------------------------------------------------------------------------
# The one decoder


def check_image_file(path: Path) -> None:
    """Refuse, before opening it, what is not a regular file: a FIFO would block ``open`` forever, a device never
    ends. ``FileNotFoundError`` for a missing file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such image file") from None
    except OSError as exc:
        raise ImageFileError(f"{path}: cannot read image ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise ImageFileError(f"{path}: not a regular file (it is {kind}); images are read from regular files only")


def as_mode(im: Any, channels: int) -> Any:
    """A PIL image as ``"L"`` (``channels`` 1) or ``"RGB"`` (3), with zoo's one behaviour: 16-bit grey scaled by
    its high byte (``convert`` would clip it white), palette transparency and alpha dropped, CMYK and the other
    modes converted by PIL. The first frame of an animated image is the one ``Image.open`` gives."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    if im.mode in _SIXTEEN_BIT:  # high byte, as Pillow reads 16-bit colour and torchvision's to_dtype scales
        arr = np.asarray(im).astype(np.int64).clip(0, 65535) >> 8
        im = Image.fromarray(arr.astype(np.uint8), "L")
    elif im.mode == "P" and "transparency" in im.info:  # convert("RGB") warns for a palette's alpha: drop it
        im = im.convert("RGBA")
    return im if im.mode == mode else im.convert(mode)


def open_image(source: str | os.PathLike | bytes, channels: int) -> Any:
    """The decoded first frame of an image file (a path, or its bytes) as a PIL image in ``"L"`` or ``"RGB"``.

    Only the header is read before the size is checked (Pillow's decompression-bomb limit, refused, never raised),
    and Pillow reads what it decodes, so a large file that is not an image is not read whole. Any failure is a
    one-line ``ImageFileError`` naming the file; a missing file is a ``FileNotFoundError``."""
    from PIL import Image

    name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    if name == "<bytes>":
        fp: Any = io.BytesIO(source)  # type: ignore[arg-type]
    else:
        fp = Path(source)  # type: ignore[arg-type]
        check_image_file(fp)
    try:
        with bombs_refused(), Image.open(fp) as im:
            out = as_mode(im, channels)
            out.load()  # decoded before the file closes
            return out
    except Exception as exc:  # a broken file can make a Pillow plugin raise almost anything
        raise image_error(name, exc) from None


def read_image(source: str | os.PathLike | bytes, channels: int) -> torch.Tensor:
    """``open_image`` as a uint8 ``channels`` x H x W tensor: the entry point of every image file zoo decodes."""
    arr = np.asarray(open_image(source, channels), dtype=np.uint8)
    return torch.from_numpy(arr.reshape(arr.shape[0], arr.shape[1], channels).copy()).permute(2, 0, 1)


def bounded_box(width: int, height: int, target_w: int, target_h: int) -> tuple[int, int, int, int] | None:
    """The middle of a ``width`` x ``height`` image that a resize covering ``target_w`` x ``target_h`` and its
    centre crop can use, when the image's aspect ratio is over ``MAX_ASPECT`` times the target's; else ``None``.

    A 1 x 3,000,000 px strip resized to cover 32 x 32 would be 32 x 96,000,000 px (GBs) for a 32 x 32 crop: its
    middle ``MAX_ASPECT`` times the target's aspect ratio is resized instead (the crop differs from the exact one
    by the resize's rounding only)."""
    if width * target_h > MAX_ASPECT * height * target_w:  # too wide
        keep = min(width, -(-MAX_ASPECT * height * target_w // target_h))
        left = (width - keep) // 2
        return left, 0, left + keep, height
    if height * target_w > MAX_ASPECT * width * target_h:  # too tall
        keep = min(height, -(-MAX_ASPECT * width * target_h // target_w))
        top = (height - keep) // 2
        return 0, top, width, top + keep
    return None


def resize_crop(im, size: tuple[int, int], resample: int | None = None):
    """A PIL image resized, aspect ratio kept, just enough to cover ``size`` = (H, W), then centre-cropped to it:
    for a square size, torchvision's ``Resize(size)`` then ``CenterCrop(size)``, with their rounding.

    ``resample``: a ``PIL.Image.Resampling`` filter (default bilinear; PIL antialiases when shrinking)."""
    from PIL import Image

    h, w = size
    box = bounded_box(*im.size, w, h)
    im = im.crop(box) if box is not None else im
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
    if isinstance(size, int) and (box := bounded_box(*im.size, 1, 1)) is not None:
        im = im.crop(box)
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
    """Decode (``open_image``), resize and centre-crop image files (``resize_crop``): uint8 N x C x size x size in
    ``mode`` ("L" or "RGB").

    A file that is not an image, is broken, is not a regular file or is over Pillow's decompression-bomb limit gives
    a one-line ``DatasetFormatError`` naming it.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_IMAGE_SIDE:
        raise DatasetOptionError(
            f"image folder: img_size={size!r} is outside 1..{MAX_IMAGE_SIDE} px (zoo's limit: one 3 x {MAX_IMAGE_SIDE} "
            f"px square is {3 * MAX_IMAGE_SIDE**2 / 2**20:,.0f} MiB); pass a smaller img_size"
        )
    c = 1 if mode == "L" else 3
    out = torch.empty((len(paths), c, size, size), dtype=torch.uint8)
    for i, p in enumerate(paths):
        im = resize_crop(open_image(p, c), (size, size))
        out[i] = torch.from_numpy(np.array(im, dtype=np.uint8).reshape(size, size, c)).permute(2, 0, 1)
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
                check_image_file(p)  # a FIFO would block Image.open
                with Image.open(p) as im:
                    if im.mode not in ("L", "1", "LA", *_SIXTEEN_BIT):
                        return "RGB"
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise image_error(p, exc) from None
            except Exception:  # ImageFileError too: read_images names the file
                continue
    return "L"
