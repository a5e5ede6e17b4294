"""``zoo.evaluate``: score a model on any data, with the task's metrics, the way it was trained to see it.

Used by ``fit`` for validation and the final test score, and by users directly. A model trained by ``fit`` carries
its input record (``model.zoo_config["inputs"]``, a ``zoo.inputs.InputRecord``): uint8 images are normalised with
the statistics the model was trained with, whatever the data's own say (a warning tells when they differ), and the
task and loss are the training run's. A model created with published weights and not trained since
(``zoo.create(name, weights=GoogLeNet_Weights.IMAGENET1K_V1)``) is normalised with the mean/std of those weights (the
record they left).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from zoo.data.batching import BatchOptions
from zoo.data.describe import as_source
from zoo.data.loaders import Batches, make_batches
from zoo.data.types import is_dataset
from zoo.inputs import InputRecord
from zoo.memory import reuse_freed_memory
from zoo.modelfile import unwrap
from zoo.threads import choose_threads, step_flops, use_threads
from zoo.train.callbacks import Metrics
from zoo.train.devices import DistInfo, all_reduce, autocast_context, resolve_device, resolve_precision
from zoo.train.metrics import StatefulMetrics, check_metric_kinds, check_metrics, is_stateful
from zoo.train.tasks import Meter, Task, logits_of, resolve_task

__all__ = ["evaluate", "run_eval", "check_model_fits", "check_labels", "resize_to_record"]


def check_model_fits(model: nn.Module, batches: Batches, what: str = "fit") -> tuple[torch.Tensor, torch.Tensor]:
    """A forward pass in eval mode on the data's ``sample()``: a shape mismatch becomes one clear error before any
    training. Returns ``(output, targets)`` of the sample."""
    x, y = batches.sample()
    if len(x) == 0:
        raise ValueError(f"{what}: the data is empty")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        cfg = getattr(model, "zoo_config", None) or {}
        kw = cfg.get("kwargs", {}) if isinstance(cfg, dict) else {}
        name = cfg.get("name", type(model).__name__) if isinstance(cfg, dict) else type(model).__name__
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        shape = tuple(x.shape[1:])
        if x.ndim == 4:
            c, h = shape[0], shape[1]
            expects = ", ".join(f"{k}={kw[k]}" for k in ("in_chans", "img_size", "in_features") if k in kw)
            expects = f"expects {expects}" if expects else "cannot take them"
            raise ValueError(
                f"{what}: model '{name}' {expects} but the data has in_chans={c}, img_size={h}: create the model "
                f"with in_chans={c}, img_size={h} (or load the dataset with img_size= matching the model) [{first}]"
            ) from None
        raise ValueError(
            f"{what}: model '{name}' cannot take inputs of shape {shape} ({str(x.dtype).replace('torch.', '')}) "
            f"[{first}]"
        ) from None
    finally:
        model.train(was_training)
    return logits_of(out).float(), y


@torch.no_grad()
def run_eval(
    model: nn.Module,
    batches: Any,
    task: Task,
    autocast: Any,
    device: torch.device,
    dist_info: DistInfo,
    extra: dict[str, Callable] | None = None,
) -> Metrics:
    """One pass over ``batches`` in eval mode; the task's metrics, all-reduced across ranks. ``extra`` holds the
    user's metrics: functions averaged per sample, stateful metrics computed over the pass (``zoo.train.metrics``)."""
    was_training = model.training
    model.eval()
    extra = extra or {}
    meter = Meter(task, device, {k: f for k, f in extra.items() if not is_stateful(f)})
    stateful = StatefulMetrics(extra, device)
    try:
        for x, y in batches:
            with autocast:
                out = logits_of(model(x))
            y = task.target(y)
            meter.update(out, y)
            if stateful.metrics:
                stateful.update(out.float(), y)
    finally:
        model.train(was_training)
    result = meter.result(all_reduce(meter.packed(), dist_info))
    result.update(stateful.compute(dist_info, int(meter.count.item())))
    return Metrics(result)


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 512,
    device: Any = None,
    precision: str = "auto",
    loss: Any = None,
    metrics: dict[str, Callable] | None = None,
    threads: int | None = None,
) -> Metrics:
    """Score ``model`` on data: a zoo Dataset (its test split), a Split, ``(inputs, targets)`` tensors or numpy
    arrays, a torch Dataset or a DataLoader (used as given).

    Args:
        batch_size: samples per forward pass (data zoo batches itself).
        device: None -> where the model's parameters are (after ``fit``, the training device); else as in ``fit``.
        precision: as in ``fit`` (the same autocast).
        loss: the loss to report, as in ``fit``; default: the one the model was trained with (recorded by ``fit``),
            else cross-entropy for integer class targets.
        metrics: extra ``{name: metric}``: a function ``(output, target) -> number`` is averaged over samples; an
            object with ``update``/``compute``/``reset`` (a ``torchmetrics.Metric``) is computed over the whole data
            (``zoo.train.metrics``).
        threads: CPU threads; None -> chosen for the machine's free cores and the forward's size (``zoo.threads``).

    Returns:
        ``Metrics`` (a dict whose keys read as attributes) for the task: classification ``loss``, ``top1``
        (= ``accuracy``), ``top5`` (classes > 5), ``per_class_accuracy``, ``confusion_matrix`` (rows = true class);
        multi-label ``loss``, ``accuracy`` (mean per-label), ``per_label_accuracy``, ``exact_match``; regression
        ``loss``, ``mae``, ``rmse``, ``r2``; always ``task`` and ``num_samples``. Under an initialised process group
        the data is sharded over the ranks and the results all-reduced.
    """
    model = unwrap(model)
    check_metric_kinds(metrics or {})
    record = InputRecord.of(model, guess=False) or InputRecord()
    source = as_source(data.test if is_dataset(data) else data, "evaluate")
    mean, std = _normalisation(source, data, record, warn=False)
    if device is None:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else resolve_device("auto")
    else:
        dev = resolve_device(device)
    model.to(dev)
    prec = resolve_precision(precision, dev)
    dist_info = DistInfo()
    if os.environ.get("WORLD_SIZE", "1") != "1":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist_info = DistInfo(dist.get_rank(), dist.get_world_size())
    options = BatchOptions(device=dev, mean=mean, std=std, rank=dist_info.rank, world_size=dist_info.world_size)
    batches = make_batches(source, batch_size, options)
    try:
        out, y = check_model_fits(model, batches, "evaluate")
        _normalisation(source, data, record)  # warns when the data's own statistics differ from the model's
    except ValueError:  # images of another size than the model takes: resized to its recorded size, if known
        resized = resize_to_record(source, record, "evaluate")
        if resized is source:
            raise
        batches = make_batches(resized, batch_size, options)
        out, y = check_model_fits(model, batches, "evaluate")
    # the record holds the loss's name when fit was given one (a function cannot be recorded)
    task = resolve_task(loss if loss is not None else record.loss, 0.0, out, y, "evaluate")
    if task.kind == "classification":
        check_labels(batches.labels, task.num_outputs, "evaluate")
    check_metrics(metrics or {}, out, task.target(y), "evaluate")
    x, _ = batches.sample()
    flops = step_flops(model, x, batches.batch_size)  # a forward is a third of a training step
    with use_threads(choose_threads(flops / 3 if flops else None, requested=threads, device=dev)), reuse_freed_memory():
        return run_eval(model, batches, task, autocast_context(dev, prec), dev, dist_info, metrics)


