"""Experiment loggers: a run's options and metrics sent where people look at them, as callbacks of ``fit``.

``MetricLogger`` is the small protocol, Lightning's logger API in four methods: ``log_hyperparams(params)`` once at
the start, ``log_metrics(metrics, step)`` after every epoch (the epoch's numeric record, at step = the epoch) and,
with ``every_n_steps``, the training loss and lr every N optimizer steps (tags ``step/loss``, ``step/lr``, at the
optimizer step; reading the loss then costs one synchronisation per N steps), and ``finalize(status)`` at the end.
Three come with zoo: ``zoo.CSVLogger`` (``zoo.train.callbacks``, one row per epoch), ``TensorBoardLogger``
(``torch.utils.tensorboard``; needs the ``tensorboard`` package) and ``LightningLogger``, which hands the run to any
Lightning logger object (``CSVLogger``, ``TensorBoardLogger``, ``MLFlowLogger``, ``WandbLogger``, ``CometLogger``...).
All write on rank 0 only under ``torchrun``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.suggest import suggest
from zoo.train.callbacks import Callback, CSVLogger, History

__all__ = ["MetricLogger", "TensorBoardLogger", "LightningLogger", "LOGGERS", "make_logger"]

LOGGERS = ("csv", "tensorboard")  # what ``zoo train --logger`` accepts


class MetricLogger(Callback):
    """A logger as a ``fit`` callback; subclasses write ``log_hyperparams``, ``log_metrics`` and ``finalize``.

    Args:
        every_n_steps: also log the training loss and lr every N optimizer steps; None -> per epoch only.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and (isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int)
                                          or every_n_steps < 1):  # fmt: skip
            raise ValueError(f"every_n_steps must be a positive integer or None, got {every_n_steps!r}")
        self.every_n_steps = every_n_steps
        if every_n_steps is not None:  # else no per-step hook at all: fit's step stays as fast as without a logger
            self.on_train_batch_end = self.log_step  # type: ignore[method-assign]

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        """The run's options (``history.config``), once."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Numbers at ``step``."""

    def finalize(self, status: str) -> None:
        """The run ended: ``"success"``, ``"interrupted"`` or ``"stopped"`` (an early stop)."""

    # -- the callback side --

    def on_fit_start(self, history: History) -> None:
        if history.is_main:
            self.log_hyperparams(dict(history.config))

    def on_epoch_end(self, history: History, record: dict[str, Any]) -> None:
        if history.is_main:
            numbers = {k: float(v) for k, v in record.items() if type(v) in (int, float)}
            self.log_metrics(numbers, int(record["epoch"]))

    def log_step(self, history: History, batch: dict[str, Any]) -> None:
        """``on_train_batch_end`` when ``every_n_steps`` is set: the loss and lr every N optimizer steps."""
        if history.is_main and batch["stepped"] and batch["step"] % self.every_n_steps == 0:
            self.log_metrics({"step/loss": float(batch["loss"]), "step/lr": float(batch["lr"])}, batch["step"])

    def on_fit_end(self, history: History) -> None:
        if history.is_main:
            self.finalize("interrupted" if history.interrupted else "stopped" if history.stop_reason else "success")


class TensorBoardLogger(MetricLogger):
    """TensorBoard event files in ``log_dir`` (``tensorboard --logdir DIR`` shows them): scalars per epoch (and per
    N steps), the options as text. Needs the ``tensorboard`` package (``pip install tensorboard``)."""

    def __init__(self, log_dir: str | os.PathLike, every_n_steps: int | None = None) -> None:
        super().__init__(every_n_steps)
        self.log_dir = Path(log_dir)
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ImportError("TensorBoardLogger needs tensorboard: pip install tensorboard") from None
            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        rows = "\n".join(f"| {k} | {v!r} |" for k, v in params.items())
        self.writer.add_text("config", "| option | value |\n|---|---|\n" + rows, 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finalize(self, status: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class LightningLogger(MetricLogger):
    """Any Lightning logger (``lightning.pytorch.loggers.*``, or anything with ``log_metrics(metrics, step)``,
    ``log_hyperparams(params)`` and optionally ``save()``/``finalize(status)``) fed by ``fit``.

    Example: ``fit(model, data, callbacks=[LightningLogger(MLFlowLogger(experiment_name="zoo"))])``.
    """

    def __init__(self, logger: Any, every_n_steps: int | None = None) -> None:
        super().__init__(every_n_steps)
        for method in ("log_metrics", "log_hyperparams"):
            if not callable(getattr(logger, method, None)):
                raise TypeError(
                    f"LightningLogger: {type(logger).__name__} has no {method}(); expected a Lightning logger"
                )
        self.logger = logger

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self.logger.log_hyperparams(params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.logger.log_metrics(metrics, step=step)

    def finalize(self, status: str) -> None:
        if callable(getattr(self.logger, "save", None)):
            self.logger.save()
        if callable(getattr(self.logger, "finalize", None)):  # Lightning's words: "success" or "failed"
            self.logger.finalize("failed" if status == "interrupted" else "success")


def make_logger(name: str, log_dir: str | os.PathLike) -> Callback:
    """The logger ``zoo train --logger NAME --log-dir DIR`` asks for: ``csv`` (``DIR/log.csv``) or ``tensorboard``."""
    key = name.strip().lower()
    if key == "csv":
        return CSVLogger(Path(log_dir) / "log.csv")
    if key == "tensorboard":
        return TensorBoardLogger(log_dir)
    raise ValueError(f"unknown logger {name!r}; valid: {', '.join(LOGGERS)}{suggest(key, LOGGERS)}")
