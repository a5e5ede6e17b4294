"""timm's models as the zoo source ``timm/<name>``.

Every name of ``timm.list_models()`` is reachable as ``timm/<name>`` (and ``timm/<name>.<tag>`` for one of its
pretrained configurations, which sets the card's default input), built by ``timm.create_model(name,
pretrained=False, ...)`` with zoo's uniform keywords, which are timm's own:

- ``num_classes``, ``in_chans``, ``drop_rate`` -> the same keywords of ``timm.create_model``;
- ``img_size`` -> timm's ``img_size`` where the model has one (ViTs, Swin, MLP-Mixers, ...); a model without it
  (most CNNs end in global pooling) is built as is, and a size below its pretrained input is checked by one tiny
  forward so that a too-small input fails at creation;
- a model without ``drop_rate`` accepts ``drop_rate=0`` and refuses a positive rate.

Other keywords pass through to timm (``drop_path_rate=0.1``, ``global_pool="avg"``, ...). The model is built
with ``pretrained=False``; its weights come from ``zoo.create(name, weights=...)``: a local state dict in timm's own
format, or one of timm's pretrained tags (``weights="a1_in1k"``, or ``"DEFAULT"``: the tag in the name, else timm's
default), read offline first from the Hugging Face cache (``timm/<name>.<tag>``, where timm itself keeps them) or
torch's hub cache, with timm's preprocessing for those weights as the model's ``pretrained_cfg``. Nothing
downloads unless ``download=True`` (``zoo.foreign.timm_weights``).

This module never imports timm at import time: ``import timm`` (about 1.6 s) happens the first time a
``timm/...`` name is listed or created.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from zoo.bridges._common import arxiv_year, check_forward, make_builder, pair
from zoo.hookspecs import hookimpl

PREFIX = "timm"
URL = "https://huggingface.co/docs/timm"
# Python's "unexpected keyword argument 'x'" and timm's own "unexpected keyword argument(s): ['x', 'y']"
_UNEXPECTED = re.compile(r"unexpected keyword argument(?:\(s\))?:?\s*(\[[^\]]*\]|'\w+')")


def list_names() -> list[str]:
    """The names of timm's architectures (without the ``timm/`` prefix), as ``timm.list_models()``."""
    import timm

    return timm.list_models()


def _resolve(name: str) -> tuple[str, str | None]:
    """``(architecture, pretrained tag)`` of a timm name; ``KeyError`` if timm does not know it."""
    import timm
    from timm.models import get_arch_pretrained_cfgs, split_model_name_tag

    arch, tag = split_model_name_tag(name)
    if not timm.is_model(arch):
        raise KeyError(name)
    if tag and f"{arch}.{tag}" not in get_arch_pretrained_cfgs(arch):
        raise KeyError(name)
    return arch, tag or None


def _pretrained_cfg(name: str):
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(name, allow_unregistered=False)


def _build(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    img_size: int | tuple[int, int] | None = None,
    drop_rate: float | None = None,
    **kwargs: Any,
):
    import timm

    full = f"{PREFIX}/{name}"
    for key in ("pretrained_cfg_overlay", "pretrained_cfg"):
        if key in kwargs:
            raise TypeError(f"{full}: '{key}' is not passed to timm; zoo builds with pretrained=False")
    kw: dict[str, Any] = dict(kwargs)
    kw["in_chans"] = in_chans
    if num_classes is not None:
        kw["num_classes"] = num_classes
    if drop_rate is not None:
        kw["drop_rate"] = drop_rate
    size = pair(full, img_size) if img_size is not None else None
    if size is not None:
        kw["img_size"] = img_size if isinstance(img_size, int) else size
    took_size = size is not None
    if kw.get("checkpoint_path"):
        _check_checkpoint(full, kw["checkpoint_path"])
    while True:
        try:
            model = timm.create_model(name, pretrained=False, **kw)
            break
        except RuntimeError as exc:
            if kw.get("checkpoint_path") and "loading state_dict" in str(exc):
                raise _misfit(full, kw["checkpoint_path"], exc) from None
            raise
        except TypeError as exc:
            m = _UNEXPECTED.search(str(exc))
            unexpected = re.findall(r"'(\w+)'", m.group(1)) if m else []
            bad = next((k for k in ("img_size", "drop_rate") if k in unexpected), None)
            if bad == "img_size" and "img_size" in kw:
                kw.pop("img_size")  # no size parameter: a global-pooling model, built as is and checked below
                took_size = False
                continue
            if bad == "drop_rate" and "drop_rate" in kw:
                if kw["drop_rate"]:
                    raise ValueError(
                        f"{full} has no dropout to set (drop_rate={drop_rate}); use drop_rate=0 or leave it out"
                    ) from None
                kw.pop("drop_rate")
                continue
            raise
    if size is not None and not took_size:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        ref = cfg.get("min_input_size") or cfg.get("input_size")
        if ref is not None and min(size) < min(ref[1:]):
            what = "min_input_size" if cfg.get("min_input_size") else "pretrained input_size"
            check_forward(model, full, in_chans, size, f"timm's {what} is {ref[1]} px and the model has no img_size")
    return model