def resize_to_record(source: Any, record: InputRecord, what: str) -> Any:
    """``source`` with its uint8 images resized to the size the model was trained at (its input record), as
    ``predict`` resizes new images, and a warning saying so; unchanged when the sizes agree or are not known (a
    model without a record, channels that differ: ``check_model_fits`` names those). ``evaluate`` calls it only
    for a model that cannot take the data's size (a model with global pooling is scored at the data's size)."""
    images = getattr(source, "images", None)
    size = tuple(record.input_size or ())
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or len(size) != 3:
        return source
    (c, h, w), (n, dc, dh, dw) = size, images.shape
    if dc != c or (dh, dw) == (h, w):
        return source
    import dataclasses

    import torch.nn.functional as F

    resized = torch.empty((n, c, h, w), dtype=torch.uint8)
    for i in range(0, n, 1024):  # bilinear, antialiased when shrinking: as load_dataset(img_size=) resizes
        x = F.interpolate(images[i : i + 1024].float(), size=(h, w), mode="bilinear", align_corners=False,
                          antialias=h < dh or w < dw)  # fmt: skip
        resized[i : i + 1024] = x.round_().clamp_(0, 255).to(torch.uint8)
    warnings.warn(
        f"{what}: the data's images are {dh}x{dw} and the model was trained on {h}x{w} (its input record): resized "
        f"to {h}x{w}, as predict does; load the data at img_size={h} to skip this",
        UserWarning,
        stacklevel=3,
    )
    return dataclasses.replace(source, images=resized)


def _normalisation(source: Any, data: Any, record: InputRecord, warn: bool = True) -> tuple[Any, Any]:
    """The mean/std for uint8 images: the model's recorded ones (warning when the data's own differ), else the
    data's (a zoo Dataset's statistics, a Split's), else None (the loader's default)."""
    own_mean = getattr(data, "mean", None) if is_dataset(data) else getattr(source, "mean", None)
    own_std = getattr(data, "std", None) if is_dataset(data) else getattr(source, "std", None)
    if record.input_dtype == "uint8" and record.mean and record.std:
        mean, std = record.mean, record.std
        if warn and own_mean and own_std and (_differs(own_mean, mean) or _differs(own_std, std)):
            warnings.warn(
                f"evaluate: the data's normalisation (mean {_fmt(own_mean)}, std {_fmt(own_std)}) differs from the "
                f"one the model was trained with (mean {_fmt(mean)}, std {_fmt(std)}); using the model's",
                UserWarning,
                stacklevel=3,
            )
        return mean, std
    return (tuple(own_mean), tuple(own_std)) if own_mean and own_std else (None, None)


def _differs(a: Any, b: Any) -> bool:
    return len(a) != len(b) or any(abs(float(u) - float(v)) > 1e-6 for u, v in zip(a, b))


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def check_labels(labels: torch.Tensor | None, num_outputs: int, what: str) -> None:
    """Class labels must index the model's outputs: checked on whole tensors (``Batches.labels``) before any work;
    nothing to check when they are not known (None) or are not class indices."""
    if labels is None or labels.numel() == 0 or labels.is_floating_point():
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_outputs:
        bad = lo if lo < 0 else hi
        fix = "labels must be class indices from 0" if lo < 0 else f"create the model with num_classes={hi + 1}"
        raise ValueError(
            f"{what}: label {bad} is outside 0..{num_outputs - 1} (the model has {num_outputs} outputs); {fix}"
        )
