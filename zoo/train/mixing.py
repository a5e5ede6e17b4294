"""MixUp and CutMix on the device (``fit(mixup=0.2, cutmix=1.0)``), with timm's ``Mixup`` semantics in batch mode.

Each training batch is mixed with itself reversed (``x.flip(0)``, as timm pairs samples) by a weight ``lam`` drawn
from Beta(alpha, alpha): MixUp blends whole images (Zhang et al., 2018), CutMix pastes a box whose area is
``1 - lam`` of the image (Yun et al., 2019) and corrects ``lam`` to the box actually pasted. The targets become
probability rows ``lam * onehot(y) + (1 - lam) * onehot(y.flip(0))``, which torch's cross-entropy takes as they are;
label smoothing is then applied by the loss to those rows, the same composition as timm's ``mixup_target``.

The draws use Python's ``random`` module, which ``fit`` seeds and ``last.pt`` saves: a run is reproducible, a resumed
run continues exactly, every rank of a torchrun job draws alike, and torch's own generators (the data order) are left
as a run without mixing would have them. Nothing is read back from the device: a step stays free of synchronisation.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

__all__ = ["Mixer", "make_mixer"]


class Mixer:
    """Mixes a batch of inputs and class targets.

    Args:
        mixup: MixUp's alpha (e.g. 0.2 or 0.8), or None for no MixUp.
        cutmix: CutMix's alpha (e.g. 1.0), or None for no CutMix (needs N x C x H x W images).
        prob: probability that a batch is mixed at all (else it is passed through unchanged).
        switch_prob: with both on, the probability that a mixed batch uses CutMix rather than MixUp.
        num_classes: the width of the probability rows.
    """

    def __init__(
        self, mixup: float | None, cutmix: float | None, prob: float, switch_prob: float, num_classes: int
    ) -> None:
        self.mixup, self.cutmix = mixup, cutmix
        self.prob, self.switch_prob, self.num_classes = prob, switch_prob, num_classes

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, targets)`` mixed, or as given when this batch is not mixed."""
        if self.prob < 1.0 and random.random() >= self.prob:
            return x, y
        use_cutmix = self.cutmix is not None and (self.mixup is None or random.random() < self.switch_prob)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = random.betavariate(alpha, alpha)
        if use_cutmix:
            x, lam = self._paste(x, lam)
        else:
            x = x * lam + x.flip(0) * (1.0 - lam)
        return x, self.targets(y, lam)

    def _paste(self, x: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        """CutMix: a box of area ~ ``1 - lam`` from the reversed batch; ``lam`` corrected for the clipped box."""
        h, w = x.shape[-2:]
        ratio = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(h * ratio), int(w * ratio)
        cy, cx = random.randrange(h), random.randrange(w)  # the box's centre; the box is clipped at the edges
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        x = x.clone()  # never write into a tensor the data may hold
        x[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
        return x, 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)

    def targets(self, y: torch.Tensor, lam: float) -> torch.Tensor:
        """Probability rows: class indices one-hot encoded (probability rows as they are), mixed by ``lam``."""
        rows = y.float() if y.ndim == 2 else F.one_hot(y, self.num_classes).float()
        return rows * lam + rows.flip(0) * (1.0 - lam)


def make_mixer(
    mixup: float | None, cutmix: float | None, prob: float, switch_prob: float, task_kind: str, num_outputs: int,
    x: torch.Tensor,
) -> Mixer | None:  # fmt: skip
    """The run's ``Mixer`` (None when both are off), after checking that the task and the inputs allow it."""
    if mixup is None and cutmix is None:
        return None
    if task_kind != "classification":
        raise ValueError(
            f"mixup= and cutmix= mix class targets; this run's task is {task_kind} (they need class indices or "
            f"probability rows with a cross-entropy loss)"
        )
    if not x.is_floating_point():
        raise ValueError(f"mixup= and cutmix= need float inputs; the batches hold {str(x.dtype).replace('torch.', '')}")
    if cutmix is not None and x.ndim != 4:
        raise ValueError(
            f"cutmix= pastes boxes into N x C x H x W images; the inputs are shaped {tuple(x.shape)} (use mixup=)"
        )
    return Mixer(mixup, cutmix, prob, switch_prob, num_outputs)
