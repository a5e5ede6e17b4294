"""``zoo train``, ``evaluate``, ``predict``, ``compare`` and ``cache``: the subcommands that train or read data."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from zoo.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    check_dataset,
    check_fit_options,
    check_limit,
    check_plot_arg,
    family_hint,
    fit_options,
    load_data,
    print_json,
    shell_expanded_hint,
    style,
    table,
    warnings_to_stderr,
)
from zoo.messages import first_line


def add_logging(p: argparse.ArgumentParser) -> None:
    """``zoo train``'s ``--logger`` and ``--log-dir`` (zoo.train.loggers)."""
    p.add_argument(
        "--logger", action="append", default=None, metavar="NAME",
        help="also log to: csv (LOG_DIR/log.csv) or tensorboard (event files in LOG_DIR); repeatable",
    )  # fmt: skip
    p.add_argument("--log-dir", default=None, metavar="DIR", help="where --logger writes (default: --out)")


def _loggers(args: argparse.Namespace) -> list[Any]:
    from zoo.train.loggers import make_logger

    try:
        return [make_logger(name, args.log_dir or args.out) for name in args.logger or ()]
    except ValueError as exc:
        raise UsageError(f"--logger: {exc}") from None


def cmd_train(args: argparse.Namespace) -> int:
    from zoo import registry
    from zoo.cli.runconfig import merge, print_config, run_fit_fields

    options = merge(args, run_fit_fields())  # --config's values, the flags given over them
    if args.print_config:
        print_config(args, options)
        return EXIT_OK
    registry.get_spec(args.name)
    check_dataset(args.dataset)
    check_plot_arg(args.plot)
    check_limit(args)
    check_fit_flags(args, options)
    from zoo.modelfile import save
    from zoo.train.evaluate import evaluate
    from zoo.train.trainer import fit

    _check_out(args)
    callbacks = _loggers(args)
    data = load_data(args)
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
        overwrite=bool(args.overwrite),
        progress=args.progress,
        **({"callbacks": callbacks} if callbacks else {}),
        **options,
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
    if args.plot:  # the title names what was trained on what (History knows neither)
        n = len(history.epochs)
        title = f"{args.name} on {args.dataset}: {n} epoch{'' if n == 1 else 's'}"
        title += f" ({history.device}, {history.precision})"
        print(f"plot: {history.plot(args.plot, title=title)}")
    return EXIT_OK


def check_fit_flags(args: argparse.Namespace, options: dict[str, Any] | None = None) -> None:
    """The fit flags' values (``options``: those with ``--config``'s), checked as ``fit`` checks its options but
    before any data is read, as usage errors naming the flag (``--checkpoint-every -5``)."""
    from zoo.train.config import check_config, config_from_options

    options = {**(fit_options(args) if options is None else options), "epochs": args.epochs}
    check_fit_options(options, args.epochs)  # the names first: a misspelt optimizer or scheduler, the nearest one
    try:
        check_config(config_from_options(options))
    except (TypeError, ValueError) as exc:
        text = str(exc)
        name = text.split(" ", 1)[0]
        if name in options:
            text = f"--{name.replace('_', '-')} {options[name]}: {text}"
        raise UsageError(text) from None


def _holds_run(folder: str) -> bool:
    return os.path.isdir(folder) and any(not name.startswith(".") for name in os.listdir(folder))


def default_out(model: str, dataset: str, *, reuse: bool, root: str = os.path.join("runs", "train")) -> str:
    """``runs/train/<model>-<dataset>``, numbered ``-2``, ``-3``, ... so that a new run never lands in an old one's
    folder; with ``reuse`` (``--resume``, ``--overwrite``) the newest folder of that model and dataset."""
    stem = f"{model}-{os.path.basename(os.path.normpath(dataset))}".replace("/", "_").replace(os.sep, "_")
    base = os.path.join(root, stem)
    folders = [base]
    while _holds_run(folders[-1]):
        folders.append(f"{base}-{len(folders) + 1}")
    if reuse and len(folders) > 1:
        return folders[-2]
    return folders[-1]


