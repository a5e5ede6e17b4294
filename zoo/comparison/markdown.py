"""Text from rows files and run directories, made safe for a markdown table or page.

A model name, a family, an error message: anything read back from a file may hold markdown (``a|b`` splits a table
cell, ``[x](javascript:...)`` is a link) or HTML (``<script>``), which a markdown page renders as such. These helpers
make it show as written."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["markdown_text", "markdown_code"]

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MARKDOWN = re.compile(r"([\\`*_\[\]|#~!])")  # what starts or ends markup, the table's cell separator included


def _one_line(value: Any) -> str:
    return " ".join(str(value).split("\n")).replace("\r", " ")


def markdown_text(value: Any) -> str:
    """``value`` as plain text in markdown (a table cell, a heading, a list item): HTML's ``& < >`` as entities,
    markdown's punctuation and ``|`` backslash-escaped, newlines as spaces."""
    text = "".join(_HTML.get(c, c) for c in _one_line(value))
    return _MARKDOWN.sub(r"\\\1", text)


def markdown_code(value: Any) -> str:
    """``value`` as an inline code span: HTML and markdown inside a code span show as written, so only the fence
    (longer than any run of backticks in the text) and a table's ``|`` need care (``\\|``: GitHub shows ``|``,
    Python-Markdown ``\\|``, both in the one cell)."""
    text = _one_line(value).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
