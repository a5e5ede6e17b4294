"""Big image folders: zoo's uint8 cache and streaming decode against the notebooks' way.

The reference is what the notebooks do: torchvision ``ImageFolder`` + PIL ``RandomResizedCrop`` /
``RandomHorizontalFlip`` / ``ToTensor`` / ``Normalize`` + a ``DataLoader``. zoo's paths:

- cached: ``zoo.load_dataset(folder, img_size=S, cache=True)``: decoded once into a memory-mapped uint8 file, read
  a batch at a time, random resized crop + flip + normalise per batch in the main process (workers are for
  decoding: a cache needs none);
- first pass: building that cache (decode in DataLoader workers) plus one epoch read from it;
- streaming: ``cache=False``: DataLoader workers decode and crop every epoch, same per-batch normalisation.

zoo's batches come in the layout fit gives a convnet on the CPU (channels_last; ``--no-channels-last`` for planar).

Measured for each image size: images/s of the loader alone (every batch produced, nothing else), and of one
training epoch of a small CNN (the same hand-written loop for every path). Runs are interleaved; the medians and
their ratios to the reference are reported, with the configuration and the code version.

    python benchmarks/bench_image_cache.py                       # 2,000 + 200 JPEGs, 64 and 224 px, 3 runs
    python benchmarks/bench_image_cache.py --images 600 --runs 1 --sizes 64   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import zoo
from zoo import data as zd


def make_folder(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """400 x 300 JPEGs at quality 90 (about 45 kB each, as photos of that size), 10 classes, train/ and test/."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:300, 0:400].astype(np.float32)
    for part, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            c = i % 10
            d = root / part / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            f = rng.uniform(10, 60, 6)
            img = np.stack([np.sin(xx / f[k] + c) * 70 + np.cos(yy / f[k + 3] + k) * 50 + 120 for k in range(3)], -1)
            img += rng.normal(0, 10, img.shape)
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"{i:05d}.jpg", quality=90)


def small_cnn(num_classes: int = 10) -> nn.Module:
    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU())

    return nn.Sequential(
        block(3, 16), block(16, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(128, num_classes),
    )  # fmt: skip


def reference_loader(root: Path, size: int, batch: int, workers: int, mean, std) -> torch.utils.data.DataLoader:
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    ds = ImageFolder(str(root / "train"), transform=tf)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)


def zoo_batches(data, batch: int, workers: int, epoch: int, channels_last: bool = True):
    b = zd.make_batches(
        data.train, batch, device=torch.device("cpu"), shuffle=True, augment=True, seed=0, num_workers=workers,
        channels_last=channels_last,
    )  # fmt: skip
    b.set_epoch(epoch)
    return b


def loader_pass(batches) -> float:
    """images/s of producing every batch of an epoch."""
    t0, n = time.perf_counter(), 0
    for x, _ in batches:
        n += len(x)
    return n / (time.perf_counter() - t0)


