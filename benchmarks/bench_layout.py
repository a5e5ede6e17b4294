"""The memory layout (and bf16) per model: one training step in a plain loop, contiguous against channels_last.

For each built-in family (one small variant each) a training step — forward, cross-entropy, backward, a fused AdamW
step — is timed in each layout: contiguous (NCHW) and channels_last (NHWC), in fp32, and with bf16 autocast when the
CPU computes bf16 natively (AVX512-BF16 or AMX). The variants of a model run interleaved (A, B, C, A, B, C, ...)
and the medians are reported as images/s and as a fraction of the fp32 matrix-product peak measured in the same run
(a 1024 x 1024 ``torch.mm``, timed between the models), with the FLOPs of a step counted by torch's
``FlopCounterMode``. The last columns: the layout ``zoo.fit`` picks by default for that model
(``zoo.train.layout.default_channels_last``) and its speed over the fastest fp32 layout.

    python benchmarks/bench_layout.py                          # every family, batch 64, 1 thread
    python benchmarks/bench_layout.py --models mobilenet_v2 efficientnet_b0 --profile   # + top ops per layout
    python benchmarks/bench_layout.py --threads 2 --repeat 9 --json layout.json

On a machine shared with other work, single figures swing; read the ratios between interleaved runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from zoo.threads import step_flops
from zoo.train.layout import default_channels_last

# (name, C x H x W): one small variant per family, at a size it accepts
MODELS = [
    ("mlp", (1, 28, 28)),
    ("lenet5", (1, 28, 28)),
    ("alexnet", (3, 32, 32)),
    ("googlenet", (3, 32, 32)),
    ("densenet_bc_100_k12", (3, 32, 32)),
    ("mobilenet_v2", (3, 32, 32)),
    ("mobilenet_v3_small", (3, 32, 32)),
    ("efficientnet_b0", (3, 32, 32)),
    ("vit_tiny_patch16", (3, 32, 32)),
]


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere autocast emulates it."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return any(f in flags for f in (" avx512_bf16", " amx_bf16")) or "AMX" in torch.backends.cpu.get_cpu_capability()


def matmul_peak(n: int = 1024, repeat: int = 5) -> float:
    """fp32 FLOP/s of an n x n matrix product: the machine's practical arithmetic peak, now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def make_step(name: str, input_size: tuple[int, int, int], batch: int, channels_last: bool, bf16: bool):
    """One training step of a fresh ``name`` in the given layout and precision; returns (step, FLOPs per step)."""
    torch.manual_seed(0)
    c, h, _ = input_size
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = zoo.create(name, num_classes=10, in_chans=c, img_size=h).to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(batch, *input_size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    flops = step_flops(model, x, batch) or 0.0

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, flops, model


def variants(bf16: bool) -> list[tuple[str, bool, bool]]:
    """(label, channels_last, bf16) of every variant timed."""
    out = [("contiguous", False, False), ("channels_last", True, False)]
    if bf16:
        out += [("contiguous+bf16", False, True), ("channels_last+bf16", True, True)]
    return out


def time_model(name: str, input_size, batch: int, repeat: int, bf16: bool) -> dict:
    steps = {}
    for label, cl, b16 in variants(bf16):
        step, flops, model = make_step(name, input_size, batch, cl, b16)
        step(), step()  # warm-up: kernels, allocator, autocast caches
        steps[label] = step
    times: dict[str, list[float]] = {k: [] for k in steps}
    peaks = [matmul_peak()]
    for rep in range(repeat):
        order = list(steps) if rep % 2 == 0 else list(steps)[::-1]
        for label in order:
            t0 = time.perf_counter()
            steps[label]()
            times[label].append(time.perf_counter() - t0)
        if rep % 2:
            peaks.append(matmul_peak())
    med = {k: statistics.median(v) for k, v in times.items()}
    peak = statistics.median(peaks)
    fit_cl = default_channels_last(model, torch.device("cpu"))
    fastest = min(("contiguous", "channels_last"), key=med.__getitem__)
    fit_label = "channels_last" if fit_cl else "contiguous"
    return {
        "model": name, "input": "x".join(map(str, input_size)), "gflop_per_step": flops / 1e9,
        "peak_gflops": peak / 1e9, "ms": {k: v * 1e3 for k, v in med.items()},
        "img_s": {k: batch / v for k, v in med.items()},
        "of_peak": {k: flops / v / peak for k, v in med.items()},
        "fastest_fp32": fastest, "fit_default": fit_label, "fit_vs_fastest": med[fastest] / med[fit_label],
        "bf16_speedup": {
            lay: med[lay] / med[f"{lay}+bf16"] for lay in ("contiguous", "channels_last") if f"{lay}+bf16" in med
        },
    }  # fmt: skip


def profile(name: str, input_size, batch: int, rows: int) -> None:
    """Top ops by self CPU time over three steps, in each fp32 layout."""
    for label, cl, _ in variants(False):
        step, _, _ = make_step(name, input_size, batch, cl, False)
        step(), step()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                step()
        print(f"\n## {name} {label}: top ops by self CPU time (3 steps)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=None, help="names (default: one small variant per family)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5, help="timed steps per variant")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (1: steady on a shared machine)")
    p.add_argument("--no-bf16", action="store_true", help="skip bf16 autocast even where the CPU has it")
    p.add_argument("--profile", action="store_true", help="also print each model's top ops per layout")
    p.add_argument("--rows", type=int, default=12, help="ops shown per profile")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sizes = dict(MODELS)
    models = [(m, sizes.get(m, (3, 32, 32))) for m in args.models] if args.models else MODELS
    bf16 = native_bf16() and not args.no_bf16
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16: {native_bf16()}, batch {args.batch}")  # fmt: skip
    rows = []
    for name, size in models:
        row = time_model(name, size, args.batch, args.repeat, bf16)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.profile:
            profile(name, size, args.batch, args.rows)
    labels = [v[0] for v in variants(bf16)]
    print("\n| model | input | GFLOP/step | " + " | ".join(f"{v} img/s (% peak)" for v in labels), end="")
    print(" | fit's default | fit / fastest fp32 |")
    print("|---|---|---:|" + "---:|" * len(labels) + "---|---:|")
    for r in rows:
        cells = " | ".join(f"{r['img_s'][v]:,.0f} ({100 * r['of_peak'][v]:.0f}%)" for v in labels)
        print(f"| {r['model']} | {r['input']} | {r['gflop_per_step']:.2f} | {cells} | {r['fit_default']} | "
              f"{r['fit_vs_fastest']:.2f} |")  # fmt: skip
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
        env = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit.strip(), "torch": torch.__version__,
               "cpu": platform.processor() or platform.machine(), "threads": args.threads}  # fmt: skip
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "env": env, "rows": rows}))


if __name__ == "__main__":
    main()
