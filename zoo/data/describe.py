"""What can be told of the data a user holds: ``as_source`` (tensors, arrays, torch Datasets and DataLoaders as zoo
holds them), ``source_len``, ``source_record`` (an ``InputRecord`` read without iterating), and ``channel_tuple``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from zoo.data.imagesplit import ImageSplit
from zoo.data.types import Split, is_dataset, is_split
from zoo.inputs import InputRecord

__all__ = ["ACCEPTED", "as_source", "source_len", "source_labels", "source_record", "channel_tuple"]

ACCEPTED = (
    "a zoo Dataset (zoo.load_dataset) or Split, an (inputs, targets) pair of tensors or numpy arrays, "
    "a torch.utils.data.Dataset, IterableDataset or DataLoader"
)


def channel_tuple(value: float | Sequence[float], channels: int, what: str) -> tuple[float, ...]:
    values = (float(value),) if isinstance(value, int | float) else tuple(float(v) for v in value)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ValueError(f"{what} has {len(values)} values for {channels}-channel images")
    return values


def _tensor(value: Any, what: str, role: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{what}: {role} is a numpy array of Python objects; expected numbers")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{what}: {role} is a {type(value).__name__}; expected a tensor or a numpy array")


def as_source(data: Any, what: str = "fit") -> Split | torch.utils.data.Dataset | torch.utils.data.DataLoader:
    """One piece of data as zoo holds it: a ``Split`` (whole tensors), a torch ``Dataset`` or a ``DataLoader``.

    ``(inputs, targets)`` tensors or numpy arrays become a ``Split``: N x H x W uint8 images gain a channel axis,
    float64 becomes float32 (the dtype of model weights), integer targets int64. Raises a one-line ``TypeError`` /
    ``ValueError`` for anything else, naming what is accepted.
    """
    if is_split(data):
        return data
    if isinstance(data, (torch.utils.data.DataLoader, torch.utils.data.Dataset)):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and not is_dataset(data):
        x, y = (_tensor(v, what, r) for v, r in zip(data, ("inputs", "targets")))
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"{what}: inputs and targets need a first (sample) axis; got shapes {tuple(x.shape)}, "
                             f"{tuple(y.shape)}")  # fmt: skip
        if len(x) != len(y):
            raise ValueError(
                f"{what}: {len(x)} inputs but {len(y)} targets; inputs and targets must have one row per sample"
            )
        if x.dtype == torch.uint8 and x.ndim == 3:
            x = x.unsqueeze(1)  # N x H x W -> N x 1 x H x W
        if x.dtype == torch.float64:
            x = x.float()
        if y.dtype == torch.float64 or y.dtype == torch.bool:
            y = y.float()
        elif not y.is_floating_point():
            y = y.long()
        return Split(images=x.contiguous(), labels=y.contiguous())
    raise TypeError(f"{what}: expected {ACCEPTED}; got {type(data).__name__}")


def source_len(source: Any) -> int | None:
    """Samples in a source, or None for a stream."""
    if is_split(source):
        return len(source)
    dataset = source.dataset if isinstance(source, torch.utils.data.DataLoader) else source
    if isinstance(dataset, torch.utils.data.IterableDataset):
        try:
            return len(dataset)  # type: ignore[arg-type]
        except TypeError:
            return None
    try:
        return len(dataset)
    except TypeError:
        return None


def source_labels(source: Any) -> torch.Tensor | None:
    """Every target of a source when it holds them whole (a ``Split``, an ``ImageSplit``), else None: what ``fit``
    checks against the model's outputs before any work."""
    return source.labels if is_split(source) or isinstance(source, ImageSplit) else None


def _transform_record(dataset: Any) -> dict[str, Any]:
    """mean/std, resize and crop read from a torchvision transform pipeline (``Compose`` of ``Normalize``,
    ``Resize``, ``CenterCrop``, ...), v1 or v2, as ``InputRecord`` fields; whatever is not found stays unknown."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    transform = getattr(dataset, "transform", None)
    steps = list(getattr(transform, "transforms", None) or ([transform] if transform is not None else []))
    found: dict[str, Any] = {}
    for t in steps:
        name = type(t).__name__
        if name == "Normalize":
            found["mean"], found["std"] = t.mean, t.std
        elif name == "Resize" and "crop_size" not in found:
            found["resize_size"] = t.size
            interpolation = getattr(getattr(t, "interpolation", None), "value", None)
            if interpolation in ("bilinear", "bicubic", "nearest"):
                found["interpolation"] = interpolation
        elif name == "CenterCrop":
            size = [t.size] if isinstance(t.size, int) else list(t.size)
            found["crop_size"] = (size[0], size[-1])  # CenterCrop(s) and CenterCrop([s]) are square
    return found


def source_record(source: Any, sample: tuple[torch.Tensor, torch.Tensor] | None = None) -> InputRecord:
    """What can be told of a source's inputs without iterating it (a ``sample`` batch fills in the input size)."""
    own = getattr(source, "input_record", None)
    if callable(own):  # an ImageSplit knows its own (input size, normalisation, classes, resize and crop)
        return own()
    if is_split(source):
        x = source.images
        return InputRecord(
            input_size=x.shape[1:],
            input_dtype="uint8" if x.dtype == torch.uint8 and x.ndim == 4 else str(x.dtype).replace("torch.", ""),
            mean=getattr(source, "mean", None) or None,
            std=getattr(source, "std", None) or None,
            hflip=bool(getattr(source, "hflip", False)),
        )
    base = source.dataset if isinstance(source, torch.utils.data.DataLoader) else source
    record = InputRecord(**_transform_record(base))
    while isinstance(base, torch.utils.data.Subset):
        base = base.dataset
    classes = getattr(base, "classes", None)
    if isinstance(classes, (list, tuple)) and classes and all(isinstance(c, str) for c in classes):
        record.classes, record.num_classes = list(classes), len(classes)
    record.dataset = type(base).__name__
    if sample is not None:
        record.input_size = tuple(int(v) for v in sample[0].shape[1:])
        record.input_dtype = str(sample[0].dtype).replace("torch.", "")
    return record
