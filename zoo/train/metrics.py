"""User metrics (``fit(metrics=)``, ``evaluate(metrics=)``): per-batch functions and metrics that aggregate.

Two kinds, told apart by their methods:

- a **function** ``(output, target) -> number`` is called on every batch and its values are averaged over samples.
  Right for metrics that are means over samples (accuracy, a mean error); wrong for F1, precision, recall or AUC,
  whose mean over batches is not their value over the split.
- a **stateful metric**, an object with ``update(output, target)``, ``compute()`` and ``reset()`` (a
  ``torchmetrics.Metric``, or your own class), is reset before each evaluation pass, updated on every batch and
  computed once at the end: its value is over the whole split. Under ``torchrun`` a ``torchmetrics.Metric`` syncs
  its states itself in ``compute()``; your own class is exact when it names its summed tensor states in a
  ``sum_states`` attribute (zoo all-reduces them before ``compute()``, as torchmetrics' ``dist_reduce_fx="sum"``),
  otherwise each rank's value is averaged over the ranks, weighted by their samples.

Every metric is tried on a sample batch before training starts: one that raises, returns a string or several
values is refused in one line (a value that is NaN on two samples is only warned about: F1 of two samples may be).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn as nn

from zoo.train.devices import DistInfo, all_reduce
from zoo.train.tasks import check_number

__all__ = ["is_stateful", "check_metric_kinds", "check_metrics", "StatefulMetrics"]


def is_stateful(metric: Any) -> bool:
    """Whether ``metric`` aggregates (``update``/``compute``) rather than being a per-batch function."""
    return callable(getattr(metric, "update", None)) and callable(getattr(metric, "compute", None))


def check_metric_kinds(metrics: Any) -> None:
    """``metrics=`` is a dict of functions and stateful metrics (with ``reset``): a one-line ``TypeError`` if not."""
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict {{name: metric}}, got {type(metrics).__name__}")
    for name, m in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"metrics: names must be strings, got {name!r}")
        if is_stateful(m) and not callable(getattr(m, "reset", None)):
            raise TypeError(
                f"metrics: '{name}' has update() and compute() but no reset(); a stateful metric needs all three"
            )
        if not is_stateful(m) and not callable(m):
            raise TypeError(
                f"metrics: '{name}' is a {type(m).__name__}; expected a function (output, target) -> number or an "
                "object with update(output, target), compute() and reset() (e.g. a torchmetrics.Metric)"
            )


def check_metrics(metrics: dict[str, Any], out: torch.Tensor, y: torch.Tensor, what: str) -> None:
    """Each metric on a sample batch (``out``, ``y``): one number, or a one-line ``ValueError`` naming it."""
    for name, m in metrics.items():
        try:
            if is_stateful(m):
                _to(m, out.device)
                m.reset()
                m.update(out, y)
                value = m.compute()
                m.reset()
            else:
                value = m(out, y)
        except Exception as exc:  # the user's metric: whatever it raises is said in one line, before training
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ValueError(
                f"{what}: metric '{name}' failed on a sample batch: {type(exc).__name__}: {first}"
            ) from None
        why = check_number(value, what)
        if why is None:
            continue
        if why.startswith("returned nan") or why.startswith("returned inf") or why.startswith("returned -inf"):
            warnings.warn(f"{what}: metric '{name}' {why} of {len(out)}", UserWarning, stacklevel=3)
            continue
        raise ValueError(f"{what}: metric '{name}' {why}; a metric must give one number per evaluation")


def _to(metric: Any, device: torch.device) -> None:
    if isinstance(metric, nn.Module):  # a torchmetrics.Metric keeps its states on its own device
        metric.to(device)


def _number(value: Any) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


class StatefulMetrics:
    """The stateful metrics of one evaluation pass: reset at the start, updated per batch, computed once."""

    def __init__(self, metrics: dict[str, Any] | None, device: torch.device) -> None:
        self.metrics = {k: m for k, m in (metrics or {}).items() if is_stateful(m)}
        self.device = device
        for m in self.metrics.values():
            _to(m, device)
            m.reset()

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        for m in self.metrics.values():
            m.update(out, y)

    def compute(self, dist_info: DistInfo, samples: int) -> dict[str, float]:
        """Each metric over the whole pass, across ranks (see the module docstring); ``samples``: this rank's."""
        values = {}
        for name, m in self.metrics.items():
            own_sync = type(m).__module__.startswith("torchmetrics")
            if dist_info.enabled and not own_sync and getattr(m, "sum_states", None):
                for state in m.sum_states:
                    setattr(m, state, all_reduce(getattr(m, state).clone(), dist_info))
                own_sync = True
            value = _number(m.compute())
            if dist_info.enabled and not own_sync:  # the ranks' values, weighted by their samples
                packed = torch.tensor([value * samples, float(samples)], dtype=torch.float64, device=self.device)
                packed = all_reduce(packed, dist_info).cpu()
                value = float(packed[0] / packed[1]) if float(packed[1]) else value
            values[name] = value
        return values
