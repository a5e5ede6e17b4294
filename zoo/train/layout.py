"""The memory layout ``fit`` trains a model in when ``channels_last`` is left to it.

Measured per family (``benchmarks/bench_layout.py``, ``docs/benchmarks/layout.md``): one training step in a plain
loop, contiguous (NCHW) against channels_last (NHWC), interleaved. A model class may state its preference as the
class attribute ``prefers_channels_last`` (as it states ``default_lr``); otherwise the layout follows from its
layers: channels_last on the CPU for a convolutional network, contiguous for one without 2-d convolutions
(an MLP: nothing to gain, and the conversion costs a copy per batch), contiguous on GPUs (unchanged: fit's CUDA
default was never measured against it here).
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["default_channels_last"]


def default_channels_last(model: nn.Module, device: torch.device) -> bool:
    """Whether ``fit`` trains ``model`` in channels_last on ``device`` when not told (``channels_last=None``)."""
    if device.type != "cpu":
        return False
    preference = getattr(model, "prefers_channels_last", None)
    if isinstance(preference, bool):
        return preference
    return any(isinstance(m, nn.Conv2d) for m in model.modules())
