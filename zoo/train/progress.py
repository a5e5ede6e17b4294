"""The progress bar of ``fit``: tqdm, updated every few steps (reading the metrics synchronises the device)."""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["Progress", "model_name", "progress_enabled"]


class Progress:
    """One epoch's tqdm bar: updated every few steps (never per step: reading the metrics synchronises the device),
    filled to 100% when the epoch's batches are done, and closed with the epoch's validation figures."""

    def __init__(
        self, enabled: bool, total: int | None, epoch: int, epochs: int, done: int = 0, name: str | None = None
    ) -> None:
        """``name``: the model's, shown before the epoch (``zoo compare`` trains several, one bar each)."""
        self.bar = None
        self.postfix: dict[str, Any] = {}
        if enabled:
            from tqdm.auto import tqdm

            desc = f"{name + ' ' if name else ''}epoch {epoch}/{epochs}"
            self.bar = tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)
            self.bar.update(done)  # a resumed epoch starts where it stopped

    def update(self, done: int, **postfix: Any) -> None:
        """``done`` batches of the epoch so far (a count, not an increment)."""
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(done - self.bar.n)

    def finish(self, **postfix: Any) -> None:
        """The epoch's batches are done: the bar full, with the epoch's training figures."""
        if self.bar is not None:
            self.postfix = dict(postfix)
            self.bar.set_postfix(postfix, refresh=False)
            if self.bar.total is not None:
                self.bar.update(self.bar.total - self.bar.n)
            else:
                self.bar.refresh()

    def close(self, **postfix: Any) -> None:
        """Close the bar, adding ``postfix`` (the validation figures) to what ``finish`` showed."""
        if self.bar is not None:
            self.bar.set_postfix({**self.postfix, **postfix})
            self.bar.close()
            self.bar = None


def model_name(model: Any) -> str | None:
    """The zoo name of ``model`` (``"lenet5"``), through a DDP or ``torch.compile`` wrapper; None if it has none."""
    config = getattr(getattr(model, "module", model), "zoo_config", None)
    return config.get("name") if isinstance(config, dict) else None


def progress_enabled(progress: bool | None, rank: int) -> bool:
    if progress is False or rank != 0 or os.environ.get("ZOO_PROGRESS", "1").strip().lower() in ("0", "false", "no"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())
