"""File safety, in one place: atomic writes, owned output folders, and plain (JSON- and ``weights_only``-safe) data.

- ``atomic_write(path, data)``: bytes, text, or a function that writes into a file, put in place atomically (a
  temporary file in the same folder, fsync, ``os.replace``): readers see the old file or the new one, never a
  partial one, and a failure leaves no temporary file behind. ``torch.save`` goes through it as a function.
- ``RunDirLock``: ``fit(checkpoint_dir=...)`` and ``zoo.compare(run_dir=...)`` hold it on their folder while they
  write. It is an advisory ``flock`` on ``.zoo.lock`` inside the folder, so the operating system releases it when the
  holder dies, however it dies (a stale lock file from a killed run is not a held lock); a second writer gets one
  line naming the holder. Where ``fcntl`` does not exist (Windows), the folder is not locked.
  The lock file is opened without following a symbolic link, and a file system without ``flock`` (some NFS
  mounts) is named as such, not taken for another run.
- ``clean_orphans``: the temporary files a write killed half-way left: only names of zoo's own pattern
  (``.NAME.zoo-XXXX.tmp``), so a user's ``.notes.tmp`` is never touched.
- ``RUN_FILES`` and ``claim_run_dir``: a folder that holds another run's checkpoints is not written into unless the
  caller resumes it or replaces it (``overwrite``), and the replacing happens under the lock.
- ``plain``: a value made of numbers, strings, lists and dicts only (objects become ``<their name>``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write", "plain", "RunDirLock", "RunDirBusy", "RunDirError", "RunDirTaken", "clean_orphans",
    "is_orphan", "claim_run_dir", "LOCK_NAME", "RUN_FILES",
]  # fmt: skip

LOCK_NAME = ".zoo.lock"
TMP_MARK = ".zoo-"  # in every temporary name atomic_write makes: ``.NAME.zoo-XXXXXXXX.tmp``
# the temporary names of zoo before TMP_MARK, for its own checkpoints only (mkstemp's 8 random characters)
_OLD_TMP = re.compile(r"^\.(last|best)\.pt\.[a-z0-9_]{8}\.tmp$")
RUN_FILES = ("last.pt", "best.pt", "history.json", "model.safetensors")  # what fit and `zoo train` write


def _new_file_mode(path: Path) -> int:
    """The mode ``open()`` would give ``path``: the existing file's, else 0o666 less the umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(os.stat(path).st_mode)
    mask = None
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:  # read without changing it
        mask = next((int(line.split()[1], 8) for line in f if line.startswith("Umask:")), None)
    if mask is None:  # no /proc: the classic read (set and restore)
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[IO[bytes]], Any]) -> Path:
    """Put ``data`` at ``path`` atomically and durably; returns the path.

    Args:
        path: the file to write (its folder is created if missing).
        data: ``bytes``; ``str`` (written as UTF-8); or a function given the open temporary file (binary, read and
            write, so it may also be memory-mapped), e.g. ``lambda f: torch.save(obj, f)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TMP_MARK}", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)  # mkstemp makes 0600: the file gets what any other file in the folder gets
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


class RunDirError(RuntimeError):
    """The output folder cannot be locked (its lock file is not a plain file, its file system has no locks) or
    cleared."""


class RunDirTaken(ValueError):
    """The output folder holds another run's checkpoints, and the caller neither resumes nor replaces it."""


# flock's answers that mean "this file system does not lock", not "someone holds the lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


class RunDirLock:
    """``with RunDirLock(folder, "fit"):`` — exclusive use of ``folder`` by this process (created if missing)."""

    def __init__(self, folder: str | os.PathLike, what: str = "run") -> None:
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> RunDirLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"'{self.folder}' is a file; an output folder must be a directory")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create the output folder '{self.folder}': {exc.strerror or exc}") from None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        fd = _open_lock_file(self.folder / LOCK_NAME)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in _NO_LOCKS:
                raise RunDirError(
                    f"the file system of '{self.folder}' does not support file locks ({os.strerror(exc.errno)}), so "
                    "zoo cannot keep two runs from writing into it; use a folder on a local disk"
                ) from None
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


def _open_lock_file(path: Path) -> int:
    """The lock file, opened read-write without following a symbolic link (whatever a link points to is never
    truncated) and only if it is a plain file (a FIFO would block, a device is not ours)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # a FIFO put there must not block the open
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise RunDirError(
                f"'{path}' is a symbolic link; zoo's lock file must be a plain file (its target was not opened): "
                "remove the link"
            ) from None
        raise RunDirError(f"cannot open the lock file '{path}': {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunDirError(f"'{path}' is not a plain file; zoo's lock file must be one: remove it")
    return fd


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"{info.get('what', 'a run')}, pid {info['pid']} on {info['host']} since {since}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder unknown"


def is_orphan(name: str) -> bool:
    """Whether ``name`` is a temporary file of ``atomic_write`` (and so zoo's to remove)."""
    return (name.startswith(".") and name.endswith(".tmp") and TMP_MARK in name) or bool(_OLD_TMP.match(name))


def clean_orphans(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files an interrupted ``atomic_write`` left (``.NAME.zoo-XXXX.tmp``, and the older
    ``.last.pt.XXXXXXXX.tmp`` / ``.best.pt.XXXXXXXX.tmp``); call it holding the folder's lock. Other files,
    a user's ``.notes.tmp`` among them, are left alone."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.iterdir():
            if is_orphan(p.name) and not p.is_symlink() and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


def claim_run_dir(folder: str | os.PathLike, *, resume: bool, overwrite: bool) -> list[str]:
    """Make ``folder`` (locked by the caller) this run's: a folder holding another run's checkpoints is refused in
    one line unless the run resumes it or ``overwrite`` replaces it (its ``RUN_FILES`` removed). Returns the
    names removed."""
    folder = Path(folder)
    found = [name for name in RUN_FILES[:2] if (folder / name).exists()]
    if resume and found == ["best.pt"] and not overwrite:  # nothing to resume, and the new run would replace it
        raise RunDirTaken(
            f"checkpoint_dir '{folder}' holds a run's best.pt but no last.pt to resume from; pass overwrite=True "
            "(without resume) to replace that run, or another checkpoint_dir"
        )
    if not found or resume:
        return []
    if not overwrite:
        raise RunDirTaken(
            f"checkpoint_dir '{folder}' already holds a run ({', '.join(found)}); pass resume=True to continue it, "
            "overwrite=True to replace it, or another checkpoint_dir"
        )
    removed = []
    for name in RUN_FILES:
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RunDirError(f"cannot replace the run in '{folder}': {name}: {exc.strerror or exc}") from None
        removed.append(name)
    return removed
