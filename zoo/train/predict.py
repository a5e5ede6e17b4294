"""``zoo.predict``: run a trained model on new inputs, prepared exactly as its training inputs were.

``fit`` leaves a record of the data on the model (``model.zoo_config["data"]``: input size and dtype, mean/std,
class names, task; ``resize``/``crop`` when the data came through a torchvision transform pipeline), and
checkpoints keep it, so a model from ``zoo.load(path)`` in a fresh process can classify a photo. A model created
with published weights (``zoo.create("googlenet", weights="DEFAULT")``) and not trained since is prepared as those
weights were evaluated (its ``pretrained_cfg``: resize, centre crop, interpolation, mean/std, ImageNet's class
names):

    model = zoo.load("runs/train/model.safetensors")
    zoo.predict(model, "cat.png", topk=3)
    # [{"label": "cat", "index": 3, "probability": 0.93, "topk": [("cat", 0.93), ...], "path": "cat.png"}]

Image files and PIL images are decoded as zoo's image folders decode them (``zoo.data.images.read_images``: PIL
``convert`` to "L" or "RGB", then a bilinear resize covering the input size, aspect ratio kept, and a centre crop),
or, for a torchvision pipeline or published weights, resized (short side) and centre-cropped as ``Resize`` and
``CenterCrop`` do, with the recorded interpolation; then scaled to [0, 1] and normalised with the
recorded mean and std. uint8 tensors are resized if their size differs, then scaled and normalised the same way;
float tensors are taken as already prepared.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.data.images import IMAGE_EXTENSIONS, bombs_refused, image_error, resize_crop, resize_images
from zoo.train.devices import resolve_device
from zoo.train.evaluate import preprocessing_record
from zoo.train.state import unwrap
from zoo.train.tasks import logits_of

__all__ = ["predict", "Preprocessing"]

ACCEPTED = (
    f"accepted: image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...), folders of them, PIL images, a list of these, "
    "uint8 image tensors (C x H x W, N x C x H x W, or H x W / N x H x W for grey) or a float batch (used as given)"
)
_warned: weakref.WeakSet[nn.Module] = weakref.WeakSet()  # models already warned about a missing record


@dataclass
class Preprocessing:
    """How a model's inputs are prepared: read from its data record (``Preprocessing.of(model)``).

    ``chans``/``size`` describe images (C and H x W); ``features`` a tabular model's input width. ``scaling`` is
    ``"zoo"`` for zoo's uint8 pipeline (``x * 1/(255 std) - mean/std``, as the engine computes it) or
    ``"torchvision"`` (``x / 255``, then ``(x - mean) / std``, as ``ToTensor`` and ``Normalize`` do).
    ``interpolation`` is the resize filter, ``"bilinear"`` or ``"bicubic"`` (EfficientNet's weights).
    """

    chans: int | None = None
    size: tuple[int, int] | None = None
    features: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scaling: str = "zoo"
    resize: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    interpolation: str = "bilinear"
    task: str | None = None
    classes: list[str] | None = None
    recorded: bool = True

    @classmethod
    def of(cls, model: nn.Module) -> Preprocessing:
        record = preprocessing_record(model)
        if not record:
            return cls._guess(model)
        size = [int(v) for v in record.get("input_size") or []]
        scaling = "zoo" if record.get("input_dtype") == "uint8" else "torchvision"
        prep = cls(
            mean=tuple(float(v) for v in record["mean"]) if record.get("mean") else None,
            std=tuple(float(v) for v in record["std"]) if record.get("std") else None,
            scaling=record.get("scaling") if record.get("scaling") in ("zoo", "torchvision") else scaling,
            interpolation="bicubic" if record.get("interpolation") == "bicubic" else "bilinear",
            task=record.get("task"),
            classes=[str(c) for c in record["classes"]] if record.get("classes") else None,
        )
        if len(size) == 3:
            prep.chans, prep.size = size[0], (size[1], size[2])
        elif len(size) == 1:
            prep.features = size[0]
        resize = record.get("resize")
        if resize is not None:
            prep.resize = int(resize) if isinstance(resize, int) else (int(resize[0]), int(resize[-1]))
        if record.get("crop") is not None:
            crop = record["crop"]
            prep.crop = (int(crop), int(crop)) if isinstance(crop, int) else (int(crop[0]), int(crop[-1]))
        return prep

    @classmethod
    def _guess(cls, model: nn.Module) -> Preprocessing:
        """No record: images scaled to [0, 1], resized to the ``img_size`` the model was created with."""
        cfg = getattr(model, "zoo_config", None)
        kwargs = cfg.get("kwargs", {}) if isinstance(cfg, dict) else {}
        prep = cls(scaling="torchvision", recorded=False)
        img_size = kwargs.get("img_size")
        if isinstance(img_size, int):
            prep.size = (img_size, img_size)
        elif isinstance(img_size, (tuple, list)) and len(img_size) == 2:
            prep.size = (int(img_size[0]), int(img_size[1]))
        if kwargs.get("in_chans") in (1, 3):
            prep.chans = int(kwargs["in_chans"])
        else:
            conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
            prep.chans = conv.in_channels if conv is not None and conv.in_channels in (1, 3) else None
        return prep

    @property
    def mode(self) -> str:
        return "L" if self.chans == 1 else "RGB"

    # ----------------------------------------------------------------------------------------------------------------
    # PIL images -> uint8 C x H x W

    def image(self, im: Any) -> torch.Tensor:
        """A PIL image, converted and resized as the training images were: uint8 C x H x W."""
        from PIL import Image

        if self.features is not None:
            raise ValueError(
                f"predict: the model takes {self.features} features per sample, not images; pass a float tensor "
                f"N x {self.features}"
            )
        im = im.convert(self.mode)
        resample = Image.Resampling.BICUBIC if self.interpolation == "bicubic" else Image.Resampling.BILINEAR
        if self.resize is not None or self.crop is not None:
            if self.resize is not None:
                im = _tv_resize(im, self.resize, resample)
            if self.crop is not None:
                im = _center_crop(im, self.crop)
        elif self.size is not None:  # exactly zoo.data.images.read_images
            im = resize_crop(im, self.size, resample)
        w, h = im.size
        arr = np.array(im, dtype=np.uint8).reshape(h, w, 1 if self.mode == "L" else 3)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    # ----------------------------------------------------------------------------------------------------------------
    # tensors

    def uint8_batch(self, x: torch.Tensor) -> torch.Tensor:
        """A uint8 image tensor in any accepted layout -> uint8 N x C x H x W at the model's size."""
        shape = tuple(x.shape)
        if self.features is not None:
            raise ValueError(
                f"predict: the model takes {self.features} features per sample, not uint8 images {shape}; pass a "
                f"float tensor N x {self.features}"
            )
        if x.ndim == 2:  # H x W
            x = x[None, None]
        elif x.ndim == 3:  # C x H x W, or N x H x W for a grey model
            x = x[:, None] if self.chans == 1 and x.shape[0] != 1 else x[None]
        elif x.ndim != 4:
            raise ValueError(f"predict: a uint8 tensor of shape {shape} is not images; {ACCEPTED}")
        c = x.shape[1]
        if self.chans is not None and c != self.chans:
            raise ValueError(
                f"predict: a uint8 tensor of shape {shape} has {c} channels, the model takes {self.chans}-channel "
                f"images ({self.chans} x H x W or N x {self.chans} x H x W)"
            )
        if c not in (1, 3) and self.chans is None:
            raise ValueError(f"predict: a uint8 tensor of shape {shape} has {c} channels; expected 1 or 3")
        size = self.size or self.crop
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = x.cpu()
            if size[0] == size[1]:
                x = resize_images(x, size[0])
            else:
                y = F.interpolate(
                    x.float(), size=size, mode="bilinear", align_corners=False, antialias=min(size) < min(x.shape[-2:])
                )
                x = y.round_().clamp_(0, 255).to(torch.uint8)
        return x

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W -> float32, scaled and normalised as in training."""
        c = x.shape[1]
        if self.mean is None or self.std is None:
            return x.float().div_(255)
        mean, std = _per_channel(self.mean, c), _per_channel(self.std, c)
        if self.scaling == "zoo":  # the engine's (x / 255 - mean) / std = x * scale + shift
            scale = torch.tensor([1 / (255 * s) for s in std], device=x.device).view(1, c, 1, 1)
            shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=x.device).view(1, c, 1, 1)
            return x.float().mul_(scale).add_(shift)
        m = torch.tensor(mean, device=x.device).view(1, c, 1, 1)
        s = torch.tensor(std, device=x.device).view(1, c, 1, 1)
        return x.float().div_(255).sub_(m).div_(s)

    def float_batch(self, x: torch.Tensor) -> torch.Tensor:
        """A float tensor, used as given; one sample (the model's input shape) gets a batch dimension."""
        shape = tuple(x.shape)
        if self.features is not None:
            if x.ndim == 1:
                x = x[None]
            if x.shape[-1] != self.features:
                raise ValueError(
                    f"predict: a float tensor of shape {shape}; the model takes {self.features} features per sample "
                    f"(N x {self.features})"
                )
            return x
        if self.chans is not None:
            if x.ndim == 3:
                x = x[None]
            if x.ndim != 4 or x.shape[1] != self.chans:
                raise ValueError(
                    f"predict: a float tensor of shape {shape}; the model takes {self.chans}-channel images "
                    f"(N x {self.chans} x H x W, already scaled and normalised)"
                )
        elif x.ndim == 0:
            raise ValueError(f"predict: a float scalar is not a batch; {ACCEPTED}")
        return x


def _per_channel(values: tuple[float, ...], c: int) -> tuple[float, ...]:
    if len(values) == c:
        return values
    if len(values) == 1:
        return values * c
    raise ValueError(f"predict: the model's record has {len(values)} mean/std values for {c}-channel images")


def _tv_resize(im: Any, size: int | tuple[int, int], resample: int) -> Any:
    """torchvision's ``Resize(size)`` on a PIL image: an int sets the short side (aspect kept), a pair (h, w)."""
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


def _center_crop(im: Any, size: tuple[int, int]) -> Any:
    """torchvision's ``CenterCrop((h, w))`` on a PIL image (zero-padded when the image is smaller)."""
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


# --------------------------------------------------------------------------------------------------------------------
# inputs -> items


def _is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _items(inputs: Any, top: bool = True) -> list[tuple[str, Any, str | None]]:
    """Each input as ``("image", PIL image or Path, path or None)`` or ``("uint8"|"float", tensor, None)``; files,
    folders and types are checked here, before any model work."""
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        if path.is_dir():
            files = _folder_images(path)
            if not files:
                raise ValueError(
                    f"predict: folder '{path}' holds no image files ({', '.join(IMAGE_EXTENSIONS)}, searched "
                    f"recursively)"
                )
            return [("image", p, str(p)) for p in files]
        if not path.exists():
            raise FileNotFoundError(f"predict: '{path}' does not exist; {ACCEPTED}")
        return [("image", path, str(path))]
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
            f"predict: a {str(inputs.dtype).replace('torch.', '')} tensor; images must be uint8 (0..255) and "
            f"prepared inputs floating point"
        )
    if top and isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ValueError(f"predict: no inputs (an empty list); {ACCEPTED}")
        return [item for x in inputs for item in _items(x, top=False)]
    raise TypeError(f"predict: cannot take a {type(inputs).__name__}; {ACCEPTED}")


def _open(ref: Any) -> Any:
    if not isinstance(ref, Path):
        return ref
    from PIL import Image

    try:
        with bombs_refused(), Image.open(ref) as im:
            return im.copy()  # decoded, and the file closed
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"predict: {image_error(ref, exc)}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(
            f"predict: '{ref}' is not an image file zoo can read ({str(exc).splitlines()[0][:120]}); {ACCEPTED}"
        ) from None


