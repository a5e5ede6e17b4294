"""BatchNorm statistics that belong to the weights being evaluated, also after a short run.

BatchNorm's running averages follow the weights with a lag of about ``1 / momentum`` forward passes. torchvision's
MobileNetV3 (and the TensorFlow-ported EfficientNet-B5..B7) use momentum 0.01, a lag of ~100 batches, so any BN model
trained for a few dozen steps is evaluated with statistics of weights it no longer has. Measured: MobileNetV3-Small on
1,800 Fashion-MNIST images for 3 epochs reaches 72% training accuracy and 10% (chance) validation accuracy; with its
statistics recomputed, 68%. Before it evaluates, ``fit`` therefore recomputes them over training batches with the
current weights ("precise BN": Wu and Johnson, "Rethinking 'Batch' in BatchNorm", 2021) while the running averages
are young: while they still hold more than 1% of what they started from. Long runs are left exactly as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable
from typing import Any

import torch
import torch.nn as nn

__all__ = ["PRECISE_BN_BATCHES", "batch_norms", "young", "recompute"]

PRECISE_BN_BATCHES = 50  # training batches the statistics are recomputed over (at most)
_FORGOTTEN = 0.01  # running averages are grown up once their starting values weigh less than this


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def young(norms: Iterable[nn.Module], forwards: int) -> bool:
    """Whether, after ``forwards`` training forward passes, some running average still holds more than 1% of its
    starting value (``momentum=None``, a cumulative average, never does)."""
    return any(m.momentum is not None and (1.0 - m.momentum) ** forwards > _FORGOTTEN for m in norms)


def recompute(
    model: nn.Module,
    batches: Iterable[Any],
    autocast: Any,
    max_batches: int = PRECISE_BN_BATCHES,
    held: Collection[nn.Module] = (),
) -> int:
    """Recompute the running statistics of every BatchNorm of ``model`` as the plain average over up to
    ``max_batches`` of ``batches`` with the current weights; returns the number of batches used. The random number
    generators are left as they were, so a resumed run stays bit-equal to an uninterrupted one. The layers in
    ``held`` (those of a frozen part) keep their statistics."""
    norms = [m for m in batch_norms(model) if all(m is not h for h in held)]
    momenta = [m.momentum for m in norms]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    was_training = model.training
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    used = 0
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over the batches below
            model.train()
            for m in held:
                m.eval()
            for x, _ in batches:
                if used >= max_batches:
                    break
                if x.shape[0] < 2:  # BatchNorm cannot take one sample in training mode
                    continue
                with autocast if autocast is not None else contextlib.nullcontext():
                    model(x)
                used += 1
    finally:
        for m, momentum, (mean, var, tracked) in zip(norms, momenta, saved, strict=True):
            m.momentum = momentum
            if used == 0:  # nothing seen (or an error): the statistics as they were
                m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(tracked)
        model.train(was_training)
    return used
