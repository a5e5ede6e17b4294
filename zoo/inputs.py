"""The input record: how a model wants its inputs, in one type.

``fit`` writes one on the model it trains (from the data it saw), ``zoo.create(name, weights=...)`` on a model made
with published weights (from their transforms), and checkpoints keep it, under ``model.zoo_config["inputs"]`` as a
plain dict; ``zoo.predict``, ``zoo.embed`` and ``zoo.evaluate`` read it back (``InputRecord.of(model)``) to prepare new
inputs exactly as the model's training or evaluation inputs were. ``to_timm_cfg()`` / ``from_timm_cfg()`` translate
it to and from timm's ``pretrained_cfg`` (which ``timm.data.resolve_data_config`` reads).

Images are uint8 (``input_dtype="uint8"``) resized so that their shorter side is ``resize_size``, centre-cropped to
``crop_size``, scaled to [0, 1] and normalised with ``mean``/``std``; without a resize and crop, they are resized to
cover ``input_size`` and centre-cropped (as zoo's image folders are read).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["InputRecord", "read_zoo_config", "crop_pct", "MAX_IMAGE_SIDE", "MAX_FEATURES", "MIN_STD"]

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
MAX_IMAGE_SIDE = 8192  # px: one 3 x 8192 x 8192 float image is 800 MB; a record asking for more is refused
MAX_FEATURES = 1 << 24  # a table's features per sample
MIN_STD = 1e-4  # in [0, 1] units: below, normalising multiplies by over 40,000 (zoo's statistics floor at 1e-3)


def _ints(value: Any, name: str = "a size") -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        values = tuple(value)
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer() for v in values):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise _bad(name, value, "whole numbers") from None
    return tuple(int(v) for v in values)


def _floats(value: Any, name: str = "a value") -> tuple[float, ...] | None:
    try:
        return None if value is None else tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise _bad(name, value, "numbers, one per channel") from None


def _bad(name: str, value: Any, accepted: str) -> ValueError:
    text = repr(value)
    return ValueError(
        f"input record: {name}={text if len(text) <= 80 else text[:77] + '...'} is refused; accepted: {accepted}"
    )


def _sizes(name: str, value: Any, most: int, accepted: str) -> None:
    if value is not None and not all(1 <= v <= most for v in value):
        raise _bad(name, list(value), accepted)


def _check(record: InputRecord) -> None:
    """Values a model's record may hold: what ``predict`` and ``evaluate`` allocate and divide by comes from it."""
    size = record.input_size
    if size is not None:
        what = f"(C, H, W) with H, W in 1..{MAX_IMAGE_SIDE}, or (F,) with F in 1..{MAX_FEATURES}"
        _sizes("input_size", size, MAX_FEATURES, what)
        if len(size) == 3 and not all(1 <= v <= MAX_IMAGE_SIDE for v in size[1:]):
            raise _bad("input_size", list(size), what)
    _sizes("crop_size", record.crop_size, MAX_IMAGE_SIDE, f"(H, W) in 1..{MAX_IMAGE_SIDE}")
    resize = record.resize_size
    _sizes("resize_size", (resize,) if isinstance(resize, int) else resize, MAX_IMAGE_SIDE, f"1..{MAX_IMAGE_SIDE}")
    for name, values in (("mean", record.mean), ("std", record.std)):
        if values is not None and not all(math.isfinite(v) for v in values):
            raise _bad(name, list(values), "finite numbers, one per channel")
    if record.std is not None and not all(v >= MIN_STD for v in record.std):
        raise _bad("std", list(record.std), f"per-channel standard deviations >= {MIN_STD} (in [0, 1] units)")


def crop_pct(crop: int, resize: int) -> float:
    """timm's ``crop_pct`` for a resize then a crop: ``crop / resize``, nudged down by an ulp where needed so that
    timm's ``floor(crop / crop_pct)`` gives ``resize`` back (224 / 232 would otherwise floor to 231)."""
    pct = crop / resize
    return pct if math.floor(crop / pct) >= resize else math.nextafter(pct, 0.0)


