"""The ``zoo`` command: a thin layer over the public functions.

    zoo list [PATTERN] [--family F] [--tag T] [--source zoo|timm|torchvision|all] [--datasets] [--json]
    zoo info NAME [--json]
    zoo summary NAME [--input 3x32x32] [--json]
    zoo train NAME --dataset D [--root DIR] [--limit N] [--epochs N] [--out DIR] [--plot FILE] [fit options]
    zoo train --config run.yaml [flags that override it] [--print-config]
    zoo evaluate CHECKPOINT --dataset D [--root DIR] [--limit N] [--json]
    zoo predict CHECKPOINT IMAGE... [--topk K] [--json] [--device D]
    zoo compare NAME|'PATTERN*'... [--family F] [--all] --dataset D [--root DIR] [--limit N] [--epochs N]
                [--format table|markdown|csv|json] [--plot FILE] [--run-dir DIR] [fit options]
    zoo bench NAME... [--input 3x224x224] [--batch 8]
    zoo plugins [--json]
    zoo cache DIR [--img-size N] [--resize N] [--in-chans C] [--to DIR] [--workers N] [--rebuild] [--json]
    zoo export NAME|CHECKPOINT --format onnx|pt2|torchscript [--dynamic-batch] [--check] [--out FILE] [--img-size N]

The fit options (``--batch-size``, ``--lr``, ``--optimizer``, ``--scheduler``, ``--loss``, ...) are made from
``zoo.train.config.cli_fields()``: each ``TrainConfig`` field declared with a flag type, with its help text.

Exit status: 0 on success, 2 on a usage error (bad option, unknown model or dataset, malformed ``--input``, a bad
``--limit``), 1 when the work itself fails (missing checkpoint or image, training error). Errors are one line,
without a traceback. Each subcommand imports only what it needs, so ``zoo list`` answers fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from zoo.cli.catalogue import LIST_SORT_KEYS, cmd_bench, cmd_info, cmd_list, cmd_plugins, cmd_summary
from zoo.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    UsageError,
    add_data,
    add_training,
    fit_options,
    parse_input,
    tolerant_output,
)
from zoo.cli.export import add_export_parser
from zoo.cli.runconfig import add_run_flags
from zoo.cli.training import add_logging, cmd_cache, cmd_compare, cmd_evaluate, cmd_predict, cmd_train
from zoo.messages import first_line

__all__ = ["main", "build_parser", "parse_input", "fit_options", "UsageError"]


def build_parser() -> argparse.ArgumentParser:
    from zoo.version import __version__

    parser = Parser(
        prog="zoo",
        description="A plugin-based model zoo for PyTorch.",
        epilog="'zoo COMMAND --help' shows a command's options; 'zoo list --datasets' the datasets.",
    )
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("list", help="list the registered models (--datasets: the datasets)")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style wildcard, e.g. 'efficientnet*'")
    p.add_argument("--family", "-f", default=None, help="keep one family, e.g. densenet")
    p.add_argument("--tag", "-t", default=None, help="keep models with this tag")
    p.add_argument("--source", "-s", default=None, help="zoo, timm, torchvision or all (default: zoo's catalogue)")
    p.add_argument("--names-only", "-1", action="store_true", help="one name per line")
    p.add_argument("--pretrained", action="store_true", help="list the weights (name.tag), not the models")
    p.add_argument("--datasets", action="store_true", help="list the datasets (zoo.list_datasets()), not the models")
    p.add_argument(
        "--long", "-l", action="store_true", help="add parameters, FLOPs at the card's input and reference top-1"
    )
    p.add_argument(
        "--sort", default=None, choices=LIST_SORT_KEYS, help="order by this column (numbers ascending, top1 best first)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show a model card")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("summary", help="layers, parameters, FLOPs and activation memory at an input size")
    p.add_argument("name")
    p.add_argument("--input", "-i", default=None, help="CxHxW, e.g. 3x32x32 (default: the model card's)")
    p.add_argument("--batch-size", "-b", type=int, default=1)
    p.add_argument("--depth", type=int, default=3, help="nesting depth of the layer table (default 3)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train a model on a dataset; writes checkpoints and history to --out")
    p.add_argument("name", nargs="?", default=None, help="the model (or 'model' in --config)")
    add_training(p, epochs=5, dataset_required=False)  # --dataset may come from --config
    p.add_argument("--drop-rate", type=float, default=0.0)
    add_run_flags(p)
    p.add_argument(
        "--out",
        "-o",
        default=None,
        help="output directory (default runs/train/MODEL-DATASET, numbered -2, -3, ... when taken)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--plot", default=None, metavar="FILE", help="save the training curves (.png, .svg, .pdf)")
    add_logging(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a dataset's test split")
    p.add_argument("checkpoint")
    add_data(p)
    p.add_argument("--batch-size", "-b", type=int, default=256)
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify images with a checkpoint, prepared as its training data was")
    p.add_argument("checkpoint", help="a checkpoint file, or registered weights: lenet5.digits")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of them")
    p.add_argument("--topk", "-k", type=int, default=1, help="list the K most likely classes (default 1)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps (default: cpu)")
    p.add_argument("--json", action="store_true", help="machine-readable output: one record per image")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("compare", help="train several models on one dataset and tabulate size, speed, accuracy")
    p.add_argument("names", nargs="*", metavar="NAME", help="model names or quoted wildcards ('efficientnet_b*')")
    p.add_argument("--family", action="append", default=None, help="every model of this family (repeatable)")
    p.add_argument("--all", action="store_true", help="every model of zoo's catalogue (built-ins and plugins)")
    add_training(p, epochs=2)
    p.add_argument("--throughput-batch", type=int, default=256, help="batch of the inference throughput column")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    p.add_argument("--plot", default=None, metavar="FILE", help="save accuracy vs params/FLOPs (.png, .svg, .pdf)")
    p.add_argument("--run-dir", default=None, help="save and reuse results in this directory")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench", help="forward and forward+backward latency and throughput")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--input", "-i", default=None, help="CxHxW (default: each model card's)")
    p.add_argument("--batch", "-b", type=int, default=8)
    p.add_argument("--runs", type=int, default=5, help="timed runs; the median is shown")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: chosen for the machine's load)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("plugins", help="the loaded plugins, their versions, models and errors")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("cache", help="decode an image folder once into memory-mapped uint8 caches (or reopen them)")
    p.add_argument("folder", metavar="DIR", help="an image folder: one subfolder per class, or train/ and test/")
    p.add_argument("--img-size", type=int, default=None, help="the size the model sees (default: load_dataset's, 32)")
    p.add_argument("--resize", type=int, default=None, help="the stored short side (default: img-size * 8/7)")
    p.add_argument("--in-chans", type=int, default=None, choices=(1, 3), help="1 or 3 (default: the images' own)")
    p.add_argument("--to", default=None, metavar="DIR", help="where the cache files go (default: the user cache)")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: every core)")
    p.add_argument("--rebuild", action="store_true", help="build anew even when the cache is current")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_cache)

    add_export_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zoo`` command; returns the exit status."""
    tolerant_output()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return args.func(args)
    except UsageError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except BrokenPipeError:  # `zoo list | head`: the reader left; say nothing
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from zoo.data.types import DatasetOptionError
        from zoo.plugin_manager import ModelOptionError, UnknownDatasetError, UnknownModelError

        usage = (UnknownModelError, UnknownDatasetError, DatasetOptionError, ModelOptionError)
        code = EXIT_USAGE if isinstance(exc, usage) else EXIT_FAILURE
        text = first_line(str(exc))
        if isinstance(exc, (*usage, FileNotFoundError, ValueError, RuntimeError)):
            print(f"zoo: error: {text}", file=sys.stderr)
        else:
            print(f"zoo: error: {type(exc).__name__}: {text}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
