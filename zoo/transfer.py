"""Transfer learning at creation: fit weights made for one configuration of a model to another, as timm does.

``zoo.create(name, weights=..., num_classes=10, in_chans=1, img_size=48)`` builds the model it is asked for and
loads into it what of the weights still fits:

- **a new head** when ``num_classes`` differs from the weights': the classifier (found through the model's
  ``get_classifier()``, timm's ``pretrained_cfg["classifier"]``, or as the model's last layer) keeps the builder's
  fresh initialisation, and so does any other head layer whose shape changed with it (LeNet's first fully
  connected layer, whose input depends on the image size);
- **the stem** when ``in_chans`` differs: the first convolution's kernel is adapted by timm's rule
  (``timm.models.adapt_input_conv``): for one channel the sum over the weights' channels, for more their repetition
  scaled by ``weights' channels / in_chans``, so that a grey image repeated over the channels gives the same output;
- **the position embeddings** when ``img_size`` changes a ViT's patch grid: interpolated bicubically over the grid,
  the class token's embedding kept (``timm.layers.resample_abs_pos_embed``).

Each adaptation happens only for a keyword the caller passed (``model.zoo_config["kwargs"]``): weights that do not
fit a model built at its defaults are refused in one line naming the keyword that would make them fit. Anything
else that does not fit is refused in one line too. What was adapted is recorded on the model
(``model.zoo_config["transfer"]``) and said once in a ``TransferWarning``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "TransferReport",
    "TransferWarning",
    "adapt_state_dict",
    "adapt_input_conv",
    "resample_pos_embed",
    "adapt_pretrained_cfg",
]

# Top-level modules that belong to a classification head by timm's and torchvision's naming.
HEAD_NAMES = ("head", "heads", "fc", "classifier", "pre_logits", "head_drop")


class TransferWarning(UserWarning):
    """Weights were adapted to the model they were loaded into (a new head, an adapted stem, resampled
    position embeddings)."""


@dataclass
class TransferReport:
    """What ``adapt_state_dict`` did.

    Attributes:
        fresh: the model's keys left as its builder initialised them (the new head).
        dropped: the weights' keys that were not used (the old head).
        stem: ``[key, weights' channels, model's channels]`` of an adapted first convolution, else ``None``.
        pos_embed: ``[key, weights' grid, model's grid]`` of resampled position embeddings, else ``None``.
    """

    fresh: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    stem: list[Any] | None = None
    pos_embed: list[Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.fresh or self.dropped or self.stem or self.pos_embed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        parts = []
        if self.fresh or self.dropped:
            parts.append(
                f"new head: {', '.join(self.fresh) or 'none'} (the weights' {', '.join(self.dropped)} dropped)"
            )
        if self.stem:
            key, src, dst = self.stem
            parts.append(f"{key} adapted from {src} to {dst} input channels")
        if self.pos_embed:
            key, src, dst = self.pos_embed
            parts.append(f"{key} interpolated from the {src[0]}x{src[1]} patch grid to {dst[0]}x{dst[1]}")
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------------
# The two adaptations (timm's rules)
# ---------------------------------------------------------------------------------------------------------


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first convolution's ``O x I x kH x kW`` kernel for ``in_chans`` input channels: for 1 the sum over the
    ``I`` channels; for more the channels repeated (and cut) to ``in_chans``, scaled by ``I / in_chans``."""
    dtype, w = weight.dtype, weight.float()  # half-precision weights: sum in float32
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    else:
        repeat = math.ceil(in_chans / w.shape[1])
        w = w.repeat(1, repeat, 1, 1)[:, :in_chans] * (w.shape[1] / in_chans)
    return w.to(dtype)


def resample_pos_embed(
    pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int], num_prefix_tokens: int = 1
) -> torch.Tensor:
    """``1 x (P + H*W) x D`` position embeddings for another ``H x W`` patch grid: the ``P`` prefix (class token)
    embeddings kept, the grid's interpolated bicubically (with antialiasing when it shrinks), as timm does."""
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim, dtype = grid.shape[-1], grid.dtype
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # 1 x D x H x W
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False, antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(dtype)  # 1 x H'W' x D
    return torch.cat([prefix, grid], dim=1)


# ---------------------------------------------------------------------------------------------------------
# Finding the head, the stem and the position embeddings of a model
# ---------------------------------------------------------------------------------------------------------


def classifier_name(model: nn.Module) -> str | None:
    """The module name of ``model.get_classifier()`` (``"fc"``, ``"classifier"``, ``"head"``): timm's
    ``pretrained_cfg["classifier"]``, which its optimizer factory and checkpoint filters read; None without one."""
    get = getattr(model, "get_classifier", None)
    if not callable(get):
        return None
    try:
        clf = get()
    except Exception:  # a plugin's get_classifier failing: no name
        return None
    return next((n for n, m in model.named_modules(remove_duplicate=False) if n and m is clf), None)


