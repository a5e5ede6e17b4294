"""File safety, in one place: atomic writes, owned output folders, and plain (JSON- and ``weights_only``-safe) data.

- ``atomic_write(path, data)``: bytes, text, or a function that writes into a file, put in place atomically (a
  temporary file in the same folder, fsync, ``os.replace``): readers see the old file or the new one, never a
  partial one, and a failure leaves no temporary file behind. ``torch.save`` goes through it as a function.
- ``RunDirLock``: ``fit(checkpoint_dir=...)`` and ``zoo.compare(run_dir=...)`` hold it on their folder while they
  write. It is an advisory ``flock`` on ``.zoo.lock`` inside the folder, so the operating system releases it when the
  holder dies, however it dies (a stale lock file from a killed run is not a held lock); a second writer gets one
  line naming the holder. Where ``fcntl`` does not exist (Windows), the folder is not locked.
- ``clean_orphans``: the temporary files a write killed half-way left (``.NAME.XXXX.tmp``).
- ``plain``: a value made of numbers, strings, lists and dicts only (objects become ``<their name>``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "plain", "RunDirLock", "RunDirBusy", "clean_orphans", "LOCK_NAME"]

LOCK_NAME = ".zoo.lock"


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[IO[bytes]], Any]) -> Path:
    """Put ``data`` at ``path`` atomically and durably; returns the path.

    Args:
        path: the file to write (its folder is created if missing).
        data: ``bytes``; ``str`` (written as UTF-8); or a function given the open temporary file (binary, read and
            write, so it may also be memory-mapped), e.g. ``lambda f: torch.save(obj, f)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            if isinstance(data, str):
                f.write(data.encode())
            elif isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible on every OS)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def plain(value: Any) -> Any:
    """``value`` as numbers, strings, booleans, None, lists and dicts: what JSON and ``torch.load(weights_only=True)``
    take. A ``torch.device`` becomes its name, any other object ``<its qualified name>``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if type(value).__module__ == "torch" and type(value).__name__ == "device":
        return str(value)
    name = getattr(value, "__qualname__", None) or type(value).__name__
    return f"<{name}>"


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
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
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
    """Remove the temporary files an interrupted ``atomic_write`` left (``.NAME.XXXX.tmp``); call it holding the
    folder's lock."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed
