"""New inputs prepared as a model's ``InputRecord`` says, for ``zoo.predict`` and ``zoo.embed``.

Image files and PIL images are decoded as zoo's image folders decode them (``zoo.data.images.read_images``: PIL
``convert`` to "L" or "RGB", then a resize covering the input size, aspect ratio kept, and a centre crop), or, when
the record has a ``resize_size`` and ``crop_size`` (a torchvision pipeline, a cached image folder, published
weights), resized (shorter side) and centre-cropped as torchvision's ``Resize`` and ``CenterCrop`` do, with the
recorded interpolation; then scaled to [0, 1] and normalised with the recorded mean and std. uint8 tensors are
resized if their size differs, then scaled and normalised the same way; float tensors are taken as already prepared.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data.images import (
    IMAGE_EXTENSIONS,
    ImageFileError,
    as_mode,
    center_crop_image,
    open_image,
    resize_crop,
    resize_images,
    resize_short,
)
from zoo.inputs import InputRecord

__all__ = ["ACCEPTED", "input_items", "prepared_batches", "image_tensor", "uint8_batch", "float_batch", "scaled"]

ACCEPTED = (
    f"accepted: image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...), folders of them, PIL images, a list of these, "
    "uint8 image tensors (C x H x W, N x C x H x W, or H x W / N x H x W for grey) or a float batch (used as given)"
)
Item = tuple[str, Any, "str | None"]  # ("image", PIL image or Path, path) or ("uint8" | "float", tensor, None)


def _no_images(record: InputRecord, what: str, given: str) -> ValueError:
    f = record.features
    return ValueError(f"{what}: the model takes {f} features per sample, not {given}; pass a float tensor N x {f}")


def image_tensor(record: InputRecord, im: Any, what: str = "predict") -> torch.Tensor:
    """A PIL image, converted and resized as the model's inputs were: uint8 C x H x W."""
    from PIL import Image

    if record.features is not None:
        raise _no_images(record, what, "images")
    mode = "L" if record.channels == 1 else "RGB"
    im = as_mode(im, 1 if mode == "L" else 3)  # zoo's one decoder's conversion (16-bit, palette, alpha)
    resample = {"bicubic": Image.Resampling.BICUBIC, "nearest": Image.Resampling.NEAREST}.get(
        record.interpolation or "bilinear", Image.Resampling.BILINEAR
    )
    if record.resize_size is not None or record.crop_size is not None:
        if record.resize_size is not None:
            im = resize_short(im, record.resize_size, resample)
        if record.crop_size is not None:
            im = center_crop_image(im, record.crop_size)
    elif record.image_size is not None:  # exactly zoo.data.images.read_images
        im = resize_crop(im, record.image_size, resample)
    w, h = im.size
    arr = np.array(im, dtype=np.uint8).reshape(h, w, 1 if mode == "L" else 3)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def uint8_batch(record: InputRecord, x: torch.Tensor, what: str = "predict") -> torch.Tensor:
    """A uint8 image tensor in any accepted layout -> uint8 N x C x H x W at the model's size."""
    shape, chans = tuple(x.shape), record.channels
    if record.features is not None:
        raise _no_images(record, what, f"uint8 images {shape}")
    if x.ndim == 2:  # H x W
        x = x[None, None]
    elif x.ndim == 3:  # C x H x W, or N x H x W for a grey model
        x = x[:, None] if chans == 1 and x.shape[0] != 1 else x[None]
    elif x.ndim != 4:
        raise ValueError(f"{what}: a uint8 tensor of shape {shape} is not images; {ACCEPTED}")
    c = x.shape[1]
    if chans is not None and c != chans:
        raise ValueError(
            f"{what}: a uint8 tensor of shape {shape} has {c} channels, the model takes {chans}-channel images "
            f"({chans} x H x W or N x {chans} x H x W)"
        )
    if c not in (1, 3) and chans is None:
        raise ValueError(f"{what}: a uint8 tensor of shape {shape} has {c} channels; expected 1 or 3")
    size = record.image_size or record.crop_size
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = x.cpu()
        if size[0] == size[1]:
            return resize_images(x, size[0])
        shrink = min(size) < min(x.shape[-2:])
        y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=shrink)
        x = y.round_().clamp_(0, 255).to(torch.uint8)
    return x


def scaled(record: InputRecord, x: torch.Tensor, what: str = "predict") -> torch.Tensor:
    """uint8 N x C x H x W -> float32 in [0, 1], normalised with the record's mean/std as the engine does it
    (``x * 1/(255 std) - mean/std``)."""
    if record.mean is None or record.std is None:
        return x.float().div_(255)
    c = x.shape[1]
    mean, std = _per_channel(record.mean, c, what), _per_channel(record.std, c, what)
    scale = torch.tensor([1 / (255 * s) for s in std], device=x.device).view(1, c, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=x.device).view(1, c, 1, 1)
    return x.float().mul_(scale).add_(shift)


