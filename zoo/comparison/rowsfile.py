"""A run directory's rows file (``results.jsonl``, ``rows.jsonl``): one JSON row per line, appended with fsync, and
read back whole, except a torn last line that an interrupted append left (that model is simply run again)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

__all__ = ["append_row", "read_row_lines"]


def append_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row as a line, after cutting a torn last line an interrupted write left; fsync'd."""
    path = Path(path)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size:
            f.seek(0)
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
        f.seek(0, os.SEEK_END)
        f.write((json.dumps(row, default=str) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def read_row_lines(
    path: str | os.PathLike, key: Callable[[dict[str, Any]], Hashable], what: str, *, warn: bool = False
) -> list[dict[str, Any]]:
    """The rows of ``path``, the last one of each ``key`` winning; a torn last line is left out (with a warning if
    ``warn``); any other line that is not a row is a one-line ``ValueError`` naming it."""
    path = Path(path)
    rows: dict[Hashable, dict[str, Any]] = {}
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows[key(row)] = row
        except (ValueError, KeyError, TypeError):
            if i == len(lines) - 1:
                if warn:
                    warnings.warn(f"{path}: ignoring a torn last line (an interrupted write)", stacklevel=3)
                continue
            raise ValueError(f"{path}: line {i + 1} is not a {what} row; the file is damaged") from None
    return list(rows.values())
