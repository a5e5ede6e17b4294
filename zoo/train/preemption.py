"""Preemption: the first SIGINT or SIGTERM while ``fit`` runs is noted, the loop stops at the next optimizer step
with ``last.pt`` written at that batch, and a resumed run replays the epoch's order up to there (``skip``). A signal
after the last step (the last validation, precise BN, the checkpoint saves, the test scoring) stops the run too, once
that part ends: ``fit`` never returns as if done after one."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import torch

from zoo.train.devices import all_reduce

__all__ = ["Stopped", "SignalWatch", "skip"]


class Stopped(Exception):
    """SIGINT or SIGTERM arrived: the current step finished and last.pt holds this point (``during`` names what
    the signal cut short after the last epoch: its results are dropped, and a resumed run does it again)."""

    def __init__(self, signum: int, epoch: int, batch: int | None, during: str | None = None) -> None:
        super().__init__(signum)
        self.signum, self.epoch, self.batch, self.during = signum, epoch, batch, during

    def note(self, ckpt_dir: Path | None) -> str:
        name = signal.Signals(self.signum).name
        where = f"after batch {self.batch} of epoch {self.epoch}" if self.batch else f"after epoch {self.epoch}"
        if self.during:
            where = f"during {self.during}, {where}"
        saved = (
            f"; {ckpt_dir / 'last.pt'} holds that point and resume=True continues from it"
            if ckpt_dir is not None
            else "; nothing was saved (no checkpoint_dir)"
        )
        return f"stopped by {name} {where}{saved}"


class SignalWatch:
    """While fit runs (in the main thread): the first SIGINT or SIGTERM is noted, and the loop stops at the next
    optimizer step with last.pt written; a second one acts as it would without zoo (Ctrl-C raises
    KeyboardInterrupt, SIGTERM ends the process)."""

    CHECK_EVERY = 10  # steps between all-reduces of the flag under torchrun (every rank must stop at the same step)

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalWatch:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, OSError):
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, old in self._old.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, old)
        self._old = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
            return
        self._restore()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)

    def pending(self, dist_info: Any, step: int | None, device: torch.device) -> int | None:
        """The signal to stop for, agreed by every rank (checked every few steps under torchrun)."""
        if not dist_info.enabled:
            return self.received
        if step is not None and step % self.CHECK_EVERY:
            return None
        flag = torch.tensor([float(self.received or 0)], device=device)
        return int(all_reduce(flag, dist_info, op="max").item()) or None


def skip(iterator: Any, n: int, epoch: int = 0) -> Any:
    """``iterator`` after its first ``n`` items (the batches a mid-epoch resume has already trained on); one line
    if the data now holds fewer (it changed since the run stopped)."""
    for i in range(n):
        try:
            next(iterator)
        except StopIteration:
            raise ValueError(
                f"cannot resume at batch {n} of epoch {epoch}: an epoch of this data ends after {i} batches (the "
                "training data is smaller than the run's); resume with the data the run was trained on"
            ) from None
    return iterator
