"""zoo's GPU-resident loader against torchvision-style DataLoader feeding, and torch.compile on/off, on a CUDA GPU.

Two parts, each timed in one process with the runs being compared interleaved (A, B, C, A, B, C, ...), medians
reported and ratios printed, never asserted:

* ``loader`` (airbench-style): the zoo-resnet plugin's ResNet-20 on CIFAR-shaped synthetic uint8 data generated on
  the device (default 50,000 x 3 x 32 x 32, 10 classes). One training epoch through

    - ``zoo``: ``zoo.fit(model, (images, labels))`` on the uint8 tensors already on the GPU (zoo's in-memory
      loader: one index per batch, normalised on the device);
    - ``hand_gpu``: a hand-written loop over the same GPU tensors (index_select, normalise), the lower bound;
    - ``dataloader_wN``: ``TensorDataset`` + ``DataLoader(shuffle=True, pin_memory=True, num_workers=N)`` over the
      images in host memory, batches copied with ``non_blocking=True``, in a hand loop (what torchvision users do);

  all with the same recipe: AdamW 1e-3 without weight decay, no schedule, no label smoothing, no augmentation,
  the same batch size and precision (bf16 autocast where the GPU supports it, as zoo.fit's "auto"). Reported:
  epoch seconds, images/s and peak memory (``torch.cuda.max_memory_allocated``, which includes the GPU-resident
  images for ``zoo`` and ``hand_gpu``).
* ``compile``: one CNN (ResNet-20) and one ViT (``vit_tiny_patch16`` at 32 px), eager against ``torch.compile``
  (what ``zoo.fit(compile=True)`` does): the first training step's time (tracing and compiling included) and the
  steady-state images/s of the same step (forward under autocast, cross-entropy, backward, fused AdamW).

    python benchmarks/bench_gpu_loader.py --json out.json --markdown out.md            # on a GPU, both parts
    python benchmarks/bench_gpu_loader.py --part compile --compile-models lenet5       # a quicker CNN
    python benchmarks/bench_gpu_loader.py --device cpu --quick                         # dry run of the logic

Without a CUDA GPU (and without ``--device cpu``) it says so and exits 0. ``--quick`` shrinks everything (256
images, 1 epoch, no warm-up) and, on the CPU, compiles with the ``eager`` backend: it checks the code, not speed.
Only zoo's public names are used (zoo.fit, zoo.create), and the plugin is imported from ``plugins/zoo-resnet``, so
it runs from a checkout with ``PYTHONPATH=.`` and nothing installed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
NO_GPU = "no CUDA GPU here (torch.cuda.is_available() is False): nothing to check"
MEAN = STD = 0.5  # what zoo.fit uses for an (images, labels) pair without statistics


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def build(name: str, num_classes: int = 10) -> nn.Module:
    """``resnet20`` (and the other CIFAR ResNets) from the zoo-resnet plugin's folder; any other name by zoo.create."""
    import zoo

    plugin = ROOT / "plugins" / "zoo-resnet"
    if name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110"):
        if str(plugin) not in sys.path:
            sys.path.insert(0, str(plugin))
        import zoo_resnet

        return getattr(zoo_resnet, name)(num_classes=num_classes, in_chans=3, img_size=32)
    return zoo.create(name, num_classes=num_classes, in_chans=3, img_size=32)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def normalise(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = x.float().div_(255).sub_(MEAN).div_(STD)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    # what zoo.fit builds for optimizer="adamw", weight_decay=0 on CPU or CUDA parameters: fused AdamW
    return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, fused=True)


def train_steps(model, batches, device: torch.device, precision: str, channels_last: bool) -> tuple[float, int]:
    """One pass of ``batches`` (uint8 images, labels) through a fresh AdamW; (seconds, images) of the pass."""
    opt = make_optimizer(model)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    model.train()
    seen = 0
    sync(device)
    t0 = time.perf_counter()
    for xb, yb in batches:
        xb = normalise(xb.to(device, non_blocking=True), channels_last)
        yb = yb.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        seen += len(yb)
    sync(device)
    return time.perf_counter() - t0, seen


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def max_mb(a: float | None, b: float | None) -> float | None:
    return a if b is None else b if a is None else max(a, b)


def fmt_mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


# ---------------------------------------------------------------------------------------------------------
# loader: zoo's GPU-resident loader against DataLoader(pin_memory=True)
# ---------------------------------------------------------------------------------------------------------


