"""An exponential moving average of a model's weights (``fit(ema=0.999)``), with timm's ``ModelEmaV3`` semantics.

After optimizer step ``t`` the average moves towards the weights by ``1 - decay`` (``decay`` 0 at the first step, so
the average starts as a copy); float buffers (BatchNorm statistics) are averaged too, integer ones copied. The
average usually validates better than the last weights of a run; ``fit`` evaluates it, saves it as ``best.pt`` and
returns it in the model when ``ema`` is set, and ``last.pt`` keeps it so a resumed run continues it exactly.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

__all__ = ["ModelEma"]


class ModelEma:
    """The average of ``model``'s weights and buffers, held in ``module`` (a copy of the model, in eval mode)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """The decay after optimizer step ``step`` (1-based): timm's ``get_decay`` without warm-up."""
        return 0.0 if step <= 1 else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = self.decay_at(step)
        averaged, current = [], []
        for ema_v, model_v in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if ema_v.is_floating_point():
                averaged.append(ema_v)
                current.append(model_v)
            else:
                ema_v.copy_(model_v)
        if averaged:
            torch._foreach_lerp_(averaged, current, weight=1.0 - decay)
