"""Messages for people: one line from an exception, a shortened repr. Every error zoo writes about another error
uses these, so a long or many-line message reads the same everywhere."""

from __future__ import annotations

from typing import Any


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, shortened: for a value quoted from a file or a user, which may be huge."""
    return shorten(repr(value), limit)


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped (``""`` when there is none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def exception_line(exc: BaseException, limit: int = 200, *, text: str | None = None) -> str:
    """``"TypeName: first line of the message"`` in at most ``limit`` characters; the type name alone when the
    message is empty.

    Args:
        exc: the exception.
        limit: the most characters of the whole line.
        text: the message, when the caller has already read ``str(exc)`` safely (a plugin's ``__str__`` may raise).
    """
    line = first_line(str(exc) if text is None else text)
    return shorten(f"{type(exc).__name__}: {line}" if line else type(exc).__name__, limit)
