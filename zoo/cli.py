"""The ``zoo`` command: a thin layer over the public functions.

    zoo list [PATTERN] [--family F] [--tag T] [--source zoo|timm|torchvision|all] [--json]
    zoo info NAME [--json]
    zoo summary NAME [--input 3x32x32] [--json]
    zoo train NAME --dataset D [--root DIR] [--limit N] [--epochs N] [--out DIR] [--plot FILE] [fit options]
    zoo evaluate CHECKPOINT --dataset D [--root DIR] [--limit N] [--json]
    zoo predict CHECKPOINT IMAGE... [--topk K] [--json] [--device D]
    zoo compare NAME|'PATTERN*'... [--family F] [--all] --dataset D [--root DIR] [--limit N] [--epochs N]
                [--format table|markdown|csv|json] [--plot FILE] [--run-dir DIR] [fit options]
    zoo bench NAME... [--input 3x224x224] [--batch 8]
    zoo plugins [--json]
    zoo cache DIR [--img-size N] [--resize N] [--in-chans C] [--to DIR] [--workers N] [--rebuild] [--json]

The fit options (``--batch-size``, ``--lr``, ``--optimizer``, ``--scheduler``, ``--loss``, ...) are made from
``zoo.train.config.cli_fields()``: each ``TrainConfig`` field declared with a flag type, with its help text.

Exit status: 0 on success, 2 on a usage error (bad option, unknown model or dataset, malformed ``--input``, a bad
``--limit``), 1 when the work itself fails (missing checkpoint or image, training error). Errors are one line,
without a traceback. Each subcommand imports only what it needs, so ``zoo list`` answers fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the command line: exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def parse_input(text: str) -> tuple[int, int, int]:
    """``"3x32x32" -> (3, 32, 32)``; also accepts ``3,32,32`` and ``32`` is refused."""
    parts = text.lower().replace(",", "x").replace("×", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) <= 0:
        raise UsageError(f"malformed --input '{text}': expected CxHxW like 3x32x32")
    return values  # type: ignore[return-value]


def _style() -> str:
    return "box" if sys.stdout.isatty() and os.environ.get("TERM") != "dumb" else "plain"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from zoo.comparison import render_table

    return render_table(headers, rows, style=_style())


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _load_data(args: argparse.Namespace):
    """``load_dataset`` with the command's ``--img-size``, ``--root`` and ``--limit``."""
    from zoo.data import load_dataset

    options = {"img_size": args.img_size} if args.img_size else {}
    return load_dataset(args.dataset, root=args.root, limit=args.limit, **options)


def _check_dataset(name: str) -> None:
    """Unknown dataset names are usage errors, found before anything heavy runs."""
    if os.path.isdir(name):
        return
    from zoo import registry

    registry.get_dataset_spec(name)


# fit options with a short flag too
_SHORT_FLAGS = {"epochs": "-e", "batch_size": "-b"}
_NONE_WORDS = ("none", "null", "off")


def _fit_fields() -> list:
    from zoo.train.config import cli_fields

    return [f for f in cli_fields() if f.name != "epochs"]


