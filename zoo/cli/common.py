"""What the ``zoo`` subcommands share: exit codes, one-line usage errors, tables and JSON, the data and fit options."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from zoo.messages import first_line

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the command line: exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of the usage block, pointing to the subcommand's own help;
    a file name where a model name or pattern was expected gets the hint to quote the pattern."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        # argparse reports a subcommand's unknown arguments from the top parser ("see 'zoo --help'"): here they
        # name the subcommand's help, with the quoting hint when they are files the shell expanded
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            hint = shell_expanded_hint(extra)
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}{hint} (see '{prog} --help')")
        return parsed


def shell_expanded_hint(words: Sequence[str]) -> str:
    """``"; ... quote the pattern"`` when ``words`` are files here: the shell expanded an unquoted wildcard
    (``zoo list lenet*`` in a folder holding ``lenet5.py``) before zoo saw it; else ``""``."""
    files = [w for w in words if not w.startswith("-") and os.path.exists(w)]
    if not files:
        return ""
    return (
        f"; '{files[0]}' is a file here: the shell expanded an unquoted pattern into file names, so quote it "
        f"(zoo list 'lenet*')"
    )


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


def style() -> str:
    """``"box"`` on a terminal whose encoding has the box characters (not ``LANG=C``), else ``"plain"``."""
    if not sys.stdout.isatty() or os.environ.get("TERM") == "dumb":
        return "plain"
    try:
        "┌─┐│└┘".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "plain"
    return "box"


def tolerant_output() -> None:
    """Let stdout and stderr replace what their encoding cannot show (a plugin's name or error in an ASCII locale)
    instead of failing the command with ``UnicodeEncodeError``."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            if stream.errors == "strict":
                stream.reconfigure(errors="backslashreplace")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from zoo.comparison import render_table

    return render_table(headers, rows, style=style())


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def load_data(args: argparse.Namespace):
    """``load_dataset`` with the command's ``--img-size``, ``--root`` and ``--limit``."""
    from zoo.data import load_dataset

    options = {"img_size": args.img_size} if args.img_size else {}
    if getattr(args, "in_chans", None):  # zoo train --in-chans: grey images as RGB, or RGB as grey
        options["in_chans"] = args.in_chans
    data = load_dataset(args.dataset, root=args.root, limit=args.limit, **options)
    warning = limit_warning(args.limit, data.num_classes, len(data.test))
    if warning:
        print(f"zoo: warning: {warning}", file=sys.stderr)
    return data


def check_dataset(name: str) -> None:
    """Unknown dataset names are usage errors, found before anything heavy runs."""
    if os.path.isdir(name):
        return
    from zoo import registry

    registry.get_dataset_spec(name)


# fit options with a short flag too
SHORT_FLAGS = {"epochs": "-e", "batch_size": "-b"}


NONE_WORDS = ("none", "null", "off")


def fit_fields() -> list:
    from zoo.train.config import cli_fields

    return [f for f in cli_fields() if f.name != "epochs"]


def fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The fit options given on the command line (and only those: the others keep fit's defaults)."""
    options: dict[str, Any] = {}
    for f in fit_fields():
        value = getattr(args, f.name, None)
        if value is not None:
            options[f.name] = None if isinstance(value, str) and value.lower() in NONE_WORDS else value
    return options


def check_limit(args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: expected a positive number of images per split")


def limit_warning(limit: int | None, num_classes: int, test_images: int) -> str | None:
    """The warning for a ``--limit`` below the number of classes: some classes have no image at all, and a test
    top-1 on a handful of images says next to nothing (3 images: 0, 33, 67 or 100%)."""
    if limit is None or limit >= num_classes:
        return None
    return (
        f"--limit {limit} is below the dataset's {num_classes} classes: some classes have no image, and the test "
        f"top-1 on {test_images} image{'s' if test_images != 1 else ''} moves in steps of "
        f"{100 / max(test_images, 1):.0f} points; use --limit {num_classes * 10} or more for a meaningful figure"
    )


# families that zoo itself does not hold but a plugin in zoo's repository provides (plugins/<name>)
PLUGIN_FAMILIES = {"resnet": "zoo-resnet"}


def family_hint(family: str) -> str:
    """Where the models of a family zoo's catalogue lacks can be found: the plugin that provides it, and the
    bridges' catalogues (``timm/resnet18``, ``torchvision/resnet18``)."""
    hint = ""
    plugin = PLUGIN_FAMILIES.get(family.lower())
    if plugin:
        hint += f"; the {plugin} plugin provides it: pip install ./plugins/{plugin} (in zoo's repository)"
    return hint + f"; other libraries' models: zoo list '*{family}*' --source all"


def check_source(source: str | None) -> None:
    """``--source``: zoo, all or a registered source's prefix; else a usage error with the nearest one."""
    if source is None:
        return
    from zoo import registry
    from zoo.suggest import suggest

    valid = ["zoo", "all", *registry.list_sources()]
    if source not in valid:
        raise UsageError(f"unknown --source '{source}'; accepted: {', '.join(valid)}{suggest(source, valid)}")


def check_fit_options(options: dict[str, Any], epochs: int | None = None) -> None:
    """The fit options' names given on the command line, checked before anything loads: a misspelt optimizer or
    scheduler is a usage error (exit 2) with the nearest valid name."""
    import torch

    from zoo.train.config import config_from_options
    from zoo.train.optim import OPTIMIZERS, check_scheduler, make_optimizer

    try:  # the values (lr > 0, ...) are check_fit_flags' to check, naming the flag
        cfg = config_from_options({**options, **({"epochs": epochs} if epochs is not None else {})}, "zoo")
        if isinstance(cfg.optimizer, str) and cfg.optimizer.lower() not in OPTIMIZERS:
            make_optimizer(cfg.optimizer, torch.nn.Linear(1, 1), 0.0, 0.0)  # raises, naming the valid ones
        check_scheduler(cfg.scheduler)
    except (ValueError, TypeError) as exc:
        raise UsageError(first_line(str(exc))) from None


def check_plot_arg(plot: str | None) -> None:
    from zoo.plotting import PLOT_FORMATS

    if plot and os.path.splitext(plot)[1].lower() not in PLOT_FORMATS:
        raise UsageError(f"--plot '{plot}': expected a {', '.join(PLOT_FORMATS[:-1])} or {PLOT_FORMATS[-1]} file")


@contextlib.contextmanager
def warnings_to_stderr():
    """Warnings (e.g. a model without a data record) as one ``zoo: warning:`` line each."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        print(f"zoo: warning: {first_line(str(w.message))}", file=sys.stderr)


def add_data(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", "-d", required=required, help="dataset name (zoo.list_datasets()) or image folder")
    p.add_argument("--root", default=None, metavar="DIR", help="look for the dataset's files in DIR first")
    p.add_argument(
        "--limit", type=int, default=None, metavar="N", help="at most N images per split (stratified, seeded)"
    )
    p.add_argument("--img-size", type=int, default=None, help="resize the dataset to this size on load")


def add_training(p: argparse.ArgumentParser, epochs: int, dataset_required: bool = True) -> None:
    import dataclasses

    from zoo.train.config import cli_fields

    add_data(p, required=dataset_required)
    group = p.add_argument_group("fit options (default: zoo.fit's; 'none' for None)")
    for f in cli_fields():
        flags = [f"--{f.name.replace('_', '-')}"] + ([SHORT_FLAGS[f.name]] if f.name in SHORT_FLAGS else [])
        default = epochs if f.name == "epochs" else None
        shown = epochs if f.name == "epochs" else f.default if f.default is not dataclasses.MISSING else None
        text = f"{f.metadata['help']} (default {shown})".replace("%", "%%")
        if f.metadata["cli"] is bool:  # --compile / --no-compile; None when neither is given
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        group.add_argument(*flags, type=f.metadata["cli"], default=default, metavar=f.name.upper(), help=text)
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars (shown on a terminal)"
    )
