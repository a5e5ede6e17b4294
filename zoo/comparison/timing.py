"""Timing: medians of synchronised runs after warm-up, model benchmarks, and the environment a run records."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from zoo.train.tasks import logits_of

# ---------------------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Versions and hardware, saved next to results so numbers can be read in context."""
    from zoo.version import __version__

    env = {
        "zoo": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return env


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], Any], runs: int, warmup: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` over ``runs`` timed calls after ``warmup`` untimed ones (synchronised on CUDA)."""
    times = []
    for i in range(warmup + runs):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_forward(model: nn.Module, x: torch.Tensor, runs: int, warmup: int = 2) -> float:
    """Median seconds of ``model(x)`` in inference mode."""

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    return median_time(forward, runs, warmup, x.device)


def train_step_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One training step's compute on ``x``: forward (the logits of a tuple output), backward, gradients dropped."""

    def train_step() -> None:
        logits_of(model(x)).float().sum().backward()
        model.zero_grad(set_to_none=True)

    return train_step


def bench_model(
    model: nn.Module,
    input_size: Sequence[int],
    batch: int,
    runs: int,
    device: str = "cpu",
    threads: int | None = None,
) -> dict:
    """Median latency (ms) and throughput (img/s) of forward (inference mode) and forward+backward, one warm-up,
    with the CPU threads zoo chooses for the step (``zoo.threads``; ``threads`` to set them)."""
    from zoo.threads import choose_threads, step_flops, use_threads

    dev = torch.device(device)
    model = model.to(dev)
    x = torch.randn(batch, *input_size, device=dev)
    train_step = train_step_fn(model, x)
    chosen = choose_threads(step_flops(model, x, batch), requested=threads, device=dev)
    with use_threads(chosen):
        model.eval()
        fwd = time_forward(model, x, runs, warmup=1)
        model.train()
        bwd = median_time(train_step, runs, 1, dev)
    return {
        "forward_ms": 1000 * fwd,
        "forward_img_s": batch / fwd,
        "train_step_ms": 1000 * bwd,
        "train_step_img_s": batch / bwd,
        "threads": int(chosen),
    }


def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")
