"""Plots of comparison rows: accuracy against a cost (params, FLOPs, training time) with labels that do not overlap,
and every model's training curve on one figure.

Labels are placed greedily, the way text-repel tools do it without an optimiser: for each point, candidate spots
around it at growing distances are tried in order, and the first whose text box overlaps no placed label, no point
and stays inside the axes wins (with a thin leader line when it sits far out, which must cross no other leader line
and no other label); when none is free, the spot with the least overlap does. It needs the drawn layout, so the
figure is laid out once first and then frozen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# x key -> (axis label, log scale)
AXES: dict[str, tuple[str, bool]] = {
    "params": ("parameters", True),
    "flops": ("FLOPs per image (a multiply-add counts 2)", True),
    "train_s": ("training time (s)", True),
    "wall_s": ("wall time per model (s)", True),
    "train_img_s": ("training images/s", True),
    "latency_ms": ("inference latency, batch 1 (ms)", True),
    "throughput_img_s": ("inference images/s", True),
    "seconds": ("training time (s)", True),
    "epoch": ("epoch", False),
}
METRICS = {
    "top1": "test top-1 accuracy (%)",
    "top5": "test top-5 accuracy (%)",
    "val_accuracy": "validation accuracy (%)",
    "accuracy": "training accuracy (%)",
}

# beside the point first (clearest), then the diagonals, then above and below; nearer before farther
_DIRECTIONS = ((1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0.5), (-1, 0.5), (1, -0.5), (-1, -0.5),
               (0, 1), (0, -1), (0.5, 1), (-0.5, 1), (0.5, -1), (-0.5, -1), (1, 0.25), (1, -0.25), (-1, 0.25),
               (-1, -0.25))  # fmt: skip
_RADII = (5, 10, 16, 24, 34, 46, 60, 76, 95, 120, 150)  # points


# ---------------------------------------------------------------------------------------------------------
# Label placement
# ---------------------------------------------------------------------------------------------------------


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _crosses(p: tuple[float, float], q: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether segments p-q and a-b cross (touching ends do not count)."""

    def side(o: tuple[float, float], u: tuple[float, float], v: tuple[float, float]) -> float:
        return (u[0] - o[0]) * (v[1] - o[1]) - (u[1] - o[1]) * (v[0] - o[0])

    return side(p, q, a) * side(p, q, b) < 0 and side(a, b, p) * side(a, b, q) < 0


def _through(p: tuple[float, float], q: tuple[float, float], box: Any) -> bool:
    """Whether segment p-q passes through ``box`` (an end inside it, or crossing one of its sides)."""
    if any(box.x0 < x < box.x1 and box.y0 < y < box.y1 for x, y in (p, q)):
        return True
    corners = ((box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1))
    return any(_crosses(p, q, corners[k], corners[(k + 1) % 4]) for k in range(4))


def _leader(point: tuple[float, float], box: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """The leader line of a label, as matplotlib draws it: from the point to the middle of the text."""
    return point, ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)


def text_box(text: Any, renderer: Any) -> Any:
    """The display-space box of an annotation's text alone (an annotation's own extent includes its arrow)."""
    from matplotlib.text import Text

    if hasattr(text, "update_positions"):
        text.update_positions(renderer)  # where the offset puts the text: Text's own extent does not do this
    return Text.get_window_extent(text, renderer)


