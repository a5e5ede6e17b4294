"""``zoo list``, ``info``, ``summary``, ``bench`` and ``plugins``: the catalogue and what each model costs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zoo.cli.common import EXIT_FAILURE, EXIT_OK, UsageError, parse_input, print_json, style, table


def cmd_list(args: argparse.Namespace) -> int:
    from zoo import registry

    if getattr(args, "pretrained", False):
        return _list_pretrained(args)
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
        print_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        return EXIT_OK
    if args.names_only or (not sys.stdout.isatty() and args.source not in (None, "zoo")):
        print("\n".join(r["name"] for r in rows))
        return EXIT_OK
    if args.long:
        from zoo.comparison import format_number

        headers = ("name", "family", "year", "input", "params", "FLOPs", "top-1", "top-1 from", "error")
        body = [
            (r["name"], r["family"] or "", r["year"] or "", r["_size"], format_number(r["params"]),
             format_number(r["flops"]), f"{r['top1']['value']:.1f}" if r["top1"] else "", r["_top1_from"],
             r.get("error", ""))
            for r in rows
        ]  # fmt: skip
        if not any(r.get("error") for r in rows):  # the error column only when a row failed
            headers, body = headers[:-1], [b[:-1] for b in body]
        print(table(headers, body))
        print("FLOPs: one image at the card's input size (a multiply-add counts 2); top-1: ImageNet-1k accuracy %")
    else:
        body = [(r["name"], r["family"] or "", r["year"] or "", r["_size"], r["plugin"]) for r in rows]
        print(table(("name", "family", "year", "input", "plugin"), body))
    print(f"{len(rows)} model{'s' if len(rows) != 1 else ''}")
    return EXIT_OK


LIST_SORT_KEYS = ("name", "family", "year", "params", "flops", "top1")


def _list_pretrained(args: argparse.Namespace) -> int:
    """``zoo list --pretrained``: one row per weights tag, with its dataset, metric, input, size, source, licence."""
    from zoo import registry
    from zoo.pretrained import format_size

    records = registry.list_weights(family=args.family, tag=args.tag, source=args.source)
    wanted = set(registry.list_models(args.pattern, family=args.family, tag=args.tag, source=args.source,
                                      pretrained=True))  # fmt: skip
    records = [r for r in records if r.name in wanted]
    if args.json:
        print_json([r.to_dict() for r in records])
        return EXIT_OK
    if args.names_only:
        print("\n".join(r.name for r in records))
        return EXIT_OK
    body = []
    for r in records:
        top1 = r.metrics.get("top1")
        split = r.metrics.get("split", "")
        size = "x".join(map(str, r.inputs.get("input_size") or ()))
        licence = (r.licence or "").split(" (")[0]
        body.append((r.name, r.dataset or "", f"{top1:.2f}" if top1 is not None else "", split, size,
                     format_size(r.size) if r.size else "", r.source, licence))  # fmt: skip
    print(table(("weights", "dataset", "top-1", "on", "input", "size", "source", "licence"), body))
    print(f"{len(records)} weights; zoo.create(NAME) loads them, offline first and hash-checked (download=True: fetch)")
    return EXIT_OK


def pretrained_model(name: str):
    """The model of ``zoo predict NAME.TAG``: registered weights by name, for a ``CHECKPOINT`` that is no file."""
    from zoo import registry

    if name not in registry.list_models(pretrained=True):
        raise FileNotFoundError(
            f"checkpoint '{name}' does not exist, and no weights are registered under that name (zoo list --pretrained)"
        )
    return registry.create(name)


def _add_long_columns(rows: list[dict[str, Any]]) -> None:
    """Parameters, FLOPs and the reference top-1 of each card (zoo's catalogue; source models are described only
    on demand, so theirs stay blank). Each model is built within a time bound (``zoo.deadline``): a builder that
    does not return leaves its row blank with an ``error``, and a warning, instead of hanging the listing."""
    from zoo import registry
    from zoo.comparison import default_flops, one_line
    from zoo.deadline import BuildTimeout, build_timeout, call_within

    seconds = build_timeout()
    if any("/" not in r["name"] for r in rows):
        _warm_up()
    for r in rows:
        r["params"] = r["flops"] = r["top1"] = None
        r["_top1_from"] = ""
        if "/" in r["name"]:
            continue
        what = f"{r['name']} (plugin '{r['plugin']}'): its builder"
        try:
            card, flops = call_within(seconds, what, lambda n=r["name"]: (registry.info(n), default_flops(n)))
        except BuildTimeout as exc:
            r["error"] = f"the builder did not return within {exc.seconds:g} s"
            print(f"zoo: warning: {exc}; its row is left blank", file=sys.stderr)
            continue
        except Exception as exc:  # one broken plugin model must not take the listing down
            r["error"] = one_line(exc)
            continue
        top1 = card.top1()
        r["params"], r["flops"] = card.num_params, flops
        r["top1"] = top1.to_dict() if top1 else None
        r["_top1_from"] = ("torchvision" if top1.source.startswith("torchvision") else top1.source) if top1 else ""


def _warm_up() -> None:
    """Count the FLOPs of a tiny model on the meta device, here and unbounded: the first count imports torch's
    meta kernels and FLOP counter (seconds on a busy machine), which must not count against a model's time bound."""
    import torch
    import torch.nn as nn

    from zoo.comparison import count_flops

    with torch.device("meta"):
        tiny = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)).eval()
        count_flops(tiny, torch.zeros(1, 1, 4, 4))


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
        print_json(card.to_dict())
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
        print_json(s.to_dict())
        return EXIT_OK
    print(f"{s.name} at input {s.batch_size}x{'x'.join(map(str, s.input_size))}")
    print(s.table(style()))
    print(s.totals())
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from zoo import registry
    from zoo.comparison import bench_model, one_line
    from zoo.deadline import build_timeout, call_within

    size = parse_input(args.input) if args.input else None
    for flag, value in (("--batch", args.batch), ("--runs", args.runs), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: expected a positive number")
    for name in args.names:
        registry.get_spec(name)
    from zoo.train.devices import resolve_device

    device = str(resolve_device(args.device))  # a missing GPU is one line, before any model is built
    rows = []
    for name in args.names:
        spec = registry.get_spec(name)
        c, h, w = size or spec.input_size or (3, 224, 224)
        row: dict[str, Any] = {"model": name, "input": f"{c}x{h}x{w}", "batch": args.batch}
        try:
            kwargs = {"in_chans": c, "img_size": h if h == w else (h, w)}
            model = call_within(build_timeout(), f"{name}: its builder", registry.create, name, **kwargs)
            row.update(bench_model(model, (c, h, w), args.batch, args.runs, device, threads=args.threads))
        except Exception as exc:
            row["error"] = one_line(exc)
        rows.append(row)
    if args.json:
        print_json(rows)
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
    print(table(headers, body))
    used = sorted({r["threads"] for r in rows if r.get("threads")})
    threads = f", {'/'.join(map(str, used))} CPU thread{'s' if used != [1] else ''}" if device == "cpu" and used else ""
    print(f"device {device}{threads}, median of {args.runs} runs after one warm-up")
    return EXIT_FAILURE if all(r.get("error") for r in rows) else EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    from zoo.plugin_manager import plugins

    infos = plugins()
    if args.json:
        print_json([i.to_dict() for i in infos])
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
    print(table(("plugin", "version", "kind", "status", "models", "datasets", "sources", "errors"), body))
    return EXIT_OK