def _check_out(args: argparse.Namespace) -> None:
    """``--out`` is owned by one run: an existing non-empty folder needs --resume (continue it) or --overwrite."""
    if args.out is None:
        args.out = default_out(args.name, args.dataset, reuse=args.resume or args.overwrite)
    out = args.out
    if not out.strip():
        raise UsageError("--out '' names no folder; pass a folder path (or leave --out out for runs/train/...)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out '{out}' is a file; it must be a folder (new, empty, or a run to --resume)")
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    used = _holds_run(out)
    if used and not (args.resume or args.overwrite):
        raise UsageError(
            f"--out '{out}' already holds a run; pass --resume to continue it, --overwrite to replace it, or "
            f"another --out"
        )
    # --overwrite: fit removes the old run's files once it holds the folder's lock (a run still training there
    # keeps every file, and the lock is reported)


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
    check_dataset(args.dataset)
    check_limit(args)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: expected a positive number of images per batch")
    from zoo.modelfile import load
    from zoo.train.devices import resolve_device
    from zoo.train.evaluate import evaluate

    device = resolve_device(args.device or "auto")  # before any loading: a missing GPU is the first thing said
    with warnings_to_stderr():  # a resize to the model's recorded size, another normalisation: one line each
        model = load(args.checkpoint)
        data = load_data(args)
        metrics = evaluate(model, data, batch_size=args.batch_size, device=device)
    result = {k: metrics[k] for k in ("loss", "top1", "top5") if metrics.get(k) is not None}
    if args.json:
        print_json(result)
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
    if args.topk < 1:
        raise UsageError(f"--topk {args.topk}: expected a positive number of classes")
    from zoo.cli.catalogue import pretrained_model
    from zoo.modelfile import load
    from zoo.train.predict import predict

    model = load(args.checkpoint) if os.path.exists(args.checkpoint) else pretrained_model(args.checkpoint)
    with warnings_to_stderr():
        records = predict(model, list(args.images), topk=args.topk, device=args.device)
    if args.json:
        print_json(records)
        return EXIT_OK
    for record in records:
        print(_predict_line(record, args.topk))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from zoo import registry
    from zoo.comparison import select_models

    if args.all:
        names = registry.list_models()  # zoo's own catalogue: the built-ins and the loaded plugins' models
    else:
        try:  # exact names, wildcards ('efficientnet_b*') and --family, expanded before anything trains
            names = select_models(args.names, family=args.family)
        except (ValueError, LookupError) as exc:  # a name that is a file here: the shell expanded a wildcard
            hint = shell_expanded_hint(args.names) or (family_hint(args.family[0]) if args.family else "")
            raise UsageError(f"{first_line(str(exc))}{hint}") from None
    if not names:
        raise UsageError("name the models to compare: NAME..., a wildcard like 'efficientnet_b*', --family F or --all")
    args.names = names
    check_dataset(args.dataset)
    check_plot_arg(args.plot)
    check_limit(args)
    check_fit_flags(args)
    if args.throughput_batch < 1:
        raise UsageError(f"--throughput-batch {args.throughput_batch}: expected a positive number of images")
    from zoo.comparison import compare

    dataset: Any = args.dataset
    if args.root is not None or args.limit is not None:  # compare loads names itself, without root or limit
        dataset = load_data(args)
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
        **fit_options(args),
    )
    fmt = args.format
    if fmt == "table":
        print(results.table(style()))
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
        print_json({"seconds": round(seconds, 3), "img_size": data.img_size, "splits": rows})
        return EXIT_OK
    body = [(r["split"], r["images"], r["stored"], f"{r['bytes'] / 2**20:,.1f} MiB", r["path"]) for r in rows]
    print(table(("split", "images", "stored", "size", "cache file"), body))
    print(f"img_size {data.img_size}; ready in {seconds:.1f} s")
    return EXIT_OK
