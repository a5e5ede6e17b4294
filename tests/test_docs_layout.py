"""The docs fit a 1280-px browser window: code lines short enough not to be cut, tables narrow enough that no
column is pushed off the page and no model name breaks mid-word.

The limits are what mkdocs-material shows at 1280 px without a horizontal scroll bar (measured with headless
chromium on the built site: the content column holds about 88 characters of code and tables of about 110
characters of text at the table's smaller font).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md"))
CODE_WIDTH = 88  # characters of a code line
TABLE_COLUMNS = 8
TABLE_WIDTH = 110  # characters of text across a table's widest cells, rendered (markup left out)
CELL_WIDTH = 60  # one cell; longer text belongs in the prose under the table

FENCE = re.compile(r"^(```+|~~~+)([^\n]*)\n(.*?)^\1\s*$", re.M | re.S)


def code_blocks(text: str) -> list[tuple[int, str, str]]:
    """``(line number, language, code)`` of each fenced block."""
    return [(text.count("\n", 0, m.start(3)) + 1, m.group(2).strip(), m.group(3)) for m in FENCE.finditer(text)]


def tables(text: str) -> list[tuple[int, list[list[str]]]]:
    """``(line number, rows of cells)`` of each pipe table outside code blocks (the separator row left out)."""
    masked = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    out, current, start = [], [], 0
    for i, line in enumerate(masked.splitlines() + [""], 1):
        if line.startswith("|"):
            if not current:
                start = i
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            out.append((start, current))
            current = []
    return out


def shown(cell: str) -> str:
    """A cell's text as the browser shows it: no backticks, link targets, bold markers or escapes."""
    cell = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cell)
    return cell.replace("`", "").replace("**", "").replace("\\|", "|")


def test_table_reader():
    text = "a\n\n| x | `y` |\n|---|--:|\n| 1 | [two](t.md) \\| 3 |\n\n```\n| not | a table |\n```\n"
    assert tables(text) == [(3, [["x", "`y`"], ["1", "[two](t.md) \\| 3"]])]
    assert shown("[two](t.md) \\| 3") == "two | 3"


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", PAGES, ids=_ids)
def test_code_lines_fit_the_page(path):
    long = [
        f"{_ids(path)}:{line + k}: {len(code_line)} characters"
        for line, lang, code in code_blocks(path.read_text())
        for k, code_line in enumerate(code.splitlines())
        if len(code_line) > CODE_WIDTH
    ]
    assert not long, f"code lines over {CODE_WIDTH} characters are cut at 1280 px:\n" + "\n".join(long)


@pytest.mark.parametrize("path", PAGES, ids=_ids)
def test_tables_fit_the_page(path):
    problems = []
    for line, rows in tables(path.read_text()):
        columns = max(len(r) for r in rows)
        widths = [max(len(shown(r[i])) for r in rows if i < len(r)) for i in range(columns)]
        if columns > TABLE_COLUMNS:
            problems.append(f"{_ids(path)}:{line}: {columns} columns (at most {TABLE_COLUMNS}: split the table)")
        if sum(widths) > TABLE_WIDTH:
            problems.append(f"{_ids(path)}:{line}: {sum(widths)} characters across (at most {TABLE_WIDTH})")
        for r in rows:
            for cell in r:
                if len(shown(cell)) > CELL_WIDTH:
                    problems.append(f"{_ids(path)}:{line}: a {len(shown(cell))}-character cell: {cell[:40]}...")
    assert not problems, "\n".join(problems)
