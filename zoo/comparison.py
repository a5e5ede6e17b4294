"""Summaries and side-by-side comparisons: parameters, FLOPs, speed and accuracy; tables, exports and plots.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode``: a multiply-add counts as **2** FLOPs
(fvcore, thop and ptflops report multiply-adds, i.e. half these figures), and attention computed through
``scaled_dot_product_attention`` is included. Element-wise work (activations, normalisation, pooling) is not
counted, as in every FLOP counter people quote.

    s = zoo.summary("lenet5")                        # per-layer table, parameters, FLOPs, activation memory
    results = zoo.compare(["mlp", "lenet5"], dataset="digits", epochs=1)
    print(results.to_markdown()); results.plot("cmp.png")
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = ["LayerInfo", "Summary", "Results", "summary", "compare", "count_flops", "format_number", "render_table"]

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
    if isinstance(exc, torch.OutOfMemoryError):
        return "out of memory"
    text = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ---------------------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------------------


@dataclass
class LayerInfo:
    """One row of a summary: a module, its output shape and its own parameters (with its children's)."""

    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...] | None
    params: int

    def to_dict(self) -> dict[str, Any]:
        shape = list(self.output_shape) if self.output_shape is not None else None
        return {"name": self.name, "type": self.type, "depth": self.depth, "output_shape": shape, "params": self.params}


