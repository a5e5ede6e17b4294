"""What zoo.fit costs over a hand-written loop when the data is the user's own DataLoader.

LeNet-5 at 28 px on the real Fashion-MNIST, loaded exactly as the course notebooks load it: torchvision's
``FashionMNIST`` with ``ToTensor()`` + ``Normalize``, ``DataLoader(batch_size=64, shuffle=True)``, Adam 1e-3.

    .venv/bin/python benchmarks/bench_fit_loader.py --limit 20000 --reps 5 --json fit_loader.json
    .venv/bin/python benchmarks/bench_fit_loader.py --limit 10000 --reps 9 --wait-idle 60   # a shared machine
    .venv/bin/python benchmarks/bench_fit_loader.py                      # all 60,000 training images, 3 reps

Both sides train the same model from the same initial weights over the same DataLoader object, with the global
seed set alike before the epoch, so they see the same batches in the same order and do the same arithmetic: the
per-epoch losses are compared as a check that the work is the same. zoo.fit gets the recipe of the hand loop:
``optimizer=lambda p: torch.optim.Adam(p, 1e-3)``, ``scheduler=None``, ``label_smoothing=0``,
``channels_last=False`` (its CPU default converts every batch and the model to channels_last, which the notebook
does not), fp32, no validation. Three runs, interleaved (their order alternating from one repetition to the next)
because the machine is shared:

- ``hand``: the notebook's loop, which also tracks the epoch's loss and accuracy (``loss.item()``,
  ``(out.argmax(1) == y).sum().item()``), as zoo.fit does (on the device, read once per epoch);
- ``fit``: ``zoo.fit(model, loader, epochs=1, ...)``;
- ``bare``: the loop with no bookkeeping at all (forward, loss, zero_grad, backward, step), the floor.

A second part (``--part overhead``) repeats the three runs with a near-free model (one linear layer) over a
DataLoader that serves the same images already normalised and cut into batches of 64 (``batch_size=None``), where
a step costs little beyond the loop itself: the difference per step there is the framework's fixed cost, which
the ±30% noise of a shared machine hides in the notebook comparison.

Each is timed around the whole call (wall: zoo.fit's set-up and checks included, the hand loop's optimizer
creation included) and around the batches only (zoo.fit's own ``images_per_s``). Ratios (of the medians, the
median of the per-repetition ratios, and over the repetitions the rest of the machine left quiet) are printed,
never asserted. The IDX files are decompressed from ``--data-dir`` into a temporary directory, because torchvision
reads only decompressed files in ``root/FashionMNIST/raw``; ``--limit N`` keeps the first N training images.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

import zoo

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = (0.5,), (0.5,)  # as bench_fit.py's notebook loop


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------------------
# neighbours: on a shared 2-core machine another process slows torch's threads many times over, so each run
# records how many cores the rest of the machine used meanwhile, and a repetition can wait for a quiet machine
# ---------------------------------------------------------------------------------------------------------


def busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux), or None."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def others_load(run, *args) -> tuple:
    """``run(*args)`` and the cores the rest of the machine kept busy meanwhile (None where unknown)."""
    b0, p0, t0 = busy_seconds(), time.process_time(), time.perf_counter()
    out = run(*args)
    b1, p1, t1 = busy_seconds(), time.process_time(), time.perf_counter()
    load = None if b0 is None or b1 is None else max(0.0, (b1 - b0) - (p1 - p0)) / (t1 - t0)
    return out, load


def wait_quiet(max_seconds: float, threshold: float = 0.2, window: float = 2.0) -> float:
    """Wait (up to ``max_seconds``) until the machine's busy cores over ``window`` s are below ``threshold``."""
    start = time.perf_counter()
    while True:
        b0 = busy_seconds()
        if b0 is None:
            return 0.0
        time.sleep(window)
        load = (busy_seconds() - b0) / window
        waited = time.perf_counter() - start
        if load < threshold or waited >= max_seconds:
            return waited