def loader_part(args, device: torch.device, precision: str) -> dict:
    import zoo

    n, bs = args.size, args.batch_size
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, device=device, generator=gen)
    labels = torch.randint(0, 10, (n,), device=device, generator=gen)
    host_images, host_labels = images.cpu(), labels.cpu()  # where a torchvision dataset keeps them
    drop_last = n % bs == 1  # a last batch of one image breaks BatchNorm in training mode (zoo.fit drops it too)
    cl = args.channels_last
    torch.manual_seed(0)
    reference = build(args.model)
    variants = ["zoo", "hand_gpu"] + [f"dataloader_w{w}" for w in args.workers]
    models = {}
    for name in variants:
        models[name] = build(args.model).to(device)
        models[name].load_state_dict(reference.state_dict())  # the same start for every variant
        if cl:
            models[name].to(memory_format=torch.channels_last)

    def run_zoo(epoch: int) -> tuple[float, int, float]:
        t0 = time.perf_counter()
        history = zoo.fit(
            models["zoo"], (images, labels), epochs=1, batch_size=bs, optimizer="adamw", lr=1e-3,
            weight_decay=0.0, scheduler=None, label_smoothing=0.0, augment=False, channels_last=cl,
            precision=precision, seed=epoch, progress=False, device=device,
        )  # fmt: skip
        call_s = time.perf_counter() - t0
        return history.last["seconds"], n - drop_last, call_s  # fit drops a last batch of one image too

    def run_hand_gpu(epoch: int) -> tuple[float, int, float]:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).to(device)
        if drop_last:
            order = order[: n - 1]
        batches = (
            (images.index_select(0, idx), labels.index_select(0, idx)) for idx in order.split(bs)
        )  # fmt: skip
        t0 = time.perf_counter()
        secs, seen = train_steps(models["hand_gpu"], batches, device, precision, cl)
        return secs, seen, time.perf_counter() - t0

    def run_dataloader(workers: int) -> Callable[[int], tuple[float, int, float]]:
        def run(epoch: int) -> tuple[float, int, float]:
            loader = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(host_images, host_labels),
                batch_size=bs,
                shuffle=True,
                num_workers=workers,
                pin_memory=device.type == "cuda",
                drop_last=drop_last,
                generator=torch.Generator().manual_seed(epoch),
            )
            t0 = time.perf_counter()
            secs, seen = train_steps(models[f"dataloader_w{workers}"], loader, device, precision, cl)
            return secs, seen, time.perf_counter() - t0

        return run

    runners = {"zoo": run_zoo, "hand_gpu": run_hand_gpu}
    runners |= {f"dataloader_w{w}": run_dataloader(w) for w in args.workers}
    for _ in range(args.warmup):  # first calls pay one-time costs (cuDNN autotuning, allocator, worker start)
        for name in variants:
            runners[name](0)
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    call_seconds: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, float | None] = dict.fromkeys(variants)
    images_seen: dict[str, int] = {}
    for rep in range(args.reps):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]  # rotate who goes first
        for name in order:
            reset_peak(device)
            secs, seen, call_s = runners[name](rep + 1)
            seconds[name].append(secs)
            call_seconds[name].append(call_s)
            images_seen[name] = seen
            peaks[name] = max_mb(peaks[name], peak_mb(device))
        print(f"  rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in seconds.items()), flush=True)
    rows = []
    for name in variants:
        med = median(seconds[name])
        rows.append({
            "variant": name,
            "epoch_s": med,
            "call_s": median(call_seconds[name]),
            "images_per_s": images_seen[name] / med if med > 0 else None,
            "peak_mem_mb": peaks[name],
            "epoch_s_runs": seconds[name],
        })  # fmt: skip
    by = {r["variant"]: r for r in rows}
    ratios = {"zoo / hand_gpu, images/s": by["zoo"]["images_per_s"] / by["hand_gpu"]["images_per_s"]}
    for w in args.workers:
        dl = by[f"dataloader_w{w}"]
        ratios[f"zoo / dataloader_w{w}, images/s"] = by["zoo"]["images_per_s"] / dl["images_per_s"]
    print(f"\nloader: {args.model}, {n:,} x 3 x 32 x 32 uint8, batch {bs}, {precision}, channels_last={cl}; "
          f"median of {args.reps} interleaved epochs")  # fmt: skip
    print(f"  {'variant':<16}{'epoch s':>10}{'images/s':>12}{'peak MB':>10}")
    for r in rows:
        print(f"  {r['variant']:<16}{r['epoch_s']:>10.3f}{r['images_per_s']:>12,.0f}{fmt_mb(r['peak_mem_mb']):>10}")
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}x")
    return {
        "model": args.model,
        "images": [n, 3, 32, 32],
        "dataset_mb_on_device": images.numel() / 2**20,
        "batch_size": bs,
        "precision": precision,
        "channels_last": cl,
        "reps": args.reps,
        "rows": rows,
        "ratios": ratios,
    }


