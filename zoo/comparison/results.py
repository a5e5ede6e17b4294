"""``Results``: the rows of a comparison as tables, CSV/JSON/Markdown exports, pandas and plots."""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
FIELDS = [*COLUMNS, "dataset", "epochs", "img_size", "device", "precision", "batch_size", "throughput_batch"]


class Results:
    """A comparison table: one row (a dict) per model. ``print()`` it, export it, plot it, reload it.

    Row keys: ``model``, ``params``, ``flops`` (per image; a multiply-add counts 2), ``train_s``,
    ``train_img_s``, ``latency_ms`` (batch 1, median), ``throughput_img_s`` (inference), ``peak_mem_mb``
    (CUDA only; ``None`` elsewhere), ``top1``/``top5`` (fractions), ``error`` (why a model failed, else
    ``None``), and the settings ``dataset``, ``epochs``, ``img_size``, ``device``, ``precision``, ``batch_size``.
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
        """The table as text: ``style`` is ``"plain"``, ``"box"`` (terminals) or ``"markdown"``."""
        headers, body = self._formatted()
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
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
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
        """Read a file written by ``to_csv`` (numbers parsed back, empty cells as ``None``)."""
        rows = []
        with open(path, newline="") as f:
            for raw in csv.DictReader(f):
                rows.append({k: _parse_cell(v) for k, v in raw.items()})
        return cls(rows)

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> Results:
        """Read what ``to_json`` wrote (a path, or the JSON text itself)."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            text = Path(path_or_text).read_text()
        data = json.loads(text)
        return cls(data.get("rows", []), data.get("meta"))

    # -- run directories ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> Results:
        """Reload a run directory written by ``zoo.compare(..., run_dir=...)``; the last row of a model wins."""
        path = Path(run_dir) / "results.jsonl"
        if not path.exists():
            raise FileNotFoundError(
                f"no comparison in '{run_dir}': {path.name} not found (written by compare(run_dir=))"
            )
        rows: dict[str, dict[str, Any]] = {}
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows[row["model"]] = row
            except (ValueError, KeyError, TypeError):
                if i == len(lines) - 1:  # a torn last line (a crash mid-append): that model is run again
                    warnings.warn(f"{path}: ignoring a torn last line (an interrupted write)", stacklevel=2)
                    continue
                raise ValueError(f"{path}: line {i + 1} is not a result row; the file is damaged") from None
        meta = {}
        config = Path(run_dir) / "config.json"
        if config.exists():
            meta = json.loads(config.read_text())
        return cls(rows.values(), meta)

    def merge(self, other: Results) -> Results:
        """A new table with the rows of both; a model present in both keeps ``other``'s row."""
        rows = {r["model"]: r for r in self.rows}
        rows.update({r["model"]: r for r in other.rows})
        return Results(rows.values(), {**self.meta, **other.meta})

    # -- plots ---------------------------------------------------------------------------------------------

    def plot(self, path: str | os.PathLike, *, metric: str = "top1", title: str | None = None) -> Path:
        """Accuracy against parameters and against FLOPs (two panels, log-scale x, labelled points).

        Saved as PNG, SVG or PDF according to the suffix of ``path``; needs matplotlib (``pip install
        "zoo[plot]"``), runs headless and leaves matplotlib's backend alone. Rows without the metric (failed
        models) are left out.
        """
        from zoo.plotting import check_plot_path, new_figure, save_figure

        path = check_plot_path(path)
        fig = new_figure("Results.plot()", figsize=(10, 4.2))
        rows = [r for r in self.rows if r.get(metric) is not None and not r.get("error")]
        if not rows:
            raise ValueError(f"nothing to plot: no row has a value for '{metric}'")
        axes = fig.subplots(1, 2)
        label = {"top1": "test top-1 accuracy (%)", "top5": "test top-5 accuracy (%)"}.get(metric, metric)
        for ax, key, xlabel in ((axes[0], "params", "parameters"), (axes[1], "flops", "FLOPs per image")):
            pts = [(r[key], 100 * r[metric], r["model"]) for r in rows if r.get(key)]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=40, color="tab:blue", zorder=3)
                for x, y, name in pts:
                    ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
                ax.set_xscale("log")
                xs = [p[0] for p in pts]
                ax.set_xlim(min(xs) / 2, max(xs) * 3)
            ax.set_xlabel(f"{xlabel} (log scale)")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
        ys = [100 * r[metric] for r in rows]
        for ax in axes:
            ax.set_ylim(max(0, min(ys) - 10), min(100, max(ys) + 5) + 1)
        if title is None:
            ds = {r.get("dataset") for r in rows} - {None}
            ep = {r.get("epochs") for r in rows} - {None}
            title = "accuracy vs size"
            if len(ds) == 1:
                title += f" on {ds.pop()}"
            if len(ep) == 1:
                n = ep.pop()
                title += f", {n} epoch{'s' if n != 1 else ''}"
        fig.suptitle(title)
        return save_figure(fig, path)


def _parse_cell(value: str | None) -> Any:
    if value is None or value == "":
        return None
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    return value
