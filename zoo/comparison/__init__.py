"""Summaries and side-by-side comparisons: parameters, FLOPs, speed and accuracy; tables, exports and plots.

- ``summarize``: ``zoo.summary`` and FLOP counting.  ``timing``: medians, ``bench_model``, the environment.
- ``run``: ``zoo.compare``, ``select_models`` (names, wildcards, families) and run directories.
- ``results``: ``Results`` (tables, exports; plots drawn by ``plots``, labels placed so they do not overlap).
- ``tables``: plain and boxed text tables, one-line messages.

    s = zoo.summary("lenet5")                        # per-layer table, parameters, FLOPs, activation memory
    results = zoo.compare(["mlp", "lenet5"], dataset="digits", epochs=1)
    print(results.to_markdown()); results.plot("cmp.png")

(The package is ``zoo.comparison``, not ``zoo.compare``: ``zoo.compare`` is the function.)
"""

from __future__ import annotations

from zoo.comparison.results import COLUMNS, FIELDS, Results
from zoo.comparison.run import compare, select_models
from zoo.comparison.summarize import LayerInfo, Summary, count_flops, default_flops, summary
from zoo.comparison.tables import format_number, one_line, render_table
from zoo.comparison.timing import bench_model, environment, median_time, time_forward

__all__ = [
    "LayerInfo",
    "Summary",
    "Results",
    "COLUMNS",
    "FIELDS",
    "summary",
    "compare",
    "select_models",
    "count_flops",
    "default_flops",
    "format_number",
    "render_table",
    "one_line",
    "bench_model",
    "median_time",
    "time_forward",
    "environment",
]