# ---------------------------------------------------------------------------------------------------------
# the data, as the notebook builds it
# ---------------------------------------------------------------------------------------------------------


def decompress_idx(src: Path, dst: Path, limit: int | None) -> int:
    """Gunzip one IDX file, keeping the first ``limit`` records (the header's count rewritten). Returns the count."""
    raw = gzip.decompress(src.read_bytes())
    ndim = raw[3]
    shape = list(struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim]))
    header = 4 + 4 * ndim
    record = 1
    for d in shape[1:]:
        record *= d
    n = shape[0] if limit is None else min(limit, shape[0])
    shape[0] = n
    dst.write_bytes(raw[:4] + struct.pack(f">{ndim}I", *shape) + raw[header : header + n * record])
    return n


def notebook_loader(data_dir: Path, root: Path, limit: int | None) -> torch.utils.data.DataLoader:
    """torchvision's ``FashionMNIST`` + ``ToTensor`` + ``Normalize`` in ``DataLoader(batch_size=64, shuffle=True)``."""
    from torchvision import datasets, transforms

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{prefix}-{kind}-ubyte"
            decompress_idx(data_dir / f"{name}.gz", raw / name, limit if prefix == "train" else None)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    dataset = datasets.FashionMNIST(str(root), train=True, download=False, transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)


# ---------------------------------------------------------------------------------------------------------
# the runs: each returns (wall seconds, seconds over the batches, images, epoch loss)
# ---------------------------------------------------------------------------------------------------------


def hand_loop(model: nn.Module, loader, seed: int, device: torch.device, track: bool = True) -> tuple:
    """The course notebook's training loop over ``loader`` for one epoch (``track``: its loss/accuracy bookkeeping)."""
    t_call = time.perf_counter()
    torch.manual_seed(seed)  # as zoo.fit(seed=) does: the loader's shuffle draws from the global generator
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    criterion = nn.CrossEntropyLoss()
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    t0 = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = criterion(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
        if track:
            total_loss += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
    sync(device)
    t1 = time.perf_counter()
    return t1 - t_call, t1 - t0, seen, (total_loss / seen if track else float("nan"))


def fit_run(model: nn.Module, loader, seed: int, device: torch.device) -> tuple:
    """``zoo.fit`` over the same loader with the hand loop's recipe, one epoch."""
    t_call = time.perf_counter()
    history = zoo.fit(
        model, loader, epochs=1, optimizer=lambda p: torch.optim.Adam(p, 1e-3), scheduler=None,
        label_smoothing=0.0, channels_last=False, precision="fp32", val_fraction=0, seed=seed, progress=False,
        device=device,
    )  # fmt: skip
    sync(device)
    wall = time.perf_counter() - t_call
    rec = history.last
    n = images_in(loader)
    return wall, n / rec["images_per_s"], n, rec["loss"]


RUNS = {
    "hand": lambda m, loader, seed, dev: hand_loop(m, loader, seed, dev, track=True),
    "fit": fit_run,
    "bare": lambda m, loader, seed, dev: hand_loop(m, loader, seed, dev, track=False),
}


def lenet_factory(seed: int):
    """LeNet-5 at 28 px, the same initial weights at every call."""
    torch.manual_seed(seed)
    init = {k: v.clone() for k, v in zoo.create("lenet5", img_size=28).state_dict().items()}

    def fresh() -> nn.Module:
        model = zoo.create("lenet5", img_size=28)
        model.load_state_dict(init)
        return model

    return fresh


def near_free_factory(seed: int):
    """A near-free model (one linear layer on the 784 pixels): what is left of a step is the loop's own cost."""
    torch.manual_seed(seed)
    init = {k: v.clone() for k, v in nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).state_dict().items()}

    def fresh() -> nn.Module:
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        model.load_state_dict(init)
        return model

    return fresh


