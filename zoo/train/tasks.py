"""Tasks, losses and their metrics: what ``fit`` minimises and what ``evaluate`` reports.

The task follows the loss: ``cross_entropy`` is classification (top-1, top-5, per-class accuracy, confusion) on
class indices or on probability targets (N x K rows summing to 1, as torchvision's ``v2.CutMix``/``v2.MixUp`` and
zoo's ``mixup=``/``cutmix=`` make them; accuracy is then read against each row's largest class),
``bce`` multi-label or binary classification on logits (per-label accuracy, exact match), ``mse``/``l1``/``smooth_l1``
regression (MAE, RMSE, R²). A loss given as an ``nn.Module`` or a function is placed by its type where torch's own
losses are recognised, else by the targets (integer class indices: classification; anything else: regression).
Metrics accumulate on the device and are read once per pass, so they cost no synchronisation per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from zoo.suggest import suggest

__all__ = ["LOSSES", "TASKS", "Task", "resolve_task", "check_loss", "check_number", "hard_labels", "Meter", "logits_of"]

LOSSES = ("cross_entropy", "bce", "mse", "l1", "smooth_l1")
TASKS = ("classification", "multilabel", "regression")
_LOSS_TASK = {"cross_entropy": "classification", "bce": "multilabel", "mse": "regression", "l1": "regression",
              "smooth_l1": "regression"}  # fmt: skip
_ALIASES = {"ce": "cross_entropy", "crossentropy": "cross_entropy", "cross-entropy": "cross_entropy",
            "bce_with_logits": "bce", "binary_cross_entropy": "bce", "mae": "l1", "huber": "smooth_l1",
            "smoothl1": "smooth_l1", "l2": "mse"}  # fmt: skip
_MODULE_TASK = {
    "CrossEntropyLoss": "classification",
    "SoftTargetCrossEntropy": "classification",  # timm's, for MixUp/CutMix targets
    "LabelSmoothingCrossEntropy": "classification",  # timm's
    "NLLLoss": "classification",
    "BCEWithLogitsLoss": "multilabel",
    "BCELoss": "multilabel",
    "MultiLabelSoftMarginLoss": "multilabel",
    "MSELoss": "regression",
    "L1Loss": "regression",
    "SmoothL1Loss": "regression",
    "HuberLoss": "regression",
}
# what fit reports while training, per task (besides the loss): one number, cheap to accumulate on the device
TRAIN_METRIC = {"classification": "accuracy", "multilabel": "accuracy", "regression": "mae"}
# what selects the best epoch (best.pt) when there is validation data: (record key, higher is better)
MONITOR = {
    "classification": ("val_accuracy", True),
    "multilabel": ("val_accuracy", True),
    "regression": ("val_loss", False),
}


def logits_of(out: Any) -> torch.Tensor:
    """The logits of a model's output: a tensor as it is; a tuple or list (auxiliary heads in training mode, as
    GoogLeNet's) its first element; a dict its ``"logits"`` or ``"out"`` entry, else its first tensor."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, dict):
        for key in ("logits", "out"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key]
        first = next((v for v in out.values() if isinstance(v, torch.Tensor)), None)
        if first is not None:
            return first
    raise TypeError(
        f"the model returned a {type(out).__name__}; zoo needs a tensor of logits (or a tuple/dict holding one)"
    )


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices of classification targets: indices as they are, probability rows (N x K) their argmax."""
    return y.argmax(1) if y.ndim == 2 else y


def _probabilities(y: torch.Tensor, k: int) -> bool:
    """Whether ``y`` holds probability targets for ``k`` classes: N x k floats, non-negative, rows summing to 1."""
    if not (y.is_floating_point() and y.ndim == 2 and y.shape[1] == k and len(y)):
        return False
    y = y.detach().float()
    return bool((y >= 0).all()) and bool(torch.allclose(y.sum(1), torch.ones(len(y), device=y.device), atol=1e-3))


def _shape(t: torch.Tensor) -> str:
    return f"{str(t.dtype).replace('torch.', '')} targets of shape {tuple(t.shape)}"


@dataclass
class Task:
    """A resolved task: its kind, its training and evaluation losses, and how targets are shaped for them."""

    kind: str  # "classification", "multilabel" or "regression"
    loss_name: str  # "cross_entropy", ..., or the repr of a user's loss
    train_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # mean over the batch
    eval_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # the same without label smoothing
    num_outputs: int  # the model's output width
    flat_target: bool = False  # N targets for N x 1 outputs: reshaped to N x 1

    def target(self, y: torch.Tensor) -> torch.Tensor:
        """Targets shaped and typed for the loss (a view, or ``y`` itself on the classification fast path)."""
        if self.kind == "classification":
            return y
        if self.flat_target:
            y = y.view(-1, 1)
        return y if y.dtype == torch.float32 else y.float()

    @property
    def train_metric(self) -> str:
        return TRAIN_METRIC[self.kind]

    def train_stat(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training metric's sum over a batch (``y`` as ``target`` returns it), on the device."""
        if self.kind == "classification":
            return (out.argmax(1) == hard_labels(y)).sum()
        if self.kind == "multilabel":
            return ((out > 0) == (y > 0.5)).sum()
        return (out.float() - y).abs().sum()

    def train_count(self, y: torch.Tensor) -> int:
        """What ``train_stat`` is divided by: samples for classification, target elements otherwise."""
        return int(y.shape[0]) if self.kind == "classification" else int(y.numel())


