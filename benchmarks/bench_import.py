"""How much zoo adds to start-up: `import zoo` over `import torch`, and `zoo list` over Python + torch.

Each command runs in a fresh interpreter, interleaved, several times; medians are printed with the
difference to the reference measured in the same run. Goals (issue 2): import zoo adds < 0.1 s to import
torch; `zoo list` answers in < 0.5 s beyond Python's start and torch's import.

    python benchmarks/bench_import.py --repeat 7 [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CASES = {
    "python": "pass",
    "import torch": "import torch",
    "import torch, zoo": "import torch, zoo",
    "zoo.create('lenet5')": "import zoo; zoo.create('lenet5')",
    "zoo list": "import sys; from zoo.cli import main; sys.argv = ['zoo', 'list']; main()",
    "import torch, timm": "import torch, timm",
}


def run_once(code: str) -> float:
    env = dict(os.environ, ZOO_LOAD_PLUGINS=os.environ.get("ZOO_LOAD_PLUGINS", ""))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    for code in CASES.values():  # warm the file cache
        run_once(code)
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for _ in range(args.repeat):
        for name, code in CASES.items():
            times[name].append(run_once(code))
    med = {k: statistics.median(v) for k, v in times.items()}

    print(f"{'command':<24} {'median s':>9}  {'over reference':>15}")
    refs = {
        "import torch": "python",
        "import torch, zoo": "import torch",
        "zoo.create('lenet5')": "import torch",
        "zoo list": "import torch",
        "import torch, timm": "import torch",
    }
    for name, value in med.items():
        ref = refs.get(name)
        extra = f"+{value - med[ref]:.3f} s vs {ref}" if ref else ""
        print(f"{name:<24} {value:>9.3f}  {extra}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"median_s": med, "runs": times, "python": platform.python_version()}, f, indent=2)


if __name__ == "__main__":
    main()