class PreBatched(torch.utils.data.Dataset):
    """Whole batches as a Dataset's items (for ``DataLoader(batch_size=None)``): a loader that costs ~nothing."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
        self.batches = list(zip(x.split(batch_size), y.split(batch_size)))
        self.images = len(y)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches[i]


def prebatched_loader(dataset) -> torch.utils.data.DataLoader:
    """The notebook's images, normalised once and cut into batches of 64, served in a shuffled batch order."""
    x = dataset.data.unsqueeze(1).float().div_(255).sub_(MEAN[0]).div_(STD[0])
    return torch.utils.data.DataLoader(PreBatched(x, dataset.targets, 64), batch_size=None, shuffle=True)


def images_in(loader) -> int:
    return getattr(loader.dataset, "images", None) or len(loader.dataset)


def measure(loader, fresh, reps: int, device: torch.device, seed: int, wait: float) -> dict:
    """Interleaved runs of ``RUNS`` over ``loader``, each on a model from ``fresh()``; medians and ratios."""
    # warm-up: the first calls pay one-time costs (imports, allocator, oneDNN kernels)
    for run in RUNS.values():
        run(fresh(), loader, seed, device)
    wall: dict[str, list[float]] = {k: [] for k in RUNS}  # images/s over the whole call
    loop: dict[str, list[float]] = {k: [] for k in RUNS}  # images/s over the batches only
    seconds: dict[str, list[tuple[float, float]]] = {k: [] for k in RUNS}  # (whole call, batches only)
    losses: dict[str, list[float]] = {k: [] for k in RUNS}
    others: dict[str, list[float | None]] = {k: [] for k in RUNS}
    names = list(RUNS)
    print("  images/s per run: wall (batches only) [cores the rest of the machine used meanwhile]")
    for rep in range(reps):
        waited = wait_quiet(wait) if wait > 0 else 0.0
        order = names if rep % 2 == 0 else names[::-1]  # alternate, so that drift does not favour one side
        for name in order:
            (w, s, n, loss), load = others_load(RUNS[name], fresh(), loader, seed + rep, device)
            wall[name].append(n / w)
            loop[name].append(n / s)
            seconds[name].append((w, s))
            losses[name].append(loss)
            others[name].append(load)
        print(
            f"  rep {rep + 1} ({' '.join(order)}{f', waited {waited:.0f} s' if waited >= 1 else ''}): "
            + ", ".join(f"{k} {wall[k][-1]:,.0f} ({loop[k][-1]:,.0f}) [{_fmt(others[k][-1])}]" for k in names),
            flush=True,
        )
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    med_loop = {k: statistics.median(v) for k, v in loop.items()}
    loss_diff = max(abs(a - b) for a, b in zip(losses["fit"], losses["hand"]))
    steps = len(loader)
    step_us = {k: 1e6 * statistics.median(s for _, s in v) / steps for k, v in seconds.items()}
    setup_ms = {k: 1e3 * statistics.median(w - s for w, s in v) for k, v in seconds.items()}
    ratios = {
        "fit / hand loop (wall, whole call)": med_wall["fit"] / med_wall["hand"],
        "fit / hand loop (batches only)": med_loop["fit"] / med_loop["hand"],
        # each repetition's fit against its own hand run (neighbours in time): less sensitive to slow drift
        "fit / hand loop (wall), median of the per-repetition ratios": statistics.median(
            f / h for f, h in zip(wall["fit"], wall["hand"])
        ),
        "fit / bare loop (wall, whole call)": med_wall["fit"] / med_wall["bare"],
        "hand / bare loop (wall): the bookkeeping's cost": med_wall["hand"] / med_wall["bare"],
    }
    print(f"\nmedian of {reps} interleaved runs of one epoch ({images_in(loader):,} images, {steps} steps)")
    print(f"  {'run':<6} {'img/s wall':>11} {'img/s batches':>14} {'us/step':>9} {'set-up ms':>10}")
    for k in names:
        print(f"  {k:<6} {med_wall[k]:>11,.0f} {med_loop[k]:>14,.0f} {step_us[k]:>9,.1f} {setup_ms[k]:>10,.1f}")
    for k, v in ratios.items():
        print(f"  {k}: {v:.3f}x")
    # the repetitions in which the rest of the machine stayed under 0.1 cores through all three runs
    quiet = [i for i in range(reps) if all(others[k][i] is not None and others[k][i] < 0.1 for k in names)]
    quiet_ratio = None
    if quiet:
        quiet_ratio = statistics.median(wall["fit"][i] / wall["hand"][i] for i in quiet)
        print(f"  quiet repetitions {[i + 1 for i in quiet]}: fit / hand loop (wall), median {quiet_ratio:.3f}x")
    print(
        f"  fit's cost over the hand loop: {step_us['fit'] - step_us['hand']:+.1f} us per step, "
        f"{setup_ms['fit'] - setup_ms['hand']:+.1f} ms per call; same work: largest |epoch loss fit - hand| "
        f"over the reps {loss_diff:.2e}"
    )
    return {
        "images": images_in(loader),
        "steps": steps,
        "images_per_s_wall": med_wall,
        "images_per_s_batches": med_loop,
        "us_per_step": step_us,
        "setup_ms": setup_ms,
        "runs_wall": wall,
        "runs_batches": loop,
        "epoch_losses": losses,
        "others_load_cores": others,
        "max_loss_diff_fit_hand": loss_diff,
        "ratios": ratios,
        "quiet_reps": [i + 1 for i in quiet],
        "quiet_fit_over_hand": quiet_ratio,
    }


