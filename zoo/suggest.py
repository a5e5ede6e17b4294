"""One way to say "did you mean": the nearest valid choice for a misspelt name, in one wording everywhere."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["suggest"]


def suggest(word: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``word``, or ``""`` when none is close."""
    word, options = str(word), [str(c) for c in choices]
    close = difflib.get_close_matches(word, options, n=1)
    if not close:  # 'lr_rate' -> 'lr', 'epoch' -> 'epochs': one name starting with the other
        close = sorted((c for c in options if len(c) >= 2 and (word.startswith(c) or c.startswith(word))), key=len)
    return f"; did you mean '{close[0]}'?" if close else ""
