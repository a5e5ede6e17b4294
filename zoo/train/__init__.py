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

import importlib
from typing import Any

# name -> defining module; imported on first use, so that ``zoo --help`` (which reads TrainConfig for its flags)
# does not import torch. ``evaluate`` and ``predict`` are not here: they are also the names of the submodules that
# define them, so ``zoo.train.evaluate`` is the module; the functions are ``zoo.evaluate`` and ``zoo.predict``.
_LAZY = {
    "TrainConfig": "zoo.train.config",
    "History": "zoo.train.callbacks",
    "Metrics": "zoo.train.callbacks",
    "Callback": "zoo.train.callbacks",
    "EarlyStopping": "zoo.train.callbacks",
    "CSVLogger": "zoo.train.callbacks",
    "EPOCH_FIELDS": "zoo.train.callbacks",
    "CheckpointError": "zoo.weights",
    "LOSSES": "zoo.train.tasks",
    "TASKS": "zoo.train.tasks",
    "fit": "zoo.train.trainer",
    "load": "zoo.modelfile",
    "save": "zoo.modelfile",
    "resolve_device": "zoo.train.devices",
    "resolve_precision": "zoo.train.devices",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo.train' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
