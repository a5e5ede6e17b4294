"""bf16 autocast against fp32 for one training step of each model, in the same run: is bf16 worth it on this device?

Each model is built once per precision at the same input size, warmed up, then the two are timed in interleaved
repeats (fp32, bf16, bf16, fp32, ...); the table shows median step times and the speed-up fp32 / bf16. A step is
forward under the autocast, cross-entropy in fp32, backward and a fused AdamW step, with channels_last on the CPU
(zoo.fit's CPU default). This is what decided that ``precision="auto"`` stays fp32 on the CPU.

    python benchmarks/bench_precision.py                      # the families at 32 px, batch 64
    python benchmarks/bench_precision.py --models lenet5 --input 1x28x28 --batch 256 --repeat 9
    python benchmarks/bench_precision.py --device cuda --batch 256 --precisions bf16 fp16    # fp16 autocast too
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # autocast dtypes; fp32 runs without autocast
MODELS = ["googlenet", "densenet121", "alexnet", "vit_tiny_patch16", "efficientnet_b0", "mobilenet_v3_small"]


def make_step(name: str, precision: str, input_size: tuple[int, int, int], batch: int, device: torch.device):
    torch.manual_seed(0)
    c, h, _ = input_size
    fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    model = zoo.create(name, num_classes=10, in_chans=c, img_size=h).to(device, memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(batch, *input_size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> float:
        t0 = time.perf_counter()
        with torch.autocast(device.type, DTYPES.get(precision, torch.float32), enabled=precision in DTYPES):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--input", default="3x32x32", help="CxHxW")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5, help="timed steps per precision")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", nargs="+", default=["bf16"], choices=sorted(DTYPES), help="each against fp32")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    input_size = tuple(int(v) for v in args.input.lower().split("x"))
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {device}, {threads} threads, input {args.input}, batch {args.batch}")
    precisions = ["fp32"] + [p for p in dict.fromkeys(args.precisions) if p != "fp32"]
    others = precisions[1:]
    print(
        f"{'model':<22}"
        + "".join(f"{p + ' ms':>10}" for p in precisions)
        + "".join(f"{p + ' speed-up':>15}" for p in others)
    )
    rows = []
    for name in args.models:
        steps = {prec: make_step(name, prec, input_size, args.batch, device) for prec in precisions}
        for step in steps.values():  # warm-up: kernels, allocator, autocast caches
            step(), step()
        times: dict[str, list[float]] = {prec: [] for prec in precisions}
        for rep in range(args.repeat):
            order = precisions if rep % 2 == 0 else precisions[::-1]
            for prec in order:
                times[prec].append(steps[prec]())
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"model": name} | {f"{k}_ms": v * 1e3 for k, v in med.items()}
        if "bf16" in med:
            row["speedup"] = med["fp32"] / med["bf16"]  # the bf16 speed-up, under the name it always had
        row |= {f"{k}_speedup": med["fp32"] / med[k] for k in others}
        rows.append(row)
        print(
            f"{name:<22}"
            + "".join(f"{med[p] * 1e3:>10.1f}" for p in precisions)
            + "".join(f"{med['fp32'] / med[p]:>14.2f}x" for p in others),
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
