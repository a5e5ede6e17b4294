"""zoo's chosen CPU threads against 1 and against all cores, on an idle machine and under a load this script makes.

    python benchmarks/bench_threads.py                      # idle, then 1 and 2 busy processes of our own
    python benchmarks/bench_threads.py --loads 0 2 --reps 5 --steps 20

For each load (that many processes spinning on a core each, started and stopped by the script) and each model (a
MLP at 28 px, LeNet-5 at 28 px, AlexNet at 32 px; batch 256 / 256 / 64), one plain training step loop (forward,
cross-entropy, backward, SGD) is timed with 1 thread, with every usable core, and with the count
``zoo.threads.choose_threads`` picks for that step on the machine as it is at that moment; the three runs are
interleaved (1, all, zoo, 1, all, zoo, ...) and the median of ``--reps`` is reported, with zoo's ratio to the
faster of the two fixed choices. The machine is otherwise shared: the figures are ratios within one run, not
absolute speeds. Goal (issue "fast on the machine a student has"): under load zoo >= 0.8x the faster of 1 and all,
idle within 5% of it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import zoo
from zoo.threads import busy_cores, choose_threads, step_flops, usable_cores, use_threads

MODELS = {  # name -> (create keywords, batch)
    "mlp": ({"num_classes": 10, "in_chans": 1, "img_size": 28}, 256),
    "lenet5": ({"num_classes": 10, "in_chans": 1, "img_size": 28}, 256),
    "alexnet": ({"num_classes": 10, "in_chans": 3, "img_size": 32}, 64),
}


def _spin(stop: mp.Event) -> None:  # one busy core, as a neighbour's job would keep it
    while not stop.is_set():
        sum(i * i for i in range(10_000))


@contextlib.contextmanager
def load(n: int):
    stop = mp.Event()
    procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(1.0 if n else 0.0)  # let the neighbours settle on their cores
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(5)


def step_loop(name: str, steps: int):
    kwargs, batch = MODELS[name]
    torch.manual_seed(0)
    model = zoo.create(name, **kwargs)
    size = kwargs["img_size"]
    x, y = torch.randn(batch, kwargs["in_chans"], size, size), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    flops = step_flops(model, x, batch)

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    return run, flops


def measure(name: str, steps: int, reps: int) -> dict:
    run, flops = step_loop(name, steps)
    cores = usable_cores()
    times: dict[str, list[float]] = {"1": [], "all": [], "zoo": []}
    picks = []
    for _ in range(reps):
        chosen = choose_threads(flops)
        picks.append(int(chosen))
        for key, n in (("1", 1), ("all", cores), ("zoo", chosen)):
            with use_threads(n):
                run()  # warm-up at this count
                times[key].append(run())
    med = {k: statistics.median(v) for k, v in times.items()}
    best = min(med["1"], med["all"])
    return {
        "model": name,
        "step_mflop": round(flops / 1e6, 1) if flops else None,
        "zoo_threads": sorted(set(picks)),
        **{f"{k}_s": round(v, 3) for k, v in med.items()},
        "zoo_vs_best": round(best / med["zoo"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps({"machine": platform.processor() or platform.machine(), "usable_cores": usable_cores(),
                      "torch": torch.__version__, "busy_before": round(busy_cores(0.5), 2)}))  # fmt: skip
    print("| load (busy procs) | model | MFLOP/step | zoo threads | 1 thread s | all cores s | zoo s | zoo vs best |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.loads:
        with load(n):
            for name in args.models:
                r = measure(name, args.steps, args.reps)
                print(f"| {n} | {name} | {r['step_mflop']} | {r['zoo_threads']} | {r['1_s']} | {r['all_s']} | "
                      f"{r['zoo_s']} | {r['zoo_vs_best']}x |", flush=True)  # fmt: skip
    print(f"threads env: { ({k: v for k, v in os.environ.items() if k.endswith('_THREADS')}) }")


if __name__ == "__main__":
    main()