def place_labels(
    ax: Any,
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    *,
    fontsize: float = 8,
    colors: Sequence[Any] | None = None,
    avoid: Sequence[tuple[float, float]] = (),
) -> list[Any]:
    """Annotate each point ``(xs[i], ys[i])`` with ``labels[i]`` so that no two labels overlap, none covers a point
    (nor any of ``avoid``, more points in data coordinates), all stay inside the axes and no leader line crosses
    another or runs under a label, where the space allows.

    The axes' limits and the figure's layout must be final (``fig.canvas.draw()`` first). Returns the annotations.
    """
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    frame = ax.get_window_extent(renderer)
    pt = fig.dpi / 72.0
    marker = 4.5 * pt  # half the side of the box kept clear around each point
    pts = [tuple(to_px((x, y))) for x, y in zip(xs, ys, strict=True)]
    blocked = [Bbox.from_extents(px - marker, py - marker, px + marker, py + marker)
               for px, py in pts + [tuple(to_px(a)) for a in avoid]]  # fmt: skip
    boxes: list[Any] = [None] * len(pts)  # each placed label's box and leader line (None: beside its point)
    lines: list[Any] = [None] * len(pts)
    texts: list[Any] = [None] * len(pts)

    def place(i: int) -> None:
        """The best spot for label ``i`` against every other label placed so far."""
        placed = [b for k, b in enumerate(boxes) if b is not None and k != i]
        leaders = [ln for k, ln in enumerate(lines) if ln is not None and k != i]
        best: tuple[float, Any, Any, Any] | None = None
        for r in _RADII:
            for dx, dy in _DIRECTIONS:
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                far = r >= 10  # a label away from its point gets a leader line, so it reads as its own
                text = ax.annotate(
                    labels[i], (xs[i], ys[i]), xytext=(dx * r, dy * r), textcoords="offset points", ha=ha, va=va,
                    fontsize=fontsize, color=colors[i] if colors else "black", zorder=4,
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.55", "shrinkA": 0, "shrinkB": 3}
                    if far else None,
                )  # fmt: skip
                box = text_box(text, renderer).padded(1.5 * pt)
                outside = 0.0 if (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                                  and box.y1 <= frame.y1) else box.width * box.height  # fmt: skip
                cost = outside + sum(_overlap(box, b) for b in placed) + sum(_overlap(box, b) for b in blocked)
                cost *= 10  # covered text or points are the worst: any crossing of lines is better
                # a leader line crossing another, or running under a label, costs half the label's area; a label
                # over another's leader line a quarter
                area = box.width * box.height
                line = _leader(pts[i], box) if far else None
                if line is not None:
                    cost += area / 2 * sum(_crosses(*line, *other) for other in leaders)
                    cost += area / 2 * sum(_through(*line, b) for b in placed)
                cost += area / 4 * sum(_through(*other, box) for other in leaders)
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, text, box, line)
                else:
                    text.remove()
                if best[0] == 0.0:
                    break
            if best is not None and best[0] == 0.0:
                break
        assert best is not None
        if texts[i] is not None:
            texts[i].remove()
        _, texts[i], boxes[i], lines[i] = best

    # the most crowded points choose first, while there is room around them
    crowd = [sum(1 for q in pts if abs(q[0] - p[0]) < 60 * pt and abs(q[1] - p[1]) < 20 * pt) for p in pts]
    order = sorted(range(len(pts)), key=lambda k: -crowd[k])
    for i in order:
        place(i)
    # then each label whose line still crosses another's chooses again, knowing where all the others went
    for _ in range(3):
        crossing = [i for i in order if lines[i] is not None and any(
            _crosses(*lines[i], *ln) for k, ln in enumerate(lines) if ln is not None and k != i)]  # fmt: skip
        for i in crossing:
            place(i)
    return texts


# ---------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------


