"""Training: ``fit``, ``evaluate``, ``predict``, checkpoints, and what they are made of.

- ``config``: ``TrainConfig``, the one declaration of fit's options.  ``trainer``: ``fit`` and the loop.
- ``setup``: ``Run``, what a fit call decides before its first step.  ``resume``: ``TrainState``, what changes
  (``last.pt``) and resuming.  ``ema``, ``finetune``: the EMA of the weights, frozen parameters.
- ``tasks``: losses and task metrics.  ``evaluate``: ``evaluate``.  ``predict``: ``predict``.
- ``state``: model files (``best.pt``, ``save`` and ``load``; writes through ``zoo.files.atomic_write``).
- ``devices``: device, precision, process group.  ``optim``: optimizers, parameter groups and schedules.
- ``callbacks``: ``History``, ``Metrics``, ``Callback``, ``EarlyStopping``, ``CSVLogger``.
"""

from __future__ import annotations

from zoo.train.callbacks import EPOCH_FIELDS, Callback, CSVLogger, EarlyStopping, History, Metrics
from zoo.train.config import TrainConfig
from zoo.train.devices import resolve_device, resolve_precision
from zoo.train.evaluate import evaluate
from zoo.train.predict import predict
from zoo.train.state import load, save
from zoo.train.tasks import LOSSES, TASKS
from zoo.train.trainer import fit
from zoo.weights import CheckpointError

__all__ = [
    "TrainConfig",
    "History",
    "Metrics",
    "Callback",
    "EarlyStopping",
    "CSVLogger",
    "CheckpointError",
    "EPOCH_FIELDS",
    "LOSSES",
    "TASKS",
    "fit",
    "evaluate",
    "predict",
    "load",
    "save",
    "resolve_device",
    "resolve_precision",
]
