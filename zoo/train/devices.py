"""Where and how ``fit`` and ``evaluate`` compute: the device, the precision, and the process group.

``"auto"`` picks CUDA, then MPS, then CPU. Precision ``"auto"`` is bf16 autocast on CUDA GPUs that support it and
fp32 elsewhere; fp16 runs with a gradient scaler and only on CUDA. Under ``torchrun`` (``WORLD_SIZE`` > 1) the
process group is created here: nccl on CUDA, gloo on CPU.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch

from zoo.suggest import suggest

__all__ = ["DEVICES", "PRECISIONS", "resolve_device", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE_ALIASES = {"gpu": "cuda"}  # what people say for CUDA
_PRECISION_ALIASES = {"float32": "fp32", "32": "fp32", "bfloat16": "bf16", "float16": "fp16", "16": "fp16"}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: Any = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, then MPS, then CPU; names are checked against what this machine has."""
    name = str(device).strip().lower()  # a torch.device is checked like its name: cuda:0 on a CPU-only torch too
    name = _DEVICE_ALIASES.get(name.split(":", 1)[0], name.split(":", 1)[0]) + name[len(name.split(":", 1)[0]) :]
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    kind = name.split(":", 1)[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {device!r}; valid: {', '.join(DEVICES)}{suggest(name, DEVICES)}")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r} ({exc}); valid: {', '.join(DEVICES)}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' asked for, but this torch sees no CUDA GPU; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device '{device}': only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"device '{device}' asked for, but MPS is not available here; use 'cpu' or 'auto'")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision actually used: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 with a gradient scaler)."""
    name = _PRECISION_ALIASES.get(str(precision).lower(), str(precision).lower())
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}{suggest(name, PRECISIONS)}")
    if name == "auto":
        # off CUDA, fp32: on this project's AVX512-BF16 CPU bf16 trains dense convnets 1.1-2.2x faster but
        # MobileNet/EfficientNet (depthwise convolutions) 0.5x as fast (benchmarks/bench_precision.py), and
        # CPUs without native bf16 emulate it
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA device (it relies on a gradient scaler), but training runs on "
            f"{device.type}; use precision='bf16' or 'fp32' there"
        )
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision='bf16' is not supported by this GPU; use precision='fp16' or 'fp32'")
    return name


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------
# Distributed
# ---------------------------------------------------------------------------------------------------------


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    created_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device_spec: Any) -> tuple[DistInfo, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), resolve_device(device_spec)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        _create_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, created), device


_groups_created = [0]  # process groups zoo has created in this process (each fit destroys its own at the end)


def _create_group(backend: str) -> None:
    """The default process group, rendezvoused under a key prefix of its own.

    torch names every default group "0", so a group created after an earlier one was destroyed (a second ``fit``
    in the same torchrun process) would read the rendezvous keys the first one left in the store: a rank could
    connect to its peer's old, closed address and wait forever (measured: 3 hangs in 4 launches here). A fresh
    prefix per creation keeps each group's keys apart.
    """
    import torch.distributed as dist

    store, rank, world_size = next(dist.rendezvous("env://"))
    prefix = f"zoo/group{_groups_created[0]}"
    _groups_created[0] += 1
    dist.init_process_group(backend, store=dist.PrefixStore(prefix, store), rank=rank, world_size=world_size)


def all_reduce(t: torch.Tensor, dist_info: DistInfo, op: str = "sum") -> torch.Tensor:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t
