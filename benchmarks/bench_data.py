"""Speed of zoo's BatchLoader against one LeNet-5 training epoch on the same batches, in the same run.

Iterates the whole training split (Fashion-MNIST: 60,000 x 1 x 28 x 28 when installed, else ``synthetic`` of the
same shape) once per repeat in several modes (normalise only, + augment, + channels_last) and reports images/s
(median of the repeats, after one warm-up epoch). The reference is a LeNet-5 training step (forward, backward,
Adam) on batches from the plain loader, timed over ``--train-batches`` batches: the last column says what fraction
of a training epoch the loader alone costs. For comparison it also times torchvision's ``DataLoader`` over a
``TensorDataset`` of float images (the usual notebook shape, minus PIL), on ``--dl-batches`` batches.

    python benchmarks/bench_data.py [--dataset fashion-mnist] [--batch 256] [--repeat 5] [--threads 2]
        [--device cpu|cuda] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import zoo
from zoo.data import BatchLoader


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader_rate(loader: BatchLoader, repeat: int) -> float:
    """Median images/s over ``repeat`` epochs after one warm-up epoch (consuming each batch with a tiny op)."""
    rates = []
    for epoch in range(repeat + 1):
        loader.set_epoch(epoch)
        sync(loader.device)
        start = time.perf_counter()
        n = 0
        for x, _ in loader:
            n += x.shape[0]
        sync(loader.device)
        if epoch:
            rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def train_rate(data, batch: int, device: torch.device, batches: int, repeat: int) -> float:
    model = zoo.create("lenet5", num_classes=data.num_classes, in_chans=data.in_chans, img_size=data.img_size)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = BatchLoader(data.train, batch, shuffle=True, device=device, drop_last=True)
    rates = []
    for epoch in range(repeat + 1):
        loader.set_epoch(epoch)
        sync(device)
        start, n = time.perf_counter(), 0
        for i, (x, y) in enumerate(loader):
            if i == batches:
                break
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += x.shape[0]
        sync(device)
        if epoch:
            rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def dataloader_rate(data, batch: int, batches: int, repeat: int) -> float:
    """torch DataLoader over pre-converted float tensors, shuffle, normalise per sample in a transform-free way."""
    from torch.utils.data import DataLoader, TensorDataset

    x = data.train.images.float().div_(255).sub_(data.mean[0]).div_(data.std[0])
    dl = DataLoader(TensorDataset(x, data.train.labels), batch_size=batch, shuffle=True)
    rates = []
    for r in range(repeat + 1):
        start, n = time.perf_counter(), 0
        for i, (xb, _) in enumerate(dl):
            if i == batches:
                break
            n += xb.shape[0]
        if r:
            rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--train-batches", type=int, default=40)
    p.add_argument("--dl-batches", type=int, default=40)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        data = zoo.load_dataset(args.dataset)
    except FileNotFoundError as exc:
        print(
            f"{args.dataset} not available ({str(exc)[:80]}...); using synthetic 60000 x 1 x 28 x 28", file=sys.stderr
        )
        data = zoo.load_dataset("synthetic", in_chans=1, img_size=28, train_size=60000, test_size=10)
    modes = {
        "normalise": {},
        "normalise, shuffle": {"shuffle": True},
        "shuffle + augment (crop, flip)": {"shuffle": True, "augment": True},
        "shuffle + augment + channels_last": {"shuffle": True, "augment": True, "channels_last": True},
    }
    rows = {}
    ref = train_rate(data, args.batch, device, args.train_batches, args.repeat)
    for label, kw in modes.items():
        rows[label] = loader_rate(BatchLoader(data.train, args.batch, device=device, **kw), args.repeat)
    dl = dataloader_rate(data, args.batch, args.dl_batches, args.repeat) if device.type == "cpu" else None

    print(f"{data!r}, batch {args.batch}, device {device}, threads {torch.get_num_threads()}")
    print(f"reference: LeNet-5 training step {ref:,.0f} img/s")
    print("| loader | img/s | share of a LeNet-5 epoch |")
    print("|---|---|---|")
    for label, rate in rows.items():
        print(f"| BatchLoader: {label} | {rate:,.0f} | {ref / rate:.1%} |")
    if dl is not None:
        print(f"| torch DataLoader(TensorDataset), shuffle | {dl:,.0f} | {ref / dl:.1%} |")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = None
    result = {
        "config": {**vars(args), "torch": torch.__version__, "python": platform.python_version(), "commit": commit},
        "dataset": repr(data),
        "lenet5_train_img_s": ref,
        "loader_img_s": rows,
        "dataloader_img_s": dl,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
