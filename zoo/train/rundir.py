"""Output folders a run owns: a lock while it writes, and the leftovers of a crashed write cleaned up.

``fit(checkpoint_dir=...)`` and ``zoo.compare(run_dir=...)`` hold ``RunDirLock`` on their folder for as long as they
write to it. The lock is an advisory ``flock`` on ``.zoo.lock`` inside the folder, so the operating system releases
it when the holder dies, however it dies (a stale lock file from a killed run is not a held lock). A second
writer gets one line naming the holder. Where ``fcntl`` does not exist (Windows), the folder is not locked.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["RunDirLock", "RunDirBusy", "clean_orphans", "LOCK_NAME"]

LOCK_NAME = ".zoo.lock"


class RunDirBusy(RuntimeError):
    """Another process is writing to this output folder."""


class RunDirLock:
    """``with RunDirLock(folder, "fit"):`` — exclusive use of ``folder`` by this process (created if missing)."""

    def __init__(self, folder: str | os.PathLike, what: str = "run") -> None:
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> RunDirLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"'{self.folder}' is a file; an output folder must be a directory")
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        path = self.folder / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirBusy(
                f"'{self.folder}' is in use by another run ({holder}); wait for it to finish or use another folder"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "what": self.what, "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"{info.get('what', 'a run')}, pid {info['pid']} on {info['host']} since {since}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder unknown"


def clean_orphans(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files an interrupted atomic write left (``.NAME.XXXX.tmp``); call it holding the lock."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed
