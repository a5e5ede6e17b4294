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

import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

__all__ = [
    "is_training_checkpoint", "strip_owner_prefix", "sibling_config", "timm_zoo_config", "is_timm_tag", "timm_tag",
    "timm_weights",
]  # fmt: skip

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


# ---------------------------------------------------------------------------------------------------------
# timm's pretrained tags (timm/<name>, weights="a1_in1k"): offline first, from the caches timm itself fills
# ---------------------------------------------------------------------------------------------------------


def is_timm_tag(weights: Any) -> bool:
    """A string that can only name timm weights: ``"DEFAULT"`` or a tag (lower case, no dots), and no such file."""
    tag_like = isinstance(weights, str) and (weights == "DEFAULT" or re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", weights))
    return bool(tag_like) and not os.path.exists(weights)


def timm_tag(name: str, weights: str) -> tuple[str, str]:
    """``(architecture, tag)`` that ``weights`` names for ``timm/<name>``: a tag of the architecture, or
    ``"DEFAULT"`` (the tag in ``name``, else timm's default for it). ``ValueError`` listing the tags otherwise."""
    from timm.models import get_arch_pretrained_cfgs, get_pretrained_cfg, split_model_name_tag

    from zoo.suggest import suggest

    arch, name_tag = split_model_name_tag(name)
    tags = [k.split(".", 1)[1] for k in get_arch_pretrained_cfgs(arch) if "." in k]
    if weights == "DEFAULT":
        default = get_pretrained_cfg(arch)
        weights = name_tag or (default.tag if default is not None else None)
    if not weights or weights not in tags:
        listed, close = ", ".join(tags) or "none", suggest(weights or "", tags)
        raise ValueError(f"timm/{arch} has no pretrained weights tagged {weights!r}; its tags: {listed}{close}")
    return arch, weights


def _timm_file(arch: str, tag: str, download: bool) -> Path:
    """The weights file of ``arch.tag``: the Hugging Face cache (``timm/<arch>.<tag>``), else torch's hub cache
    (the release URL's file); fetched into the first with ``download=True``."""
    import torch
    from timm.models import get_pretrained_cfg

    from zoo.hub import hub_folder

    cfg = get_pretrained_cfg(f"{arch}.{tag}")
    looked = []
    if cfg.hf_hub_id:
        try:
            folder = hub_folder(f"hf-hub:{cfg.hf_hub_id}", download=download)
        except FileNotFoundError as exc:
            looked.append(str(exc).split("(zoo looked in ", 1)[-1].split(")", 1)[0])
        else:
            if (folder / "model.safetensors").is_file():
                return folder / "model.safetensors"
    if cfg.url:
        hub_file = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url.split("?")[0]).name
        if hub_file.is_file():
            return hub_file
        looked.append(str(hub_file))
        if download and not cfg.hf_hub_id:
            hub_file.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(cfg.url, str(hub_file), progress=False)
            return hub_file
    where = ", ".join(f"'{p}'" for p in looked) or "nowhere (timm names no file for them)"
    raise FileNotFoundError(
        f"timm weights {arch}.{tag} are not in any cache (zoo looked in {where}); zoo downloads nothing unless "
        f"asked: zoo.create('timm/{arch}', weights='{tag}', download=True)"
    )


def timm_weights(name: str, weights: str, download: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(state dict, pretrained_cfg, implied keywords)`` of timm's pretrained weights ``weights`` (a tag, or
    ``"DEFAULT"``) for ``timm/<name>``, read offline first; the ``pretrained_cfg`` is timm's own for the tag."""
    from timm.models import get_pretrained_cfg

    from zoo.weights import read_state_dict

    arch, tag = timm_tag(name, weights)
    path = _timm_file(arch, tag, download)
    cfg = {k: v for k, v in get_pretrained_cfg(f"{arch}.{tag}").to_dict().items() if v is not None}
    cfg.update(architecture=arch, tag=tag, source="timm", weights=f"timm/{arch}.{tag}")
    return read_state_dict(path), cfg, {}
