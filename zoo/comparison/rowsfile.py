"""A run directory's files: the rows file (``results.jsonl``, ``rows.jsonl``: one JSON row per line, appended with
fsync, read back whole, except a torn last line that an interrupted append left, which that model simply runs again)
and its ``config.json``.

Both are read as untrusted input: a row is checked field by field against what its writer puts there (types and
ranges: ``top1`` a fraction in [0, 1], ``params`` a count >= 0, ...). A row that fails is skipped with one warning
naming the file, the line and the field, as if it had never been written: a resumed run measures that model again,
and the rest of the file stays usable. (Refusing the whole file would leave a user with nothing but hand-editing
JSON; a skipped row costs one model's re-run.) A line that is not a JSON object with the row's key is damage, not a
forged value, and is refused."""

from __future__ import annotations

import json
import math
import numbers
import os
import stat
import warnings
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["append_row", "read_row_lines", "read_config", "row_problem", "RowWarning", "FIELD_KINDS"]


class RowWarning(UserWarning):
    """A row of a rows file was skipped: a field holds what its writer never puts there."""


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


# ---------------------------------------------------------------------------------------------------------
# Field checks
# ---------------------------------------------------------------------------------------------------------

MAX_TEXT = 10_000  # characters of a text field (an error message, a path); a name is shorter still
MAX_NAME = 300


def _real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _name(v: Any) -> str | None:
    if not isinstance(v, str) or not v.strip():
        return "a non-empty string"
    if len(v) > MAX_NAME or any(c < " " or c == "\x7f" for c in v):
        return f"a name of at most {MAX_NAME} printable characters"
    return None


def _records(v: Any) -> str | None:
    """A list of records of numbers (a training curve: epoch, seconds, losses, accuracies; a loss may be NaN)."""
    what = "a list of records of numbers"
    if not isinstance(v, list) or not all(isinstance(r, dict) for r in v):
        return what
    for record in v:
        if not all(isinstance(k, str) and (x is None or _real(x)) for k, x in record.items()):
            return what
    return None


# kind -> check of a non-null value: the problem as "what is accepted", or None. Every field may also be null.
FIELD_KINDS: dict[str, Callable[[Any], str | None]] = {
    "name": _name,
    "text": lambda v: None if isinstance(v, str) and len(v) <= MAX_TEXT else f"a string (at most {MAX_TEXT:,} chars)",
    "count": lambda v: None if _int(v) and v >= 0 else "an integer >= 0",
    "positive": lambda v: None if _int(v) and v >= 1 else "an integer >= 1",
    "amount": lambda v: None if _real(v) and math.isfinite(v) and v >= 0 else "a finite number >= 0",
    "fraction": lambda v: None if _real(v) and 0 <= v <= 1 else "a fraction in [0, 1]",
    "records": _records,
    "mapping": lambda v: None if isinstance(v, dict) else "a JSON object",
    "hex": lambda v: None if isinstance(v, str) and 0 < len(v) <= 128 and _is_hex(v) else "a hex digest",
}


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


Kind = str | tuple[str, ...] | Callable[[Any], str | None]


def row_problem(row: Any, fields: Mapping[str, Kind], key: str = "model") -> str | None:
    """What makes ``row`` not a row of this file, in a few words (``"top1=5.0: expected a fraction in [0, 1]"``), or
    ``None``. ``fields`` maps a field to a kind of ``FIELD_KINDS``, to the tuple of its accepted strings, or to a
    check of its own (a non-null value -> what is accepted, or ``None``); fields it does not name are not checked.
    ``key`` must be present and not null."""
    if not isinstance(row, dict):
        return f"a row is a JSON object, not {type(row).__name__}"
    if row.get(key) is None:
        return f"'{key}' is missing"
    for name, kind in fields.items():
        value = row.get(name)
        if value is None:
            continue
        if isinstance(kind, tuple):
            accepted = None if value in kind else f"one of {', '.join(kind)}"
        else:
            accepted = (kind if callable(kind) else FIELD_KINDS[kind])(value)
        if accepted:
            return f"{name}={_short(value)}: expected {accepted}"
    return None


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


def read_row_lines(
    path: str | os.PathLike,
    key: Callable[[dict[str, Any]], Hashable],
    what: str,
    *,
    warn: bool = False,
    fields: Mapping[str, Kind] | None = None,
) -> list[dict[str, Any]]:
    """The rows of ``path``, the last one of each ``key`` winning.

    A torn last line is left out (with a warning if ``warn``); a row whose ``fields`` (see ``row_problem``) hold
    what the writer never puts there is skipped with a ``RowWarning`` naming its line; any other line that is not a
    row is a one-line ``ValueError`` naming it."""
    path = _regular(Path(path))
    rows: dict[Hashable, dict[str, Any]] = {}
    lines = path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError(row)
        except (ValueError, TypeError, RecursionError):  # RecursionError: a line of 100,000 nested brackets
            if i == len(lines) - 1:
                if warn:
                    warnings.warn(f"{path}: ignoring a torn last line (an interrupted write)", stacklevel=3)
                continue
            raise ValueError(f"{path}: line {i + 1} is not a {what} row; the file is damaged") from None
        problem = row_problem(row, fields or {})
        if problem:
            warnings.warn(f"{path}: line {i + 1} skipped: {problem}", RowWarning, stacklevel=3)
            continue
        try:
            k = key(row)
            hash(k)
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}: line {i + 1} is not a {what} row (no key); the file is damaged") from None
        rows[k] = row
    return list(rows.values())


def _regular(path: Path) -> Path:
    """``path`` if it is a regular file: a FIFO would block the read for ever, a folder is no file of rows."""
    mode = path.stat().st_mode  # a missing file: FileNotFoundError, as open() would say
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
        raise ValueError(f"'{path}' is not a regular file (it is {kind}); a run directory's files are plain files")
    return path


def read_config(path: str | os.PathLike, what: str = "run directory's settings") -> dict[str, Any]:
    """The JSON object in ``path`` (a run directory's ``config.json``); one-line ``ValueError`` if the file is not
    JSON or holds something else than an object."""
    path = _regular(Path(path))
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"'{path}' is not JSON (not even text); it holds the {what}: restore or delete it") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"'{path}' is not JSON ({exc.msg} at line {exc.lineno}); it holds the {what}: restore or delete it"
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer of 5,000 digits, brackets nested 100,000 deep
        raise ValueError(f"'{path}' is not JSON zoo reads ({type(exc).__name__}); it holds the {what}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"'{path}' holds a JSON {type(data).__name__}, not an object of settings; it holds the {what}: "
            "restore or delete it"
        )
    return data