_ACCEPTED = (
    "accepted: a .safetensors file, or a torch.save file of tensors read with weights_only=True (pickled code never "
    "runs; zoo does not load it unsafely), or timm's .npz"
)


def _check_checkpoint(full: str, path: Any) -> None:
    """Read ``checkpoint_path=`` with zoo's own readers before timm does, so that a file timm's ``torch.load`` would
    refuse is a one-line ``CheckpointError`` saying what is accepted, not torch's advice to load it unsafely."""
    from pathlib import Path

    from zoo.weights import CheckpointError, check_file, read_checkpoint, read_safetensors

    file = Path(path)
    try:
        check_file(file, "file")
        if file.suffix.lower() in (".npz", ".npy"):  # timm reads these with numpy, which unpickles nothing
            return
        state = read_safetensors(file)[0] if file.suffix == ".safetensors" else read_checkpoint(file)
    except FileNotFoundError:
        raise FileNotFoundError(f"{full}: checkpoint_path='{file}' does not exist") from None
    except CheckpointError as exc:
        reason = str(exc).split("; delete it")[0]  # zoo's reader's advice is for its own run folders
        raise CheckpointError(f"{full}: checkpoint_path is not a safe checkpoint: {reason}; {_ACCEPTED}") from None
    del state  # timm reads it again, the same way (weights_only=True), and loads it


def _misfit(full: str, path: Any, exc: RuntimeError) -> Exception:
    from zoo.weights import CheckpointError

    lines = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
    detail = "; ".join(lines)[:300] or str(exc).splitlines()[0]
    return CheckpointError(f"{full}: checkpoint_path='{path}' does not fit the model: {detail}")


def _make_builder(name: str) -> Callable[..., Any]:
    doc = (
        f"timm's ``{name}`` via ``timm.create_model(pretrained=False)``, with zoo's num_classes, in_chans, "
        "img_size and drop_rate; other keywords go to timm. ``None`` keeps timm's default."
    )
    return make_builder(_build, name, doc)


def get_model(name: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """``(builder, metadata)`` for ``timm/<name>``; ``KeyError`` if timm has no such model."""
    from timm.models import get_arch_pretrained_cfgs, model_entrypoint

    arch, _ = _resolve(name)
    cfg = _pretrained_cfg(name)
    family = model_entrypoint(arch).__module__.rsplit(".", 1)[-1]
    tags = tuple(k.split(".", 1)[1] for k in get_arch_pretrained_cfgs(arch) if "." in k)
    paper = url = None
    input_size = None
    notes = []
    if cfg is not None:
        paper = cfg.paper_name or cfg.paper_ids or None
        input_size = tuple(cfg.input_size) if cfg.input_size else None
        if cfg.hf_hub_id and cfg.hf_hub_id != "timm/":
            url = f"https://huggingface.co/{cfg.hf_hub_id}"
        else:
            url = cfg.origin_url or cfg.url or None
        if cfg.paper_name or cfg.paper_ids:
            notes.append("Paper of the default pretrained configuration.")
        if cfg.fixed_input_size:
            notes.append("Fixed input size unless img_size is given (timm's fixed_input_size).")
    if tags:
        notes.append(f"timm's pretrained tags (weights=TAG, read from the caches): {', '.join(tags)}.")
    metadata: dict[str, Any] = {
        "family": family,
        "paper": paper,
        "year": arxiv_year(cfg.paper_ids if cfg is not None else None),
        "input_size": input_size,
        "num_classes": cfg.num_classes if cfg is not None and cfg.num_classes is not None else 1000,
        "tags": tags,
        "description": f"timm.create_model({name!r})",
        "url": url or URL,
        "notes": " ".join(notes) or None,
    }
    return _make_builder(name), metadata


@hookimpl
def register_model_sources(register):
    register(
        PREFIX,
        list_names,
        get_model,
        description="timm (PyTorch Image Models), built with pretrained=False",
        url=URL,
    )
