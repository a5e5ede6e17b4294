"""Speed of zoo's models against their torchvision/timm twins: forward and forward+backward, same input, same run.

For each pair both models are built at the same input size and class count, warmed up, then timed in
interleaved repeats (zoo, reference, reference, zoo, ...; the order flips every repeat so drift hits both);
the table shows medians and the ratio zoo / reference. Forward is ``eval()`` under ``torch.no_grad()``;
forward+backward is ``train()``, sum of the outputs, ``backward()``. Goal (issue "The eight architecture
families"): no ratio above 1.05.

    python benchmarks/bench_models.py --input 3x224x224 --batch 8 --repeat 5 [--models vit_base_patch16 ...]
        [--threads 2] [--device cpu|cuda] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

import zoo

# zoo name -> (library, reference name); the reference is built with the zoo model's size and classes
TWINS: dict[str, tuple[str, str]] = {
    "alexnet": ("torchvision", "alexnet"),
    "googlenet": ("torchvision", "googlenet"),
    "densenet121": ("torchvision", "densenet121"),
    "mobilenet_v1": ("timm", "mobilenetv1_100"),
    "mobilenet_v2": ("torchvision", "mobilenet_v2"),
    "mobilenet_v3_small": ("torchvision", "mobilenet_v3_small"),
    "mobilenet_v3_large": ("torchvision", "mobilenet_v3_large"),
    "efficientnet_b0": ("torchvision", "efficientnet_b0"),
    "vit_tiny_patch16": ("timm", "vit_tiny_patch16_224"),
    "vit_small_patch16": ("timm", "vit_small_patch16_224"),
    "vit_base_patch16": ("torchvision", "vit_b_16"),
    "vit_base_patch32": ("torchvision", "vit_b_32"),
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_reference(zoo_name: str, zoo_model: nn.Module, in_chans: int, img_size: int, num_classes: int):
    """The twin at the same input; among its variants (GoogLeNet with or without auxiliary heads) the one whose
    parameter count equals the zoo model's, so like is timed against like."""
    lib, ref_name = TWINS[zoo_name]
    patch = getattr(zoo_model, "patch_size", None)
    if lib == "timm":
        import timm

        kw: dict = {"num_classes": num_classes, "in_chans": in_chans}
        if patch is not None:
            kw.update(img_size=img_size, patch_size=patch)
        candidates = [lambda: timm.create_model(ref_name, **kw)]
    else:
        import torchvision

        if in_chans != 3:
            raise SystemExit(f"torchvision's {ref_name} takes 3 channels only; use --input 3xHxW")
        kw = {"num_classes": num_classes}
        candidates = [lambda: torchvision.models.get_model(ref_name, weights=None, **kw)]
        if patch is not None:  # vit_b_16's own config at this image and patch size (4 below 64 px)
            from torchvision.models.vision_transformer import VisionTransformer

            block = zoo_model.blocks[0]
            cfg = dict(num_layers=len(zoo_model.blocks), num_heads=block.attn.num_heads)
            cfg.update(hidden_dim=zoo_model.embed_dim, mlp_dim=block.mlp.fc1.out_features)
            candidates = [lambda: VisionTransformer(img_size, patch, num_classes=num_classes, **cfg)]
        if ref_name == "googlenet":
            candidates = [
                lambda a=aux: torchvision.models.get_model(
                    ref_name, weights=None, aux_logits=a, init_weights=True, **kw
                )
                for aux in (False, True)
            ]
    want = n_params(zoo_model)
    models = [make() for make in candidates]
    return next((m for m in models if n_params(m) == want), models[0])


def _loss(out) -> torch.Tensor:
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum(o.float().sum() for o in outs if isinstance(o, torch.Tensor))


def step_forward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(x)

    return run


def step_backward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        model.zero_grad(set_to_none=True)
        _loss(model(x)).backward()

    return run


def timed(fn: Callable[[], None], device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def measure(
    a: Callable[[], None], b: Callable[[], None], repeat: int, warmup: int, device: torch.device
) -> tuple[list, list]:
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for r in range(repeat):
        if r % 2 == 0:
            ta.append(timed(a, device))
            tb.append(timed(b, device))
        else:
            tb.append(timed(b, device))
            ta.append(timed(a, device))
    return ta, tb


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
        return commit.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except Exception:
        return None


def parse_input(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--input must look like 3x224x224, got {text!r}") from None
    if h != w:
        raise SystemExit(f"--input must be square (zoo models take one img_size), got {text!r}")
    return c, h, w


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="3x224x224", help="C x H x W (square), default 3x224x224")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5, help="timed repeats per model and mode (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--models", nargs="*", help=f"zoo names (default: those registered of {', '.join(TWINS)})")
    parser.add_argument("--modes", nargs="*", default=["forward", "forward+backward"])
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda; both models and the input go there")
    parser.add_argument("--out", help="write configuration and results as JSON here")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    c, h, _ = parse_input(args.input)
    registered = set(zoo.list_models())
    names = args.models or [n for n in TWINS if n in registered]
    unknown = [n for n in names if n not in TWINS]
    if unknown:
        raise SystemExit(f"no reference twin for {', '.join(unknown)}; known: {', '.join(TWINS)}")
    missing = [n for n in names if n not in registered]
    if missing:
        print(f"skipping (not registered in this checkout): {', '.join(missing)}", file=sys.stderr)
        names = [n for n in names if n in registered]

    torch.manual_seed(0)
    device = torch.device(args.device)
    x = torch.randn(args.batch, c, h, h).to(device)
    rows = []
    for name in names:
        ours = zoo.create(name, num_classes=args.num_classes, in_chans=c, img_size=h)
        ref = build_reference(name, ours, c, h, args.num_classes).to(device)
        ours = ours.to(device)
        lib, ref_name = TWINS[name]
        row = {"model": name, "reference": f"{lib}/{ref_name}", "params": n_params(ours), "ref_params": n_params(ref)}
        for mode in args.modes:
            make = step_forward if mode == "forward" else step_backward
            ours.train(mode != "forward"), ref.train(mode != "forward")
            ta, tb = measure(make(ours, x), make(ref, x), args.repeat, args.warmup, device)
            row[mode] = {"zoo_s": ta, "ref_s": tb, "ratio": statistics.median(ta) / statistics.median(tb)}
        rows.append(row)
        print_row(row, args.modes, header=len(rows) == 1)
        del ours, ref

    result = {
        "config": vars(args),
        "models": names,
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "results": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    slow = [(r["model"], m, r[m]["ratio"]) for r in rows for m in args.modes if r[m]["ratio"] > 1.05]
    if slow:
        print("slower than the reference by more than 5%: " + ", ".join(f"{n} {m} {q:.2f}x" for n, m, q in slow))
    return result


def print_row(row: dict, modes: list[str], header: bool) -> None:
    if header:
        cols = "".join(f" | {m} zoo ms | ref ms | ratio" for m in modes)
        print(f"| model | reference | params (zoo = ref){cols} |")
        print("|---|---|---|" + "---:|---:|---:|" * len(modes))
    same = "=" if row["params"] == row["ref_params"] else f"!= {row['ref_params']:,}"
    cells = ""
    for m in modes:
        r = row[m]
        za, rb = statistics.median(r["zoo_s"]) * 1e3, statistics.median(r["ref_s"]) * 1e3
        cells += f" | {za:.1f} | {rb:.1f} | {r['ratio']:.2f}"
    print(f"| {row['model']} | {row['reference']} | {row['params']:,} {same}{cells} |", flush=True)


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:
        return None


if __name__ == "__main__":
    main()
