"""Every Python example in README.md and docs/ runs, and the docs site builds strictly.

Each markdown file's ```python blocks are executed in order in one namespace (a fresh one per file), in a
temporary working directory. A block right after an ``<!-- skip -->`` comment is shown but not run. A block followed
by an ``<!-- output -->`` comment and a ```text block must print that text (doctest's rules: ``...`` matches
anything, runs of whitespace and line breaks are equal, so long lines may be wrapped on the page).
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(
    r"(?P<skip><!--\s*skip\s*-->\s*\n)?^```python[^\n]*\n(?P<code>.*?)^```[ \t]*\n"
    r"(?:\s*<!--\s*output\s*-->\s*\n```text[^\n]*\n(?P<want>.*?)^```)?",
    re.M | re.S,
)
CHECKER, OPTIONS = doctest.OutputChecker(), doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(text: str) -> list[tuple[int, str, bool, str | None]]:
    """``(line number, code, skipped, shown output or None)`` of every ```python block."""
    return [
        (text.count("\n", 0, m.start("code")) + 1, m.group("code"), bool(m.group("skip")), m.group("want"))
        for m in FENCE.finditer(text + "\n")
    ]


def test_block_collection():
    text = "intro\n```python\na = 1\n```\n<!-- skip -->\n```python\nraise SystemExit\n```\n```bash\nls\n```\n"
    text += "```python\nprint(a)\n```\n\n<!-- output -->\n```text\n1\n```\n"
    blocks = python_blocks(text)
    assert [(code, skipped, want) for _, code, skipped, want in blocks] == [
        ("a = 1\n", False, None),
        ("raise SystemExit\n", True, None),
        ("print(a)\n", False, "1\n"),
    ]
    assert blocks[0][0] == 3


def test_shown_output_is_compared_with_ellipsis_and_wrapping():
    got = "weights do not fit 'lenet5': size mismatch for fc3.weight: 20x84 in the weights\n"
    assert CHECKER.check_output(
        "weights do not fit 'lenet5': size mismatch\nfor ...: 20x84 in the weights\n", got, OPTIONS
    )
    assert not CHECKER.check_output("weights fit\n", got, OPTIONS)


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


# pages whose examples train or compare several models: in the full suite only (measured 10-17 s each on 2 busy cores)
SLOW_PAGES = {"docs/comparing.md", "docs/architectures/index.md"}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.slow) if _ids(p) in SLOW_PAGES else p
        for p in DOC_FILES
        if "```python" in p.read_text()
    ],
    ids=_ids,
)
def test_examples_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_PROGRESS", "0")
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    for line, code, skipped, want in python_blocks(path.read_text()):
        if skipped:
            continue
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed) if want is not None else contextlib.nullcontext():
                exec(compile(code, f"{_ids(path)}:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{_ids(path)}, block at line {line} failed: {type(exc).__name__}: {exc}") from exc
        if want is not None and not CHECKER.check_output(want, printed.getvalue(), OPTIONS):
            raise AssertionError(
                f"{_ids(path)}, block at line {line} printed\n{printed.getvalue()}\nthe page shows\n{want}"
            )


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    proc = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-3000:]}"


def option_rows(text: str) -> dict[str, str]:
    """``{option: default cell}`` of the options table of docs/training.md: the rows whose first cell is `name`."""
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", text.split("## The options", 1)[1].split("\n## ", 1)[0], re.M)
    return dict(rows)


def test_training_page_lists_every_fit_option_with_its_default():
    import ast
    import dataclasses

    from zoo.train.config import TrainConfig

    rows = option_rows((ROOT / "docs" / "training.md").read_text())
    defaults = TrainConfig()
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert sorted(rows) == sorted(fields), "add a row to the options table of docs/training.md for each new option"
    for name in fields:
        shown = rows[name].split("→")[0].strip().strip("`")  # `None` → 256: the default, then what it resolves to
        assert ast.literal_eval(shown) == getattr(defaults, name), f"{name}: the page says {shown}"