def _fmt(load: float | None) -> str:
    return "?" if load is None else f"{load:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--part",
        choices=("notebook", "overhead", "all"),
        default="all",
        help="notebook: LeNet-5 over the notebook's DataLoader; overhead: a near-free model, the loop's own cost",
    )
    p.add_argument("--limit", type=int, default=None, help="train on the first N training images (default: all)")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions of each run")
    p.add_argument("--overhead-reps", type=int, default=15, help="repetitions of the near-free-model runs")
    p.add_argument("--seed", type=int, default=0, help="initial weights; repetition r shuffles with seed + r")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR, help="the gzipped Fashion-MNIST IDX files")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="S",
        help="before each repetition wait up to S seconds for the rest of the machine to go quiet",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "zoo"], cwd=ROOT, capture_output=True, text=True)
        version = (commit.stdout.strip() or "?") + ("+uncommitted zoo/ changes" if dirty.stdout.strip() else "")
    except OSError:
        version = "?"
    import torchvision

    result: dict = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "commit": version,
        "config": {
            "model": "zoo.create('lenet5', img_size=28); overhead part: nn.Sequential(Flatten(), Linear(784, 10))",
            "data": f"torchvision FashionMNIST, ToTensor + Normalize{MEAN, STD}",
            "loader": "DataLoader(batch_size=64, shuffle=True); overhead part: prepared batches, batch_size=None",
            "optimizer": "torch.optim.Adam(params, 1e-3)",
            "fit_options": "scheduler=None, label_smoothing=0, channels_last=False, precision='fp32', "
            "val_fraction=0, progress=False, epochs=1",
        },
        "args": vars(args) | {"json": str(args.json) if args.json else None, "data_dir": str(args.data_dir)},
    }
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads, "
          f"commit {version}")  # fmt: skip
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        loader = notebook_loader(args.data_dir, Path(tmp), args.limit)
        print(f"{len(loader.dataset):,} Fashion-MNIST training images, on {device}")
        if args.part in ("notebook", "all"):
            print("\n(1) the course notebook's DataLoader: torchvision FashionMNIST + ToTensor + Normalize, batch 64")
            result["notebook"] = measure(loader, lenet_factory(args.seed), args.reps, device, args.seed, args.wait_idle)
        if args.part in ("overhead", "all"):
            print("\n(2) the loop's own cost: a one-layer model, the same images in prepared batches of 64")
            fast = prebatched_loader(loader.dataset)
            result["overhead"] = measure(
                fast, near_free_factory(args.seed), args.overhead_reps, device, args.seed, args.wait_idle
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
