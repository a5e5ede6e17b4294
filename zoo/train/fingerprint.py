"""A cheap fingerprint of the training data, recorded in ``last.pt``: a resumed run refuses other data.

Resuming on other data of the same shape would continue without a word: the weights, the optimizer's moments and a
mid-epoch position all belong to the data the run started on. The fingerprint holds the number of samples, a digest
of every label when the source holds them whole (a ``Split``, an ``ImageSplit``), and a digest of a few samples read
at evenly spaced positions (16 rows of in-memory tensors; 8 items of a map-style Dataset, read with the random
generators seeded so that random transforms give the same bytes each time, and left out when two reads still
differ). An ``IterableDataset`` gives its length
when it has one, nothing more: a stream cannot be read at a position without consuming it.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch

from zoo.data.describe import source_labels, source_len
from zoo.data.imagesplit import ImageSplit
from zoo.data.types import is_split

__all__ = ["data_fingerprint", "fingerprint_changes"]

ROWS = 16  # rows of in-memory tensors read into the digest
ITEMS = 8  # items of a map-style Dataset read into the digest (each may decode a file)


def data_fingerprint(source: Any) -> dict[str, Any]:
    """``{"samples": N or None, "labels": hex, "items": hex}`` (the keys known for this source)."""
    fp: dict[str, Any] = {"samples": source_len(source)}
    labels = source_labels(source)
    if isinstance(labels, torch.Tensor):
        fp["labels"] = _digest(labels)
    items = _items(source, fp["samples"])
    if items is not None:
        fp["items"] = items
    return fp


def fingerprint_changes(old: Any, new: dict[str, Any]) -> list[str]:
    """What differs between the fingerprint a run recorded and this data's, in words (empty: nothing known
    differs; a ``last.pt`` written before fingerprints has none)."""
    if not isinstance(old, dict):
        return []
    changes = []
    if "samples" in old and old["samples"] != new.get("samples"):
        changes.append(f"{_count(old['samples'])} samples -> {_count(new.get('samples'))}")
    if "labels" in old and "labels" in new and old["labels"] != new["labels"]:
        changes.append("the labels differ")
    if "items" in old and "items" in new and old["items"] != new["items"]:
        changes.append("the sampled inputs differ")
    return changes


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "an unknown number of"


def _positions(n: int, k: int) -> list[int]:
    return sorted({(i * (n - 1)) // max(k - 1, 1) for i in range(min(k, n))})


def _items(source: Any, n: int | None) -> str | None:
    if not n:
        return None
    if is_split(source):
        idx = torch.tensor(_positions(n, ROWS))
        return _digest(source.images.index_select(0, idx), source.labels.index_select(0, idx))
    if isinstance(source, ImageSplit):  # its stored (or decoded) pixels
        try:
            return _digest(source.read(torch.tensor(_positions(n, ITEMS))))
        except Exception:  # noqa: BLE001 - a fingerprint that cannot be read is left out; training will say why
            return None
    dataset = source.dataset if isinstance(source, torch.utils.data.DataLoader) else source
    if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__getitem__"):
        return None
    return _dataset_items(dataset, n)


def _dataset_items(dataset: Any, n: int) -> str | None:
    """A digest of ``ITEMS`` items, read twice with torch's, Python's and numpy's generators seeded (and then
    restored); None when the two reads differ (a transform with a randomness of its own: no false alarm)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    digests = []
    try:
        for _ in range(2):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                random.seed(0)
                np.random.seed(0)
                digests.append(_digest(*(dataset[i] for i in _positions(n, ITEMS))))
    except Exception:  # noqa: BLE001 - as above
        return None
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return digests[0] if digests[0] == digests[1] else None


def _digest(*values: Any) -> str:
    h = hashlib.sha256()
    for v in values:
        _feed(h, v)
    return h.hexdigest()[:16]


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode() + np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        for v in value:
            _feed(h, v)
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            h.update(str(k).encode())
            _feed(h, value[k])
    elif callable(getattr(value, "tobytes", None)):  # a PIL image
        h.update(value.tobytes())
    else:
        h.update(repr(value).encode())