@dataclass
class Summary:
    """What ``zoo.summary`` returns; ``print()`` it for a torchinfo-like table."""

    name: str
    input_size: tuple[int, ...]
    batch_size: int
    layers: list[LayerInfo]
    total_params: int
    trainable_params: int
    flops: int  # floating-point operations of one forward pass at (batch_size, *input_size); a multiply-add is 2
    activation_bytes: int  # bytes of every leaf module's outputs in one forward pass (an estimate of activations)
    param_bytes: int
    output_shape: tuple[int, ...] | None = None
    flops_by_operator: dict[str, int] = field(default_factory=dict)

    @property
    def flops_per_image(self) -> float:
        return self.flops / self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "param_bytes": self.param_bytes,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "flops_by_operator": dict(self.flops_by_operator),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def table(self, style: str = "plain") -> str:
        rows = [
            (
                "  " * (layer.depth - 1) + layer.name.rsplit(".", 1)[-1],
                layer.type,
                "x".join(map(str, layer.output_shape)) if layer.output_shape is not None else "-",
                f"{layer.params:,}" if layer.params else "-",
            )
            for layer in self.layers
        ]
        return render_table(("layer", "type", "output shape", "params"), rows, style=style)

    def totals(self) -> str:
        """The three lines under the table: parameters, FLOPs, activation memory."""
        lines = [
            f"params        {self.total_params:,} total, {self.trainable_params:,} trainable "
            f"({self.param_bytes / 2**20:.2f} MiB)",
            f"FLOPs         {self.flops:,} ({format_number(self.flops)} FLOPs; a multiply-add counts 2)",
            f"activations   {self.activation_bytes / 2**20:.2f} MiB (outputs of every layer in one forward pass)",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        size = "x".join(map(str, self.input_size))
        return "\n".join([f"{self.name} at input {self.batch_size}x{size}", self.table(), self.totals()])

    __repr__ = __str__


def _extra_flop_formulas() -> dict[Any, Any]:
    """Formulas PyTorch's counter lacks: on CPU, SDPA dispatches to a flash kernel it does not count."""
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry:
        return {}

    def cpu_flash_attention(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    return {op: cpu_flash_attention}


def count_flops(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """FLOPs of ``model(x)`` (a multiply-add counts 2) and their split by operator, with ``FlopCounterMode``."""
    from torch.utils import flop_counter

    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
    with counter, torch.no_grad():
        model(x)
    counts = counter.get_flop_counts().get("Global", {})
    by_op = {str(op).removeprefix("aten."): int(n) for op, n in counts.items()}
    return int(counter.get_total_flops()), by_op


def _resolve(model_or_name: nn.Module | str, input_size: Sequence[int] | None) -> tuple[nn.Module, str, tuple]:
    from zoo import registry

    if isinstance(model_or_name, str):
        spec = registry.get_spec(model_or_name)
        size = tuple(input_size) if input_size is not None else spec.input_size
        if size is None:
            raise ValueError(f"{model_or_name}: its card declares no input_size; pass input_size=(C, H, W)")
        kwargs = {}
        if input_size is not None:
            kwargs = {"in_chans": size[0], "img_size": size[1] if size[1] == size[2] else tuple(size[1:])}
        try:
            with torch.device("meta"):  # only shapes are needed: no memory, no initialisation cost
                model = registry.create(model_or_name, **kwargs)
        except Exception:
            model = registry.create(model_or_name, **kwargs)
        return model, model_or_name, size
    if not isinstance(model_or_name, nn.Module):
        raise TypeError(f"summary() takes a model name or an nn.Module, got {type(model_or_name).__name__}")
    model = model_or_name
    config = getattr(model, "zoo_config", None)
    name = config["name"] if config else type(model).__name__
    if input_size is None and config:
        spec = registry.get_spec(config["name"])
        if spec.input_size is not None:
            c, h, w = spec.input_size
            kw = config.get("kwargs", {})
            img = kw.get("img_size", h)
            h, w = (img, img) if isinstance(img, int) else tuple(img)
            input_size = (kw.get("in_chans", c), h, w)
    if input_size is None:
        raise ValueError(
            f"summary() needs input_size=(C, H, W) for a {type(model).__name__} not made by zoo.create "
            "(e.g. input_size=(3, 32, 32))"
        )
    return model, name, tuple(input_size)


def summary(
    model_or_name: nn.Module | str,
    input_size: Sequence[int] | None = None,
    *,
    batch_size: int = 1,
    depth: int = 3,
) -> Summary:
    """Parameters, FLOPs, activation memory and a per-layer table of a model at an input size.

    Args:
        model_or_name: a registry name (built on the meta device: instant, even for ViT-B) or an ``nn.Module``.
        input_size: ``(C, H, W)``; defaults to the model card's input (for names and for models made by
            ``zoo.create``); required for other modules.
        batch_size: the batch of the forward pass that is measured; ``flops_per_image`` divides by it.
        depth: nesting depth of the modules listed in the table (1: only the model's children).

    Returns:
        A ``Summary``: ``print()`` it, or read ``total_params``, ``trainable_params``, ``flops`` (a multiply-add
        counts 2, never MACs), ``activation_bytes``, ``layers`` and ``to_dict()``.
    """
    model, name, size = _resolve(model_or_name, input_size)
    if len(size) != 3 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"input_size must be (C, H, W) positive integers, got {tuple(size)}")
    try:
        param = next(iter(model.parameters()))
        device, dtype = param.device, param.dtype if param.is_floating_point() else torch.float32
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32

    rows: dict[str, LayerInfo] = {}
    shapes: dict[str, tuple[int, ...] | None] = {}
    act_bytes = [0]
    handles = []

    def first_tensor(out: Any) -> torch.Tensor | None:
        if isinstance(out, torch.Tensor):
            return out
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            return out[0]
        return None

    def tensor_bytes(out: Any) -> int:
        if isinstance(out, torch.Tensor):
            return out.numel() * out.element_size()
        if isinstance(out, (tuple, list)):
            return sum(tensor_bytes(o) for o in out)
        if isinstance(out, dict):
            return sum(tensor_bytes(o) for o in out.values())
        return 0

    for mod_name, module in model.named_modules():
        if not mod_name:
            continue
        level = mod_name.count(".") + 1
        leaf = next(iter(module.children()), None) is None
        if level <= depth:
            rows[mod_name] = LayerInfo(
                mod_name, type(module).__name__, level, None, sum(p.numel() for p in module.parameters())
            )

        def hook(mod, inp, out, mod_name=mod_name, leaf=leaf, listed=level <= depth):
            if listed:
                t = first_tensor(out)
                shapes[mod_name] = tuple(t.shape) if t is not None else None
            if leaf:
                act_bytes[0] += tensor_bytes(out)

        handles.append(module.register_forward_hook(hook))

    was_training = model.training
    model.eval()
    x = torch.zeros(batch_size, *size, device=device, dtype=dtype)
    try:
        flops, by_op = count_flops(model, x)
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for mod_name, layer in rows.items():
        layer.output_shape = shapes.get(mod_name)
    out_t = first_tensor(out)
    # hooks ran twice (FLOP count + forward): keep one pass
    act = act_bytes[0] // 2
    params = list(model.parameters())
    return Summary(
        name=name,
        input_size=tuple(size),
        batch_size=batch_size,
        layers=[r for r in rows.values() if r.output_shape is not None or r.params],
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        flops=flops,
        activation_bytes=act,
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        output_shape=tuple(out_t.shape) if out_t is not None else None,
        flops_by_operator=by_op,
    )


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


# ---------------------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Versions and hardware, saved next to results so numbers can be read in context."""
    from zoo.version import __version__

    env = {
        "zoo": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return env


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], Any], runs: int, warmup: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` over ``runs`` timed calls after ``warmup`` untimed ones (synchronised on CUDA)."""
    times = []
    for i in range(warmup + runs):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _time_forward(model: nn.Module, x: torch.Tensor, runs: int, warmup: int = 2) -> float:
    """Median seconds of ``model(x)`` in inference mode."""

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    return median_time(forward, runs, warmup, x.device)


def bench_model(model: nn.Module, input_size: Sequence[int], batch: int, runs: int, device: str = "cpu") -> dict:
    """Median latency (ms) and throughput (img/s) of forward (inference mode) and forward+backward, one warm-up."""
    dev = torch.device(device)
    model = model.to(dev)
    x = torch.randn(batch, *input_size, device=dev)

    def train_step() -> None:
        out = model(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        out.float().sum().backward()
        model.zero_grad(set_to_none=True)

    model.eval()
    fwd = _time_forward(model, x, runs, warmup=1)
    model.train()
    bwd = median_time(train_step, runs, 1, dev)
    return {
        "forward_ms": 1000 * fwd,
        "forward_img_s": batch / fwd,
        "train_step_ms": 1000 * bwd,
        "train_step_img_s": batch / bwd,
    }


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _run_one(
    name: str,
    data: Any,
    epochs: int,
    batch_size: int | None,
    throughput_batch: int,
    latency_runs: int,
    seed: int,
    fit_kwargs: dict[str, Any],
) -> dict[str, Any]:
    from zoo import registry
    from zoo.train import evaluate, fit

    row: dict[str, Any] = {"model": name}
    torch.manual_seed(seed)
    model = registry.create(name, num_classes=data.num_classes, in_chans=data.in_chans, img_size=data.img_size)
    s = summary(model, data.input_size)
    row["params"] = s.total_params
    row["flops"] = s.flops
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if batch_size is not None:
        fit_kwargs["batch_size"] = batch_size
    history = fit(model, data, epochs=epochs, **fit_kwargs)
    epochs_log = list(getattr(history, "epochs", []) or [])
    seconds = [e.get("seconds") for e in epochs_log if e.get("seconds") is not None]
    row["train_s"] = float(sum(seconds)) if seconds else None
    rates = [e.get("images_per_s") for e in epochs_log if e.get("images_per_s")]
    row["train_img_s"] = float(statistics.median(rates)) if rates else None
    device = _model_device(model)
    row["device"] = str(getattr(history, "device", device))
    row["precision"] = str(getattr(history, "precision", "fp32"))
    # the test split is scored once, by fit, after training; model selection never saw it
    metrics = history.test if getattr(history, "test", None) else evaluate(model, data)
    row["top1"] = float(metrics["top1"])
    row["top5"] = float(metrics["top5"]) if metrics.get("top5") is not None else None
    row["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    model.eval()
    row["latency_ms"] = row["throughput_img_s"] = None
    if latency_runs > 0:
        try:  # a timing that fails (out of memory at batch 256) must not lose the trained model's row
            x1 = torch.randn(1, *data.input_size, device=device)
            row["latency_ms"] = 1000 * _time_forward(model, x1, latency_runs)
            xb = torch.randn(throughput_batch, *data.input_size, device=device)
            row["throughput_img_s"] = throughput_batch / _time_forward(model, xb, max(1, latency_runs // 3), warmup=1)
        except Exception as exc:
            row["note"] = f"timing failed: {one_line(exc)}"
    return row


def compare(
    names: Sequence[str] | str,
    dataset: Any = "digits",
    epochs: int = 1,
    *,
    img_size: int | None = None,
    batch_size: int | None = None,
    throughput_batch: int = 256,
    latency_runs: int = 10,
    seed: int = 0,
    run_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    **fit_kwargs: Any,
) -> Results:
    """Train and measure several architectures on one dataset; one row per model.

    Each model is created to fit the dataset (``num_classes``, ``in_chans``, ``img_size``), trained with
    ``zoo.fit`` and scored with ``zoo.evaluate`` on the test split; then its inference latency (batch 1, median
    of ``latency_runs``) and throughput (batch ``throughput_batch``) are timed. A model that fails (input too
    small, an error, out of memory) gets a row with the reason in ``error``; the others still run.

    Args:
        names: registry names (``["mlp", "lenet5", "alexnet"]``), or one name.
        dataset: a dataset name (``zoo.list_datasets()``), a path to an image folder, or a loaded
            ``zoo.data.Dataset``.
        epochs: training epochs per model.
        img_size: resize the dataset to this size on load (default: the dataset's own size).
        batch_size: training batch size (default: ``zoo.fit``'s).
        throughput_batch: the batch for the inference-throughput column.
        latency_runs: timed forward passes for the latency median; 0 skips the timing columns.
        seed: the seed set before each model is created, so runs are repeatable.
        run_dir: a directory where the settings (``config.json``), the environment (``environment.json``) and
            each finished row (appended to ``results.jsonl``) are saved. Models already there without an error
            are not trained again: their saved rows are reused, so comparisons grow run after run.
            ``Results.load(run_dir)`` reloads the table.
        progress: show progress bars (``None``: zoo's default, ``ZOO_PROGRESS``).
        **fit_kwargs: passed to ``zoo.fit`` (``lr``, ``device``, ``precision``, ``optimizer``, ...).

    Returns:
        ``Results``: ``print()`` it, ``.to_markdown()``, ``.to_csv()``, ``.to_json()``, ``.plot("cmp.png")``.
    """
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError("compare() needs at least one model name")
    from zoo import registry

    for n in names:  # fail fast on a typo, before any training
        registry.get_spec(n)
    if isinstance(dataset, str | os.PathLike):
        from zoo.data import load_dataset

        options = {"img_size": img_size} if img_size is not None else {}
        data = load_dataset(str(dataset), **options)
        dataset_name = str(dataset)
    else:
        data = dataset
        dataset_name = getattr(data, "name", type(data).__name__)
    if progress is not None:
        fit_kwargs["progress"] = progress
    config = {
        "dataset": dataset_name,
        "epochs": epochs,
        "img_size": data.img_size,
        "batch_size": batch_size,
        "throughput_batch": throughput_batch,
        "seed": seed,
        "fit_kwargs": {k: v for k, v in fit_kwargs.items() if k != "progress"},
    }
    from zoo.train.rundir import RunDirLock

    # a run directory is owned while rows are added to it: a second compare into it gets a one-line error
    with RunDirLock(run_dir, "zoo.compare") if run_dir is not None else contextlib.nullcontext():
        done: dict[str, dict[str, Any]] = {}
        if run_dir is not None:
            done = _open_run_dir(Path(run_dir), config)
        rows = []
        for name in names:
            if name in done:
                rows.append(done[name])
                continue
            base = {
                "dataset": dataset_name,
                "epochs": epochs,
                "img_size": data.img_size,
                "batch_size": batch_size,
                "throughput_batch": throughput_batch,
            }
            try:
                row = _run_one(name, data, epochs, batch_size, throughput_batch, latency_runs, seed, dict(fit_kwargs))
                row["error"] = None
            except Exception as exc:  # one failing model must not stop the comparison
                row = {"model": name, "error": one_line(exc)}
            finally:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            row = {k: row.get(k) for k in COLUMNS} | base | {k: v for k, v in row.items() if k not in COLUMNS}
            rows.append(row)
            if run_dir is not None:
                _append_row(Path(run_dir) / "results.jsonl", row)
    return Results(rows, config)


def _append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row as a line, after cutting a torn last line an interrupted write left; fsync'd."""
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size:
            f.seek(0)
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
        f.seek(0, os.SEEK_END)
        f.write((json.dumps(row, default=str) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def _open_run_dir(run_dir: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Create or reopen a run directory; return the rows of models already measured there (without errors)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    saved_config = json.loads(json.dumps(config, default=str))
    if config_path.exists():
        old = json.loads(config_path.read_text())
        diff = sorted(k for k in set(old) | set(saved_config) if old.get(k) != saved_config.get(k))
        if diff:
            raise ValueError(
                f"run directory '{run_dir}' holds a comparison with other settings ({', '.join(diff)} differ: "
                f"{', '.join(f'{k}={old.get(k)!r}' for k in diff)}); use another run_dir"
            )
    else:
        config_path.write_text(json.dumps(saved_config, indent=2) + "\n")
    (run_dir / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
    if not (run_dir / "results.jsonl").exists():
        return {}
    return {r["model"]: r for r in Results.load(run_dir).rows if not r.get("error")}
