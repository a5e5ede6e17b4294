"""Model files: ``zoo.save`` / ``zoo.load``, ``best.pt`` and a ``save_pretrained`` folder's weights; the model part of
``last.pt`` (``zoo.train.resume``).

A model file is written atomically (``zoo.files.atomic_write``), so a crash never leaves a half-written file, and
holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``. It records how the model was created (``model.zoo_config``), so
``zoo.load(path)`` rebuilds the model without the user re-typing its configuration.

Files are read as hostile (``zoo.weights`` reads them): a path that is not a regular file, a zip archive inflating
far beyond its size, a pickle with code, anything that is not a dict of tensors is a one-line ``CheckpointError``
naming the file. A checkpoint's recorded configuration may only rebuild a model no larger than the weights it
holds, and may not make zoo read any other file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from zoo.files import atomic_write, plain
from zoo.foreign import sibling_config, strip_owner_prefix
from zoo.inputs import InputRecord, read_zoo_config
from zoo.weights import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    clean_state_dict,
    first_line,
    read_checkpoint,
    read_safetensors,
    state_from_checkpoint,
)

CHECKPOINT_VERSION = 1


def unwrap(model: nn.Module) -> nn.Module:
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def model_config(model: nn.Module) -> dict[str, Any] | None:
    cfg = getattr(model, "zoo_config", None)
    return plain(cfg) if isinstance(cfg, dict) else None


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Any) -> None:
    try:
        model.load_state_dict(strip_owner_prefix(clean_state_dict(state), model.state_dict().keys()))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(s.strip() for s in first[1:3])[:300]
        raise CheckpointError(f"weights in '{path}' do not fit this model: {detail}") from None


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights and buffers on the CPU, without DDP / ``torch.compile`` prefixes."""
    return {k: v.detach().cpu().contiguous() for k, v in clean_state_dict(model.state_dict()).items()}


def model_file(model: nn.Module) -> dict[str, Any]:
    """What a ``.pt`` model file holds (``zoo.save``, ``best.pt``): the weights and how to rebuild the model."""
    model = unwrap(model)
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": cpu_state(model),
        "zoo_config": model_config(model),
    }