def _fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The fit options given on the command line (and only those: the others keep fit's defaults)."""
    options: dict[str, Any] = {}
    for f in _fit_fields():
        value = getattr(args, f.name, None)
        if value is not None:
            options[f.name] = None if isinstance(value, str) and value.lower() in _NONE_WORDS else value
    return options


def _check_limit(args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: expected a positive number of images per split")


# ---------------------------------------------------------------------------------------------------------
# subcommands
# ---------------------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from zoo import registry

    names = registry.list_models(args.pattern, family=args.family, tag=args.tag, source=args.source)
    rows = []
    for name in names:
        spec = None if "/" in name else registry.get_spec(name)  # source models are described only on demand
        size = "x".join(map(str, spec.input_size)) if spec and spec.input_size else ""
        rows.append(
            {
                "name": name,
                "family": spec.family if spec else None,
                "year": spec.year if spec else None,
                "input_size": list(spec.input_size) if spec and spec.input_size else None,
                "plugin": spec.plugin if spec else name.split("/", 1)[0],
                "_size": size,
            }
        )
    if args.long or args.sort in ("params", "flops", "top1"):
        _add_long_columns(rows)
    if args.sort:
        rows = _sorted_rows(rows, args.sort)
    if args.json:
        _print_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        return EXIT_OK
    if args.names_only or (not sys.stdout.isatty() and args.source not in (None, "zoo")):
        print("\n".join(r["name"] for r in rows))
        return EXIT_OK
    if args.long:
        from zoo.comparison import format_number

        headers = ("name", "family", "year", "input", "params", "FLOPs", "top-1", "top-1 from")
        body = [
            (r["name"], r["family"] or "", r["year"] or "", r["_size"], format_number(r["params"]),
             format_number(r["flops"]), f"{r['top1']['value']:.1f}" if r["top1"] else "", r["_top1_from"])
            for r in rows
        ]  # fmt: skip
        print(_table(headers, body))
        print("FLOPs: one image at the card's input size (a multiply-add counts 2); top-1: ImageNet-1k accuracy %")
    else:
        body = [(r["name"], r["family"] or "", r["year"] or "", r["_size"], r["plugin"]) for r in rows]
        print(_table(("name", "family", "year", "input", "plugin"), body))
    print(f"{len(rows)} model{'s' if len(rows) != 1 else ''}")
    return EXIT_OK


LIST_SORT_KEYS = ("name", "family", "year", "params", "flops", "top1")


def _flops_at_default(name: str) -> int | None:
    """FLOPs of one image at the card's input size, counted on the meta device (no memory); ``None`` if unknown."""
    import torch

    from zoo import registry
    from zoo.comparison import count_flops

    size = registry.get_spec(name).input_size
    if size is None:
        return None
    try:
        with torch.device("meta"):
            model = registry.create(name).eval()
            return count_flops(model, torch.zeros(1, *size))[0]
    except Exception:  # a builder or a layer that cannot run on the meta device
        return None


def _add_long_columns(rows: list[dict[str, Any]]) -> None:
    """Parameters, FLOPs and the reference top-1 of each card (zoo's catalogue; source models are described only
    on demand, so theirs stay blank)."""
    from zoo import registry

    for r in rows:
        card = None if "/" in r["name"] else registry.info(r["name"])
        top1 = card.top1() if card else None
        r["params"] = card.num_params if card else None
        r["flops"] = _flops_at_default(r["name"]) if card else None
        r["top1"] = top1.to_dict() if top1 else None
        r["_top1_from"] = ("torchvision" if top1.source.startswith("torchvision") else top1.source) if top1 else ""


def _sorted_rows(rows: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """``rows`` ordered by the column ``sort``: numbers ascending, top-1 best first, unknown values last."""
    if sort in ("name", "family"):
        return sorted(rows, key=lambda r: (r[sort] is None, r[sort] or "", r["name"]))
    sign = -1 if sort == "top1" else 1

    def key(r: dict[str, Any]) -> tuple:
        v = (r["top1"] or {}).get("value") if sort == "top1" else r[sort]
        return (v is None, sign * v if v is not None else 0, r["name"])

    return sorted(rows, key=key)


def cmd_info(args: argparse.Namespace) -> int:
    from zoo import registry

    card = registry.info(args.name)
    if args.json:
        _print_json(card.to_dict())
    else:
        print(card)
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    from zoo import registry
    from zoo.comparison import summary

    size = parse_input(args.input) if args.input else None
    registry.get_spec(args.name)
    s = summary(args.name, size, batch_size=args.batch_size, depth=args.depth)
    if args.json:
        _print_json(s.to_dict())
        return EXIT_OK
    print(f"{s.name} at input {s.batch_size}x{'x'.join(map(str, s.input_size))}")
    print(s.table(_style()))
    print(s.totals())
    return EXIT_OK


def _check_plot_arg(plot: str | None) -> None:
    from zoo.plotting import PLOT_FORMATS

    if plot and os.path.splitext(plot)[1].lower() not in PLOT_FORMATS:
        raise UsageError(f"--plot '{plot}': expected a {', '.join(PLOT_FORMATS[:-1])} or {PLOT_FORMATS[-1]} file")


def cmd_train(args: argparse.Namespace) -> int:
    from zoo import registry

    registry.get_spec(args.name)
    _check_dataset(args.dataset)
    _check_plot_arg(args.plot)
    _check_limit(args)
    from zoo.train import evaluate, fit, save

    _check_out(args)
    data = _load_data(args)
    model = registry.create(
        args.name,
        num_classes=data.num_classes,
        in_chans=data.in_chans,
        img_size=data.img_size,
        drop_rate=args.drop_rate,
    )
    history = fit(
        model,
        data,
        epochs=args.epochs,
        checkpoint_dir=args.out,
        resume=args.resume,
        progress=args.progress,
        **_fit_options(args),
    )
    history_path = os.path.join(args.out, "history.json")
    history.to_json(history_path)
    if history.interrupted:  # Ctrl-C: no final model from partial weights; last.pt holds where it stopped
        print(f"zoo: {history.notes[-1]}; rerun with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    test = getattr(history, "test", None) or evaluate(model, data)  # fit scores the test split itself
    ckpt = os.path.join(args.out, "model.safetensors")
    save(model, ckpt)
    last = history.epochs[-1] if getattr(history, "epochs", None) else {}
    seconds = sum(e.get("seconds", 0) for e in history.epochs)
    print(
        f"{args.name} on {args.dataset}: {len(history.epochs)} epoch{'' if len(history.epochs) == 1 else 's'} "
        f"in {seconds:.1f} s "
        f"({last.get('images_per_s', 0):,.0f} img/s, {getattr(history, 'device', '?')}, "
        f"{getattr(history, 'precision', '?')}); test {_test_figure(test)}"
    )
    print(f"model: {ckpt}\nhistory: {history_path}")
    if args.plot:
        print(f"plot: {history.plot(args.plot)}")
    return EXIT_OK


def _check_out(args: argparse.Namespace) -> None:
    """``--out`` is owned by one run: an existing non-empty folder needs --resume (continue it) or --overwrite."""
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out '{out}' is a file; it must be a folder (new, empty, or a run to --resume)")
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    used = os.path.isdir(out) and any(not name.startswith(".") for name in os.listdir(out))
    if used and not (args.resume or args.overwrite):
        raise UsageError(
            f"--out '{out}' already holds a run; pass --resume to continue it, --overwrite to replace it, or "
            f"another --out"
        )
    if used and args.overwrite:
        for name in ("last.pt", "best.pt", "history.json", "model.safetensors"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out, name))


def _test_figure(metrics: dict[str, Any]) -> str:
    """The headline test score: top-1 (classes), accuracy (labels), MAE and R² (regression), else the loss."""
    if metrics.get("top1") is not None:
        return f"top-1 {100 * metrics['top1']:.2f}%"
    if metrics.get("accuracy") is not None:
        return f"accuracy {100 * metrics['accuracy']:.2f}%"
    if metrics.get("mae") is not None:
        r2 = f", R² {metrics['r2']:.4f}" if metrics.get("r2") is not None else ""
        return f"MAE {metrics['mae']:.4g}{r2}"
    return f"loss {metrics['loss']:.4f}" if metrics.get("loss") is not None else "n/a"


def cmd_evaluate(args: argparse.Namespace) -> int:
    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"checkpoint '{args.checkpoint}' does not exist")
    _check_dataset(args.dataset)
    _check_limit(args)
    from zoo.train import evaluate, load

    model = load(args.checkpoint)
    data = _load_data(args)
    metrics = evaluate(model, data, batch_size=args.batch_size)
    result = {k: metrics[k] for k in ("loss", "top1", "top5") if metrics.get(k) is not None}
    if args.json:
        _print_json(result)
    else:
        name = getattr(model, "zoo_config", {}).get("name", type(model).__name__)
        text = ", ".join(f"{k} {v:.4f}" if k == "loss" else f"{k} {100 * v:.2f}%" for k, v in result.items())
        print(f"{name} on {args.dataset} (test, {len(data.test)} images): {text}")
    return EXIT_OK


def _predict_line(record: dict[str, Any], topk: int) -> str:
    """``path: label (p=0.93)``, with the top-k when asked; labels or outputs for other tasks."""
    if "output" in record:
        out = record["output"]
        text = f"{out:.6g}" if isinstance(out, float) else "[" + ", ".join(f"{v:.6g}" for v in out) + "]"
    elif "labels" in record:
        probs = record["probabilities"]
        shown = ", ".join(f"{k} {probs[k]:.2f}" for k in record["labels"])
        text = f"{', '.join(map(str, record['labels'])) or '(none)'}" + (f" ({shown})" if shown else "")
    else:
        text = f"{record['label']} (p={record['probability']:.2f})"
        if topk > 1:
            text += f"; top-{len(record['topk'])}: " + ", ".join(f"{lab} {p:.2f}" for lab, p in record["topk"])
    return f"{record.get('path', '-')}: {text}"


def cmd_predict(args: argparse.Namespace) -> int:
    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"checkpoint '{args.checkpoint}' does not exist")
    if args.topk < 1:
        raise UsageError(f"--topk {args.topk}: expected a positive number of classes")
    from zoo.train import load
    from zoo.train.predict import predict

    model = load(args.checkpoint)
    with _warnings_to_stderr():
        records = predict(model, list(args.images), topk=args.topk, device=args.device)
    if args.json:
        _print_json(records)
        return EXIT_OK
    for record in records:
        print(_predict_line(record, args.topk))
    return EXIT_OK


@contextlib.contextmanager
def _warnings_to_stderr():
    """Warnings (e.g. a model without a data record) as one ``zoo: warning:`` line each."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        print(f"zoo: warning: {(str(w.message).splitlines() or [''])[0]}", file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> int:
    from zoo import registry
    from zoo.comparison import select_models

    if args.all:
        names = registry.list_models()  # zoo's own catalogue: the built-ins and the loaded plugins' models
    else:
        try:  # exact names, wildcards ('efficientnet_b*') and --family, expanded before anything trains
            names = select_models(args.names, family=args.family)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not names:
        raise UsageError("name the models to compare: NAME..., a wildcard like 'efficientnet_b*', --family F or --all")
    args.names = names
    _check_dataset(args.dataset)
    _check_plot_arg(args.plot)
    _check_limit(args)
    from zoo.comparison import compare

    dataset: Any = args.dataset
    if args.root is not None or args.limit is not None:  # compare loads names itself, without root or limit
        dataset = _load_data(args)
        if args.limit is not None:  # a subset is another dataset: a --run-dir of the full one is not reused
            dataset.name = f"{dataset.name}[limit={args.limit}]"
    results = compare(
        args.names,
        dataset=dataset,
        epochs=args.epochs,
        img_size=args.img_size,
        throughput_batch=args.throughput_batch,
        run_dir=args.run_dir,
        progress=None if args.progress else False,
        **_fit_options(args),
    )
    fmt = args.format
    if fmt == "table":
        print(results.table(_style()))
    elif fmt == "markdown":
        print(results.to_markdown())
    elif fmt == "csv":
        print(results.to_csv(), end="")
    else:
        print(results.to_json())
    if args.plot:
        try:
            path = results.plot(args.plot)
            print(f"plot: {path}", file=sys.stderr)
        except ValueError as exc:  # every model failed: nothing to plot
            print(f"zoo compare: no plot: {exc}", file=sys.stderr)
    return EXIT_FAILURE if all(r.get("error") for r in results.rows) else EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from zoo import registry
    from zoo.comparison import bench_model, one_line

    size = parse_input(args.input) if args.input else None
    for name in args.names:
        registry.get_spec(name)
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for name in args.names:
        spec = registry.get_spec(name)
        c, h, w = size or spec.input_size or (3, 224, 224)
        row: dict[str, Any] = {"model": name, "input": f"{c}x{h}x{w}", "batch": args.batch}
        try:
            model = registry.create(name, in_chans=c, img_size=h if h == w else (h, w))
            row.update(bench_model(model, (c, h, w), args.batch, args.runs, device))
        except Exception as exc:
            row["error"] = one_line(exc)
        rows.append(row)
    if args.json:
        _print_json(rows)
        return EXIT_OK

    def f(v: float | None, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    body = [
        (
            r["model"],
            r["input"],
            r["batch"],
            f(r.get("forward_ms"), ".2f"),
            f(r.get("forward_img_s"), ",.0f"),
            f(r.get("train_step_ms"), ".2f"),
            f(r.get("train_step_img_s"), ",.0f"),
            r.get("error", ""),
        )
        for r in rows
    ]
    headers = ["model", "input", "batch", "fwd ms", "fwd img/s", "fwd+bwd ms", "fwd+bwd img/s", "error"]
    if not any(r.get("error") for r in rows):
        headers, body = headers[:-1], [b[:-1] for b in body]
    print(_table(headers, body))
    print(f"device {device}, median of {args.runs} runs after one warm-up")
    return EXIT_FAILURE if all(r.get("error") for r in rows) else EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    from zoo import registry

    infos = registry.plugins()
    if args.json:
        _print_json([i.to_dict() for i in infos])
        return EXIT_OK
    body = [
        (
            i.name,
            i.version or "",
            i.kind,
            i.status,
            len(i.models) or "",
            len(i.datasets) or "",
            ", ".join(i.sources),
            "; ".join(i.errors),
        )
        for i in infos
    ]
    print(_table(("plugin", "version", "kind", "status", "models", "datasets", "sources", "errors"), body))
    return EXIT_OK


def cmd_cache(args: argparse.Namespace) -> int:
    import time

    import zoo.data

    t0 = time.perf_counter()
    data = zoo.data.cache(
        args.folder, img_size=args.img_size, resize=args.resize, in_chans=args.in_chans, to=args.to,
        workers=args.workers, rebuild=args.rebuild, progress=None if args.progress else False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    rows = []
    for part in ("train", "test"):
        split = getattr(data, part)
        size = os.path.getsize(split.path)
        shape = f"{split.channels}x{split.stored_size}x{split.stored_size}"
        rows.append({"split": part, "images": len(split), "stored": shape, "bytes": size, "path": split.path})
    if args.json:
        _print_json({"seconds": round(seconds, 3), "img_size": data.img_size, "splits": rows})
        return EXIT_OK
    body = [(r["split"], r["images"], r["stored"], f"{r['bytes'] / 2**20:,.1f} MiB", r["path"]) for r in rows]
    print(_table(("split", "images", "stored", "size", "cache file"), body))
    print(f"img_size {data.img_size}; ready in {seconds:.1f} s")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# the parser
# ---------------------------------------------------------------------------------------------------------


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", "-d", required=True, help="dataset name (zoo.list_datasets()) or image folder")
    p.add_argument("--root", default=None, metavar="DIR", help="look for the dataset's files in DIR first")
    p.add_argument(
        "--limit", type=int, default=None, metavar="N", help="at most N images per split (stratified, seeded)"
    )
    p.add_argument("--img-size", type=int, default=None, help="resize the dataset to this size on load")


def _add_training(p: argparse.ArgumentParser, epochs: int) -> None:
    import dataclasses

    from zoo.train.config import cli_fields

    _add_data(p)
    group = p.add_argument_group("fit options (default: zoo.fit's; 'none' for None)")
    for f in cli_fields():
        flags = [f"--{f.name.replace('_', '-')}"] + ([_SHORT_FLAGS[f.name]] if f.name in _SHORT_FLAGS else [])
        default = epochs if f.name == "epochs" else None
        shown = epochs if f.name == "epochs" else f.default if f.default is not dataclasses.MISSING else None
        text = f"{f.metadata['help']} (default {shown})".replace("%", "%%")
        group.add_argument(*flags, type=f.metadata["cli"], default=default, metavar=f.name.upper(), help=text)
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars (shown on a terminal)"
    )


def build_parser() -> argparse.ArgumentParser:
    from zoo.version import __version__

    parser = _Parser(prog="zoo", description="A plugin-based model zoo for PyTorch.")
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list the registered models")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style wildcard, e.g. 'efficientnet*'")
    p.add_argument("--family", "-f", default=None, help="keep one family, e.g. densenet")
    p.add_argument("--tag", "-t", default=None, help="keep models with this tag")
    p.add_argument("--source", "-s", default=None, help="zoo, timm, torchvision or all (default: zoo's catalogue)")
    p.add_argument("--names-only", "-1", action="store_true", help="one name per line")
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
    p.add_argument("name")
    _add_training(p, epochs=5)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--out", "-o", default="runs/train", help="output directory (default runs/train)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--plot", default=None, metavar="FILE", help="save the training curves (.png, .svg, .pdf)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a dataset's test split")
    p.add_argument("checkpoint")
    _add_data(p)
    p.add_argument("--batch-size", "-b", type=int, default=256)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify images with a checkpoint, prepared as its training data was")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of them")
    p.add_argument("--topk", "-k", type=int, default=1, help="list the K most likely classes (default 1)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps (default: cpu)")
    p.add_argument("--json", action="store_true", help="machine-readable output: one record per image")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("compare", help="train several models on one dataset and tabulate size, speed, accuracy")
    p.add_argument("names", nargs="*", metavar="NAME", help="model names or quoted wildcards ('efficientnet_b*')")
    p.add_argument("--family", action="append", default=None, help="every model of this family (repeatable)")
    p.add_argument("--all", action="store_true", help="every model of zoo's catalogue (built-ins and plugins)")
    _add_training(p, epochs=2)
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
    p.add_argument("--device", default="auto")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zoo`` command; returns the exit status."""
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
        from zoo.registry import ModelOptionError, UnknownDatasetError, UnknownModelError

        usage = (UnknownModelError, UnknownDatasetError, DatasetOptionError, ModelOptionError)
        code = EXIT_USAGE if isinstance(exc, usage) else EXIT_FAILURE
        text = (str(exc).strip().splitlines() or [""])[0]
        if isinstance(exc, (*usage, FileNotFoundError, ValueError, RuntimeError)):
            print(f"zoo: error: {text}", file=sys.stderr)
        else:
            print(f"zoo: error: {type(exc).__name__}: {text}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
