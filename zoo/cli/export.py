"""``zoo export NAME|CHECKPOINT --format onnx|pt2|torchscript``: write the model as a deployable file and check it.

A ``NAME`` (``lenet5``, ``lenet5.digits``, ``timm/resnet18``) is created with ``--num-classes``, ``--in-chans`` and
``--img-size``; a ``CHECKPOINT`` (a file, a ``save_pretrained`` folder, ``hf-hub:user/repo``) is loaded with
``zoo.load``. ``--check`` runs the exported file on the model's recorded input and fails (exit 1) when the largest
difference exceeds ``--tolerance`` (relative to the largest output when that is above 1).
"""

from __future__ import annotations

import argparse
import os

from zoo.cli.common import EXIT_FAILURE, EXIT_OK, UsageError, print_json

DEFAULT_TOLERANCE = 1e-4
FORMATS = ("onnx", "pt2", "torchscript")  # zoo.export.FORMATS, written out: `zoo --help` imports no torch


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, torch.export (.pt2) or TorchScript, and check it")
    p.add_argument("target", metavar="NAME|CHECKPOINT", help="a model name, or a checkpoint file or folder")
    p.add_argument("--format", "-f", default="onnx", choices=FORMATS, help="the file format (default onnx)")
    p.add_argument("--out", "-o", default=None, metavar="FILE", help="the file to write (default NAME.onnx, ...)")
    p.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    p.add_argument("--check", action="store_true", help="run the exported file against the model; exit 1 if over")
    p.add_argument(
        "--tolerance", type=float, default=DEFAULT_TOLERANCE, help=f"--check's limit (default {DEFAULT_TOLERANCE})"
    )
    p.add_argument("--img-size", type=int, default=None, help="the input size (default: the model's recorded one)")
    p.add_argument("--in-chans", type=int, default=None, help="a NAME's input channels (default: the card's)")
    p.add_argument("--num-classes", type=int, default=None, help="a NAME's classes (default: the card's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_export)


def _is_checkpoint(target: str) -> bool:
    return os.path.exists(target) or target.startswith("hf-hub:")


def _model(args: argparse.Namespace):
    """The model to export and the input size to export it at (``None``: its recorded one)."""
    if _is_checkpoint(args.target):
        from zoo.export import input_size
        from zoo.modelfile import load

        if args.in_chans is not None or args.num_classes is not None:
            raise UsageError("--in-chans and --num-classes build a NAME; a checkpoint keeps its own")
        model = load(args.target)
        if args.img_size is None:
            return model, None
        return model, (input_size(model)[0], args.img_size, args.img_size)
    from zoo import registry

    kwargs = {k: getattr(args, k) for k in ("img_size", "in_chans", "num_classes") if getattr(args, k) is not None}
    return registry.create(args.target, **kwargs), None


def _default_out(target: str, format: str) -> str:
    from zoo.export import SUFFIXES

    stem = os.path.basename(os.path.normpath(target)).replace("/", "_").replace(":", "_")
    stem = os.path.splitext(stem)[0] if _is_checkpoint(target) else stem
    return stem + SUFFIXES[format]


def cmd_export(args: argparse.Namespace) -> int:
    from zoo.export import check_export, export

    for flag in ("img_size", "in_chans", "num_classes"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} {value}: expected a positive number")
    if args.tolerance <= 0:
        raise UsageError(f"--tolerance {args.tolerance}: expected a positive number, e.g. {DEFAULT_TOLERANCE}")
    model, size = _model(args)
    out = args.out or _default_out(args.target, args.format)
    path = export(model, out, args.format, dynamic_batch=args.dynamic_batch, size=size)
    record = {"file": str(path), "format": args.format, "bytes": path.stat().st_size}
    ok = True
    if args.check:
        result = check_export(model, path, args.format, dynamic_batch=args.dynamic_batch, size=size)
        ok = result.within(args.tolerance)
        record.update(
            max_diff=result.max_diff, scale=result.scale, batches=list(result.batches), runtime=result.runtime, ok=ok
        )
    if args.json:
        print_json(record)
    else:
        print(f"wrote {path} ({record['bytes'] / 1e6:.1f} MB, {args.format})")
        if args.check:
            verdict = "ok" if ok else "OVER the tolerance"
            print(
                f"checked with {record['runtime']} at batch {', '.join(map(str, record['batches']))}: "
                f"max difference {record['max_diff']:.2e} (largest output {record['scale']:.2e}, tolerance "
                f"{args.tolerance:.0e}): {verdict}"
            )
    return EXIT_OK if ok else EXIT_FAILURE
