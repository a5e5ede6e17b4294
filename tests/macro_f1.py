"""Macro-F1 in zoo's stateful-metric protocol, shared by tests/test_train_metrics.py and the torchrun worker
tests/metrics_ddp_worker.py (a plain module: the worker imports it from its own folder)."""

from __future__ import annotations

import torch


class MacroF1:
    """Macro-F1 in zoo's protocol: a confusion matrix summed over batches (and over ranks: ``sum_states``)."""

    sum_states = ("confusion",)

    def __init__(self, num_classes):
        self.k = num_classes
        self.reset()

    def reset(self):
        self.confusion = torch.zeros(self.k, self.k, dtype=torch.float64)

    def update(self, out, y):
        self.confusion += torch.bincount(y * self.k + out.argmax(1), minlength=self.k * self.k).view(self.k, self.k)

    def compute(self):
        tp = self.confusion.diag()
        denom = self.confusion.sum(0) + self.confusion.sum(1)
        return float(torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp)).mean())
