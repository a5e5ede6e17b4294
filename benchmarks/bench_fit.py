"""How much zoo.fit costs over a hand-written loop, how much faster it is than the course-notebook loop, and what
accuracy its defaults reach. LeNet-5 at 28 px on the real Fashion-MNIST (and digits for accuracy).

    .venv/bin/python benchmarks/bench_fit.py                 # speed (a), (b) and channels_last, then accuracy (c)
    .venv/bin/python benchmarks/bench_fit.py --part speed --reps 5
    .venv/bin/python benchmarks/bench_fit.py --part accuracy --seeds 0 1 2
    .venv/bin/python benchmarks/bench_fit.py --device cuda                   # on a GPU: the same comparisons there
    python benchmarks/bench_fit.py --part speed --device cuda --data synthetic --precisions fp32 bf16 fp16
                                    # a machine without the dataset: Fashion-MNIST-shaped synthetic images instead

The runs being compared are interleaved (A, B, A, B, ...) and medians reported, because the machine is shared:
a neighbour's job slows whichever run it overlaps. Ratios are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo

ROOT = Path(__file__).resolve().parent.parent


def lenet(data, **kwargs) -> nn.Module:
    return zoo.create("lenet5", num_classes=data.num_classes, in_chans=data.in_chans, img_size=data.img_size, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_loop_epoch(model: nn.Module, data, epoch: int, device: torch.device, batch_size: int = 256) -> float:
    """The minimal hand-written loop over preloaded uint8 tensors: AdamW 1e-3, normalise per batch. img/s."""
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, labels = data.train.images.to(device), data.train.labels.to(device)
    mean, std = data.mean[0], data.std[0]
    model.train()
    g = torch.Generator().manual_seed(epoch)
    order = torch.randperm(len(labels), generator=g).to(device)
    sync(device)
    t0 = time.perf_counter()
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        x = images.index_select(0, idx).float().div_(255).sub_(mean).div_(std)
        y = labels.index_select(0, idx)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return len(order) / (time.perf_counter() - t0)


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file (unsigned bytes), the format torchvision's MNIST classes read."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def notebook_dataset(data, root: Path):
    """torchvision's ``FashionMNIST`` exactly as the course notebooks use it: per sample, PIL -> ToTensor -> Normalize.

    torchvision looks only for decompressed IDX files in ``root/FashionMNIST/raw`` (Debian ships them gzipped),
    so the images zoo loaded are written there first; the dataset class, its ``__getitem__`` and the transforms
    are torchvision's own.
    """
    from torchvision import datasets, transforms

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, prefix in ((data.train, "train"), (data.test, "t10k")):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", split.images[:, 0].numpy())
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", split.labels.numpy())
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    return datasets.FashionMNIST(str(root), train=True, download=False, transform=transform)


def notebook_loop(model: nn.Module, dataset, max_batches: int, device: torch.device) -> float:
    """DataLoader(batch_size=64, shuffle=True) + Adam 1e-3 over torchvision's dataset, for max_batches. img/s."""
    model.to(device)
    loader = torch.utils.data.DataLoader(dataset, 64, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    seen = 0
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x, y = x.to(device), y.to(device)  # as the notebooks do
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
        if i + 1 == max_batches:
            break
    sync(device)
    return seen / (time.perf_counter() - t0)


def fit_epoch(model: nn.Module, data, **kw) -> float:
    """One zoo.fit epoch on the training split only (no validation pass); its training img/s."""
    history = zoo.fit(model, data.train, epochs=1, progress=False, **kw)
    return history.last["images_per_s"]


# ---------------------------------------------------------------------------------------------------------
# parts
# ---------------------------------------------------------------------------------------------------------


def speed(data, reps: int, notebook_batches: int, notebook_data, device: torch.device, precisions=()) -> dict:
    # precision="fp32" as the hand loop: fit's "auto" is bf16 on a GPU with bf16 (and fp32 on the CPU)
    same_recipe = dict(
        optimizer="adamw", lr=1e-3, weight_decay=0.01, scheduler=None, batch_size=256, label_smoothing=0.0,
        augment=False, channels_last=False, precision="fp32", seed=0, device=device,
    )  # fmt: skip
    names = ("hand", "fit_same", "fit_defaults", "fit_no_cl", "fit_unpadded", "notebook")
    names += tuple(f"fit_{p}" for p in precisions)  # fit defaults at each precision asked for
    runs: dict[str, list[float]] = {k: [] for k in names}
    models = {k: lenet(data, pad_input=k != "fit_unpadded") for k in runs}
    # warm-up: first calls pay one-time costs (imports, allocator, kernels)
    hand_loop_epoch(models["hand"], data, 0, device)
    fit_epoch(models["fit_same"], data, **same_recipe)
    for rep in range(reps):
        runs["hand"].append(hand_loop_epoch(models["hand"], data, rep + 1, device))
        runs["fit_same"].append(fit_epoch(models["fit_same"], data, **same_recipe))
        runs["fit_defaults"].append(fit_epoch(models["fit_defaults"], data, seed=rep, device=device))
        runs["fit_no_cl"].append(fit_epoch(models["fit_no_cl"], data, seed=rep, channels_last=False, device=device))
        runs["fit_unpadded"].append(fit_epoch(models["fit_unpadded"], data, seed=rep, device=device))
        runs["notebook"].append(notebook_loop(models["notebook"], notebook_data, notebook_batches, device))
        for prec in precisions:
            runs[f"fit_{prec}"].append(fit_epoch(models[f"fit_{prec}"], data, seed=rep, precision=prec, device=device))
        print(f"  rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in runs.items()), flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratios = {
        "(a) fit / hand loop, same recipe": med["fit_same"] / med["hand"],
        "(b) fit defaults / course-notebook loop": med["fit_defaults"] / med["notebook"],
        "fit defaults (channels_last on CPU) / fit with channels_last=False": med["fit_defaults"] / med["fit_no_cl"],
        "LeNet-5 padded to its 32x32 field (default) / unpadded, fit defaults": med["fit_defaults"]
        / med["fit_unpadded"],
    }
    for prec in precisions:
        if prec != "fp32" and "fp32" in precisions:
            ratios[f"fit defaults {prec} / fp32"] = med[f"fit_{prec}"] / med["fit_fp32"]
    print("\nimages/s, median of", reps, "interleaved runs")
    for k, v in med.items():
        print(f"  {k:<14} {v:>10,.0f}")
    for k, v in ratios.items():
        print(f"  {k}: {v:.3f}x")
    return {"images_per_s": med, "runs": runs, "ratios": ratios}


def accuracy(seeds: list[int], datasets: list[str], device: str = "cpu", **model_kwargs) -> dict:
    out = {}
    for name in datasets:
        data = zoo.load_dataset(name)
        accs, secs = [], []
        for seed in seeds:
            torch.manual_seed(seed)
            model = lenet(data, **model_kwargs)
            t0 = time.perf_counter()
            history = zoo.fit(model, data, epochs=5, seed=seed, progress=False, device=device)
            secs.append(time.perf_counter() - t0)
            accs.append(zoo.evaluate(model, data)["top1"])
            print(f"  {name} seed {seed}: test top-1 {accs[-1]:.4f} in {secs[-1]:.0f} s "
                  f"(batch {history.config['batch_size']}, lr {history.config['lr']})", flush=True)  # fmt: skip
        out[name] = {"top1": accs, "median_top1": statistics.median(accs), "seconds": secs}
        print(f"{name}: zoo.fit(lenet5, {name}, epochs=5) defaults -> median test top-1 {statistics.median(accs):.4f}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("speed", "accuracy", "all"), default="all")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions of each speed run")
    p.add_argument("--notebook-batches", type=int, default=300, help="batches of 64 timed for the notebook loop")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--datasets", nargs="+", default=["digits", "fashion-mnist"], help="for the accuracy part")
    p.add_argument("--no-pad", action="store_true", help="accuracy of LeNet-5 with pad_input=False")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument(
        "--data",
        choices=("fashion-mnist", "synthetic"),
        default="fashion-mnist",
        help="speed part: the real Fashion-MNIST, or synthetic images of its shape (no files needed)",
    )
    p.add_argument("--synthetic-size", type=int, default=60_000, help="training images with --data synthetic")
    p.add_argument(
        "--precisions",
        nargs="+",
        default=[],
        choices=("fp32", "bf16", "fp16"),
        help="speed part: also time fit defaults at these precisions (fp16 needs CUDA)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        version = commit.stdout.strip() or "?"
    except OSError:
        version = "?"
    result: dict = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "commit": version,
        "args": vars(args) | {"json": str(args.json) if args.json else None},
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, commit {version}")
    if args.part in ("speed", "all"):
        if args.data == "synthetic":
            data = zoo.load_dataset(
                "synthetic", in_chans=1, img_size=28, num_classes=10, train_size=args.synthetic_size, test_size=10_000
            )
        else:
            data = zoo.load_dataset("fashion-mnist")
        print(f"speed: LeNet-5 at 28 px on {data}")
        with tempfile.TemporaryDirectory() as tmp:
            nb = notebook_dataset(data, Path(tmp))
            device = torch.device(args.device)
            result["speed"] = speed(data, args.reps, args.notebook_batches, nb, device, args.precisions)
    if args.part in ("accuracy", "all"):
        print("accuracy: zoo.fit defaults, 5 epochs")
        result["accuracy"] = accuracy(
            args.seeds, args.datasets, args.device, **({"pad_input": False} if args.no_pad else {})
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
