"""``zoo train --config run.yaml|run.json`` and ``--print-config``: a training run as a file (as LightningCLI's
``--config`` and timm's ``train.py --config``).

The file is one flat mapping: the run's model and data (``model``, ``dataset``, ``root``, ``limit``, ``img_size``,
``in_chans``, ``drop_rate``, ``out``) and any ``TrainConfig`` option (``epochs``, ``lr``, ``optimizer``, ...).
Flags given on the command line override the file; an unknown key is refused in one line naming the nearest one.
``--print-config`` writes the effective run (every option, defaults included) as JSON, which is also YAML, so its
output is a valid ``--config`` file. YAML needs pyyaml (an optional extra); JSON needs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any

from zoo.cli.common import NONE_WORDS, UsageError

# the run's own keys (besides TrainConfig's options) and the argparse names they come from
RUN_KEYS = {
    "model": "name",
    "dataset": "dataset",
    "root": "root",
    "limit": "limit",
    "img_size": "img_size",
    "in_chans": "in_chans",
    "drop_rate": "drop_rate",
    "out": "out",
}
# options a file cannot set: objects, or what the command decides itself (checkpoint_dir is --out)
FILE_REFUSED = {"callbacks": "callback objects", "metrics": "metric functions", "checkpoint_dir": "use 'out'"}
DEFAULTS = {"drop_rate": 0.0, "epochs": 5}
MAX_BYTES = 1 << 20


def train_options() -> list[str]:
    from zoo.train.config import TrainConfig

    return [f.name for f in dataclasses.fields(TrainConfig)]


def read_run_file(path: str) -> dict[str, Any]:
    """The mapping in a ``.json``, ``.yaml`` or ``.yml`` file; ``UsageError`` in one line otherwise."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".json", ".yaml", ".yml"):
        raise UsageError(f"--config '{path}': expected a .yaml, .yml or .json file")
    if not os.path.isfile(path):
        raise UsageError(f"--config '{path}' does not exist")
    if os.path.getsize(path) > MAX_BYTES:
        raise UsageError(f"--config '{path}' is larger than {MAX_BYTES:,} bytes; a run config is a few lines")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if ext == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--config '{path}' is not JSON: {exc}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise UsageError(f"--config '{path}': YAML needs pyyaml (pip install pyyaml); or write JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"--config '{path}' is not YAML: {' '.join(str(exc).split())[:160]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config '{path}' holds a {type(data).__name__}; expected a mapping of option: value")
    return data


def check_keys(data: dict[str, Any], path: str) -> None:
    from zoo.suggest import suggest

    accepted = [*RUN_KEYS, *train_options()]
    for key, value in data.items():
        if key not in accepted:
            raise UsageError(
                f"--config '{path}': unknown key {key!r}{suggest(str(key), accepted)}; accepted: the run's "
                f"{', '.join(RUN_KEYS)} and zoo.fit's options (zoo train --print-config lists them)"
            )
        if key in FILE_REFUSED and value not in (None, [], {}, ()):
            raise UsageError(f"--config '{path}': {key!r} cannot come from a file ({FILE_REFUSED[key]})")


def _given(value: Any) -> bool:
    return value is not None


def merge(args: argparse.Namespace, fit_fields: list[str]) -> dict[str, Any]:
    """The effective run: the file's values, then every flag given on the command line over them, then the
    defaults of the run's keys. ``args`` is updated in place; returns the fit options from the file and flags."""
    data = read_run_file(args.config) if args.config else {}
    if data:
        check_keys(data, args.config)
    for key, dest in RUN_KEYS.items():
        if not _given(getattr(args, dest, None)) and key in data:
            setattr(args, dest, data[key])
    for key, default in DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, data.get(key, default))
    if args.progress is None:
        args.progress = data.get("progress", True)
    if args.resume is False and data.get("resume"):
        args.resume = True
    if not args.overwrite and data.get("overwrite"):
        args.overwrite = True
    options = {k: v for k, v in data.items() if k in fit_fields}
    for name in fit_fields:
        value = getattr(args, name, None)
        if _given(value):
            options[name] = None if isinstance(value, str) and value.lower() in NONE_WORDS else value
    if args.name is None or args.dataset is None:
        missing = "the model (NAME, or 'model' in --config)" if args.name is None else "--dataset"
        raise UsageError(f"zoo train needs {missing}")
    return options


def effective_config(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """Every key of a run file, as this run would use it: the run's keys, then every ``TrainConfig`` option."""
    from zoo.train.config import config_from_options

    skip = {"epochs", "checkpoint_dir", "resume", "overwrite", "progress"}
    config = config_from_options(
        {**{k: v for k, v in options.items() if k not in skip}, "epochs": args.epochs}, "zoo train"
    ).to_dict()
    config.update(checkpoint_dir=None, resume=bool(args.resume), overwrite=bool(args.overwrite), progress=args.progress)
    run = {key: getattr(args, dest, None) for key, dest in RUN_KEYS.items()}
    return {**run, **config}


def print_config(args: argparse.Namespace, options: dict[str, Any]) -> None:
    print(json.dumps(effective_config(args, options), indent=2, default=str))


def run_fit_fields() -> list[str]:
    """The ``TrainConfig`` options a file or a flag passes to ``fit`` as they are (``cmd_train`` sets the rest)."""
    own = {"epochs", "checkpoint_dir", "resume", "overwrite", "progress", *FILE_REFUSED}
    return [name for name in train_options() if name not in own]


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """``zoo train``'s ``--config``, ``--print-config`` and ``--in-chans``; the file's keys need every flag of the
    run to default to ``None`` (not given), so that a flag given overrides the file and no other."""
    p.add_argument("--config", "-c", default=None, metavar="FILE", help="a run config (.yaml or .json); flags win")
    p.add_argument("--print-config", action="store_true", help="print the effective run config (JSON) and exit")
    p.add_argument("--in-chans", type=int, default=None, choices=(1, 3), help="load the images with 1 or 3 channels")
    p.set_defaults(epochs=None, drop_rate=None, progress=None)