def family_colors(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A colour per family (``tab10``, then ``tab20``), in order of first appearance; rows without one are blue."""
    from matplotlib import colormaps

    families = list(dict.fromkeys(r.get("family") or "" for r in rows))
    cmap = colormaps["tab10" if len(families) <= 10 else "tab20"]
    return {f: ("tab:blue" if not f and len(families) == 1 else cmap(i % cmap.N)) for i, f in enumerate(families)}


def fewer_images(rows: Sequence[dict[str, Any]]) -> list[bool]:
    """For each row, whether it trained on fewer images than the others: the leaderboard's ``"capped"`` status,
    or an ``images`` count below the largest among the rows. Such a model is drawn hollow (and its curve dashed):
    its accuracy says what its share of the data bought, not what the architecture reaches on all of it."""
    counts = [r["images"] if isinstance(r.get("images"), int | float) else None for r in rows]
    most = max((n for n in counts if n is not None), default=None)
    return [r.get("status") == "capped" or (n is not None and n < most) for r, n in zip(rows, counts, strict=True)]


def literal(text: str) -> str:
    """``text`` drawn as written: a ``$`` would start matplotlib's mathtext (and a name like ``a$\\frac$b`` raise)."""
    return str(text).replace("$", r"\$")


def point_label(row: dict[str, Any], capped: bool) -> str:
    """The model's name, with the images it trained on when it had fewer than the others."""
    name = literal(row["model"])
    return f"{name} ({row['images']:,} img)" if capped and row.get("images") else name


def percent_axis(ax: Any, metric: str) -> None:
    """An accuracy axis from 0 to 100 with ticks every 10: the whole scale, so that a two-point gap looks like two
    points (an axis zoomed to the data's range makes it look like half the plot), and nothing past 100."""
    ax.set_ylim(0.0, 100.0)
    ax.set_yticks(range(0, 101, 10))
    ax.set_ylabel(f"{METRICS.get(metric, metric)}, full scale")


def legend_handles(ax: Any, capped: bool, curves: bool = False) -> list[Any]:
    """The axes' own legend entries (families), plus the marker that means "trained on fewer images"."""
    from matplotlib.lines import Line2D

    handles, _ = ax.get_legend_handles_labels()
    if capped:
        handles.append(Line2D([], [], color="0.3", marker="o", mfc="none", ls="--" if curves else "none",
                              label="trained on fewer images\n(capped: count in the label)"))  # fmt: skip
    return handles


def log_axis(ax: Any) -> None:
    """A log x axis labelled at its decades only: over less than a decade matplotlib labels the minor ticks too,
    and their labels ran into each other."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def fitted_title(fig: Any, title: str) -> str:
    """``title`` wrapped to the figure's width (about 11 characters an inch at the title's size), so that a long
    one is not cut at the edges."""
    import textwrap

    return "\n".join(textwrap.wrap(title, max(30, int(fig.get_figwidth() * 11))))


def _freeze_layout(fig: Any) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.canvas.draw()  # constrained layout settles the axes here; label placement needs their final position
    fig.set_layout_engine("none")


def plot_accuracy(
    rows: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    *,
    x: str | Sequence[str] = ("params", "flops"),
    metric: str = "top1",
    title: str | None = None,
) -> Path:
    """One panel per key of ``x`` (``params``, ``flops``, ``train_s``, ...): ``metric`` against it on a log axis,
    every point labelled, coloured by family when the rows have one, with error bars from ``<metric>_spread``."""
    from zoo.plotting import check_plot_path, new_figure, save_figure

    path = check_plot_path(path)
    keys = [x] if isinstance(x, str) else list(x)
    unknown = [k for k in keys if k not in AXES]
    if unknown:
        raise ValueError(f"cannot plot against '{unknown[0]}'; accepted: {', '.join(AXES)}")
    rows = [r for r in rows if r.get(metric) is not None and not r.get("error")]
    if not rows:
        raise ValueError(f"nothing to plot: no row has a value for '{metric}'")
    many = len(rows) > 12
    panel = (7.5, 5.6) if many else (5.0, 4.2)
    fig = new_figure("Results.plot()", figsize=(panel[0] * len(keys), panel[1]))
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    colors = family_colors(rows)
    has_family = any(r.get("family") for r in rows)
    capped = dict(zip(map(id, rows), fewer_images(rows), strict=True))
    placements = []
    for ax, key in zip(axes, keys, strict=True):
        pts = [r for r in rows if r.get(key)]
        xlabel, log = AXES[key]
        for fam, color in colors.items():
            named = False  # the family's legend entry, on its first group drawn
            for hollow in (False, True):
                sel = [r for r in pts if (r.get("family") or "") == fam and capped[id(r)] == hollow]
                if not sel:
                    continue
                xs, ys = [r[key] for r in sel], [100 * r[metric] for r in sel]
                err = [100 * (r.get(f"{metric}_spread") or 0.0) for r in sel]
                ax.errorbar(xs, ys, yerr=err if any(err) else None, fmt="o", ms=6, color=color, ecolor=color,
                            mfc="none" if hollow else color, mew=1.3, elinewidth=1, capsize=2, zorder=3,
                            clip_on=False, label=None if named or not fam else literal(fam))  # fmt: skip
                named = True
        if log:
            log_axis(ax)
        if pts:
            xs = [r[key] for r in pts]
            lo, hi = min(xs), max(xs)
            ax.set_xlim(lo / 2.5, hi * 2.5) if log else ax.set_xlim(lo - 0.1 * (hi - lo + 1), hi + 0.1 * (hi - lo + 1))
        ax.set_xlabel(f"{xlabel} (log scale)" if log else xlabel)
        percent_axis(ax, metric)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
        any_capped = any(capped[id(r)] for r in pts)
        if (has_family and len(colors) > 1) or any_capped:
            handles = legend_handles(ax, any_capped)
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                      title="family" if has_family and len(colors) > 1 else None, title_fontsize=7)  # fmt: skip
        placements.append((ax, pts, key))
    fig.suptitle(fitted_title(fig, title or _default_title(rows, "accuracy vs " + " and ".join(
        AXES[k][0].split(" (")[0] for k in keys))))  # fmt: skip
    _freeze_layout(fig)
    for ax, pts, key in placements:
        legend = ax.get_legend()
        avoid = _legend_corners(ax, legend)
        place_labels(
            ax, [r[key] for r in pts], [100 * r[metric] for r in pts],
            [point_label(r, capped[id(r)]) for r in pts], fontsize=7.5 if many else 8.5, avoid=avoid,
        )  # fmt: skip
    return save_figure(fig, path)


def _legend_corners(ax: Any, legend: Any) -> list[tuple[float, float]]:
    """Points in data coordinates that cover the legend, so that no label is placed on it."""
    if legend is None:
        return []
    box = legend.get_window_extent(ax.figure.canvas.get_renderer())
    inv = ax.transData.inverted()
    step = 8.0
    out = []
    y = box.y0
    while y <= box.y1:
        x = box.x0
        while x <= box.x1:
            out.append(tuple(inv.transform((x, y))))
            x += step
        y += step
    return out


def plot_curves(
    rows: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    *,
    x: str = "seconds",
    metric: str = "val_accuracy",
    title: str | None = None,
) -> Path:
    """Every row's training curve (``row["curve"]``, one record per epoch) on one axes: ``metric`` against ``x``
    (``"seconds"`` of training, log scale, or ``"epoch"``), each line labelled at its end, coloured by family."""
    from zoo.plotting import check_plot_path, new_figure, save_figure

    path = check_plot_path(path)
    if x not in ("seconds", "epoch"):
        raise ValueError(f"training curves run against 'seconds' or 'epoch', got '{x}'")
    curves = [(r, [e for e in r.get("curve") or () if e.get(metric) is not None and e.get(x)]) for r in rows]
    curves = [(r, c) for r, c in curves if c and not r.get("error")]
    if not curves:
        raise ValueError(f"nothing to plot: no row has a training curve with '{metric}'")
    many = len(curves) > 12
    fig = new_figure("Results.plot_curves()", figsize=(11, 6.5) if many else (7, 4.5))
    ax = fig.subplots()
    colors = family_colors([r for r, _ in curves])
    capped = fewer_images([r for r, _ in curves])
    seen: set[str] = set()
    ends = []
    for (r, c), hollow in zip(curves, capped, strict=True):
        fam = r.get("family") or ""
        xs, ys = [e[x] for e in c], [100 * e[metric] for e in c]
        label = literal(fam) if fam and fam not in seen else None
        seen.add(fam)
        ax.plot(xs, ys, "--o" if hollow else "-o", ms=3.5, lw=1.2, color=colors[fam], alpha=0.9, label=label,
                mfc="none" if hollow else colors[fam], clip_on=False)  # fmt: skip
        ends.append((xs[-1], ys[-1], point_label(r, hollow), colors[fam], list(zip(xs[:-1], ys[:-1], strict=True))))
    label, log = AXES[x]
    if log:
        log_axis(ax)
        all_x = [e[0] for e in ends] + [p[0] for e in ends for p in e[4]]
        ax.set_xlim(min(all_x) / 1.6, max(all_x) * 3)
    ax.set_xlabel(f"{label} (log scale)" if log else label)
    percent_axis(ax, metric)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    if (len(colors) > 1 and any(colors)) or any(capped):
        ax.legend(handles=legend_handles(ax, any(capped), curves=True), loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize=7, title="family" if len(colors) > 1 else None, title_fontsize=7)  # fmt: skip
    fig.suptitle(fitted_title(fig, title or _default_title([r for r, _ in curves], "training curves")))
    _freeze_layout(fig)
    avoid = [p for e in ends for p in e[4]] + _legend_corners(ax, ax.get_legend())
    place_labels(ax, [e[0] for e in ends], [e[1] for e in ends], [e[2] for e in ends],
                 fontsize=7 if many else 8, colors=[e[3] for e in ends], avoid=avoid)  # fmt: skip
    return save_figure(fig, path)


def _default_title(rows: Sequence[dict[str, Any]], what: str) -> str:
    """``what`` of the models (named when there are up to four) on the dataset, with the epochs."""
    ds = {r.get("dataset") for r in rows} - {None}
    ep = {r.get("epochs") for r in rows} - {None}
    names = [literal(r["model"]) for r in rows if r.get("model")]
    title = what
    if 0 < len(names) <= 4:
        title += " of " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])
    elif names:
        title += f" of {len(names)} models"
    if len(ds) == 1:
        title += f" on {literal(ds.pop())}"
    if len(ep) == 1:
        n = ep.pop()
        title += f", {n} epoch{'s' if n != 1 else ''}"
    return title
