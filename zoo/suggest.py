"""One way to say "did you mean": the nearest valid choices for a misspelt name, in one wording everywhere."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["suggest", "closest"]


def closest(word: object, choices: Iterable[str], n: int = 1) -> list[str]:
    """The (up to ``n``) choices nearest to ``word``, compared case-insensitively; a choice that starts with the
    word or the word with it ('lr_rate' -> 'lr', 'epoch' -> 'epochs', 'efficient' -> 'efficientnet_b0') when none
    is close by spelling."""
    lowered: dict[str, str] = {}
    for choice in map(str, choices):
        lowered.setdefault(choice.lower(), choice)
    key = str(word).lower()
    close = difflib.get_close_matches(key, list(lowered), n=n)
    if not close:
        close = sorted((c for c in lowered if len(c) >= 2 and (key.startswith(c) or c.startswith(key))), key=len)[:n]
    return [lowered[c] for c in close]


def suggest(word: object, choices: Iterable[str], n: int = 1) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``) for the closest of ``choices`` to ``word``, or ``""``."""
    close = closest(word, choices, n)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
