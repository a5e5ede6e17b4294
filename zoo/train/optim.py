"""The optimizer and learning-rate schedule ``fit`` builds from a name, an object or a factory.

Weight decay applies to weight matrices and convolution kernels only, never to biases or normalisation
parameters (the timm and nanoGPT convention). ``"onecycle"`` spans the whole run: warm-up to the peak lr over the
first 30% of the steps, then cosine annealing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from zoo.suggest import suggest

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
SCHEDULERS = ("onecycle", "cosine", "none")


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # weight matrices and kernels decay; biases and norm scales do not (nanoGPT, timm)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _can_fuse(model: nn.Module) -> bool:
    """Fused Adam/AdamW/SGD (one kernel per step instead of a dozen per parameter group): on CPU and CUDA, for
    floating-point parameters. Measured on LeNet-5 on this project's CPU: an AdamW step 97 us instead of 301 us."""
    params = [p for p in model.parameters() if p.requires_grad]
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def make_optimizer(spec: Any, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    if callable(spec):
        opt = spec(model.parameters())
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer factory returned {type(opt).__name__}, not a torch.optim.Optimizer")
        return opt
    name = str(spec).lower()
    groups = _param_groups(model, weight_decay)
    fused = {"fused": True} if _can_fuse(model) else {}
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **fused)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, **fused)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, **fused)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr)
    raise ValueError(
        f"unknown optimizer {spec!r}; valid: {', '.join(OPTIMIZERS)}, a torch.optim.Optimizer, or a function "
        f"params -> Optimizer{suggest(name, OPTIMIZERS)}"
    )


def check_scheduler(spec: Any) -> None:
    if spec is None or callable(spec) or isinstance(spec, torch.optim.lr_scheduler.LRScheduler):
        return
    if str(spec).lower() not in SCHEDULERS:
        raise ValueError(
            f"unknown scheduler {spec!r}; valid: 'onecycle', 'cosine', None, an LRScheduler, or a function "
            f"(optimizer, total_steps) -> scheduler{suggest(str(spec).lower(), SCHEDULERS)}"
        )


def make_scheduler(spec: Any, opt: torch.optim.Optimizer, lr: float, total_steps: int) -> Any:
    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return None
    if isinstance(spec, torch.optim.lr_scheduler.LRScheduler):
        return spec
    if callable(spec):
        return spec(opt, total_steps)
    name = spec.lower()
    total_steps = max(1, total_steps)
    if name == "onecycle":
        # the schedule spans the whole run: warm up over the first 30% of the steps to `lr`, anneal to ~0
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps)
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
