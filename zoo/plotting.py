"""Figures for ``History.plot`` and ``Results.plot``: matplotlib's object-oriented API, never pyplot.

A ``matplotlib.figure.Figure`` made directly draws and saves without a GUI backend, so plotting works headless
(CI, a server over SSH) and leaves the backend of a notebook or an interactive session alone; returned without a
path, the figure shows inline in Jupyter. matplotlib is optional: ``pip install "zoo[plot]"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PLOT_FORMATS = (".png", ".svg", ".pdf")


def check_plot_path(path: str | os.PathLike) -> Path:
    """The path as a ``Path``, if its suffix is one matplotlib writes here; else a one-line error."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise ValueError(f"plot path must end in {', '.join(PLOT_FORMATS)}, got '{path.name}'")
    return path


def new_figure(what: str, **kwargs: Any):
    """A ``matplotlib.figure.Figure`` (``constrained_layout`` on); ``what`` names the caller in the import error."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f'{what} needs matplotlib: pip install "zoo[plot]"') from None
    return Figure(constrained_layout=True, **kwargs)


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
