"""What ``fit`` reports and the hooks into it: ``History``, ``Metrics`` and the callbacks.

``History`` is what ``fit`` returns and what every callback receives, as in Keras; a callback is any object with
the epoch-level ``on_*`` methods, and per-step ones when it needs them (``Callback`` documents them all and does
nothing). ``EarlyStopping`` and
``CSVLogger`` are the two every run needs; both act on rank 0 only under ``torchrun``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch.nn as nn

from zoo.suggest import suggest

__all__ = ["EPOCH_FIELDS", "History", "Metrics", "Callback", "EarlyStopping", "CSVLogger", "step_callbacks"]


EPOCH_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_s")


class History:
    """What ``fit`` returns: one record per epoch plus how the run was made.

    Attributes:
        epochs: list of dicts with ``epoch`` (1-based), ``loss`` and the task's training metric (``accuracy`` for
            classes and labels, ``mae`` for regression; averaged over the epoch), the validation metrics
            (``val_loss``, ``val_accuracy``; regression ``val_mae``, ``val_r2``; ``val_<name>`` for ``metrics=``;
            None without validation data), ``lr`` (at the epoch's end), ``seconds`` (wall time of the epoch
            including validation) and ``images_per_s`` (training only).
        task: ``"classification"``, ``"multilabel"`` or ``"regression"``. fields: the record's keys, in order.
        test: the test split's metrics, scored once at the end (a zoo Dataset's test split), else None.
        device, precision: what was actually used (``"cpu"``, ``"cuda:0"``; ``"fp32"``, ``"bf16"``, ``"fp16"``).
        config: the ``TrainConfig`` as a plain dict. world_size: processes that trained.
        notes: things worth knowing (resumed from a checkpoint, interrupted, stopped early and why).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.epochs: list[dict[str, Any]] = []
        self.device: str = "cpu"
        self.precision: str = "fp32"
        self.config: dict[str, Any] = dict(config or {})
        self.world_size: int = 1
        self.rank: int = 0
        self.notes: list[str] = []
        self.stop_reason: str | None = None
        self.interrupted: bool = False
        self.task: str = "classification"
        self.fields: list[str] = list(EPOCH_FIELDS)
        self.test: dict[str, Any] | None = None

    @property
    def is_main(self) -> bool:
        """True on the process that prints, logs and writes files (rank 0)."""
        return self.rank == 0

    def request_stop(self, reason: str = "stopped by a callback") -> None:
        """Ask fit to stop after the current epoch (any callback may call it)."""
        self.stop_reason = reason

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, key: str | int) -> Any:
        """``history[-1]`` is the last epoch's record; ``history["val_accuracy"]`` that column as a list."""
        if isinstance(key, int):
            return self.epochs[key]
        return [e.get(key) for e in self.epochs]

    @property
    def last(self) -> dict[str, Any]:
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": [dict(e) for e in self.epochs],
            "device": self.device,
            "precision": self.precision,
            "world_size": self.world_size,
            "config": dict(self.config),
            "notes": list(self.notes),
            "stop_reason": self.stop_reason,
            "interrupted": self.interrupted,
            "task": self.task,
            "fields": list(self.fields),
            "test": dict(self.test) if self.test else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        h = cls(d.get("config"))
        h.epochs = [dict(e) for e in d.get("epochs", [])]
        h.device = d.get("device", "cpu")
        h.precision = d.get("precision", "fp32")
        h.world_size = d.get("world_size", 1)
        h.notes = list(d.get("notes", []))
        h.task = d.get("task", "classification")
        h.fields = list(d.get("fields") or EPOCH_FIELDS)
        h.test = d.get("test")
        return h

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The history as JSON text; written to ``path`` as well when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """One row per epoch (the ``fields`` columns); written to ``path`` as well when given."""
        buf = io.StringIO()
        keys = list(self.fields) + sorted({k for e in self.epochs for k in e} - set(self.fields))
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for e in self.epochs:
            writer.writerow({k: "" if e.get(k) is None else e.get(k) for k in keys})
        if path is not None:
            Path(path).write_text(buf.getvalue())
        return buf.getvalue()

    def to_pandas(self):
        """A ``pandas.DataFrame`` with one row per epoch, indexed by ``epoch`` (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("History.to_pandas() needs pandas: pip install pandas") from None
        return pd.DataFrame(self.epochs).set_index("epoch") if self.epochs else pd.DataFrame()

    def plot(self, path: str | os.PathLike | None = None, *, title: str | None = None):
        """Training curves: loss and the task's metric (accuracy, or MAE for regression) per epoch, training and
        validation (two panels).

        With ``path`` (``.png``, ``.svg`` or ``.pdf``) the figure is saved there and the path returned; without,
        the ``matplotlib`` figure is returned (it shows inline in Jupyter). Needs matplotlib (``pip install
        "zoo[plot]"``); works headless and leaves matplotlib's backend alone. The training loss includes label
        smoothing and is averaged while the weights change; the validation loss is plain cross-entropy at the
        epoch's end, so it usually sits below.
        """
        from zoo.plotting import check_plot_path, new_figure, save_figure

        target = check_plot_path(path) if path is not None else None
        if not self.epochs:
            raise ValueError("nothing to plot: the history has no epochs")
        fig = new_figure("History.plot()", figsize=(10, 4))
        epochs = [e["epoch"] for e in self.epochs]
        metric = "mae" if self.task == "regression" else "accuracy"
        labels = ("loss", "MAE" if metric == "mae" else "accuracy (%)")
        for ax, key, label in zip(fig.subplots(1, 2), ("loss", metric), labels, strict=True):
            scale = 100 if key == "accuracy" else 1
            for prefix, name, style in (("", "training", "-o"), ("val_", "validation", "-s")):
                pts = [(x, scale * e[prefix + key]) for x, e in zip(epochs, self.epochs, strict=True)
                       if e.get(prefix + key) is not None]  # fmt: skip
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, markersize=4, label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend()
            if len(epochs) < 12:
                ax.set_xticks(epochs)
        n = len(epochs)
        fig.suptitle(title or f"training curves, {n} epoch{'s' if n != 1 else ''} ({self.device}, {self.precision})")
        return save_figure(fig, target) if target is not None else fig

    def __repr__(self) -> str:
        head = f"History({len(self.epochs)} epochs, device={self.device}, precision={self.precision}"
        if self.world_size > 1:
            head += f", world_size={self.world_size}"
        lines = [head + ")"]
        short = {"accuracy": "acc", "val_accuracy": "val_acc"}
        for e in self.epochs:
            metrics = "  ".join(
                f"{short.get(k, k)} {e[k]:.4f}" for k in self.fields
                if k not in ("epoch", "lr", "seconds", "images_per_s") and isinstance(e.get(k), (int, float))
            )  # fmt: skip
            lines.append(
                f"  epoch {e['epoch']:>3}  {metrics}  lr {e['lr']:.2e}  {e['seconds']:.1f} s  "
                f"{e['images_per_s']:,.0f} img/s"
            )
        if self.test:
            shown = [k for k in ("loss", "top1", "top5", "accuracy", "mae", "r2") if self.test.get(k) is not None]
            if "top1" in shown:
                shown.remove("accuracy")
            lines.append("  test: " + "  ".join(f"{k} {self.test[k]:.4f}" for k in shown))
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


class Metrics(dict):
    """What ``evaluate`` returns: a dict (``m["top1"]``) whose keys also read as attributes (``m.top1``).

    Keys depend on ``task``. Classification: ``loss`` (mean cross-entropy), ``top1`` and its alias ``accuracy``,
    ``top5`` (None with 5 classes or fewer), ``per_class_accuracy`` (list; None for a class absent from the data),
    ``confusion_matrix`` (list of lists, rows = true class, columns = predicted). Multi-label: ``loss``,
    ``accuracy`` (mean of ``per_label_accuracy``), ``exact_match``. Regression: ``loss``, ``mae``, ``rmse``, ``r2``.
    Always ``task`` and ``num_samples``; plus one key per user metric.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        keys = [
            k
            for k, v in self.items()
            if isinstance(v, float) and k != "accuracy" or (k == "accuracy" and "top1" not in self)
        ]
        shown = ", ".join(f"{k}={self[k]:.4f}" for k in keys)
        return f"Metrics({shown}, num_samples={self.get('num_samples')})"