def resolve_task(loss: Any, label_smoothing: float, out: torch.Tensor, y: torch.Tensor, what: str = "fit") -> Task:
    """The task for ``loss`` (a name, an ``nn.Module``, a function or None), checked against a sample batch's
    model output ``out`` and targets ``y``: a mismatch is a one-line ``ValueError`` saying what would fit."""
    if out.ndim != 2:
        raise ValueError(
            f"{what}: the model returns shape {tuple(out.shape)} for a batch of {len(out)}; zoo expects N x outputs"
        )
    k = int(out.shape[1])
    integer = not y.is_floating_point()
    if loss is None:
        if (integer and y.ndim == 1) or _probabilities(y, k):
            loss = "cross_entropy"
        else:
            raise ValueError(
                f"{what}: {_shape(y)} are not class indices, so pass loss=: 'mse', 'l1' or 'smooth_l1' for "
                f"regression, 'bce' for multi-label 0/1 targets, or a function (output, target) -> loss (probability "
                f"rows, N x {k} summing to 1, train with cross-entropy as they are)"
            )
    if isinstance(loss, str):
        name = _ALIASES.get(loss.strip().lower(), loss.strip().lower())
        if name not in LOSSES:
            raise ValueError(
                f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}, an nn.Module or a function (output, target) "
                f"-> loss{suggest(name, LOSSES)}"
            )
        kind = _LOSS_TASK[name]
    elif callable(loss):
        name = type(loss).__name__ if isinstance(loss, nn.Module) else getattr(loss, "__name__", repr(loss))
        kind = _MODULE_TASK.get(type(loss).__name__) if isinstance(loss, nn.Module) else None
        if kind is None:
            kind = "classification" if (integer and y.ndim == 1) or _probabilities(y, k) else "regression"
    else:
        raise TypeError(f"loss must be a name ({', '.join(LOSSES)}), an nn.Module or a function; got {loss!r}")
    task = Task(kind, name, None, None, k)  # type: ignore[arg-type]
    _check_targets(task, out, y, what)
    if isinstance(loss, str):
        task.train_loss, task.eval_loss = _builtin_losses(name, label_smoothing)
    else:
        task.train_loss = task.eval_loss = loss
    return task


def _check_targets(task: Task, out: torch.Tensor, y: torch.Tensor, what: str) -> None:
    k, name = task.num_outputs, task.loss_name
    if task.kind == "classification":
        if (y.is_floating_point() or y.ndim != 1) and not _probabilities(y, k):
            raise ValueError(
                f"{what}: loss={name} needs integer class indices (one per sample) or probability rows ({len(out)} "
                f"x {k}, summing to 1), got {_shape(y)}; for regression pass loss='mse' (or 'l1', 'smooth_l1'), for "
                f"multi-label N x K targets loss='bce'"
            )
        if k < 2:
            raise ValueError(
                f"{what}: the model has {k} output for loss={name}; classification needs one output per class "
                f"(for a single 0/1 output use loss='bce')"
            )
        return
    if y.ndim == 1 and k == 1:
        task.flat_target = True
        return
    if tuple(y.shape[1:]) != tuple(out.shape[1:]):
        raise ValueError(
            f"{what}: loss={name} needs targets shaped like the model's output ({len(out)} x {k}), got {_shape(y)}"
        )


