"""JPEGs decoded at a reduced size: libjpeg's DCT scaling (1/2, 1/4 or 1/8 of each side), through PIL's ``draft``.

A photo much larger than the stored square (a 400 x 300 JPEG for 64-px models, stored at 73 px) need not be
decoded whole: libjpeg can skip the high frequencies of each 8 x 8 block and produce the image at a fraction of
its size directly, which saves the inverse transforms, the colour conversion and the resize of the pixels the
square would throw away. The scale is the smallest that keeps both sides at least the stored size, so the
antialiased resize that follows (``zoo.data.decode.fit_square``) still only shrinks, by less than 2x; the result
stays close to the full decode and resize (``tests/test_data_jpeg.py`` bounds the difference). torchvision's
decoders do not offer DCT scaling; PIL does. A plain JPEG too small to gain is decoded whole by torchvision's
libjpeg-turbo (the same pixels as PIL's, without its copies); any other file, or one that cannot be read, goes to
the full decoder (which also gives the one-line error for a broken file).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from zoo.data.images import as_mode, bombs_refused, check_image_file

__all__ = ["JPEG_MAGIC", "draft_scale", "read_scaled"]

JPEG_MAGIC = b"\xff\xd8\xff"  # SOI marker, then the first segment's marker
_MODES = {1: "L", 3: "RGB"}


def draft_scale(width: int, height: int, size: int) -> int:
    """The DCT scale (1, 2 or 4) for an image of ``width`` x ``height`` whose both sides must stay at least
    ``size``. Not 8: libjpeg's 1/8 keeps only each block's average (a box filter), visibly coarser (a mean
    difference of ~7/255 from the full decode and resize on noisy photos, against under 2/255 at 1/2 and 1/4)."""
    ratio = min(width // max(1, size), height // max(1, size))
    return 4 if ratio >= 4 else 2 if ratio >= 2 else 1


def read_scaled(
    path: str | os.PathLike, channels: int, size: int, fallback: Callable[[Path, int], torch.Tensor]
) -> torch.Tensor:
    """Decode an image file for a square of ``size``: uint8 ``channels`` x H x W with min(H, W) >= ``size`` when the
    file is larger; a JPEG at least twice ``size`` on both sides is decoded at a reduced scale.

    Args:
        path: the image file.
        channels: 1 (grey: libjpeg's luma, as torchvision's GRAY mode) or 3 (RGB).
        size: the stored square side the image is resized to next.
        fallback: the full decoder, ``fallback(path, channels)``, for everything this does not decode.
    """
    path = Path(path)
    check_image_file(path)  # a FIFO or a device is refused before it is opened (open would block or never end)
    try:
        arr = _decode_drafted(path, channels, size)
    except Exception:  # a broken or refused file: the full decoder says why, in zoo's words
        arr = None
    if arr is None:
        return fallback(path, channels)
    if isinstance(arr, torch.Tensor):
        return arr
    return torch.from_numpy(arr.reshape(arr.shape[0], arr.shape[1], channels)).permute(2, 0, 1)


def _decode_drafted(path: Path, channels: int, size: int) -> np.ndarray | torch.Tensor | None:
    """H x W (x C) uint8 pixels of a JPEG, decoded at its reduced scale when one fits (else whole, as the full
    decoder would, without opening the file again); None when the file is not a JPEG."""
    from PIL import Image

    with path.open("rb") as fh:
        if fh.read(3) != JPEG_MAGIC:
            return None
        fh.seek(0)
        with bombs_refused(), Image.open(fh) as im:
            if im.format != "JPEG":
                return None
            scale = draft_scale(*im.size, size)
            if scale == 1 and im.mode == _MODES[channels] and _whole_decoder() is not None:  # YCbCr or grey
                fh.seek(0)
                return _decode_whole(fh.read(), channels)
            if scale == 1:  # CMYK and the rest: what zoo.data.images.read_image gives, from the file already open
                return np.array(as_mode(im, channels), dtype=np.uint8)
            # PIL picks the largest scale s with both sides // request >= s: this request makes it ours
            im.draft(_MODES[channels], (im.size[0] // scale, im.size[1] // scale))
            return np.array(im.convert(_MODES[channels]), dtype=np.uint8)


@functools.cache
def _whole_decoder() -> Callable[..., torch.Tensor] | None:
    """torchvision's ``decode_jpeg``, or None where it is gone (torchvision 0.29 deprecates its decoders in favour
    of TorchCodec: without it, PIL decodes these JPEGs too, the same pixels, 0.3 ms slower each)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import decode_jpeg
    except ImportError:
        return None
    return decode_jpeg


def _decode_whole(data: bytes, channels: int) -> torch.Tensor:
    """A plain JPEG's bytes decoded by torchvision's libjpeg-turbo (the library PIL uses, with the same settings:
    the same pixels, ``tests/test_data_jpeg.py``) straight into a uint8 C x H x W tensor: 0.62 against 0.86 ms
    for a 400 x 300 photo through PIL's decoder and its copies into an array."""
    from torchvision.io import ImageReadMode

    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _whole_decoder()(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)  # type: ignore[misc]
