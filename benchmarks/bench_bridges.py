"""How fast zoo lists the bridged timm and torchvision models, against ``timm.list_models()`` in the same run.

timm and torchvision are imported first (their import is a one-time cost, timed once and printed); then each
listing is warmed up and timed ``--repeat`` times, and the median is printed with its ratio to the median of
``timm.list_models()`` itself. Goal (issue 6): listing every name takes well under a second once timm is
imported, and listing builds no model.

    python benchmarks/bench_bridges.py --repeat 15 [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable


def median_s(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    fn()  # warm-up: first-call caches (the registry's plugin load, torchvision's builder table)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), runs


def code_version() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    start = time.perf_counter()
    import torch  # noqa: F401

    t_torch = time.perf_counter() - start
    start = time.perf_counter()
    import torchvision.models  # noqa: F401

    t_tv = time.perf_counter() - start
    start = time.perf_counter()
    import timm  # after torchvision, which it imports too: this is timm's own share

    t_timm = time.perf_counter() - start
    import zoo

    cases: dict[str, Callable[[], object]] = {
        "timm.list_models()": timm.list_models,
        "zoo.list_models()": zoo.list_models,
        "zoo.list_models(source='timm')": lambda: zoo.list_models(source="timm"),
        "zoo.list_models(source='torchvision')": lambda: zoo.list_models(source="torchvision"),
        "zoo.list_models('timm/*resnet*')": lambda: zoo.list_models("timm/*resnet*"),
        "zoo.list_models(source='all')": lambda: zoo.list_models(source="all"),
    }
    results = {name: median_s(fn, args.repeat) for name, fn in cases.items()}
    ref = results["timm.list_models()"][0]
    n_all = len(zoo.list_models(source="all"))

    print(
        f"python {platform.python_version()}, torch {torch.__version__}, timm {timm.__version__}, zoo {code_version()}"
    )
    print(f"one-time imports: torch {t_torch:.2f} s, then torchvision.models {t_tv:.2f} s, then timm {t_timm:.2f} s")
    print(f"{'listing':<40} {'median ms':>10} {'x timm.list_models()':>21}")
    for name, (med, _) in results.items():
        print(f"{name:<40} {med * 1e3:>10.3f} {med / ref:>20.1f}x")
    print(f"source='all' lists {n_all} names")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {
                    "median_s": {k: v[0] for k, v in results.items()},
                    "runs_s": {k: v[1] for k, v in results.items()},
                    "imports_s": {"torch": t_torch, "timm": t_timm, "torchvision.models": t_tv},
                    "names": n_all,
                    "repeat": args.repeat,
                    "python": platform.python_version(),
                    "code_version": code_version(),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
