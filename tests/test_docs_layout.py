"""The docs fit a 1280-px browser window: code lines short enough not to be cut, tables narrow enough that no
column is pushed off the page and no model name breaks mid-word.

The limits are what mkdocs-material shows at 1280 px without a horizontal scroll bar, measured with headless
chromium on the built site (docs/css/extra.css applied): the content column is 720 px wide; code blocks hold 88
characters; a table column is at least its longest unbreakable piece (about 6.5 px a character) plus 32 px of
padding, so the pieces plus 5 characters a column must stay within 110. ``test_built_pages_fit_1280px`` checks
the same in the browser when chromium and mkdocs are installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md"))
CODE_WIDTH = 88  # characters of a code line
TABLE_COLUMNS = 8
# A table's columns shrink to their longest unbreakable piece (a word, or a whole code span: docs/css/extra.css keeps
# names in tables on one line); those pieces, plus each column's padding, must fit the content column.
TABLE_MIN_WIDTH = 110
COLUMN_PADDING = 5
CODE_IN_TABLE = 40  # one code span in a table cell

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


def unbreakable(cell: str) -> list[str]:
    """The pieces of a cell the browser cannot break: its code spans whole, its other words (link targets, bold
    markers and escapes left out, as the browser shows them)."""
    cell = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cell).replace("**", "").replace("\\|", "|")
    spans = re.findall(r"`[^`]*`", cell)
    words = re.sub(r"`[^`]*`", " ", cell).split()
    return [s.strip("`") for s in spans] + words


def test_table_reader():
    text = "a\n\n| x | `y` |\n|---|--:|\n| 1 | [two](t.md) \\| 3 |\n\n```\n| not | a table |\n```\n"
    assert tables(text) == [(3, [["x", "`y`"], ["1", "[two](t.md) \\| 3"]])]
    assert unbreakable("[two words](t.md) \\| `zoo.create(name)` **x**") == [
        "zoo.create(name)",
        "two",
        "words",
        "|",
        "x",
    ]


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
        if columns > TABLE_COLUMNS:
            problems.append(f"{_ids(path)}:{line}: {columns} columns (at most {TABLE_COLUMNS}: split the table)")
        pieces = [[unbreakable(r[i]) if i < len(r) else [] for r in rows] for i in range(columns)]
        least = [max((len(p) for cell in col for p in cell), default=0) for col in pieces]
        need = sum(least) + COLUMN_PADDING * columns
        if need > TABLE_MIN_WIDTH:
            problems.append(f"{_ids(path)}:{line}: {need} characters at the narrowest (at most {TABLE_MIN_WIDTH})")
        spans = [span.strip("`") for r in rows for cell in r for span in re.findall(r"`[^`]*`", cell)]
        problems += [f"{_ids(path)}:{line}: a code span of {len(p)} characters: {p[:40]}" for p in spans
                     if len(p) > CODE_IN_TABLE]  # fmt: skip
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------------------
# The built site in a browser
# ---------------------------------------------------------------------------------------------------------

PROBE = """<script>
window.addEventListener('load', () => {
  const over = [];
  document.querySelectorAll('article table').forEach((t, i) => {
    const box = t.closest('.md-typeset__scrollwrap') || t.parentElement;
    if (t.scrollWidth > box.clientWidth + 1) over.push(`table ${i}: ${t.scrollWidth} px in ${box.clientWidth}`);
  });
  document.querySelectorAll('article pre > code').forEach((c, i) => {
    if (c.scrollWidth > c.clientWidth + 1) over.push(`code block ${i}: ${c.scrollWidth} px in ${c.clientWidth}`);
  });
  const div = document.createElement('div');
  div.id = 'zoo-probe';
  div.textContent = JSON.stringify(over);
  document.body.appendChild(div);
});
</script>"""


@pytest.mark.slow
def test_built_pages_fit_1280px(tmp_path):
    """mkdocs builds the site; headless chromium opens every page at 1280 x 900 and finds no table or code block
    wider than its column (each would need a horizontal scroll bar, hiding what is past its edge)."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if mkdocs is None or chromium is None:
        pytest.skip("needs mkdocs and chromium")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run([mkdocs, "build", "--site-dir", str(site)], cwd=ROOT, check=True, capture_output=True, env=env)
    problems = []
    for page in sorted(site.rglob("index.html")):
        if page.parent == site / "api":
            continue  # mkdocstrings' generated reference: its signatures and tables are its own
        probe = page.with_name("probe.html")
        probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]  # fmt: skip
        out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
        found = re.search(r'<div id="zoo-probe">(.*?)</div>', out)
        assert found, f"the probe did not run on {page.relative_to(site)}"
        problems += [f"{page.parent.relative_to(site)}: {p}" for p in json.loads(found.group(1))]
    assert not problems, "\n".join(problems)


def test_the_api_page_puts_a_newcomers_functions_first():
    """The reference once listed ~93 internals (plugin manager, containment, weights helpers, loaders) before
    ``zoo.fit``: now the first section is the functions of a first session, and no internal module is documented
    before the plugin contract."""
    text = (ROOT / "docs" / "api.md").read_text()
    first = text.split("## Start here", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^::: zoo\.([\w.]+)", first, re.M)
    names = [d.rsplit(".", 1)[1] for d in documented]
    for wanted in ("create", "list_models", "load_dataset", "fit", "evaluate", "predict", "save", "load", "compare"):
        assert wanted in names, f"{wanted} is not in the API page's first section"
    assert names.index("create") == 0 and names.index("fit") < names.index("compare")
    internals = ("containment.call_plugin", "weights", "data.loaders", "data.batching", "train.resume", "files")
    everything = re.findall(r"^::: zoo\.([\w.]+)", text, re.M)
    assert not [d for d in everything if d.startswith(internals)], "internal modules on the API page"
