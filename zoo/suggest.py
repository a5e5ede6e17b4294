"""One way to say "did you mean": the nearest valid choices for a misspelt name, in one wording everywhere."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["suggest", "closest"]


def closest(word: object, choices: Iterable[str], n: int = 1) -> list[str]:
    """The (up to ``n``) choices nearest to ``word``, compared case-insensitively, most likely first.

    The same name in another case; else the choices that begin with the word, shortest first ('lenet' -> 'lenet5',
    'mobilenet_v3' -> 'mobilenet_v3_large', 'mobilenet_v3_small'); else the closest by spelling ('alexnt' ->
    'alexnet'); else the longest choice the word begins with ('lr_rate' -> 'lr').
    """
    lowered: dict[str, str] = {}
    for choice in map(str, choices):
        lowered.setdefault(choice.lower(), choice)
    key = str(word).lower()
    ranked = [key] if key in lowered else []
    if len(key) >= 3:
        ranked += sorted((c for c in lowered if c.startswith(key) and c != key), key=lambda c: (len(c), c))
    if not ranked:  # the spelling only when no name is the word or starts with it
        ranked += difflib.get_close_matches(key, list(lowered), n=n)
    if not ranked:  # nothing close: the longest choice the word begins with
        ranked = sorted((c for c in lowered if len(c) >= 2 and key.startswith(c)), key=len, reverse=True)
    return [lowered[c] for c in dict.fromkeys(ranked)][:n]


def suggest(word: object, choices: Iterable[str], n: int = 1) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``) for the closest of ``choices`` to ``word``, or ``""``."""
    close = closest(word, choices, n)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