def _per_channel(values: tuple[float, ...], c: int, what: str) -> tuple[float, ...]:
    if len(values) == c:
        return values
    if len(values) == 1:
        return values * c
    raise ValueError(f"{what}: the model's record has {len(values)} mean/std values for {c}-channel images")


def float_batch(record: InputRecord, x: torch.Tensor, what: str = "predict") -> torch.Tensor:
    """A float tensor, used as given; one sample (the model's input shape) gets a batch dimension."""
    shape, chans, features = tuple(x.shape), record.channels, record.features
    if features is not None:
        x = x[None] if x.ndim == 1 else x
        if x.shape[-1] != features:
            raise ValueError(
                f"{what}: a float tensor of shape {shape}; the model takes {features} features per sample "
                f"(N x {features})"
            )
        return x
    if chans is not None:
        x = x[None] if x.ndim == 3 else x
        if x.ndim != 4 or x.shape[1] != chans:
            raise ValueError(
                f"{what}: a float tensor of shape {shape}; the model takes {chans}-channel images "
                f"(N x {chans} x H x W, already scaled and normalised)"
            )
    elif x.ndim == 0:
        raise ValueError(f"{what}: a float scalar is not a batch; {ACCEPTED}")
    return x


# --------------------------------------------------------------------------------------------------------------------
# inputs -> items -> batches


def _is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def _path_items(path: Path, what: str) -> list[Item]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise ValueError(
                f"{what}: folder '{path}' holds no image files ({', '.join(IMAGE_EXTENSIONS)}, searched recursively)"
            )
        return [("image", p, str(p)) for p in files]
    if not path.exists():
        raise FileNotFoundError(f"{what}: '{path}' does not exist; {ACCEPTED}")
    return [("image", path, str(path))]


def input_items(inputs: Any, what: str = "predict", top: bool = True) -> list[Item]:
    """Each input as ``("image", PIL image or Path, path or None)`` or ``("uint8"|"float", tensor, None)``; files,
    folders and types are checked here, before any model work."""
    if isinstance(inputs, (str, os.PathLike)):
        return _path_items(Path(inputs), what)
    if _is_pil(inputs):
        return [("image", inputs, None)]
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(np.ascontiguousarray(inputs))
    if isinstance(inputs, torch.Tensor):
        if inputs.dtype == torch.uint8:
            return [("uint8", inputs, None)]
        if inputs.is_floating_point():
            return [("float", inputs, None)]
        raise ValueError(
            f"{what}: a {str(inputs.dtype).replace('torch.', '')} tensor; images must be uint8 (0..255) and "
            f"prepared inputs floating point"
        )
    if top and isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ValueError(f"{what}: no inputs (an empty list); {ACCEPTED}")
        return [item for x in inputs for item in input_items(x, what, top=False)]
    raise TypeError(f"{what}: cannot take a {type(inputs).__name__}; {ACCEPTED}")


def _open(ref: Any, what: str, channels: int) -> Any:
    if not isinstance(ref, Path):
        return ref
    try:
        return open_image(ref, channels)  # zoo's one decoder: a FIFO is refused before it is opened
    except ImageFileError as exc:
        cause = str(exc).removeprefix(f"{ref}: ")
        raise ValueError(f"{what}: '{ref}' is not an image file zoo can read ({cause}); {ACCEPTED}") from None


def prepared_batches(
    items: list[Item], record: InputRecord, batch_size: int, what: str = "predict"
) -> Iterator[tuple[torch.Tensor, list[str | None]]]:
    """Prepared float batches (on the CPU) and the path of each sample, in input order."""
    pending: list[tuple[torch.Tensor, str | None]] = []

    def flush() -> Iterator[tuple[torch.Tensor, list[str | None]]]:
        while pending:  # consecutive images of one size make a batch (a short-side resize may vary the size)
            shape = pending[0][0].shape
            n = 1
            while n < len(pending) and pending[n][0].shape == shape:
                n += 1
            run, pending[:] = pending[:n], pending[n:]
            yield scaled(record, torch.stack([t for t, _ in run]), what), [p for _, p in run]

    for kind, value, path in items:
        if kind == "image":
            pending.append((image_tensor(record, _open(value, what, record.channels or 3), what), path))
            if len(pending) >= batch_size:
                yield from flush()
            continue
        yield from flush()
        if kind == "uint8":
            for chunk in uint8_batch(record, value, what).split(batch_size):
                yield scaled(record, chunk, what), [None] * len(chunk)
        else:
            for chunk in float_batch(record, value, what).split(batch_size):
                yield chunk, [None] * len(chunk)
    yield from flush()
