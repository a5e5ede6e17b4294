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
    """argparse with one-line errors (exit 2) instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


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
    return load_dataset(args.dataset, root=args.root, limit=args.limit, **options)


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