class Callback:
    """Hooks into ``fit``. Subclass and override what you need; every method is optional.

    ``fit`` sets ``callback.model`` (the bare module being trained) before ``on_fit_start``. A callback stops the
    run after the current epoch with ``history.request_stop("why")``. Callbacks run on every process under
    torchrun (they see the same all-reduced records); write files only where ``history.is_main``.
    """

    model: nn.Module | None = None

    def on_fit_start(self, history: History) -> None:
        """Before the first epoch (after a resume, ``history.epochs`` holds the earlier epochs)."""

    def on_epoch_start(self, history: History, epoch: int) -> None:
        """Before epoch ``epoch`` (1-based)."""

    def on_epoch_end(self, history: History, record: dict[str, Any]) -> None:
        """After an epoch's validation and checkpoint; ``record`` is ``history.epochs[-1]``."""

    def on_fit_end(self, history: History) -> None:
        """After the last epoch, an early stop or an interruption."""

    def on_train_batch_start(self, history: History, batch: dict[str, Any]) -> None:
        """Before each training batch: ``batch`` holds ``epoch``, ``batch`` (0-based, in the epoch) and ``step``
        (optimizer steps taken). Called only when overridden."""

    def on_train_batch_end(self, history: History, batch: dict[str, Any]) -> None:
        """After each training batch and its optimizer step: ``batch`` holds ``epoch``, ``batch``, ``step``,
        ``loss`` (a tensor on the device: ``float()`` reads it, at the cost of a synchronisation), ``lr`` (the first
        parameter group's, after the step) and ``stepped`` (False for a micro-batch of ``grad_accum``). Called only
        when overridden, so that a run without per-step callbacks pays nothing per step."""


