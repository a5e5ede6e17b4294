"""``Results``: the rows of a comparison as tables, CSV/JSON/Markdown exports, pandas and plots."""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.comparison.markdown import markdown_text
from zoo.comparison.rowsfile import RowWarning, read_config, read_row_lines, row_problem
from zoo.comparison.tables import format_number, render_table

# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------

# column key -> (header, formatter); the order of the table
COLUMNS: dict[str, tuple[str, Any]] = {
    "model": ("model", str),
    "params": ("params", format_number),
    "flops": ("FLOPs/img", format_number),
    "train_s": ("train s", lambda v: "n/a" if v is None else f"{v:.1f}"),
    "train_img_s": ("train img/s", lambda v: "n/a" if v is None else f"{v:,.0f}"),
    "latency_ms": ("latency ms (b=1)", lambda v: "n/a" if v is None else f"{v:.2f}"),
    "throughput_img_s": ("infer img/s (b=256)", lambda v: "n/a" if v is None else f"{v:,.0f}"),
    "peak_mem_mb": ("peak MB", lambda v: "n/a" if v is None else f"{v:,.0f}"),
    "top1": ("top-1 %", lambda v: "n/a" if v is None else f"{100 * v:.1f}"),
    "top5": ("top-5 %", lambda v: "n/a" if v is None else f"{100 * v:.1f}"),
    "error": ("error", lambda v: v or ""),
}
FIELDS = [*COLUMNS, "dataset", "epochs", "img_size", "device", "precision", "threads", "batch_size", "throughput_batch"]
# What each field of a saved row may hold (zoo.comparison.rowsfile.FIELD_KINDS): rows read back from a file are
# checked against it, so that a forged or damaged row is skipped, never shown as measured.
ROW_FIELDS: dict[str, str] = {
    "model": "name", "params": "count", "flops": "amount", "train_s": "amount", "train_img_s": "amount",
    "latency_ms": "amount", "throughput_img_s": "amount", "peak_mem_mb": "amount", "top1": "fraction",
    "top5": "fraction", "error": "text", "family": "text", "curve": "records", "dataset": "text", "epochs": "count",
    "img_size": "positive", "device": "text", "precision": "text", "threads": "positive", "batch_size": "positive",
    "throughput_batch": "positive", "note": "text",
}  # fmt: skip


