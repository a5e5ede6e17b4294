"""How many CPU threads a piece of work gets: chosen for the machine as it is now, not inherited.

torch starts with one intra-op thread per core. On a machine whose cores are shared (a laptop with a browser, a
notebook server and a test run; a CI runner) that default is the slowest choice there is: the threads of each op
spin-wait for one another while the cores are busy elsewhere, and a LeNet-5 step on two cores ran 10-40 times
slower with two threads than with one (``benchmarks/bench_threads.py``). So before ``fit``, ``evaluate``,
``predict``, ``compare`` and ``bench`` run on the CPU, zoo counts the cores this process may use
(``os.sched_getaffinity``) less the ones other processes keep busy right now (``/proc/stat`` sampled for 50 ms, or
the load average), gives a tiny step (under 50 MFLOP) one thread, and sets the count back afterwards.

Your own choice wins: ``threads=N`` (``--threads N``), ``ZOO_THREADS=N``; and zoo leaves torch's count alone with
``ZOO_THREADS=keep``, ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` set, or after a ``torch.set_num_threads`` made
once zoo was imported.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

__all__ = [
    "ThreadChoice",
    "choose_threads",
    "use_threads",
    "step_flops",
    "usable_cores",
    "busy_cores",
    "TINY_STEP_FLOPS",
]

# A step of fewer floating-point operations than this gains nothing from a second thread: its ops are too small for
# the threads' start and join. Measured on 2 idle cores (benchmarks/bench_threads.py), LeNet-5 (0.64 GFLOP per step
# at batch 256) and the MLP (0.82) still ran 1.6-1.8x faster on both cores; it is a busy machine, not the step's
# size, that makes a second thread cost 3-13x there.
TINY_STEP_FLOPS = 5e7
_ENV = ("ZOO_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_AT_IMPORT = torch.get_num_threads()  # torch's count before zoo chose anything: a different one is the user's
_left_by_zoo: int | None = None  # the count zoo last set torch to (entering or leaving use_threads)


class ThreadChoice(int):
    """The thread count (an ``int``) with the reason it was chosen (``.why``), which History records."""

    why: str

    def __new__(cls, n: int, why: str) -> ThreadChoice:
        obj = super().__new__(cls, max(1, int(n)))
        obj.why = why
        return obj


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; the CPU count where there is none)."""
    with contextlib.suppress(AttributeError, OSError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    try:
        with open("/proc/stat", "rb") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields), idle


def _own_ticks() -> float:
    """This process's CPU time, all threads, in the clock ticks of ``/proc/stat`` (0 where there is none)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return float(fields[11]) + float(fields[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return 0.0


def busy_cores(interval: float = 0.05) -> float:
    """How many cores other work keeps busy now: ``/proc/stat`` over ``interval`` seconds less this process's own
    time (its idle OpenMP threads may still be spinning from the last op), else the 1-minute load average, else 0."""
    first, own = _cpu_times(), _own_ticks()
    if first is not None:
        time.sleep(interval)
        second, own = _cpu_times(), _own_ticks() - own
        if second is not None and second[0] > first[0]:
            total, idle = second[0] - first[0], second[1] - first[1]
            return max(0.0, (total - idle - own) / total * (os.cpu_count() or 1))
    with contextlib.suppress(AttributeError, OSError):
        return float(os.getloadavg()[0])
    return 0.0


def _user_choice(requested: int | None) -> ThreadChoice | None:
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads={requested!r}: expected a positive number of threads, or None to let zoo choose")
        return ThreadChoice(requested, "threads= asked for")
    value = os.environ.get("ZOO_THREADS", "").strip()
    if value.isdigit() and int(value) >= 1:
        return ThreadChoice(int(value), "ZOO_THREADS is set")
    for var in _ENV:  # ZOO_THREADS=keep, or the OpenMP/MKL variables: torch's count is left as it is
        if os.environ.get(var, "").strip():
            return ThreadChoice(torch.get_num_threads(), f"{var} is set")
    now = torch.get_num_threads()
    if now != _AT_IMPORT and now != _left_by_zoo:
        return ThreadChoice(now, "torch.set_num_threads was called")
    return None


def choose_threads(
    step_flops: float | None = None, *, requested: int | None = None, device: torch.device | str | None = None
) -> ThreadChoice:
    """The intra-op thread count for work whose step costs ``step_flops`` (forward and backward; ``None``: not
    known), on ``device`` (off the CPU the host needs one thread to feed it)."""
    chosen = _user_choice(requested)
    if chosen is not None:
        return chosen
    if device is not None and torch.device(device).type != "cpu":
        return ThreadChoice(
            torch.get_num_threads(), f"{torch.device(device).type}: the host's threads left as they are"
        )
    if step_flops is not None and step_flops < TINY_STEP_FLOPS:
        return ThreadChoice(1, f"a tiny step ({step_flops / 1e6:.0f} MFLOP)")
    cores = usable_cores()
    if cores == 1:
        return ThreadChoice(1, "one usable core")
    busy = busy_cores()
    free = max(1, min(cores, int(cores - busy + 0.5)))
    if free < cores:
        return ThreadChoice(free, f"{busy:.1f} of {cores} cores busy with other work")
    return ThreadChoice(cores, f"{cores} idle cores")


@contextlib.contextmanager
def use_threads(n: int) -> Iterator[int]:
    """Run the block with ``n`` intra-op threads, then set back the count it found. What zoo set last is remembered,
    so that a count the user sets afterwards is told apart from zoo's (even one zoo used once)."""
    global _left_by_zoo
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(int(n))
        _left_by_zoo = int(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
            _left_by_zoo = before


def step_flops(model: torch.nn.Module, sample: torch.Tensor, batch_size: int | None) -> float | None:
    """The floating-point operations of one training step (forward and backward, ~3 forwards) at ``batch_size``,
    counted on two samples of ``sample`` in eval mode without gradients: no BatchNorm statistic moves and no random
    number is drawn, so training after it is what it would have been."""
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(sample, torch.Tensor) or sample.dim() == 0 or not sample.shape[0]:
        return None
    was_training = model.training
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(sample[:2])
    except Exception:  # a model the counter cannot follow: the step's size stays unknown
        return None
    finally:
        model.train(was_training)
    per_sample = counter.get_total_flops() / min(2, sample.shape[0])
    return 3.0 * per_sample * (batch_size or sample.shape[0])