# ---------------------------------------------------------------------------------------------------------
# compile: eager against torch.compile, first step and steady state
# ---------------------------------------------------------------------------------------------------------


def compile_part(args, device: torch.device, precision: str, save: Callable[[list], None], errors: dict) -> list:
    """Each model in turn; one that fails is reported in ``errors`` and the next one still runs."""
    rows: list[dict] = []
    for name in args.compile_models:
        try:
            rows += compile_model(name, args, device, precision)
        except Exception as exc:
            errors[f"compile {name}"] = f"{type(exc).__name__}: {exc}"[:500]
            print(f"  {name}: failed: {errors[f'compile {name}']}", flush=True)
        save(rows)
    return rows


def compile_model(name: str, args, device: torch.device, precision: str) -> list[dict]:
    """[eager row, compiled row]: first training step's seconds, steady images/s (interleaved chunks), peak MB."""
    torch.compiler.reset()  # each model's first compiled step pays its own tracing and compiling
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 256, (args.compile_batch, 3, 32, 32), dtype=torch.uint8, device=device, generator=gen)
    y = torch.randint(0, 10, (args.compile_batch,), device=device, generator=gen)
    x = normalise(x, args.channels_last)
    steps = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = build(name).to(device)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        model.train()
        net = torch.compile(model, backend=args.compile_backend) if compiled else model
        opt = make_optimizer(model)

        def step(net=net, opt=opt) -> None:
            with autocast(device, precision):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[compiled] = step
    first: dict[bool, float] = {}
    first_peak: dict[bool, float | None] = {}
    for compiled in (False, True):
        reset_peak(device)
        sync(device)
        t0 = time.perf_counter()
        steps[compiled]()
        sync(device)
        first[compiled] = time.perf_counter() - t0
        first_peak[compiled] = peak_mb(device)
        steps[compiled]()  # a second step: anything still lazy (optimizer state, autotuning) is done now
    rates: dict[bool, list[float]] = {False: [], True: []}
    peaks: dict[bool, float | None] = {False: None, True: None}
    for rep in range(args.reps):
        for compiled in (False, True) if rep % 2 == 0 else (True, False):
            reset_peak(device)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.compile_steps):
                steps[compiled]()
            sync(device)
            rates[compiled].append(args.compile_steps * args.compile_batch / (time.perf_counter() - t0))
            peaks[compiled] = max_mb(peaks[compiled], peak_mb(device))
    rows = []
    for compiled in (False, True):
        rows.append({
            "model": name,
            "compile": compiled,
            "backend": args.compile_backend if compiled else None,
            "first_step_s": first[compiled],
            "images_per_s": median(rates[compiled]),
            "peak_mem_mb": max_mb(peaks[compiled], first_peak[compiled]),
            "images_per_s_runs": rates[compiled],
        })  # fmt: skip
    eager, comp = rows[-2], rows[-1]
    print(f"  {name}: eager first step {eager['first_step_s']:.2f} s, {eager['images_per_s']:,.0f} img/s; "
          f"compiled first step {comp['first_step_s']:.2f} s, {comp['images_per_s']:,.0f} img/s "
          f"({comp['images_per_s'] / eager['images_per_s']:.2f}x)", flush=True)  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    part = {"loader": "zoo's loader against DataLoader", "compile": "torch.compile"}.get(result["args"]["part"], "")
    lines = [
        f"## bench_gpu_loader: {part or 'loader and torch.compile'} ({result['device']}, torch {result['torch']})",
        "",
    ]
    if "skipped" in result:
        return "\n".join(lines + [f"Skipped: {result['skipped']}", ""])
    loader = result.get("loader")
    if loader:
        lines += [
            f"Loader: {loader['model']}, {loader['images'][0]:,} CIFAR-shaped uint8 images "
            f"({loader['dataset_mb_on_device']:,.0f} MB on the device), batch {loader['batch_size']}, "
            f"{loader['precision']}, channels_last={loader['channels_last']}; median of {loader['reps']} "
            "interleaved epochs.",
            "",
            "| variant | epoch s | images/s | peak MB |",
            "|---|---|---|---|",
        ]
        for r in loader["rows"]:
            lines.append(
                f"| {r['variant']} | {r['epoch_s']:.3f} | {r['images_per_s']:,.0f} | {fmt_mb(r['peak_mem_mb'])} |"
            )
        lines += [""] + [f"- {k}: **{v:.2f}x**" for k, v in loader["ratios"].items()] + [""]
    rows = result.get("compile")
    if rows:
        lines += [
            f"torch.compile (batch {result['args']['compile_batch']}, {result['precision']}, "
            f"{result['args']['compile_steps']} steps x {result['args']['reps']} interleaved):",
            "",
            "| model | compile | first step s | images/s | peak MB |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            on = f"on ({r['backend']})" if r["compile"] else "off"
            lines.append(
                f"| {r['model']} | {on} | {r['first_step_s']:.2f} | {r['images_per_s']:,.0f} | "
                f"{fmt_mb(r['peak_mem_mb'])} |"
            )
        lines.append("")
    if result.get("errors"):
        lines += [f"- error in {k}: `{v}`" for k, v in result["errors"].items()] + [""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("loader", "compile", "all"), default="all")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (a dry run of the logic)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 epoch, no warm-up: checks the code")
    p.add_argument("--model", default="resnet20", help="the loader part's model (default: zoo-resnet's ResNet-20)")
    p.add_argument("--size", type=int, default=None, help="synthetic images (default 50,000; --quick 256)")
    p.add_argument("--batch-size", type=int, default=None, help="default 512; --quick 64")
    p.add_argument("--workers", type=int, nargs="+", default=None, help="DataLoader num_workers to try (0 4)")
    p.add_argument("--reps", type=int, default=None, help="interleaved timed epochs / chunks (default 5; --quick 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed epochs per loader variant (default 1)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--channels-last", action="store_true", help="NHWC for every variant (zoo.fit's CUDA default: off)")
    p.add_argument("--compile-models", nargs="+", default=["resnet20", "vit_tiny_patch16"])
    p.add_argument("--compile-batch", type=int, default=None, help="default 256; --quick 8")
    p.add_argument("--compile-steps", type=int, default=None, help="timed steps per chunk (default 20; --quick 2)")
    p.add_argument("--compile-backend", default=None, help="default inductor (--quick on the CPU: eager)")
    p.add_argument("--json", type=Path, default=None, help="write the results here (rewritten after each part)")
    p.add_argument("--markdown", type=Path, default=None, help="write a markdown summary here")
    args = p.parse_args()
    device = torch.device(args.device)
    quick = args.quick
    defaults = {
        "size": 256 if quick else 50_000,
        "batch_size": 64 if quick else 512,
        "workers": [0] if quick else [0, 4],
        "reps": 1 if quick else 5,
        "warmup": 0 if quick else 1,
        "compile_batch": 8 if quick else 256,
        "compile_steps": 2 if quick else 20,
        "compile_backend": "eager" if quick and device.type == "cpu" else "inductor",
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    result: dict = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" and torch.cuda.is_available() else "cpu",
        "machine": platform.processor() or platform.machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        if args.markdown:
            args.markdown.write_text(markdown(result))

    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"bench_gpu_loader: {NO_GPU}")
        result["skipped"] = NO_GPU
        save()
        return
    precision = resolve_precision(args.precision, device)
    result["precision"] = precision
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as airbench; fixed shapes
    print(f"torch {torch.__version__}, {result['device']}, {precision}, quick={quick}", flush=True)
    errors: dict[str, str] = {}
    if args.part in ("loader", "all"):
        try:
            result["loader"] = loader_part(args, device, precision)
        except Exception as exc:  # report, then go on to the next part
            errors["loader"] = f"{type(exc).__name__}: {exc}"[:500]
            print(f"loader part failed: {errors['loader']}", flush=True)
        save()
    if args.part in ("compile", "all"):
        print(f"compile: {', '.join(args.compile_models)}, batch {args.compile_batch}, backend {args.compile_backend}")

        def partial(rows: list) -> None:
            result["compile"] = rows
            save()

        result["compile"] = compile_part(args, device, precision, partial, errors)
    result["errors"] = errors
    save()
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
