"""torchvision's classification models as the zoo source ``torchvision/<name>``.

Every name of ``torchvision.models.list_models(module=torchvision.models)`` (the ImageNet classifiers; not the
detection, segmentation, video, optical-flow or quantized models) is reachable as ``torchvision/<name>`` with
zoo's uniform keywords:

- ``num_classes`` -> torchvision's ``num_classes``;
- ``in_chans`` -> the first ``Conv2d`` is rebuilt with ``in_chans`` input channels from the RGB kernel (summed for
  one channel, repeated and rescaled for more, as timm's ``adapt_input_conv``);
- ``img_size`` -> ``image_size`` for the ViTs, ``input_size`` for MaxViT; the other models have no size
  parameter (global pooling), so a size below torchvision's documented minimum is checked by one tiny forward;
- ``drop_rate`` -> ``dropout`` (or DenseNet's ``drop_rate``); a model with no dropout (ResNet, RegNet, ConvNeXt,
  ShuffleNet, MaxViT) accepts ``drop_rate=0`` and refuses a positive rate.

Other keywords pass through to torchvision's builder (``aux_logits=False``, ``stochastic_depth_prob=0.1``, ...).
Weights are never downloaded (``weights=None`` always); ``zoo.create(name, weights=path)`` loads a local
state dict, e.g. a file from torchvision's download cache.

Registering this source imports nothing of torchvision: the names are listed, and the metadata read from the
weights enums, only when a ``torchvision/...`` name is asked for.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from zoo.bridges._common import adapt_input_conv, arxiv_year, check_forward, make_builder, pair
from zoo.hookspecs import hookimpl
from zoo.messages import first_line

PREFIX = "torchvision"
URL = "https://pytorch.org/vision/stable/models.html"
# A builder's docstring names its paper as a reST link: "ResNet-18 from `Deep Residual Learning ... <url>`__."
_DOC_LINK = re.compile(r"`([^`]+?)\s*<(https?://[^>]+)>`")
# torchvision's `_vision_transformer` builds at image_size=224 when no weights are given.
_VIT_DEFAULT_SIZE = 224


@functools.cache
def _names() -> tuple[str, ...]:
    import torchvision.models as tvm

    return tuple(tvm.list_models(module=tvm))


def list_names() -> list[str]:
    """The names of torchvision's classification models (without the ``torchvision/`` prefix)."""
    return list(_names())


@functools.cache
def _model_class(name: str) -> type:
    import torchvision.models as tvm

    return inspect.signature(tvm.get_model_builder(name)).return_annotation


@functools.cache
def _class_params(name: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(_model_class(name)).parameters)


def _size_keyword(name: str) -> str | None:
    params = _class_params(name)
    return next((k for k in ("image_size", "input_size") if k in params), None)


def _dropout_keyword(name: str) -> str | None:
    params = _class_params(name)
    return next((k for k in ("dropout", "drop_rate") if k in params), None)


@functools.cache
def _weights_info(name: str) -> tuple[tuple[str, ...], int | None, int | None, int | None]:
    """``(weight tags, default input side, documented minimum side, parameter count at defaults)``."""
    import torchvision.models as tvm

    enum = tvm.get_model_weights(name)
    members = list(enum)
    tags = tuple(w.name for w in members)
    default = enum.DEFAULT
    if _size_keyword(name) == "image_size":  # ViT: the weightless build is 224 px; pick weights trained there
        side = _VIT_DEFAULT_SIZE
        same = [w for w in members if tuple(w.meta["min_size"]) == (side, side)]
        num_params = same[0].meta["num_params"] if same else None
        return tags, side, side, num_params
    crop = getattr(default.transforms, "keywords", {}).get("crop_size")
    side = int(crop) if crop else None
    min_side = min(default.meta["min_size"]) if default.meta.get("min_size") else None
    # The weights drop torchvision's auxiliary heads (GoogLeNet, Inception v3), which the weightless build has
    # by default, so the weights' count is the architecture's only where no such head exists.
    num_params = None if "aux_logits" in _class_params(name) else default.meta.get("num_params")
    return tags, side, min_side, num_params


def _paper(name: str) -> tuple[str | None, str | None]:
    import torchvision.models as tvm

    doc = " ".join((tvm.get_model_builder(name).__doc__ or "").split())
    m = _DOC_LINK.search(doc)
    if m is None:
        return None, None
    title, url = m.group(1).strip(), m.group(2)
    return (title if "arxiv.org" in url else None), url


