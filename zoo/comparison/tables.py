"""Text tables and one-line messages, shared by the comparison tables, summaries and the CLI."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from zoo.messages import exception_line

# ---------------------------------------------------------------------------------------------------------
# Formatting helpers (shared with the CLI)
# ---------------------------------------------------------------------------------------------------------


def format_number(value: float | int | None, unit: str = "") -> str:
    """``61706 -> "61.7K"``, ``2.3e9 -> "2.30G"``; ``None -> "n/a"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    value = float(value)
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            v = value / factor
            return f"{v:.3g}{suffix}{unit}" if v < 100 else f"{v:.0f}{suffix}{unit}"
    return f"{value:.3g}{unit}" if value != int(value) else f"{int(value)}{unit}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, style: str = "plain") -> str:
    """Aligned columns. ``style="box"`` draws rules with box characters (terminals), ``"plain"`` uses spaces and
    dashes (pipes, logs), ``"markdown"`` a GitHub table. Numbers (cells starting with a digit) align right."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def numeric(col: int) -> bool:
        values = [r[col] for r in cells[1:] if r[col] not in ("", "n/a", "-")]
        return bool(values) and all(v[:1].isdigit() or v[:1] in "-+." for v in values)

    right = [numeric(i) for i in range(len(headers))]

    def line(r: list[str], sep: str) -> str:
        return sep.join(c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))

    if style == "markdown":
        out = ["| " + line(cells[0], " | ") + " |"]
        out.append("|" + "|".join(("-" * (w + 1) + ":") if right[i] else ("-" * (w + 2)) for i, w in enumerate(widths)))
        out[-1] += "|"
        out += ["| " + line(r, " | ") + " |" for r in cells[1:]]
        return "\n".join(out)
    if style == "box":
        top = "┌─" + "─┬─".join("─" * w for w in widths) + "─┐"
        mid = "├─" + "─┼─".join("─" * w for w in widths) + "─┤"
        bot = "└─" + "─┴─".join("─" * w for w in widths) + "─┘"
        body = ["│ " + line(r, " │ ") + " │" for r in cells[1:]]
        return "\n".join([top, "│ " + line(cells[0], " │ ") + " │", mid, *body, bot])
    out = [line(cells[0], "  ").rstrip(), "  ".join("-" * w for w in widths)]
    out += [line(r, "  ").rstrip() for r in cells[1:]]
    return "\n".join(out)


def one_line(exc: BaseException) -> str:
    """A short one-line reason for a row of the table."""
    return "out of memory" if isinstance(exc, torch.OutOfMemoryError) else exception_line(exc)
