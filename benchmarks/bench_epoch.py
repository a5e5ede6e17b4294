"""One epoch of LeNet-5 on Fashion-MNIST, wall clock, the way a student meets it: ``zoo.fit`` with its defaults on
``zoo.load_dataset("fashion-mnist")`` against the course notebook's loop (torchvision's ``FashionMNIST`` with
``ToTensor`` + ``Normalize``, ``DataLoader(batch_size=64, shuffle=True)``, Adam 1e-3), both from a loaded dataset.

    python benchmarks/bench_epoch.py                  # 2 interleaved repeats, the median of each
    python benchmarks/bench_epoch.py --reps 3 --root /usr/share/datasets/fashion-mnist

Unlike ``bench_fit.py --part speed`` (images/s of the training steps alone, medians of 5, the machine idle), this
times whole epochs: zoo.fit's includes its validation pass and per-epoch work, the notebook's the per-sample
decoding of its DataLoader. The machine's load is printed with the figures: a busy machine slows the notebook's
many small steps more than zoo's fewer large ones, so the ratio grows with the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

import zoo


def torchvision_root(source: str, tmp: str) -> str:
    """A root torchvision's ``FashionMNIST`` reads: ``ROOT/FashionMNIST/raw/`` with the files decompressed (it
    does not read the gzipped files where they lie, as zoo does); made in ``tmp`` from ``source``."""
    import gzip
    import shutil
    from pathlib import Path

    raw = Path(tmp) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in Path(source).glob("*-ubyte*"):
        target = raw / f.name.removesuffix(".gz")
        with gzip.open(f) if f.suffix == ".gz" else open(f, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return tmp


def notebook_epoch(root: str) -> float:
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    train = datasets.FashionMNIST(root, train=True, transform=tf, download=False)
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    model = zoo.create("lenet5", img_size=28)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    for x, y in loader:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def zoo_epoch(data) -> float:
    model = zoo.create("lenet5", img_size=28)
    start = time.perf_counter()
    zoo.fit(model, data, epochs=1, progress=False)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--root", default=None, help="Fashion-MNIST's files (default: where zoo finds them)")
    args = p.parse_args()
    import tempfile

    data = zoo.load_dataset("fashion-mnist", root=args.root)
    times: dict[str, list[float]] = {"zoo.fit": [], "notebook": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(args.root or str(data.source), tmp)
        for _ in range(args.reps):  # interleaved: a neighbour's job slows both alike
            times["zoo.fit"].append(zoo_epoch(data))
            times["notebook"].append(notebook_epoch(root))
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, load average {load:.1f}, {threads} threads")
    for k, v in times.items():
        print(f"{k:9s} one epoch: median {med[k]:.1f} s ({', '.join(f'{t:.1f}' for t in v)})")
    print(f"zoo.fit is {med['notebook'] / med['zoo.fit']:.1f}x as fast per epoch")


if __name__ == "__main__":
    main()
