"""Training steps on the CPU with freed memory reused (``zoo.memory.reuse_freed_memory``, what fit does) and without.

    python benchmarks/bench_memory.py                 # the default models, 5 interleaved rounds
    python benchmarks/bench_memory.py --rounds 9 --steps 5

Each model runs the same plain training step (forward, cross-entropy, backward, SGD) in channels_last, as fit
gives a convnet on the CPU, in rounds that alternate the two settings (reuse, plain, plain, reuse, ...); the
median step time of each is reported with their ratio, and the minor page faults per step (``getrusage``): the
pages the kernel mapped and zeroed anew. The machine may be shared: read the ratios, measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from zoo.memory import reuse_freed_memory, supported

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_image_cache import small_cnn  # noqa: E402

MODELS = {  # name -> (builder, input size, batch)
    "lenet5": (lambda: zoo.create("lenet5", num_classes=10, in_chans=1, img_size=28), (1, 28, 28), 256),
    "mobilenet_v2": (lambda: zoo.create("mobilenet_v2", num_classes=10, img_size=32), (3, 32, 32), 64),
    "alexnet": (lambda: zoo.create("alexnet", num_classes=10, img_size=64), (3, 64, 64), 64),
    "small_cnn": (small_cnn, (3, 224, 224), 64),  # benchmarks/bench_image_cache.py's model, at 224 px
}


def steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[float, float]:
    """Seconds and minor page faults per step, over ``n`` steps."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(n):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = (time.perf_counter() - t0) / n
    return seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per round")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: every usable core)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not supported():
        sys.exit("zoo.memory changes nothing here (not glibc, or ZOO_REUSE_MEMORY=0): nothing to compare")
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    results = {}
    for name in args.models:
        build, shape, batch = MODELS[name]
        torch.manual_seed(0)
        model = build().to(memory_format=torch.channels_last).train()
        x = torch.randn(batch, *shape).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch,))
        times: dict[str, list[float]] = {"reuse": [], "plain": []}
        faults: dict[str, list[float]] = {"reuse": [], "plain": []}
        steps(model, x, y, 2)  # warm-up
        for r in range(args.rounds):
            for mode in ("reuse", "plain") if r % 2 == 0 else ("plain", "reuse"):
                if mode == "reuse":
                    with reuse_freed_memory():
                        steps(model, x, y, 1)  # the first step in the block maps what it keeps
                        s, f = steps(model, x, y, args.steps)
                else:
                    steps(model, x, y, 1)
                    s, f = steps(model, x, y, args.steps)
                times[mode].append(s)
                faults[mode].append(f)
        med = {k: statistics.median(v) for k, v in times.items()}
        results[name] = {
            "batch": batch, "input": list(shape), "step_s": med,
            "faults_per_step": {k: statistics.median(v) for k, v in faults.items()},
            "speedup": med["plain"] / med["reuse"],
        }  # fmt: skip
        r = results[name]
        print(
            f"{name:13s} {shape[-1]:>3d} px b{batch:<4d} plain {med['plain'] * 1e3:7.1f} ms  reuse "
            f"{med['reuse'] * 1e3:7.1f} ms  x{r['speedup']:.2f}  faults/step {r['faults_per_step']['plain']:,.0f}"
            f" -> {r['faults_per_step']['reuse']:,.0f}"
        )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    env = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit, "cores": len(os.sched_getaffinity(0)),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "glibc": platform.libc_ver()[1],
        "load": os.getloadavg()[0],
    }  # fmt: skip
    print(json.dumps(env))
    if args.json:
        Path(args.json).write_text(json.dumps({"env": env, "models": results}, indent=1))


if __name__ == "__main__":
    main()
