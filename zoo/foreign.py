"""Checkpoints written by other libraries: Lightning's ``.ckpt``, ``{"state_dict": ...}`` training checkpoints and a
``model.safetensors`` next to its folder's ``config.json``.

A Lightning checkpoint holds the LightningModule's ``state_dict``: the model's weights under the attribute that holds
the model (``net.``, ``model.``), next to whatever else the module owns (a loss's class weights, metrics' buffers),
and besides it the epoch, the optimizer states, the loops, the hyper-parameters. ``zoo.weights`` reads it with
``torch.load(weights_only=True)`` (nothing pickled runs: a checkpoint whose hyper-parameters hold pickled objects
is refused in one line naming the object) and keeps the ``state_dict``; ``strip_owner_prefix`` then finds the
attribute prefix under which the keys are exactly the model's and drops it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

__all__ = ["is_training_checkpoint", "strip_owner_prefix", "sibling_config", "timm_zoo_config"]

# what Lightning (and timm's train.py) put next to the weights: a dict with these is a training checkpoint
_TRAINING_KEYS = ("pytorch-lightning_version", "epoch", "global_step", "optimizer_states", "optimizer")


def is_training_checkpoint(ckpt: dict[str, Any]) -> bool:
    """A ``{"state_dict": {...}, "epoch": ..., ...}`` dict: Lightning's layout (and timm's train checkpoints')."""
    return isinstance(ckpt.get("state_dict"), dict) and any(k in ckpt for k in _TRAINING_KEYS)


def strip_owner_prefix(state: dict[str, Any], own: Collection[str]) -> dict[str, Any]:
    """The entries of ``state`` under the one prefix (``"net."``, ``"model.backbone."``) whose keys, stripped of
    it, are exactly ``own`` (a model's ``state_dict()`` keys); ``state`` itself when none is, or when it fits already.

    A LightningModule stores its model under the attribute that holds it, with the module's other state beside it.
    """
    own = set(own)
    if not own or set(state) == own:
        return state
    prefixes = {key[: i + 1] for key in state for i, ch in enumerate(key) if ch == "."}
    for prefix in sorted(prefixes, key=len):  # the shortest: the outermost attribute
        inner = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(inner) == own:
            return inner
    return state


def sibling_config(path: Path) -> Path | None:
    """The ``config.json`` beside a ``model.safetensors`` (a Hugging Face folder given by its weights file)."""
    config = path.with_name("config.json")
    return config if path.name == "model.safetensors" and config.is_file() else None


def timm_zoo_config(config: dict[str, Any]) -> dict[str, Any] | None:
    """The ``zoo_config`` of a folder timm wrote (``save_for_hf``, ``push_to_hub``: ``architecture``,
    ``num_classes``, ``pretrained_cfg``, ``model_args``), rebuilt as ``timm/<architecture>``; ``None`` for another
    layout. zoo's own ``config.json`` says ``"library_name": "zoo"``."""
    arch = config.get("architecture")
    if config.get("library_name") == "zoo" or not isinstance(arch, str) or "pretrained_cfg" not in config:
        return None
    kwargs = dict(config.get("model_args") or {})
    if isinstance(config.get("num_classes"), int):
        kwargs.setdefault("num_classes", config["num_classes"])
    return {"name": arch if "/" in arch else f"timm/{arch}", "kwargs": kwargs}