def classifier_names(model: nn.Module) -> list[str]:
    """The module names of ``model``'s classifier: ``get_classifier()``'s, timm's ``pretrained_cfg["classifier"]``,
    else the last module holding parameters (the last layer of a plain ``nn.Sequential``)."""
    name = classifier_name(model)
    if name:
        return [name]
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and cfg.get("classifier"):
        declared = cfg["classifier"]
        return [declared] if isinstance(declared, str) else [str(c) for c in declared]
    last = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    return last[-1:]


def _under(key: str, names: list[str] | tuple[str, ...]) -> bool:
    return any(key == n or key.startswith(n + ".") for n in names)


def _in_head(key: str, model: nn.Module, names: tuple[str, ...] = ()) -> bool:
    """Whether ``key`` belongs to a classification head: ``HEAD_NAMES``, ``names``, or the model's own
    ``head_modules`` (LeNet-5's fully connected ``fc1``/``fc2``/``fc3``, named as in the tutorials)."""
    return _under(key, (*names, *HEAD_NAMES, *getattr(model, "head_modules", ())))


def _grid_of(model: nn.Module) -> tuple[int, int] | None:
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    return (int(grid[0]), int(grid[1])) if grid is not None and len(grid) == 2 else None


def explicit_keywords(model: nn.Module) -> set[str]:
    """The keywords the model was created with (``model.zoo_config["kwargs"]``): only those may adapt weights."""
    cfg = getattr(model, "zoo_config", None)
    kwargs = cfg.get("kwargs") if isinstance(cfg, dict) else None
    return {k for k, v in kwargs.items() if v is not None} if isinstance(kwargs, dict) else set()


def _accepts(model: nn.Module, keyword: str) -> bool:
    try:
        return keyword in inspect.signature(type(model)).parameters
    except (TypeError, ValueError):
        return False


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(s) for s in t.shape) or "scalar"


# ---------------------------------------------------------------------------------------------------------
# adapt_state_dict
# ---------------------------------------------------------------------------------------------------------


class _Refusal(ValueError):
    pass


def _mismatch(key: str, src: torch.Tensor, own: torch.Tensor, hint: str) -> str:
    return f"size mismatch for {key}: {_shape(src)} in the weights, {_shape(own)} here; {hint}"


def _head(model, state, own, adapt, report) -> None:
    """Drop the weights' classifier (and head layers whose shape changed with it) when ``num_classes`` was asked
    for and differs; refuse a different classifier otherwise."""
    names = classifier_names(model)
    if not names:
        return  # nothing holds parameters: nothing to drop
    clf_own = [k for k in own if _under(k, names)]
    clf_src = [k for k in state if _under(k, names)]
    changed = set(clf_own) != set(clf_src) or any(state[k].shape != own[k].shape for k in clf_own if k in state)
    if not changed:
        return
    if "num_classes" not in adapt:
        key = next((k for k in clf_own if k in state and state[k].shape != own[k].shape), None)
        if key is None:
            return  # a missing or extra key: fit_weights names it
        classes = state[key].shape[0]
        raise _Refusal(
            _mismatch(
                key,
                state[key],
                own[key],
                f"the weights have {classes} classes: pass num_classes={classes} to keep their classifier, or "
                f"num_classes=N to train a new one",
            )
        )
    # head layers whose shape changed with the classes (LeNet's first fully connected layer): new, whole
    changed_layers = [k.rsplit(".", 1)[0] for k in own if k in state and state[k].shape != own[k].shape]
    layers = [*names, *(n for n in changed_layers if _in_head(n, model, (names[0].split(".")[0],)))]
    report.fresh.extend(k for k in own if _under(k, layers))
    for key in list(state):
        if key in report.fresh or _under(key, names):
            report.dropped.append(key)
            del state[key]


def _stem(key, state, own, adapt, report, model) -> bool:
    """Adapt the first convolution to ``in_chans``; ``False`` when its mismatch is not the channels'."""
    src, dst = state[key], own[key]
    if src.ndim != 4 or src.shape[0] != dst.shape[0]:
        return False
    if src.shape[2:] != dst.shape[2:]:
        k = src.shape[-1]
        if _accepts(model, "patch_size"):
            hint = f"the weights' patches are {k}x{k}: pass patch_size={k}"
        elif _accepts(model, "small_stem"):
            small = k < dst.shape[-1]
            stem = "small-image" if small else "ImageNet"
            hint = f"the weights were made for the {stem} stem: pass small_stem={small}"
            hint += "" if small else " (it may need larger images: load the data with a larger img_size)"
        else:
            hint = "the weights were made for another image size: pass the weights' img_size"
        raise _Refusal(_mismatch(key, src, dst, hint))
    if "in_chans" not in adapt:
        c, n = src.shape[1], dst.shape[1]
        hint = f"the weights take {c}-channel images: pass in_chans={c}, or in_chans={n} to adapt their first layer"
        raise _Refusal(_mismatch(key, src, dst, hint))
    state[key] = adapt_input_conv(src, dst.shape[1])
    report.stem = [key, int(src.shape[1]), int(dst.shape[1])]
    return True


