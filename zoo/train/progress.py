"""The progress bar of ``fit``: tqdm, updated every few steps (reading the metrics synchronises the device)."""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["Progress", "progress_enabled"]


class Progress:
    """A tqdm bar updated every few steps (never per step: reading the metrics synchronises the device)."""

    def __init__(self, enabled: bool, total: int | None, epoch: int, epochs: int) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=True, dynamic_ncols=True)

    def update(self, n: int, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)

    def close(self, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix)
            self.bar.close()


def progress_enabled(progress: bool | None, rank: int) -> bool:
    if progress is False or rank != 0 or os.environ.get("ZOO_PROGRESS", "1").strip().lower() in ("0", "false", "no"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())