def step_callbacks(callbacks: Any, which: str) -> list[Any]:
    """The callbacks with their own ``on_train_batch_<which>`` (``"start"`` or ``"end"``): overridden in a
    ``Callback`` subclass, set on the instance, or defined by a duck-typed callback; ``Callback``'s no-op is not."""
    name = f"on_train_batch_{which}"
    base = getattr(Callback, name)
    hooks = [(cb, getattr(cb, name, None)) for cb in callbacks]
    return [cb for cb, fn in hooks if callable(fn) and getattr(fn, "__func__", fn) is not base]


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: a record key, e.g. ``"val_loss"`` (lower is better) or ``"val_accuracy"``/``"accuracy"`` (higher).
        patience: epochs without improvement tolerated before stopping.
        min_delta: smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for names containing "acc", else min).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, mode: str = "auto"):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0

    def on_epoch_end(self, history: History, record: dict[str, Any]) -> None:
        value = record.get(self.monitor)
        if value is None:
            keys = [k for k, v in record.items() if v is not None]
            raise ValueError(
                f"EarlyStopping: '{self.monitor}' is not in the epoch record (no validation data?); "
                f"available: {', '.join(keys)}{suggest(self.monitor, keys)}"
            )
        better = (
            self.best is None
            or (self.mode == "min" and value < self.best - self.min_delta)
            or (self.mode == "max" and value > self.best + self.min_delta)
        )
        if better:
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            history.request_stop(
                f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                f"(best {self.best:.4f} at epoch {self.best_epoch})"
            )


class CSVLogger(Callback):
    """Append each epoch's record to a CSV file as it ends (rank 0 only), so a crashed run keeps its log."""

    def __init__(self, path: str | os.PathLike, append: bool = False) -> None:
        self.path = Path(path)
        self.append = append

    def on_fit_start(self, history: History) -> None:
        if history.is_main and not self.append and self.path.exists():
            self.path.unlink()

    def on_epoch_end(self, history: History, record: dict[str, Any]) -> None:
        if not history.is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        fields = list(history.fields)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow({k: "" if record.get(k) is None else record.get(k) for k in fields})
