"""zoo's own weights: LeNet-5 and the MLP trained with ``zoo.fit`` on digits and Fashion-MNIST, shipped here.

``benchmarks/train_weights.py`` made every file in this folder and its entry in ``records.json`` (sha256, size,
input record, test accuracy, the exact command). This module registers them through the ``register_weights`` hook,
like any plugin: ``zoo.create("lenet5.digits")``.
"""

from __future__ import annotations

import json
from importlib import resources

from zoo.hookspecs import hookimpl

RECORDS = "records.json"
_OWN = ("model", "tag")  # the rest of an entry is the record's fields


def records() -> list[dict]:
    """The entries of ``records.json`` (``[]`` when the file is missing, e.g. before the first training run)."""
    path = resources.files(__name__) / RECORDS
    return json.loads(path.read_text()) if path.is_file() else []


@hookimpl
def register_weights(register):
    for entry in records():
        fields = {k: v for k, v in entry.items() if k not in _OWN}
        register(entry["model"], entry["tag"], package=__name__, **fields)
