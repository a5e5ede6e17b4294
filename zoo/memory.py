"""Freed CPU memory kept for the next batch while zoo trains or evaluates, instead of fresh pages for each tensor.

A training step on the CPU allocates and frees the same large tensors every step: a batch of 64 images at 224 px
is 38.5 MB as float, and each activation is of that order. glibc's ``malloc`` serves a request of 32 MiB or more
(and, before its threshold has adapted, of 128 KiB or more) with a fresh ``mmap`` and unmaps it when it is freed,
so every step the kernel maps and zeroes every page of those tensors again: measured here, 17 ms of page faults to
allocate and fill one 38.5 MB tensor against 1.3 ms from memory the allocator kept, and a small CNN's training
step at 224 px took 1.37x longer (``benchmarks/bench_memory.py``). The usual cure is to preload jemalloc or
tcmalloc; zoo does the part that needs neither: within ``reuse_freed_memory()`` (entered by ``fit``, ``evaluate`` and
zoo's image-folder batches) glibc serves every size from its heap and keeps what is freed
(``mallopt``'s ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``); on leaving, the thresholds go to glibc's adapted
defaults and ``malloc_trim`` gives the kept memory back to the system.

Only glibc (Linux) is touched; elsewhere, or with ``ZOO_REUSE_MEMORY=0``, it does nothing. Worker processes forked
inside the block inherit the setting.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import threading
from collections.abc import Iterator

__all__ = ["reuse_freed_memory", "supported"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_KEEP = 1 << 30  # within the block: no request is mapped on its own, and up to 1 GiB of freed heap is kept
# on leaving: what glibc's own adaptation reaches once a large block has been freed (its mmap threshold's ceiling on
# 64-bit systems, and twice that for trimming), so a process goes on as it would have without zoo
_AFTER_MMAP, _AFTER_TRIM = 32 << 20, 64 << 20

_lock = threading.Lock()
_depth = 0
_applied = False
_libc: ctypes.CDLL | None | bool = False  # False: not looked up yet; None: not glibc


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is False:
        _libc = None
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            with contextlib.suppress(OSError, AttributeError):
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.mallopt.argtypes, lib.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
                _libc = lib
    return _libc  # type: ignore[return-value]


def supported() -> bool:
    """Whether ``reuse_freed_memory`` changes anything here: glibc, and not turned off by ``ZOO_REUSE_MEMORY=0``."""
    off = os.environ.get("ZOO_REUSE_MEMORY", "1").strip().lower() in ("0", "false", "no", "off")
    return not off and _glibc() is not None


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Within the block, large CPU allocations reuse freed memory (glibc); yields whether it applies. Nested and
    concurrent blocks share one setting, undone when the last one ends."""
    global _depth, _applied
    libc = _glibc() if supported() else None
    if libc is None:
        yield False
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _applied = libc.mallopt(_M_MMAP_THRESHOLD, _KEEP) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP) == 1
        applied = _applied
    try:
        yield applied
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP)
                libc.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM)
                libc.malloc_trim(0)
