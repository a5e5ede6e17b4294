"""Plugin code run with a time bound, where zoo runs a lot of it at once (``zoo list --long``, ``zoo bench``, the
plugin kit ``zoo.testing``): a builder that never returns becomes a failed row, not a hang.

The code runs in a daemon thread that the caller waits for at most ``seconds``. Why a thread: a builder that loops,
sleeps or waits on the network is not stopped by the meta device (which only spares memory), and a subprocess per
model would cost an import of torch each. A thread cannot be killed from outside, so past the bound an
``Abandoned`` exception is raised inside it (CPython's ``PyThreadState_SetAsyncExc``): a build running Python code
stops at its next bytecode; one waiting in C stops when the wait returns. The thread is a daemon, so even one that
resists does not keep the process alive: at exit it gets ``EXIT_GRACE_S`` seconds to end, then the interpreter
stops it. A builder stuck in C code that never releases the GIL stops everything (no thread can help there).

``ZOO_BUILD_TIMEOUT`` sets the bound in seconds (default 120: a ViT-L initialised for real on a busy laptop takes a
fraction of it); ``0`` or ``none`` waits for ever.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BuildTimeout", "DEFAULT_BUILD_TIMEOUT", "ENV_BUILD_TIMEOUT", "build_timeout", "call_within"]

DEFAULT_BUILD_TIMEOUT = 120.0
ENV_BUILD_TIMEOUT = "ZOO_BUILD_TIMEOUT"
# At exit, abandoned builds get this long, in all, to end. Python stops a daemon thread by unwinding it where it next
# takes the GIL, and unwinding one inside torch's C++ code aborts the process ("terminate called without an active
# exception", exit status 134): a build that was only slow (a bound set too low) ends cleanly first.
EXIT_GRACE_S = 10.0
_abandoned: list[threading.Thread] = []


class Abandoned(BaseException):
    """Raised inside a build that outlived its bound, to stop it where it runs Python code (a ``BaseException``, so
    that the builder's ``except Exception`` does not swallow it)."""


class BuildTimeout(TimeoutError):
    """Plugin code did not return within its time bound (and was stopped: see ``call_within``). ``seconds`` is the
    bound, ``what`` the code."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what} did not return within {seconds:g} s ({ENV_BUILD_TIMEOUT}=SECONDS sets the bound)")
        self.what, self.seconds = what, seconds


def build_timeout() -> float | None:
    """The bound of one build in seconds: ``ZOO_BUILD_TIMEOUT`` or 120; ``None`` (no bound) for ``0``/``none``."""
    text = os.environ.get(ENV_BUILD_TIMEOUT, "").strip().lower()
    if not text:
        return DEFAULT_BUILD_TIMEOUT
    if text in ("0", "none", "off", "inf"):
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds != seconds:
        raise ValueError(f"{ENV_BUILD_TIMEOUT}={text!r}: expected a number of seconds > 0, or 0/none for no bound")
    return seconds


def call_within(seconds: float | None, what: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, waited for at most ``seconds`` (``None``: no bound, called here).

    Runs in a daemon thread with this thread's default device (``torch.device("meta")`` entered around the call
    included) and grad mode, which torch keeps per thread. What ``fn`` raises is raised here; past the bound,
    ``BuildTimeout`` ("``what`` did not return within N s"), and ``Abandoned`` is raised inside the thread."""
    if seconds is None:
        return fn(*args, **kwargs)
    if not seconds > 0:
        raise ValueError(f"a time bound of {seconds!r} s: expected a number of seconds > 0, or None for no bound")
    import torch  # here: zoo.containment imports this module, and it stays light

    device, grad = torch.get_default_device(), torch.is_grad_enabled()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            try:
                with torch.device(device), torch.set_grad_enabled(grad):
                    outcome["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the waiting thread, which decides
                outcome["error"] = exc
        except Abandoned:  # the stop arrived as the build ended: nothing left to stop
            pass

    worker = threading.Thread(target=run, name=f"zoo: {what}"[:60], daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        _abandon(worker)
        raise BuildTimeout(what, seconds)
    if "error" in outcome:
        raise outcome.pop("error")
    return outcome["value"]


def _abandon(worker: threading.Thread) -> None:
    """Stop a build that outlived its bound: ``Abandoned`` is raised in its thread at the next bytecode it runs (a
    loop ends at once, a wait in C ends when the wait does), so it neither spins on for ever nor is unwound inside
    torch's C++ code at exit."""
    if not _abandoned:
        atexit.register(_wait_for_abandoned)
    _abandoned.append(worker)
    if worker.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(Abandoned))


def _wait_for_abandoned() -> None:
    """At exit: give the builds that outlived their bound ``EXIT_GRACE_S`` seconds in all to end (a slow build ends
    and the process exits cleanly; one that never returns is left to the interpreter's shutdown)."""
    until = time.monotonic() + EXIT_GRACE_S
    for worker in _abandoned:
        worker.join(max(0.0, until - time.monotonic()))
