"""The leaderboard: every built-in model and the zoo-resnet plugin's, trained under one stated budget; resumable.

    python benchmarks/leaderboard.py                                   # Fashion-MNIST, 28 px, the laptop budget
    python benchmarks/leaderboard.py --img-size 32                     # the same at 32 px
    python benchmarks/leaderboard.py --dataset digits                  # the 8x8 digits (small models only fit)
    python benchmarks/leaderboard.py --dataset cifar10 --device cuda   # CIFAR-10's files must be present
    python benchmarks/leaderboard.py --render-only                     # the page and plots from the saved rows
    python benchmarks/leaderboard.py --pretrained --lr 1e-3            # fine-tune each model that has weights
    python benchmarks/leaderboard.py --pretrained --weights-file lenet5=my.safetensors --freeze backbone

Rows are appended to ``rows.jsonl`` in the run directory (``runs/leaderboard/<dataset>-<size>px-<device>`` unless
``--run-dir``) as each model finishes; a second start skips them (``--retry-failed`` runs failed and too-slow ones
again). The log goes to the terminal and to ``run.log`` there. Rendering writes ``docs/leaderboard.md`` between its
markers (the prose around them is kept) and ``docs/img/leaderboard-<dataset>-<size>-*.png``; with several run
directories (``--render-only --run-dir A --run-dir B``) each gets its own section. ``--pretrained`` runs go to
``<dataset>-<size>-<device>-pretrained``: each model starts from its weights adapted to the data (models without
weights get a row saying so), under the same budget; the fine-tuning options are saved with the budget.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_plugin(plugin_dir: Path) -> str | None:
    """Register the out-of-tree plugin from its source folder, unless it is installed (and so already loaded)."""
    import zoo

    if any(p.name in ("zoo_resnet", "zoo-resnet") for p in zoo.plugins()):
        return None
    if not plugin_dir.is_dir():
        return f"plugin folder '{plugin_dir}' not found; the leaderboard runs without it"
    sys.path.insert(0, str(plugin_dir))
    import zoo_resnet

    zoo.register_plugin(zoo_resnet, name="zoo_resnet")
    return None


def git_commit() -> str | None:
    """The code version: ``git rev-parse`` here (``+dirty`` with local changes), or ``ZOO_CODE_VERSION`` outside git."""
    if os.environ.get("ZOO_CODE_VERSION"):
        return os.environ["ZOO_CODE_VERSION"]
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except OSError:
        return None


def finetune_from(args: argparse.Namespace, finetune_class: type) -> object | None:
    """The ``FineTune`` of ``--pretrained`` and its options; ``None`` for a from-scratch run (where fine-tuning
    options are refused, so that no option is silently ignored)."""
    options = {"weights": args.weights, "lr": args.lr, "freeze": args.freeze, "unfreeze_at": args.unfreeze_at,
               "layer_lr_decay": args.layer_lr_decay}  # fmt: skip
    given = [f"--{k.replace('_', '-')}" for k, v in options.items() if v is not None]
    given += ["--weights-file"] if args.weights_file else []
    if not args.pretrained:
        if given:
            raise ValueError(f"{', '.join(given)} fine-tune: add --pretrained (or drop them for a from-scratch run)")
        return None
    files = {}
    for item in args.weights_file:
        model, sep, path = item.partition("=")
        if not sep or not model or not path:
            raise ValueError(f"--weights-file takes MODEL=PATH (e.g. lenet5=lenet5.safetensors), got '{item}'")
        files[model] = str(Path(path).resolve())
    return finetune_class(files=files, **options)


def main(argv: list[str] | None = None) -> int:
    from leaderboard_run import Budget

    defaults = Budget()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default=defaults.dataset, help="a registered dataset (default fashion-mnist)")
    p.add_argument("--img-size", type=int, default=None, help="resize on load (default: the dataset's own size)")
    p.add_argument("--root", default=None, help="where to look for the dataset's files first")
    p.add_argument("--limit", type=int, default=defaults.limit, help="training images (stratified subset)")
    p.add_argument("--test-limit", type=int, default=defaults.test_limit, help="test images (stratified subset)")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--max-model-s", type=float, default=defaults.max_model_s, help="time cap per model and seed")
    p.add_argument("--min-images", type=int, default=defaults.min_images, help="smallest subset of a capped model")
    p.add_argument("--seeds", type=int, default=defaults.seeds, help="seeds for the models under half the cap")
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME", help="names or wildcards (default: all)")
    p.add_argument("--family", action="append", default=None, help="only this family (repeatable)")
    p.add_argument("--run-dir", action="append", default=None, help="run directory (repeat with --render-only)")
    p.add_argument("--plugin-dir", default=str(ROOT / "plugins" / "zoo-resnet"), help="the plugin to include")
    p.add_argument("--retry-failed", action="store_true", help="run failed and too-slow models again")
    p.add_argument("--render-only", action="store_true", help="render the page and plots from saved rows")
    p.add_argument("--no-render", action="store_true", help="train only; render later with --render-only")
    g = p.add_argument_group("fine-tuning (--pretrained)")
    g.add_argument("--pretrained", action="store_true", help="start each model from weights, adapted to the data")
    g.add_argument("--weights", default=None, metavar="TAG", help="this tag for every model (default: each its own)")
    g.add_argument("--weights-file", action="append", default=[], metavar="MODEL=PATH", help="a model's weights file")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (default: zoo.fit's)")
    g.add_argument("--freeze", default=None, help="'backbone', module prefixes, or N groups (default: none)")
    g.add_argument("--unfreeze-at", type=int, default=None, help="epoch from which the frozen part trains too")
    g.add_argument("--layer-lr-decay", type=float, default=None, help="discriminative lrs (timm's layer_decay)")
    p.add_argument("--doc", default=str(ROOT / "docs" / "leaderboard.md"), help="the page to write")
    p.add_argument("--img-dir", default=str(ROOT / "docs" / "img"), help="where the plots go")
    args = p.parse_args(argv)
    with warnings.catch_warnings():  # one line each: a skipped row of rows.jsonl says its line and field
        warnings.showwarning = _one_line_warning
        return _run(args, argv)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"leaderboard: warning: {str(message).splitlines()[0] if str(message) else category.__name__}",
          file=sys.stderr)  # fmt: skip


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    from leaderboard_run import Budget, run_leaderboard
    from leaderboard_transfer import FineTune

    import zoo
    from zoo.comparison.run import select_models
    from zoo.train.devices import resolve_device

    try:
        warning = load_plugin(Path(args.plugin_dir))
        if warning:
            print(f"leaderboard: warning: {warning}", file=sys.stderr)
        budget = Budget(
            dataset=args.dataset, img_size=args.img_size, root=args.root, limit=args.limit,
            test_limit=args.test_limit, epochs=args.epochs, max_model_s=args.max_model_s,
            min_images=args.min_images, seeds=args.seeds, device=args.device,
        )  # fmt: skip
        finetune = finetune_from(args, FineTune)
        run_dirs = [Path(d) for d in args.run_dir or ()]
        if not run_dirs:
            size = f"{args.img_size}px" if args.img_size else "native"
            device = resolve_device(args.device).type
            kind = "-pretrained" if finetune else ""
            run_dirs = [ROOT / "runs" / "leaderboard" / f"{args.dataset}-{size}-{device}{kind}"]
        if not args.render_only:
            if len(run_dirs) > 1:
                raise ValueError("training takes one --run-dir; several are for --render-only")
            names = select_models(args.models or ([] if args.family else zoo.list_models()), family=args.family)
            command = "python benchmarks/leaderboard.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
            log_path = run_dirs[0] / "run.log"

            def log(line: str) -> None:
                stamped = f"{time.strftime('%H:%M:%S')} {line}"
                print(stamped, flush=True)
                log_path.parent.mkdir(parents=True, exist_ok=True)  # after the data loaded: the run has begun
                with open(log_path, "a") as f:
                    f.write(stamped + "\n")

            started = time.perf_counter()
            run_leaderboard(
                names, budget, run_dirs[0], retry_failed=args.retry_failed, log=log, command=command,
                code_version=git_commit(), finetune=finetune,
            )  # fmt: skip
            log(f"done in {time.perf_counter() - started:,.0f} s")
        if not args.no_render:
            from leaderboard_page import render_page

            for path in render_page(run_dirs, args.doc, args.img_dir):
                print(f"wrote {path}")
    except KeyboardInterrupt:
        print(
            "leaderboard: interrupted; the finished rows are kept, run the same command again to go on", file=sys.stderr
        )
        return 130
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0]  # whole: a missing dataset's line says where zoo looked
        print(f"leaderboard: error: {type(exc).__name__}: {text}", file=sys.stderr)
        return 2 if isinstance(exc, (ValueError, FileNotFoundError, LookupError, TypeError)) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