class Results:
    """A comparison table: one row (a dict) per model. ``print()`` it, export it, plot it, reload it.

    Row keys: ``model``, ``params``, ``flops`` (per image; a multiply-add counts 2), ``train_s``,
    ``train_img_s``, ``latency_ms`` (batch 1, median), ``throughput_img_s`` (inference), ``peak_mem_mb``
    (CUDA only; ``None`` elsewhere), ``top1``/``top5`` (fractions), ``error`` (why a model failed, else
    ``None``), ``family``, ``curve`` (one record per epoch: ``epoch``, ``seconds`` of training so far, ``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy``), and the settings ``dataset``, ``epochs``, ``img_size``,
    ``device``, ``precision``, ``batch_size``.
    """

    def __init__(self, rows: Iterable[dict[str, Any]] = (), meta: dict[str, Any] | None = None) -> None:
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]
        self.meta: dict[str, Any] = dict(meta or {})

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key: int | str) -> dict[str, Any]:
        if isinstance(key, str):
            for row in self.rows:
                if row.get("model") == key:
                    return row
            raise KeyError(f"no row for model '{key}'; models: {', '.join(r.get('model', '?') for r in self.rows)}")
        return self.rows[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Results) and self.rows == other.rows

    # -- tables --------------------------------------------------------------------------------------------

    def _columns(self) -> list[str]:
        cols = [c for c in COLUMNS if c != "error"]
        if any(r.get("error") for r in self.rows):
            cols.append("error")
        return cols

    def _formatted(self) -> tuple[list[str], list[list[str]]]:
        cols = self._columns()
        headers = [COLUMNS[c][0] for c in cols]
        if self.rows and len({r.get("throughput_batch") for r in self.rows}) == 1:
            tb = self.rows[0].get("throughput_batch")
            if tb:
                headers[cols.index("throughput_img_s")] = f"infer img/s (b={tb})"
        body = [[COLUMNS[c][1](r.get(c)) for c in cols] for r in self.rows]
        return headers, body

    def table(self, style: str = "plain") -> str:
        """The table as text: ``style`` is ``"plain"``, ``"box"`` (terminals) or ``"markdown"`` (every cell escaped:
        a model named ``a|b`` or ``<script>`` shows as written, in its own cell)."""
        headers, body = self._formatted()
        if style == "markdown":
            body = [[markdown_text(cell) for cell in row] for row in body]
        return render_table(headers, body, style=style)

    def to_markdown(self) -> str:
        """A GitHub-flavoured markdown table with human units (``61.7K`` params, ``0.85M`` FLOPs)."""
        return self.table("markdown")

    def __str__(self) -> str:
        return self.table("plain")

    def __repr__(self) -> str:
        return f"Results({len(self.rows)} rows: {', '.join(str(r.get('model')) for r in self.rows)})"

    def _field_names(self) -> list[str]:
        extra = [k for r in self.rows for k in r if k not in FIELDS]
        return FIELDS + sorted(set(extra))

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The raw numbers as CSV (empty cells for missing values); written to ``path`` if given, and returned."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self._field_names(), lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The rows (and the settings in ``meta``) as JSON; written to ``path`` if given, and returned."""
        text = json.dumps({"meta": self.meta, "rows": self.rows}, indent=2, default=str)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_pandas(self):
        """A ``pandas.DataFrame`` of the rows (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Results.to_pandas() needs pandas: pip install pandas") from None
        return pd.DataFrame(self.rows, columns=self._field_names())

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> Results:
        """Read a file written by ``to_csv`` (numbers parsed back, empty cells as ``None``); a row whose fields
        hold what ``compare`` never writes is skipped with a ``RowWarning`` naming its line."""
        rows = []
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            for raw in reader:
                row = {k: _parse_cell(v, ROW_FIELDS.get(k)) for k, v in raw.items() if k is not None}
                if _checked(row, f"{path}: line {reader.line_num}"):
                    rows.append(row)
        return cls(rows)

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> Results:
        """Read what ``to_json`` wrote (a path, or the JSON text itself); a row whose fields hold what ``compare``
        never writes is skipped with a ``RowWarning``, anything else than ``{"meta": {...}, "rows": [...]}`` is a
        one-line ``ValueError``."""
        text = str(path_or_text)
        where = "the JSON text"
        if not text.lstrip().startswith("{"):
            where = str(path_or_text)
            text = Path(path_or_text).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not JSON ({exc.msg} at line {exc.lineno})") from None
        rows, meta = (data.get("rows", []), data.get("meta")) if isinstance(data, dict) else (None, None)
        if not isinstance(rows, list) or not isinstance(meta, dict | None):
            raise ValueError(f'{where} is not a comparison: expected {{"meta": {{...}}, "rows": [...]}}')
        return cls([r for i, r in enumerate(rows) if _checked(r, f"{where}: row {i + 1}")], meta)

    # -- run directories ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> Results:
        """Reload a run directory written by ``zoo.compare(..., run_dir=...)``; the last row of a model wins."""
        path = Path(run_dir) / "results.jsonl"
        if not path.exists():
            raise FileNotFoundError(
                f"no comparison in '{run_dir}': {path.name} not found (written by compare(run_dir=))"
            )
        rows = read_row_lines(path, lambda r: r["model"], "result", warn=True, fields=ROW_FIELDS)
        config = Path(run_dir) / "config.json"
        return cls(rows, read_config(config, "comparison's settings") if config.exists() else {})

    def merge(self, other: Results) -> Results:
        """A new table with the rows of both; a model present in both keeps ``other``'s row."""
        rows = {r["model"]: r for r in self.rows}
        rows.update({r["model"]: r for r in other.rows})
        return Results(rows.values(), {**self.meta, **other.meta})

    # -- plots ---------------------------------------------------------------------------------------------

    def plot(
        self,
        path: str | os.PathLike,
        *,
        x: str | Sequence[str] = ("params", "flops"),
        metric: str = "top1",
        title: str | None = None,
    ) -> Path:
        """Accuracy against parameters and against FLOPs: one panel per key of ``x``, log-scale x, every point
        labelled (labels placed so that they do not overlap), coloured by family when rows carry one.

        ``x`` may also name ``"train_s"`` (training time), ``"train_img_s"``, ``"latency_ms"``,
        ``"throughput_img_s"``. Saved as PNG, SVG or PDF according to the suffix of ``path``; needs matplotlib
        (``pip install "zoo[plot]"``), runs headless and leaves matplotlib's backend alone. Rows without the metric
        (failed models) are left out.
        """
        from zoo.comparison.plots import plot_accuracy

        return plot_accuracy(self.rows, path, x=x, metric=metric, title=title)

    def plot_curves(
        self, path: str | os.PathLike, *, x: str = "seconds", metric: str = "val_accuracy", title: str | None = None
    ) -> Path:
        """Every model's training curve on one figure: validation accuracy after each epoch against the training
        time so far (``x="seconds"``, log scale) or the epoch (``x="epoch"``); each line labelled at its end.
        Uses the ``curve`` each row of ``zoo.compare`` holds."""
        from zoo.comparison.plots import plot_curves

        return plot_curves(self.rows, path, x=x, metric=metric, title=title)


def _checked(row: Any, where: str) -> bool:
    """Whether ``row`` holds what ``compare`` writes; if not, a ``RowWarning`` says where and why."""
    problem = row_problem(row, ROW_FIELDS)
    if problem:
        warnings.warn(f"{where} skipped: {problem}", RowWarning, stacklevel=3)
    return problem is None


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else value


def _parse_cell(value: str | None, kind: str | None = None) -> Any:
    if value is None or value == "":
        return None
    if kind in ("name", "text"):  # a model or dataset named "10" stays a name
        return value
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            pass
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    return value
