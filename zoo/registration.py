"""What a registration must hold: the metadata a plugin may declare, the checks of its builders and cards, and the
``ModelSpec`` made from an accepted one. The plugin manager calls these for every ``register(...)``; a refusal is
one line naming what was wrong and what is accepted.
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
from collections.abc import Callable
from typing import Any

from zoo.specs import ModelSpec, PluginInfo, Reported

__all__ = [
    "UNIFORM_KEYWORDS",
    "MODEL_METADATA",
    "REPORTED_FIELDS",
    "DATASET_METADATA",
    "SOURCE_METADATA",
    "NAME_RE",
    "metadata_problem",
    "signature_keywords",
    "builder_problem",
    "card_problem",
    "make_model_spec",
]

UNIFORM_KEYWORDS = ("num_classes", "in_chans", "img_size")
MODEL_METADATA = (
    "family",
    "paper",
    "year",
    "input_size",
    "num_classes",
    "tags",
    "description",
    "url",
    "notes",
    "num_params",
    "convert_weights",
    "keywords",
    "reported",
    "twin",
    "twin_kwargs",
)
REPORTED_FIELDS = ("dataset", "metric", "value", "source")
DATASET_METADATA = ("num_classes", "input_size", "description", "url", "tags")
SOURCE_METADATA = ("description", "url")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def metadata_problem(kind: str, metadata: dict[str, Any], accepted: tuple[str, ...]) -> str | None:
    unknown = sorted(set(metadata) - set(accepted))
    if unknown:
        return f"unknown {kind} metadata {', '.join(map(repr, unknown))}; accepted: {', '.join(accepted)}"
    return None


def signature_keywords(builder: Callable[..., Any]) -> list[str] | None:
    """The keywords ``builder`` accepts by name, or ``None`` when its signature cannot tell (``**kwargs``, C code)."""
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in params.items() if p.kind in kinds]


def builder_problem(name: str, builder: Any, keywords: Any = None) -> str | None:
    """Why ``builder`` cannot be registered, or ``None``. A ``**kwargs`` builder is checked through the keywords it
    declares (``keywords=``); one that declares none is accepted unchecked."""
    if not callable(builder):
        return f"builder for '{name}' is not callable (got {type(builder).__name__})"
    accepted = signature_keywords(builder)
    if keywords is not None:
        if isinstance(keywords, str) or not all(isinstance(k, str) for k in _iter_or_empty(keywords)):
            return f"keywords for '{name}' must be a list of keyword names, got {keywords!r}"
        undeclared = [k for k in keywords if accepted is not None and k not in accepted]
        if undeclared:
            return f"builder for '{name}' does not accept the declared keywords {', '.join(undeclared)}"
        accepted = list(keywords)
    if accepted is None:
        return None
    missing = [k for k in UNIFORM_KEYWORDS if k not in accepted]
    if missing:
        return (
            f"builder for '{name}' must accept the keywords {', '.join(UNIFORM_KEYWORDS)}; missing {', '.join(missing)}"
        )
    return None


def _iter_or_empty(value: Any) -> tuple:
    try:
        return tuple(value)
    except TypeError:
        return (None,)  # not iterable: refused by the caller's type check


def _reported_problem(name: str, reported: Any) -> str | None:
    """Why ``reported=`` cannot go on the card of ``name``: it must be a sequence of ``Reported`` or of dicts with
    exactly ``dataset``, ``metric``, ``value`` (a finite number) and ``source`` (strings, not empty)."""
    if isinstance(reported, (str, bytes, dict)) or not isinstance(reported, (list, tuple)):
        return f"reported for '{name}' must be a list of Reported or of dicts, got {type(reported).__name__}"
    for i, entry in enumerate(reported):
        if isinstance(entry, Reported):
            entry = entry.to_dict()
        if not isinstance(entry, dict) or set(entry) != set(REPORTED_FIELDS):
            keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            return f"reported[{i}] for '{name}' must have the keys {', '.join(REPORTED_FIELDS)}; got {keys}"
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            return f"reported[{i}] for '{name}': value must be a finite number, got {value!r}"
        bad = next((k for k in ("dataset", "metric", "source") if not isinstance(entry[k], str) or not entry[k]), None)
        if bad:
            return f"reported[{i}] for '{name}': {bad} must be a non-empty string, got {entry[bad]!r}"
    return None


def card_problem(name: str, metadata: dict[str, Any]) -> str | None:
    """Why the card metadata ``reported``, ``twin`` or ``twin_kwargs`` of ``name`` is refused, or ``None``."""
    if metadata.get("reported") is not None:
        problem = _reported_problem(name, metadata["reported"])
        if problem:
            return problem
    twin = metadata.get("twin")
    if twin is not None and (not isinstance(twin, str) or not twin.isidentifier()):
        return f"twin for '{name}' must be the name of a torchvision builder ('alexnet'), got {twin!r}"
    kw = metadata.get("twin_kwargs")
    if kw is not None and (not isinstance(kw, dict) or not all(isinstance(k, str) for k in kw)):
        return f"twin_kwargs for '{name}' must be a dict of builder keywords, got {kw!r}"
    return None


def make_model_spec(name: str, builder: Callable, info: PluginInfo, metadata: dict[str, Any]) -> ModelSpec:
    md = {k: v for k, v in metadata.items() if v is not None or k not in ("reported", "twin_kwargs")}
    if "reported" in md:  # checked by card_problem: Reported entries or dicts of their four fields
        entries = (r.to_dict() if isinstance(r, Reported) else r for r in md["reported"])
        md["reported"] = tuple(Reported(r["dataset"], r["metric"], float(r["value"]), r["source"]) for r in entries)
    if "twin_kwargs" in md:
        md["twin_kwargs"] = tuple(md["twin_kwargs"].items())
    if md.get("input_size") is not None:
        md["input_size"] = tuple(int(v) for v in md["input_size"])
    if md.get("tags") is not None:
        md["tags"] = (md["tags"],) if isinstance(md["tags"], str) else tuple(md["tags"])
    if md.get("keywords") is not None:
        md["keywords"] = tuple(md["keywords"])
    return ModelSpec(name=name, builder=builder, plugin=info.name, plugin_version=info.version, **md)