def check_number(value: Any, what: str) -> str | None:
    """Why ``value`` is not one finite number (a Python number or a one-element numeric tensor), or None if it is."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return f"returned {value.numel()} values (shape {tuple(value.shape)}) where one number is needed"
        if value.dtype == torch.bool or value.is_complex():
            return f"returned a {str(value.dtype).replace('torch.', '')} tensor, not a real number"
        value = float(value.detach())
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"returned a {type(value).__name__} ({str(value)[:40]!r}), not a number"
    if value != value or value in (float("inf"), float("-inf")):
        return f"returned {value} on a sample batch"
    return None


def check_loss(task: Task, out: torch.Tensor, y: torch.Tensor, what: str, soft: torch.Tensor | None = None) -> None:
    """The training loss on a sample batch is one finite number: a loss returning one value per sample, a string
    or NaN is refused before an epoch is spent. ``soft`` are mixed (probability) targets the loss must take too."""
    for target, how in ((y, ""), (soft, " on mixed (MixUp/CutMix) probability targets")):
        if target is None:
            continue
        try:
            value = task.train_loss(out, target)
        except Exception as exc:  # the user's loss: any error it raises is reported in one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ValueError(f"{what}: loss={task.loss_name} failed on a sample batch{how}: {first}") from None
        why = check_number(value, what)
        if why is not None:
            raise ValueError(
                f"{what}: loss={task.loss_name} {why}{how}; a loss must return one finite number per batch (reduce "
                f"a per-sample loss with .mean())"
            )


def _builtin_losses(name: str, label_smoothing: float) -> tuple[Callable, Callable]:
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing), nn.CrossEntropyLoss()
    fn = {"bce": nn.BCEWithLogitsLoss(), "mse": nn.MSELoss(), "l1": nn.L1Loss(), "smooth_l1": nn.SmoothL1Loss()}[name]
    return fn, fn


class Meter:
    """A task's evaluation metrics, accumulated over batches on the device and read once.

    ``update(out, y)`` per batch (``y`` as ``Task.target`` returns it); ``packed()`` is one float64 tensor to
    all-reduce across ranks; ``result(packed)`` turns it into the metrics dict.
    """

    def __init__(self, task: Task, device: torch.device, extra: dict[str, Callable] | None = None) -> None:
        self.task, self.device, self.extra = task, device, dict(extra or {})
        k = task.num_outputs
        z = lambda n, dt=torch.float64: torch.zeros(n, dtype=dt, device=device)  # noqa: E731
        self.loss_sum, self.count = z(1), z(1)
        self.extra_sums = z(len(self.extra))
        if task.kind == "classification":
            self.confusion = z(k * k, torch.int64)
            self.top5 = z(1, torch.int64)
        elif task.kind == "multilabel":
            self.label_correct, self.exact = z(k), z(1)
        else:
            self.abs_err, self.sq_err, self.y_sum, self.y_sq = z(k), z(k), z(k), z(k)

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        out = out.float()
        b = out.shape[0]
        self.loss_sum += self.task.eval_loss(out, y).double() * b
        self.count += b
        for i, fn in enumerate(self.extra.values()):
            value = fn(out, y)
            self.extra_sums[i] += (value.double() if isinstance(value, torch.Tensor) else float(value)) * b
        k = self.task.num_outputs
        if self.task.kind == "classification":
            pred, y = out.argmax(1), hard_labels(y)
            self.confusion += torch.bincount(y * k + pred, minlength=k * k)
            if k > 5:
                self.top5 += (out.topk(5, 1).indices == y[:, None]).any(1).sum()
        elif self.task.kind == "multilabel":
            hit = (out > 0) == (y > 0.5)
            self.label_correct += hit.sum(0).double()
            self.exact += hit.all(1).sum().double()
        else:
            err = out - y
            self.abs_err += err.abs().sum(0).double()
            self.sq_err += err.square().sum(0).double()
            self.y_sum += y.sum(0).double()
            self.y_sq += y.double().square().sum(0)

    def packed(self) -> torch.Tensor:
        parts = [self.loss_sum, self.count, self.extra_sums]
        if self.task.kind == "classification":
            parts += [self.top5.double(), self.confusion.double()]
        elif self.task.kind == "multilabel":
            parts += [self.label_correct, self.exact]
        else:
            parts += [self.abs_err, self.sq_err, self.y_sum, self.y_sq]
        return torch.cat(parts)

    def result(self, packed: torch.Tensor) -> dict[str, Any]:
        packed = packed.cpu()
        k, e = self.task.num_outputs, len(self.extra)
        n = int(round(float(packed[1])))
        loss = float(packed[0]) / n if n else float("nan")
        out: dict[str, Any] = {"task": self.task.kind, "loss": loss, "num_samples": n}
        rest = packed[2 + e :]
        if self.task.kind == "classification":
            cm = rest[1:].round().long().view(k, k)
            correct = int(cm.diag().sum())
            per_n = cm.sum(1)
            top1 = correct / n if n else 0.0
            out.update(
                top1=top1,
                accuracy=top1,
                top5=(float(rest[0]) / n if n else 0.0) if k > 5 else None,
                per_class_accuracy=[None if int(per_n[i]) == 0 else float(cm[i, i]) / int(per_n[i]) for i in range(k)],
                confusion_matrix=cm.tolist(),
            )
        elif self.task.kind == "multilabel":
            per_label = (rest[:k] / n).tolist() if n else [0.0] * k
            out.update(
                accuracy=sum(per_label) / k if k else 0.0,
                per_label_accuracy=per_label,
                exact_match=float(rest[k]) / n if n else 0.0,
            )
        else:
            abs_err, sq_err, y_sum, y_sq = rest[:k], rest[k : 2 * k], rest[2 * k : 3 * k], rest[3 * k :]
            total = (y_sq - y_sum.square() / max(n, 1)).sum()  # sum over outputs of sum (y - mean)^2
            out.update(
                mae=float(abs_err.sum()) / (n * k) if n else float("nan"),
                rmse=float((sq_err.sum() / (n * k)).sqrt()) if n else float("nan"),
                r2=float(1 - sq_err.sum() / total) if n and float(total) > 0 else None,
            )
        for i, name in enumerate(self.extra):
            out[name] = float(packed[2 + i]) / n if n else float("nan")
        return out