def _build(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    img_size: int | tuple[int, int] | None = None,
    drop_rate: float | None = None,
    **kwargs: Any,
):
    import torchvision.models as tvm

    full = f"{PREFIX}/{name}"
    if "weights" in kwargs:  # zoo.create handles weights=; here it could only mean a torchvision download
        raise TypeError(
            f"{full}: weights are loaded by zoo.create(name, weights=PATH_OR_STATE_DICT); nothing downloads"
        )
    params = _class_params(name)
    kw: dict[str, Any] = dict(kwargs)
    if num_classes is not None:
        kw["num_classes"] = num_classes
    if drop_rate is not None:
        key = _dropout_keyword(name)
        if key is not None:
            kw[key] = drop_rate
        elif drop_rate > 0:
            other = " (it has stochastic_depth_prob=)" if "stochastic_depth_prob" in params else ""
            raise ValueError(
                f"{full} has no dropout to set (drop_rate={drop_rate}){other}; use drop_rate=0 or leave it out"
            )
    if "init_weights" in params and params["init_weights"].default is None:
        kw.setdefault("init_weights", True)  # what torchvision does anyway, without its FutureWarning
    size = pair(full, img_size) if img_size is not None else None
    size_kw = _size_keyword(name)
    if size is not None and size_kw == "image_size":
        patch = int(name.rsplit("_", 1)[-1])  # vit_b_16: patch 16
        if size[0] != size[1] or size[0] % patch:
            near = max(patch, round(size[0] / patch) * patch)
            raise ValueError(
                f"{full} takes a square img_size that is a multiple of its patch size {patch}, got {img_size!r}; "
                f"nearest: {near}"
            )
        kw["image_size"] = size[0]
    elif size is not None and size_kw == "input_size":
        kw["input_size"] = size
    kw.setdefault("progress", False)
    try:
        model = tvm.get_model(name, weights=None, **kw)
    except (AssertionError, ValueError) as exc:  # e.g. a ViT size that its patch does not divide
        first = first_line(str(exc)) or type(exc).__name__
        shown = {k: v for k, v in kw.items() if k != "progress"}
        raise ValueError(f"{full}: torchvision cannot build it with {shown}: {first}") from exc
    if in_chans != 3:
        adapt_input_conv(model, in_chans, full)
    if size is not None:
        _, _, min_side, _ = _weights_info(name)
        if min_side is not None and min(size) < min_side:
            check_forward(model, full, in_chans, size, f"torchvision documents a minimum of {min_side} px")
    return model


def _make_builder(name: str) -> Callable[..., Any]:
    doc = (
        f"torchvision's ``{name}`` (weights=None), with zoo's num_classes, in_chans, img_size and drop_rate; "
        "other keywords go to torchvision's builder. ``None`` keeps torchvision's default."
    )
    return make_builder(_build, name, doc)


def get_model(name: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """``(builder, metadata)`` for ``torchvision/<name>``; ``KeyError`` if torchvision has no such classifier."""
    if name not in _names():
        raise KeyError(name)
    import torchvision.models as tvm

    family = tvm.get_model_builder(name).__module__.rsplit(".", 1)[-1]
    tags, side, min_side, num_params = _weights_info(name)
    paper, url = _paper(name)
    notes = [f"torchvision's weights (not downloaded; pass weights=PATH): {', '.join(tags)}."]
    if min_side is not None and min_side > 1 and _size_keyword(name) is None:
        notes.append(f"torchvision documents a minimum input of {min_side} px; smaller sizes are checked at creation.")
    if _size_keyword(name) == "image_size":
        notes.append("img_size sets the ViT's image_size (a multiple of the patch size).")
    if _dropout_keyword(name) is None:
        notes.append("No dropout: drop_rate must be 0.")
    if "aux_logits" in _class_params(name):
        notes.append("Auxiliary heads are on (torchvision's default); pass aux_logits=False for plain logits.")
    metadata: dict[str, Any] = {
        "family": family,
        "paper": paper,
        "year": arxiv_year(url),
        "input_size": (3, side, side) if side else None,
        "num_classes": 1000,
        "tags": tags,
        "description": f"torchvision.models.{name}",
        "url": url or URL,
        "notes": " ".join(notes),
        "num_params": num_params,
    }
    return _make_builder(name), metadata


@hookimpl
def register_model_sources(register):
    register(
        PREFIX,
        list_names,
        get_model,
        description="torchvision's ImageNet classification models, built without weights",
        url=URL,
    )