def save(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save a model's weights (no optimizer) atomically; ``zoo.load(path)`` rebuilds it.

    ``.safetensors`` paths get safetensors with ``zoo_config`` in its metadata; any other suffix a
    ``weights_only`` torch checkpoint.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save as st_save

        config = model_config(unwrap(model))
        meta = {"format": CHECKPOINT_FORMAT, "zoo_config": json.dumps(config)} if config else {}
        return atomic_write(path, st_save(_dedupe_shared(cpu_state(unwrap(model))), metadata=meta))
    content = model_file(model)
    return atomic_write(path, lambda f: torch.save(content, f))


def _dedupe_shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors sharing storage (tied weights): store copies
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Keywords that name something to read or fetch: a checkpoint's config may not hold them (with a path or a
# structure as value; a flag such as init_weights=True names nothing).
_FILE_WORD = re.compile(
    r"weights|pretrained|paths?|files?|filename|dir|directory|root|url|uri|checkpoint|ckpt|cache|overlay|hub|download"
)
_MAX_CONFIG_DEPTH = 16


def _config_problem(value: Any, key: str, depth: int = 0) -> str | None:
    """Why ``key=value`` may not come from a checkpoint's config: not plain data, or naming a file."""
    if depth > _MAX_CONFIG_DEPTH:
        return f"{key!r} nests deeper than {_MAX_CONFIG_DEPTH} levels"
    named = any(_FILE_WORD.fullmatch(word) for word in re.split(r"[^a-z]+", key.lower()))
    flag = value is None or isinstance(value, (bool, int, float))
    if (named and not flag) or key.lower() == "pretrained":
        return f"keyword {key!r}={_short(value)} names a file or a download"
    if isinstance(value, str) and "://" in value:
        return f"keyword {key!r}={_short(value)} names a file or a download"
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    if isinstance(value, (list, tuple)):
        return next((p for v in value if (p := _config_problem(v, key, depth + 1))), None)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{key!r} holds a key {_short(k)} that is not a string"
            problem = _config_problem(v, k, depth + 1)
            if problem:
                return problem
        return None
    kind = type(value).__name__
    return f"{key!r} holds a value of type {kind}; a config holds numbers, strings, booleans, lists and dicts"


def _checked_config(path: Path, config: Any) -> tuple[str, dict[str, Any]]:
    """The registry name and keywords of a checkpoint's ``zoo_config``, or a one-line ``CheckpointError``."""
    if not config:
        raise CheckpointError(
            f"'{path}' does not say which model it holds (it was not made by zoo.create); "
            f"build the model yourself and call zoo.load(path, model=model)"
        )
    fix = "build the model yourself and call zoo.load(path, model=model)"
    if not isinstance(config, dict):
        raise CheckpointError(
            f"cannot rebuild the model of '{path}': its zoo_config is of type {type(config).__name__}, not a dict "
            f"{{'name': ..., 'kwargs': {{...}}}}; {fix}"
        )
    if "name" not in config:
        raise CheckpointError(
            f"'{path}' holds a model zoo did not create (its record has no registry name); build the model "
            f"yourself and call zoo.load(path, model=model)"
        )
    name, kwargs = config["name"], config.get("kwargs")
    problem = None
    if not isinstance(name, str):
        problem = f"its model name is of type {type(name).__name__} ({_short(name)}), not a string"
    elif kwargs is not None and not isinstance(kwargs, dict):
        problem = f"its kwargs are of type {type(kwargs).__name__}, not a dict"
    else:
        for key, value in (kwargs or {}).items():
            if not isinstance(key, str):
                problem = f"its keyword {_short(key)} is not a string"
            else:
                problem = _config_problem(value, key)
                if problem and problem.startswith("keyword"):
                    problem += "; a checkpoint may not make zoo read anything but itself"
            if problem:
                break
    if problem:
        raise CheckpointError(f"cannot rebuild the model of '{path}': {problem}; {fix}")
    return name, dict(kwargs or {})


def _read_model_file(path: Path, map_location: Any) -> tuple[dict[str, torch.Tensor], Any, str | None]:
    """The state dict, the recorded model config, and why the config could not be read (or ``None``)."""
    if path.suffix == ".safetensors":
        state, meta = read_safetensors(path, map_location)
        raw = meta.get("zoo_config")
        if not raw:
            return state, None, None
        try:
            return state, json.loads(raw), None
        except (ValueError, RecursionError) as exc:
            return state, None, f"its zoo_config metadata is not JSON ({first_line(exc)})"
    ckpt = read_checkpoint(path, map_location)
    # "model_config": the name 0.1.0 wrote
    config = ckpt.get("zoo_config", ckpt.get("model_config")) if ckpt.get("format") == CHECKPOINT_FORMAT else None
    return state_from_checkpoint(ckpt, path), config, None


def _rebuild(path: Path, config: Any, problem: str | None, state: dict[str, torch.Tensor]) -> nn.Module:
    """The model ``config`` records, built only if it is no larger than the weights the file holds."""
    if problem:
        raise CheckpointError(
            f"cannot rebuild the model of '{path}': {problem}; build the model yourself and call "
            "zoo.load(path, model=model)"
        )
    name, kwargs = _checked_config(path, config)
    from zoo.registry import create_within  # the engine otherwise knows nothing of the registry

    numel = sum(t.numel() for t in state.values())
    try:
        return create_within(name, kwargs, max_params=numel, max_tensors=len(state))
    except Exception as exc:
        text = " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__
        raise CheckpointError(f"cannot rebuild the model of '{path}' from its zoo_config: {text}") from None


def load(path: str | os.PathLike, model: nn.Module | None = None, *, map_location: Any = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint written by ``fit`` (``last.pt``, ``best.pt``) or ``save``.

    The checkpoint records the registry name and keywords the model was created with, so no configuration needs
    re-typing, and what ``fit`` recorded of the data (``zoo_config["inputs"]``: input size, normalisation, class
    names, task), so ``zoo.predict`` prepares new inputs as the training inputs were. Pass ``model`` to load the
    weights into a model you built yourself (needed for models not made by ``zoo.create``). Nothing pickled is
    executed: ``torch.load(weights_only=True)`` or safetensors.
    ``path`` may also be a folder written by ``zoo.save_pretrained`` (its ``config.json`` says which model it holds)
    or ``"hf-hub:user/repo"``, read from huggingface_hub's cache (``zoo.hub``).

    The recorded configuration is checked before it is used: a malformed one, one naming a file to read
    (``weights=``, a path-valued keyword), or one asking for a model with more parameters than the file holds is
    refused with a one-line ``CheckpointError``; the model is counted on the meta device before it is built.

    Returns:
        The model, in eval mode, on ``map_location``.
    """
    from zoo.hub import is_pretrained_source, read_pretrained  # a save_pretrained folder or "hf-hub:user/repo"

    path, folder_config = read_pretrained(path) if is_pretrained_source(path) else (Path(path), None)
    if folder_config is None and sibling_config(path):  # a folder's model.safetensors: its config.json says more
        path, folder_config = read_pretrained(path.parent)
    state, config, problem = _read_model_file(path, map_location)
    if folder_config is not None:  # the folder's config.json describes its weights
        config, problem = folder_config, None
    if model is None:
        model = _rebuild(path, config, problem, state)
    load_weights(model, state, path)
    config = read_zoo_config(config)  # 0.1.0's layout too
    if isinstance(config.get("inputs"), dict):  # how the model wants its inputs: read by predict and evaluate
        InputRecord.from_dict(config["inputs"]).attach(model, weights=config.get("weights"))
    return model.to(map_location).eval()
