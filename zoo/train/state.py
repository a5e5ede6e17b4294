"""Checkpoints: atomic writes, safe reads, and ``zoo.load`` / ``zoo.save``.

A checkpoint is written atomically (temporary file in the same folder, fsync, ``os.replace``), so a crash never
leaves a half-written file, and holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``. It records how the model was created (``model.zoo_config``), so
``zoo.load(path)`` rebuilds the model without the user re-typing its configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

CHECKPOINT_FORMAT = "zoo.checkpoint"
CHECKPOINT_VERSION = 1


def plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, torch.device):
        return str(value)
    name = getattr(value, "__qualname__", None) or type(value).__name__
    return f"<{name}>"


def unwrap(model: nn.Module) -> nn.Module:
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model."""


_PREFIXES = ("_orig_mod.", "module.")


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``_orig_mod.``/``module.`` prefixes torch.compile and DDP add, wherever they nest."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if key.startswith(p):
                    key, changed = key[len(p) :], True
            key = key.replace("._orig_mod.", ".").replace(".module.", ".") if "_orig_mod" in key else key
        out[key] = value
    return out


def model_config(model: nn.Module) -> dict[str, Any] | None:
    cfg = getattr(model, "zoo_config", None)
    return plain(cfg) if isinstance(cfg, dict) else None


def rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": plain(random.getstate())}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``: never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible on every OS)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot read checkpoint '{path}': it is truncated, corrupt or not a torch.save file "
            f"({type(exc).__name__}: {reason[:160]}); delete it or use another (e.g. best.pt)"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"'{path}' holds a {type(ckpt).__name__}, not a zoo checkpoint or a state dict")
    return ckpt


def _state_from(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    if ckpt.get("format") == CHECKPOINT_FORMAT:
        return ckpt["model"]
    return ckpt  # a bare state dict


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Any) -> None:
    try:
        model.load_state_dict(clean_state_dict(state))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(s.strip() for s in first[1:3])[:300]
        raise CheckpointError(f"weights in '{path}' do not fit this model: {detail}") from None


def save(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save a model's weights (no optimizer) atomically; ``zoo.load(path)`` rebuilds it.

    ``.safetensors`` paths get safetensors with ``zoo_config`` in its metadata; any other suffix a
    ``weights_only`` torch checkpoint.
    """
    path = Path(path)
    model = unwrap(model)
    state = {k: v.detach().cpu().contiguous() for k, v in clean_state_dict(model.state_dict()).items()}
    config = model_config(model)
    if path.suffix == ".safetensors":
        from safetensors.torch import save as st_save

        meta = {"format": CHECKPOINT_FORMAT, "zoo_config": json.dumps(config)} if config else {}
        data = st_save(_dedupe_shared(state), metadata=meta)
        atomic_write_bytes(data, path)
    else:
        atomic_save(
            {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": state, "model_config": config}, path
        )
    return path


def _dedupe_shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors sharing storage (tied weights): store copies
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def atomic_write_bytes(data: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike, model: nn.Module | None = None, *, map_location: Any = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint written by ``fit`` (``last.pt``, ``best.pt``) or ``save``.

    The checkpoint records the registry name and keywords the model was created with, so no configuration needs
    re-typing, and what ``fit`` recorded of the data (``zoo_config["data"]``: input size, normalisation, class
    names, task), so ``zoo.predict`` prepares new inputs as the training inputs were. Pass ``model`` to load the
    weights into a model you built yourself (needed for models not made by ``zoo.create``). Nothing pickled is
    executed: ``torch.load(weights_only=True)`` or safetensors.

    Returns:
        The model, in eval mode, on ``map_location``.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint '{path}' does not exist")
        try:
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path), device=str(map_location))
        except Exception as exc:
            raise CheckpointError(f"cannot read safetensors file '{path}': {str(exc)[:200]}") from None
        config = json.loads(meta["zoo_config"]) if meta.get("zoo_config") else None
    else:
        ckpt = read_checkpoint(path, map_location)
        state = _state_from(ckpt)
        config = ckpt.get("model_config") if ckpt.get("format") == CHECKPOINT_FORMAT else None
    if model is None:
        if not config:
            raise CheckpointError(
                f"'{path}' does not say which model it holds (it was not made by zoo.create); "
                f"build the model yourself and call zoo.load(path, model=model)"
            )
        from zoo.registry import create  # the engine otherwise knows nothing of the registry

        if "name" not in config:
            raise CheckpointError(
                f"'{path}' holds a model zoo did not create (its record has no registry name); build the model "
                f"yourself and call zoo.load(path, model=model)"
            )
        model = create(config["name"], **config.get("kwargs", {}))
    load_weights(model, state, path)
    if config and isinstance(config.get("data"), dict):  # what fit recorded: preprocessing, classes, task
        own = getattr(model, "zoo_config", None)
        if isinstance(own, dict):
            own["data"] = config["data"]
        else:
            model.zoo_config = {"data": config["data"]}
    return model.to(map_location).eval()
