"""``zoo.predict`` and ``zoo.embed``: run a model on new inputs, prepared exactly as its training inputs were.

``fit`` leaves an input record on the model (``model.zoo_config["inputs"]``, a ``zoo.inputs.InputRecord``: input
size and dtype, mean/std, resize and crop, class names, task), and checkpoints keep it, so a model from
``zoo.load(path)`` in a fresh process can classify a photo. A model created with published weights
(``zoo.create("googlenet", weights="DEFAULT")``) and not trained since carries the record of those weights (resize,
centre crop, interpolation, mean/std, ImageNet's class names). How inputs are prepared: ``zoo.train.preprocess``.

    model = zoo.load("runs/train/model.safetensors")
    zoo.predict(model, "cat.png", topk=3)
    # [{"label": "cat", "index": 3, "probability": 0.93, "topk": [("cat", 0.93), ...], "path": "cat.png"}]
    zoo.embed(model, "photos/")  # N x D pooled features
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn

from zoo.inputs import InputRecord
from zoo.messages import exception_line
from zoo.modelfile import unwrap
from zoo.train.devices import resolve_device
from zoo.train.preprocess import input_items, prepared_batches
from zoo.train.tasks import logits_of

__all__ = ["predict", "embed", "pooled_features"]

_warned: weakref.WeakSet[nn.Module] = weakref.WeakSet()  # models already warned about a missing record


def _record(model: nn.Module, what: str) -> InputRecord:
    """The model's input record; a guess, with a warning once per model, when it has none."""
    record = InputRecord.of(model, guess=False)
    if record is not None:
        return record
    record = InputRecord.guess(model)
    if model not in _warned:
        _warned.add(model)
        size = record.image_size
        warnings.warn(
            f"{what}: the model has no record of its training data (zoo.fit leaves one; zoo.load restores it), so "
            "no preprocessing is known: images are scaled to [0, 1]"
            + (f" and resized to {size[0]}x{size[1]}" if size else "")
            + ", not normalised"
            + (", and the outputs read as classes" if what == "predict" else ""),
            UserWarning,
            stacklevel=3,
        )
    return record


def _check_positive(what: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what}: {name} must be a positive integer, got {value!r}")


def _run(
    model: nn.Module, inputs: Any, batch_size: int, device: Any, what: str, forward: Callable
) -> Iterator[tuple[torch.Tensor, list[str | None], InputRecord]]:
    """``forward(model, x)`` on each prepared batch, in eval mode without gradients, on ``device`` (default: where
    the model's parameters are); yields ``(output, paths, record)``."""
    _check_positive(what, batch_size=batch_size)
    model = unwrap(model)
    record = _record(model, what)
    items = input_items(inputs, what)
    param = next(model.parameters(), None)
    home = param.device if param is not None else torch.device("cpu")
    dev = home if device is None else resolve_device(device)
    if dev != home:
        model.to(dev)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    seen = 0
    try:
        with torch.no_grad():
            for x, paths in prepared_batches(items, record, batch_size, what):
                _check_finite(x, seen, what)
                yield _forward(forward, model, x.to(dev, dtype=dtype, non_blocking=True), record, what), paths, record
                seen += len(x)
    finally:
        model.train(was_training)


def _check_finite(x: torch.Tensor, seen: int, what: str) -> None:
    """A NaN or infinite input gives NaN probabilities that read as a prediction: refused."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = seen + int(bad.reshape(len(x), -1).any(1).nonzero()[0, 0])
        raise ValueError(f"{what}: input sample {first} holds NaN or infinite values; inputs must be finite numbers")


def _forward(forward: Callable, model: nn.Module, x: torch.Tensor, record: InputRecord, what: str) -> torch.Tensor:
    """``forward(model, x)``; a batch whose shape is not the one the model's record says, and which the model
    cannot take, is a one-line ``ValueError`` naming both shapes (not torch's matmul message)."""
    try:
        return forward(model, x)
    except (RuntimeError, AssertionError) as exc:
        size = record.input_size
        if isinstance(exc, torch.OutOfMemoryError) or size is None or tuple(x.shape[1:]) == tuple(size):
            raise
        takes = "N x " + " x ".join(str(v) for v in size)
        raise ValueError(
            f"{what}: a batch of shape {tuple(x.shape)} does not fit the model, which takes {takes} "
            f"({exception_line(exc, 160)})"
        ) from None


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
        model: a model trained by ``zoo.fit`` (or loaded with ``zoo.load``): its input record
            (``zoo_config["inputs"]``) says the input size, channels, mean/std, class names and task. A model
            without one is taken as a classifier of images scaled to [0, 1] (resized to the input size of its
            card for the keywords it was created with), with a warning.
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
    _check_positive("predict", topk=topk)
    records: list[dict[str, Any]] = []
    for out, paths, record in _run(model, inputs, batch_size, device, "predict", lambda m, x: logits_of(m(x))):
        task = record.task or ("classification" if out.ndim == 2 and out.shape[1] > 1 else "regression")
        batch = _records(out, task, record.classes, topk)
        for r, path in zip(batch, paths):
            if path is not None:
                r["path"] = path
        records.extend(batch)
    return records


def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """N x D features before the classifier: timm's ``forward_head(forward_features(x), pre_logits=True)``, else
    ``forward_features`` averaged over its spatial (or token) axes."""
    features = getattr(model, "forward_features", None)
    if not callable(features):
        name = type(model).__name__
        raise TypeError(f"embed: {name} has no forward_features(x); embed needs timm's feature interface")
    f = features(x)
    head = getattr(model, "forward_head", None)
    if callable(head):
        try:
            return head(f, pre_logits=True).flatten(1)
        except TypeError:  # a forward_head without pre_logits=
            pass
    return f.mean(dim=tuple(range(2, f.ndim))) if f.ndim > 2 else f


def embed(
    model: nn.Module,
    inputs: Any,
    *,
    batch_size: int = 256,
    device: Any = None,
) -> torch.Tensor:
    """Pooled features of new inputs (an N x D float tensor on the CPU, in input order), prepared as ``predict``
    prepares them: the output of the model before its classifier (``pooled_features``).

    Args:
        model: any zoo model (timm's ``forward_features`` / ``forward_head``), trained or loaded; its input record
            says the preprocessing (a model without one gets images scaled to [0, 1], with a warning).
        inputs: as ``predict`` takes them: image files, folders, PIL images, a list of these, uint8 image tensors
            or a prepared float batch.
        batch_size: samples per forward pass.
        device: where to run; default: where the model's parameters are.
    """
    outs = [out.float().cpu() for out, _, _ in _run(model, inputs, batch_size, device, "embed", pooled_features)]
    return torch.cat(outs) if outs else torch.empty(0, 0)