@dataclass
class InputRecord:
    """How a model wants its inputs (``model.zoo_config["inputs"]``, as ``to_dict()``)."""

    input_size: tuple[int, ...] | None = None  # one sample's shape: (C, H, W) for images, (F,) for a table
    input_dtype: str | None = None  # "uint8": images in 0..255, scaled and normalised by zoo; else used as given
    mean: tuple[float, ...] | None = None  # per channel, in [0, 1] units (None: not normalised)
    std: tuple[float, ...] | None = None
    interpolation: str | None = None  # the resize filter: "bilinear", "bicubic" or "nearest" (None: bilinear)
    resize_size: int | tuple[int, int] | None = None  # the shorter side before the crop (a pair: exact H, W)
    crop_size: tuple[int, int] | None = None  # the centre crop (H, W) after the resize
    classes: list[str] | None = None  # class names, index order
    num_classes: int | None = None  # classes (multi-label: labels); None when unknown or for regression
    task: str | None = None  # "classification", "multilabel" or "regression"
    loss: str | None = None  # the loss fit trained with, when it has a name
    dataset: str | None = None  # the data's name, when it has one
    hflip: bool = False  # whether horizontal flips are a valid augmentation of the data

    def __post_init__(self) -> None:
        self.input_size = _ints(self.input_size, "input_size")
        self.mean, self.std = _floats(self.mean, "mean"), _floats(self.std, "std")
        crop = self.crop_size
        self.crop_size = _ints((crop, crop) if isinstance(crop, (int, float)) else crop, "crop_size")  # type: ignore
        resize = self.resize_size
        if isinstance(resize, (list, tuple)):
            self.resize_size = _ints(resize, "resize_size")[0] if len(resize) == 1 else _ints(resize, "resize_size")
        elif resize is not None:
            self.resize_size = _ints((resize,), "resize_size")[0]  # type: ignore[index]
        self.classes = [str(c) for c in self.classes] if self.classes else None
        self.hflip = bool(self.hflip)
        _check(self)

    # -- plain dicts ---------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict (lists, numbers, strings, None), as checkpoints keep it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputRecord:
        """The record of a plain dict; unknown keys are ignored (a newer zoo's, or another tool's)."""
        if not isinstance(d, dict):
            raise TypeError(f"an input record is a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except (TypeError, ValueError) as exc:
            text = str(exc).splitlines()[0][:200]
            if text.startswith("input record:"):  # a refused value, named by __post_init__
                raise ValueError(f"a malformed {text}") from None
            raise ValueError(f"a malformed input record ({text}): {str(d)[:120]}") from None

    # -- timm's pretrained_cfg -----------------------------------------------------------------------------------

    def to_timm_cfg(self) -> dict[str, Any]:
        """The record as timm's ``pretrained_cfg`` keys (``input_size``, ``interpolation``, ``mean``, ``std``,
        ``crop_pct``, ``crop_mode``, ``num_classes``, ``label_names``; and ``resize_size``, torchvision's)."""
        cfg: dict[str, Any] = {}
        if self.input_size is not None:
            cfg["input_size"] = tuple(self.input_size)
        cfg["interpolation"] = self.interpolation or "bilinear"
        if self.mean is not None and self.std is not None:
            cfg["mean"], cfg["std"] = tuple(self.mean), tuple(self.std)
        pct = 1.0
        if isinstance(self.resize_size, int) and self.crop_size is not None:
            pct = crop_pct(self.crop_size[0], self.resize_size)
            cfg["resize_size"] = self.resize_size
        cfg.update(crop_pct=pct, crop_mode="center", num_classes=self.num_classes)
        if self.classes:
            cfg["label_names"] = tuple(self.classes)
        return cfg

    @classmethod
    def from_timm_cfg(cls, cfg: dict[str, Any]) -> InputRecord:
        """The record of a timm-style ``pretrained_cfg``: uint8 images resized (``resize_size``, else
        ``floor(crop / crop_pct)``), centre-cropped to ``input_size``, scaled and normalised."""
        size = _ints(cfg.get("input_size"))
        crop = size[1:] if size is not None and len(size) == 3 else None
        resize = cfg.get("resize_size")
        pct = cfg.get("crop_pct")
        if resize is None and crop is not None and pct and float(pct) < 1.0:
            resize = int(math.floor(crop[0] / float(pct)))
        classes = cfg.get("label_names")
        return cls(
            input_size=size,
            input_dtype="uint8" if crop is not None else None,
            mean=cfg.get("mean"),
            std=cfg.get("std"),
            interpolation=cfg.get("interpolation") if cfg.get("interpolation") in _INTERPOLATIONS else "bilinear",
            resize_size=resize,
            crop_size=crop if resize is not None else None,
            classes=list(classes) if classes else None,
            num_classes=cfg.get("num_classes") or (len(classes) if classes else None),
            task="classification",
        )

    @classmethod
    def from_torchvision(cls, member: Any) -> InputRecord:
        """The record of torchvision weights (an enum member): their own transforms' resize, crop, interpolation
        and mean/std, as the weights were evaluated, and their class names."""
        t = member.transforms()  # torchvision's ImageClassification preset
        crop, resize = int(t.crop_size[0]), int(t.resize_size[0])
        categories = member.meta.get("categories") or []
        return cls(
            input_size=(3, crop, crop),
            input_dtype="uint8",
            mean=t.mean,
            std=t.std,
            interpolation=t.interpolation.value,
            resize_size=resize,
            crop_size=(crop, crop),
            classes=list(categories) or None,
            num_classes=len(categories) or None,
            task="classification",
        )

    # -- on a model ----------------------------------------------------------------------------------------------

    @classmethod
    def of(cls, model: Any, *, guess: bool = True) -> InputRecord | None:
        """How ``model`` wants its inputs: the record on it (``zoo_config["inputs"]``, written by ``fit`` or by
        published weights; 0.1.0's ``zoo_config["data"]`` read too), else that of the published weights its
        ``pretrained_cfg`` names, else (``guess``) a guess from how it was created, else None."""
        config = read_zoo_config(getattr(model, "zoo_config", None))
        if isinstance(config.get("inputs"), dict):
            return cls.from_dict(config["inputs"])
        cfg = getattr(model, "pretrained_cfg", None)
        if isinstance(cfg, dict) and cfg.get("weights") and cfg.get("input_size"):
            return cls.from_timm_cfg(cfg)
        return cls.guess(model) if guess else None

    @classmethod
    def guess(cls, model: Any) -> InputRecord:
        """No record: images scaled to [0, 1] (not normalised) at the input size of the model's card for the keywords
        it was created with (its default ``pretrained_cfg``), else at its ``img_size`` and ``in_chans``."""
        cfg = getattr(model, "pretrained_cfg", None)
        size = _ints(cfg.get("input_size")) if isinstance(cfg, dict) and cfg.get("input_size") else None
        if size is None:
            config = getattr(model, "zoo_config", None)
            kwargs = config.get("kwargs", {}) if isinstance(config, dict) else {}
            img, chans = kwargs.get("img_size"), kwargs.get("in_chans", 3)
            img = (img, img) if isinstance(img, int) else img
            size = (int(chans), int(img[0]), int(img[1])) if _pair(img) and chans in (1, 3) else None
        return cls(input_size=size, input_dtype="uint8" if size is not None and len(size) == 3 else None)

    def attach(self, model: Any, weights: str | None = None) -> None:
        """Write the record on ``model`` (``zoo_config["inputs"]``) and point its timm-style ``pretrained_cfg`` at it
        (keeping the keys that name the architecture); ``weights``: the published weights it describes."""
        config = getattr(model, "zoo_config", None)
        if not isinstance(config, dict):
            config = model.zoo_config = {}
        config["inputs"] = self.to_dict()
        if weights:
            config["weights"] = str(weights)
        else:
            config.pop("weights", None)
        old = getattr(model, "pretrained_cfg", None)
        if self.channels is None or self.mean is None:
            return  # timm's cfg describes normalised images; a table's record lives in zoo_config only
        stale = ("weights", "url", "label_names", "resize_size", "tag")
        keep = {k: v for k, v in old.items() if k not in stale} if isinstance(old, dict) else {}
        model.pretrained_cfg = {**keep, **self.to_timm_cfg(), **({"weights": str(weights)} if weights else {})}

    # -- derived -------------------------------------------------------------------------------------------------

    @property
    def channels(self) -> int | None:
        """C of (C, H, W) images; None for a table or an unknown size."""
        return self.input_size[0] if self.input_size is not None and len(self.input_size) == 3 else None

    @property
    def features(self) -> int | None:
        """F of a table's (F,) rows; None for images."""
        return self.input_size[0] if self.input_size is not None and len(self.input_size) == 1 else None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the images the model takes."""
        return _ints(self.input_size[1:]) if self.channels is not None else None  # type: ignore[index,return-value]


def _pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2


def _legacy_data(data: dict[str, Any]) -> dict[str, Any]:
    """0.1.0's data record (``zoo_config["data"]``) as an input record's dict."""
    crop = data.get("crop")
    return {
        **data,
        "resize_size": data.get("resize"),
        "crop_size": [crop, crop] if isinstance(crop, int) else crop,
        "dataset": data.get("name"),
    }


def read_zoo_config(obj: Any) -> dict[str, Any]:
    """A model's ``zoo_config`` in today's layout, from a ``zoo_config`` dict or a whole ``.pt`` checkpoint dict in
    any layout zoo has written: 0.1.0 kept it under the checkpoint's ``"model_config"`` key, what ``fit`` recorded of
    the data under ``"data"`` and published weights' preprocessing under ``"pretrained_cfg"``. ``{}`` when none."""
    if isinstance(obj, dict) and "model" in obj and ("zoo_config" in obj or "model_config" in obj):
        obj = obj.get("zoo_config") or obj.get("model_config")  # a checkpoint
    if not isinstance(obj, dict):
        return {}
    config = dict(obj)
    data, weights_cfg = config.pop("data", None), config.pop("pretrained_cfg", None)
    if not isinstance(config.get("inputs"), dict):
        if isinstance(data, dict):
            config["inputs"] = InputRecord.from_dict(_legacy_data(data)).to_dict()
        elif isinstance(weights_cfg, dict) and weights_cfg.get("weights") and weights_cfg.get("input_size"):
            config["inputs"] = InputRecord.from_timm_cfg(weights_cfg).to_dict()
    if isinstance(weights_cfg, dict) and weights_cfg.get("weights") and "weights" not in config:
        config["weights"] = str(weights_cfg["weights"])
    return config