def _pos_embed(key, state, own, adapt, report, model) -> bool:
    """Resample a ViT's position embeddings to the model's patch grid; ``False`` when they are not that."""
    src, dst = state[key], own[key]
    if not key.endswith("pos_embed") or src.ndim != 3 or src.shape[::2] != dst.shape[::2]:
        return False
    new = _grid_of(model) or (math.isqrt(dst.shape[1] - 1),) * 2
    prefix = dst.shape[1] - new[0] * new[1]
    side = math.isqrt(max(src.shape[1] - prefix, 0))
    if prefix < 0 or side * side != src.shape[1] - prefix:
        return False
    if "img_size" not in adapt:
        patch = getattr(model, "patch_size", None)
        size = f" ({side * patch} px)" if isinstance(patch, int) else ""
        hint = f"the weights are for a {side}x{side} patch grid{size}: pass img_size= explicitly to interpolate them"
        raise _Refusal(_mismatch(key, src, dst, hint))
    state[key] = resample_pos_embed(src, new, (side, side), prefix)
    report.pos_embed = [key, [side, side], list(new)]
    return True


def adapt_state_dict(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source_name: str = "the weights",
    adapt: set[str] | None = None,
) -> tuple[dict[str, torch.Tensor], TransferReport]:
    """Fit ``state`` (in ``model``'s key names) to ``model``: a new head, an adapted stem, resampled position
    embeddings, each only where the keyword that calls for it is in ``adapt``.

    Args:
        model: the model the weights go into, built with the caller's keywords.
        state: its state dict as the weights hold it (converted to the model's names already).
        source_name: how errors name the weights' owner (``"'lenet5'"``).
        adapt: the keywords that may adapt weights (``num_classes``, ``in_chans``, ``img_size``); ``None``: those
            the model was created with (``model.zoo_config["kwargs"]``).

    Returns:
        ``(state, report)``: the adapted state dict, without the keys the model keeps fresh, and what was done.

    Raises:
        ValueError: one line, ``"weights do not fit NAME: size mismatch for KEY: ...; what to pass"``.
    """
    own = model.state_dict()
    adapt = explicit_keywords(model) if adapt is None else set(adapt)
    state, report = dict(state), TransferReport()
    try:
        _head(model, state, own, adapt, report)
        stem = next((k for k, v in own.items() if v.ndim == 4), None)
        for key in [k for k in own if k in state and state[k].shape != own[k].shape]:
            if key == stem and _stem(key, state, own, adapt, report, model):
                continue
            if _pos_embed(key, state, own, adapt, report, model):
                continue
            raise _Refusal(_mismatch(key, state[key], own[key], _other_hint(key, model, report)))
    except _Refusal as exc:
        raise ValueError(f"weights do not fit {source_name}: {exc}") from None
    return state, report


def _other_hint(key: str, model: nn.Module, report: TransferReport) -> str:
    if _in_head(key, model) and not report.fresh:
        return (
            "the head's input depends on the image size: pass num_classes= to train a new head, "
            "or the weights' img_size"
        )
    if key.endswith("pos_embed"):
        return "the position embeddings do not fit the patch grid: pass the weights' img_size and patch_size"
    return "create the model with the keywords the weights were made with"


def adapt_pretrained_cfg(cfg: dict[str, Any], kwargs: dict[str, Any], report: TransferReport) -> dict[str, Any]:
    """The weights' ``pretrained_cfg`` (their preprocessing, timm's keys) for the model they were adapted to: no
    class names for a new head, the model's channels (mean/std averaged over the weights' channels, as the
    adapted stem sums them) and image size (resized in the weights' crop ratio)."""
    cfg = dict(cfg)
    if report.fresh or report.dropped:
        cfg["num_classes"], cfg["label_names"] = kwargs.get("num_classes"), None
    size = cfg.get("input_size")
    if not size or len(size) != 3:
        return cfg
    c, h, w = size
    chans = kwargs.get("in_chans", c)
    if chans != c:
        for key in ("mean", "std"):
            if cfg.get(key):
                cfg[key] = (sum(cfg[key]) / len(cfg[key]),) * chans
    img = kwargs.get("img_size")
    if img is not None:
        h, w = (img, img) if isinstance(img, int) else tuple(img)
        if cfg.get("resize_size") and cfg.get("crop_pct"):
            cfg["resize_size"] = int(math.floor(min(h, w) / cfg["crop_pct"]))
    cfg["input_size"] = (chans, h, w)
    return cfg
