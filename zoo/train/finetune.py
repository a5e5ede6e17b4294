"""Fine-tuning: parameters that do not train for a while (``fit(freeze=..., unfreeze_at=..., freeze_bn=...)``).

The optimizer is built over every parameter before any is frozen; freezing only turns ``requires_grad`` off, so a
frozen parameter gets no gradient and no update (its optimizer state starts when it thaws) and a resumed run, which
builds the same optimizer and freezes by epoch, continues exactly. While frozen, the BatchNorm layers of the frozen
part stay in eval mode (``freeze_bn``, on by default): their statistics do not drift with the new data either.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from zoo.suggest import suggest
from zoo.train.optim import layer_ids

__all__ = ["Freezer", "frozen_names"]


def frozen_names(model: nn.Module, freeze: Any) -> set[str]:
    """The names of the parameters ``freeze`` names (see ``TrainConfig.freeze``); a one-line error otherwise."""
    names = [n for n, _ in model.named_parameters()]
    if freeze is None:
        return set()
    if isinstance(freeze, str) and freeze != "backbone":  # from the command line: "2", "stem,stages.0"
        freeze = int(freeze) if freeze.isdigit() else [s.strip() for s in freeze.split(",") if s.strip()]
    if freeze == "backbone":
        head = getattr(model, "get_classifier", None)
        if not callable(head):
            raise ValueError(
                f"freeze='backbone' needs model.get_classifier() (timm's convention), which "
                f"{type(model).__name__} lacks; pass a list of module-name prefixes instead"
            )
        in_head = {id(p) for p in head().parameters()}
        return {n for n, p in model.named_parameters() if id(p) not in in_head}
    if isinstance(freeze, int) and not isinstance(freeze, bool):
        ids = layer_ids(model, coarse=True)
        groups = max(ids.values(), default=0) + 1
        if not 0 < freeze < groups:
            raise ValueError(f"freeze={freeze}: {type(model).__name__} has {groups} stages; use 1..{groups - 1}")
        return {n for n in names if ids.get(n, groups) < freeze}
    if isinstance(freeze, (list, tuple)) and all(isinstance(s, str) for s in freeze):
        modules = [n for n, _ in model.named_modules() if n]
        for prefix in freeze:
            if not any(n == prefix or n.startswith(prefix + ".") for n in names):
                raise ValueError(
                    f"freeze: no parameter of {type(model).__name__} is under '{prefix}'; module names: "
                    f"{', '.join(modules[:12])}{'...' if len(modules) > 12 else ''}{suggest(prefix, modules)}"
                )
        return {n for n in names if any(n == s or n.startswith(s + ".") for s in freeze)}
    raise ValueError(
        f"freeze={freeze!r}: accepted are 'backbone', a list of module-name prefixes, or a number of stages"
    )


class Freezer:
    """Which parameters (and BatchNorm layers) are held still, and in which epochs."""

    def __init__(self, model: nn.Module, freeze: Any, unfreeze_at: int | None, freeze_bn: bool | None) -> None:
        names = frozen_names(model, freeze)
        self.params = [p for n, p in model.named_parameters() if n in names]
        frozen = {id(p) for p in self.params}
        keep_bn = bool(self.params) if freeze_bn is None else freeze_bn
        self.norms = [
            name for name, m in model.named_modules()
            if keep_bn and isinstance(m, nn.modules.batchnorm._BatchNorm)
            and any(True for _ in m.parameters()) and all(id(p) in frozen for p in m.parameters())
        ]  # fmt: skip
        self.until = unfreeze_at
        self.epoch = 1

    def frozen(self) -> bool:
        return bool(self.params) and (self.until is None or self.epoch < self.until)

    def start_epoch(self, epoch: int) -> None:
        """Freeze or thaw for ``epoch``; call before its first step."""
        self.epoch = epoch
        for p in self.params:
            p.requires_grad_(not self.frozen())

    def held_norms(self, model: nn.Module) -> list[nn.Module]:
        """The BatchNorm layers of ``model`` (the trained one or its EMA copy) kept in eval mode, and out of precise
        BN, in the current epoch."""
        return [model.get_submodule(name) for name in self.norms] if self.frozen() else []

    def release(self) -> None:
        """Every parameter trainable again (the model fit returns has nothing left frozen)."""
        for p in self.params:
            p.requires_grad_(True)