def _batches(
    items: list[tuple[str, Any, str | None]], prep: Preprocessing, batch_size: int
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
            yield prep.to_float(torch.stack([t for t, _ in run])), [p for _, p in run]

    for kind, value, path in items:
        if kind == "image":
            pending.append((prep.image(_open(value)), path))
            if len(pending) >= batch_size:
                yield from flush()
            continue
        yield from flush()
        if kind == "uint8":
            x = prep.uint8_batch(value)
            for chunk in x.split(batch_size):
                yield prep.to_float(chunk), [None] * len(chunk)
        else:
            x = prep.float_batch(value)
            for chunk in x.split(batch_size):
                yield chunk, [None] * len(chunk)
    yield from flush()


# --------------------------------------------------------------------------------------------------------------------
# outputs -> records


def _label(index: int, classes: list[str] | None) -> str | int:
    return classes[index] if classes is not None and 0 <= index < len(classes) else index


def _records(out: torch.Tensor, task: str, classes: list[str] | None, topk: int) -> list[dict[str, Any]]:
    out = out.detach().float().cpu()
    if task == "regression":
        flat = out.reshape(len(out), -1)
        return [{"output": float(r[0]) if r.numel() == 1 else [float(v) for v in r]} for r in flat]
    if out.ndim != 2:
        raise ValueError(
            f"predict: the model's output has shape {tuple(out.shape)}; a {task} model must give N x classes"
        )
    if task == "multilabel":
        probs = torch.sigmoid(out)
        records = []
        for row in probs.tolist():
            named = {_label(i, classes): float(p) for i, p in enumerate(row)}
            records.append({"labels": [k for k, p in named.items() if p > 0.5], "probabilities": named})
        return records
    probs = torch.softmax(out, dim=1)
    values, indices = probs.topk(min(topk, probs.shape[1]), dim=1)
    records = []
    for vals, idx in zip(values.tolist(), indices.tolist()):
        pairs = [(_label(i, classes), float(v)) for i, v in zip(idx, vals)]
        records.append({"label": pairs[0][0], "index": int(idx[0]), "probability": pairs[0][1], "topk": pairs})
    return records


def predict(
    model: nn.Module,
    inputs: Any,
    *,
    topk: int = 1,
    batch_size: int = 256,
    device: Any = None,
) -> list[dict[str, Any]]:
    """Run ``model`` on new inputs, prepared exactly as ``fit`` prepared its training data.

    Args:
        model: a model trained by ``zoo.fit`` (or loaded with ``zoo.load``): its ``zoo_config["data"]`` record
            says the input size, channels, mean/std, class names and task. A model without one is taken as a
            classifier of images scaled to [0, 1] (resized to the ``img_size`` it was created with), with a
            warning.
        inputs: a PIL image; a path (str or ``Path``) to an image file; a folder (its image files, sorted,
            searched recursively); a list of these; a uint8 image tensor (C x H x W or N x C x H x W; H x W or
            N x H x W for a grey model), resized when its size differs and then scaled and normalised; or a
            float tensor (a batch, or one sample), used as given: already prepared.
        topk: how many of the most likely classes each classification record lists.
        batch_size: samples per forward pass.
        device: where to run (``"cpu"``, ``"cuda"``, ``"auto"``, ...; the model is moved there); default: where
            the model's parameters are.

    Returns:
        One record per input sample, in order. Classification: ``{"label": class name (the index when the
        classes have no names), "index": int, "probability": float, "topk": [(label, probability), ...]}``
        (softmax); multi-label: ``{"labels": [names with probability > 0.5], "probabilities": {name: p}}``
        (sigmoid); regression: ``{"output": float, or a list for several outputs}``. Inputs given as paths add
        ``"path"``.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a file that is not an image, an empty folder, a tensor with the wrong channels or features.
    """
    if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
        raise ValueError(f"predict: topk must be a positive integer, got {topk!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"predict: batch_size must be a positive integer, got {batch_size!r}")
    model = unwrap(model)
    prep = Preprocessing.of(model)
    items = _items(inputs)
    if not prep.recorded and model not in _warned:
        _warned.add(model)
        warnings.warn(
            "predict: the model has no record of its training data (zoo.fit leaves one; zoo.load restores it), so "
            "no preprocessing is known: images are scaled to [0, 1]"
            + (f" and resized to {prep.size[0]}x{prep.size[1]}" if prep.size else "")
            + ", not normalised, and the outputs read as classes",
            UserWarning,
            stacklevel=2,
        )
    param = next(model.parameters(), None)
    home = param.device if param is not None else torch.device("cpu")
    dev = home if device is None else resolve_device(device)
    if dev != home:
        model.to(dev)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    records: list[dict[str, Any]] = []
    try:
        with torch.no_grad():
            for x, paths in _batches(items, prep, batch_size):
                out = logits_of(model(x.to(dev, dtype=dtype, non_blocking=True)))
                if isinstance(out, (tuple, list)):
                    out = out[0]
                task = prep.task or ("classification" if out.ndim == 2 and out.shape[1] > 1 else "regression")
                batch = _records(out, task, prep.classes, topk)
                for record, path in zip(batch, paths):
                    if path is not None:
                        record["path"] = path
                records.extend(batch)
    finally:
        model.train(was_training)
    return records