def train_pass(batches, model: nn.Module) -> float:
    """images/s of one training epoch (SGD, cross-entropy) of ``model`` over ``batches``."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    t0, n = time.perf_counter(), 0
    for x, y in batches:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000, help="training images (plus 10%% test images)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for every path")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="zoo's batches channels_last, as fit gives a convnet on the CPU (default)")  # fmt: skip
    ap.add_argument("--dir", default=None, help="keep the generated folder and caches here")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    os.environ.setdefault("ZOO_PROGRESS", "0")
    work = Path(args.dir or tempfile.mkdtemp(prefix="zoo-bench-images-"))
    root = work / "photos"
    if not root.exists():
        t0 = time.perf_counter()
        make_folder(root, args.images, args.images // 10)
        print(f"generated {args.images} + {args.images // 10} JPEGs in {time.perf_counter() - t0:.0f} s")
    kb = np.mean([p.stat().st_size for p in list((root / "train").rglob("*.jpg"))[:200]]) / 1024
    results: dict = {"config": {**vars(args), "jpeg_kb": round(float(kb), 1)}, "sizes": {}}
    for size in args.sizes:
        cache_dir = work / f"cache-{size}"
        first_pass = []
        paths = ("ref", "cached", "stream")
        timings: dict[str, list[float]] = {f"{p}_{k}": [] for k in ("loader", "train") for p in paths}
        for run in range(args.runs):
            # the first (cache-building) pass: build the cache, then one training epoch read from it
            t0 = time.perf_counter()
            data = zoo.load_dataset(root, img_size=size, cache=cache_dir, rebuild=True, workers=args.workers)
            build = time.perf_counter() - t0
            torch.manual_seed(run)
            t1 = time.perf_counter()
            train_pass(zoo_batches(data, args.batch, args.workers, run, args.channels_last), small_cnn())
            n = len(data.train)
            first_pass.append(
                {"build_s": build, "epoch_s": time.perf_counter() - t1, "img_s": n / (time.perf_counter() - t0)}
            )
            stream = zoo.load_dataset(root, img_size=size, cache=False)
            mean, std = data.mean, data.std
            ref = reference_loader(root, size, args.batch, args.workers, mean, std)
            for name, make in (
                ("ref", lambda ref=ref: ref),
                ("cached", lambda d=data, r=run: zoo_batches(d, args.batch, args.workers, r, args.channels_last)),
                ("stream", lambda d=stream, r=run: zoo_batches(d, args.batch, args.workers, r, args.channels_last)),
            ):
                timings[f"{name}_loader"].append(loader_pass(make()))
                torch.manual_seed(run)
                timings[f"{name}_train"].append(train_pass(make(), small_cnn()))
            fp = first_pass[-1]
            print(
                f"{size}px run {run + 1}: "
                + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in timings.items())
                + f"; first pass: build {fp['build_s']:.1f} s + epoch {fp['epoch_s']:.1f} s"
            )
        med = {k: statistics.median(v) for k, v in timings.items()}
        ref_train_s = n / med["ref_train"]
        ref_loader_s = n / med["ref_loader"]
        build_s = statistics.median(p["build_s"] for p in first_pass)
        epoch_s = statistics.median(p["epoch_s"] for p in first_pass)
        size_mb = sum(f.stat().st_size for f in cache_dir.glob("*.zooc")) / 2**20
        results["sizes"][size] = {
            "images_per_s": med,
            "ratio": {k: med[k] / med[f"ref_{k.split('_')[1]}"] for k in med if not k.startswith("ref")},
            "first_pass": {
                "build_s": build_s, "epoch_from_cache_s": epoch_s,
                "build_vs_ref_loader_epoch": ref_loader_s / build_s,
                "build_plus_epoch_vs_ref_train_epoch": ref_train_s / (build_s + epoch_s),
            },
            "cache_mib": size_mb,
            "train_images": n,
        }  # fmt: skip
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results["env"] = {
        "date": time.strftime("%Y-%m-%d"), "commit": commit, "cores": len(os.sched_getaffinity(0)),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "zoo": zoo.__version__,
    }  # fmt: skip
    print(json.dumps(results, indent=1, default=float))
    print("\n| px | path | loader img/s | x ref | train img/s | x ref |")
    print("|---|---|---:|---:|---:|---:|")
    for size, r in results["sizes"].items():
        m, q = r["images_per_s"], r["ratio"]
        print(f"| {size} | notebooks' way | {m['ref_loader']:,.0f} | 1.0 | {m['ref_train']:,.0f} | 1.0 |")
        for name, label in (("cached", "zoo cached"), ("stream", "zoo streaming")):
            print(
                f"| {size} | {label} | {m[f'{name}_loader']:,.0f} | {q[f'{name}_loader']:.1f} | "
                f"{m[f'{name}_train']:,.0f} | {q[f'{name}_train']:.1f} |"
            )
        fp = r["first_pass"]
        print(
            f"| {size} | first pass: build {fp['build_s']:.1f} s + epoch {fp['epoch_from_cache_s']:.1f} s "
            f"(cache {r['cache_mib']:.0f} MiB) | build {fp['build_vs_ref_loader_epoch']:.2f}x a ref loader epoch | | "
            f"build+epoch {fp['build_plus_epoch_vs_ref_train_epoch']:.2f}x a ref train epoch | |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
