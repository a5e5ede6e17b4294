"""What ``fit`` trains, validates and tests on: the user's data split into its parts, never validating on test.

A zoo ``Dataset`` holds out a seeded, stratified ``DEFAULT_VAL_FRACTION`` of its training split (the same samples in
every run, whatever the training seed) and keeps its test split for one final score; any other data validates on
``val=`` or on a ``val_fraction`` held out of it.
"""

from __future__ import annotations

from typing import Any

from zoo.data.loaders import as_source, source_info, split_off
from zoo.data.types import DataInfo, is_dataset
from zoo.train.config import TrainConfig

__all__ = ["fit_parts", "record_data", "DEFAULT_VAL_FRACTION", "VAL_SPLIT_SEED"]

DEFAULT_VAL_FRACTION = 0.1  # of a zoo Dataset's training split, held out to validate on
VAL_SPLIT_SEED = 0  # the held-out samples are the same in every run, whatever the training seed


def fit_parts(data: Any, val: Any, cfg: TrainConfig) -> tuple[Any, Any, Any, DataInfo]:
    """(train source, validation source or None, test source or None, what is known of the data)."""
    if val is not None and cfg.val_fraction:
        raise ValueError("pass val= or val_fraction=, not both")
    if is_dataset(data):
        train, test = data.train, data.test
        info = DataInfo(
            input_size=(int(data.in_chans), int(data.img_size), int(data.img_size)),
            input_dtype="uint8",
            mean=tuple(data.mean),
            std=tuple(data.std),
            num_classes=int(data.num_classes),
            classes=list(data.classes) if getattr(data, "classes", None) else None,
            name=getattr(data, "name", None),
            hflip=bool(getattr(data, "hflip", False)),
            # a cached or streamed image folder knows how new images are to be resized and cropped
            extra=dict(data.train.data_info().extra) if hasattr(data.train, "data_info") else {},
        )
        fraction = DEFAULT_VAL_FRACTION if cfg.val_fraction is None else cfg.val_fraction
    else:
        train, test = as_source(data, "fit"), None
        info = source_info(train)
        fraction = cfg.val_fraction or 0.0
    if val is not None:
        return train, as_source(val.test if is_dataset(val) else val, "fit: val"), test, info
    if fraction > 0:
        train, held = split_off(train, fraction, VAL_SPLIT_SEED)
        return train, held, test, info
    return train, None, test, info


def record_data(model: Any, info: DataInfo, train_batches: Any, task: Any, loss: str | None) -> None:
    """Record on ``model`` what it needs to see new data as it saw this data (``model.zoo_config["data"]``: kept in
    checkpoints, read by ``zoo.predict`` and ``zoo.evaluate``), and point its timm-style ``pretrained_cfg`` at it."""
    if info.input_size is None:
        x, _ = train_batches.sample()
        info.input_size = tuple(int(v) for v in x.shape[1:])
        info.input_dtype = info.input_dtype or str(x.dtype).replace("torch.", "")
    if getattr(train_batches, "mean", None) is not None and info.input_dtype == "uint8":
        info.mean, info.std = tuple(train_batches.mean), tuple(train_batches.std)
    if task.kind != "regression" and info.num_classes is None:
        info.num_classes = task.num_outputs
    record = info.to_dict()
    record["task"] = task.kind
    record["loss"] = loss
    cfg = getattr(model, "zoo_config", None)
    if isinstance(cfg, dict):
        cfg["data"] = record
    else:
        model.zoo_config = {"data": record}
    pretrained = getattr(model, "pretrained_cfg", None)
    if isinstance(pretrained, dict) and record.get("mean") and len(record.get("input_size") or ()) == 3:
        # timm's resolve_data_config reads this: from now on the data the model was trained on, not the
        # preprocessing of the weights it started from
        model.pretrained_cfg = {
            **{k: v for k, v in pretrained.items() if k not in ("weights", "url", "label_names", "resize_size")},
            "input_size": tuple(record["input_size"]),
            "mean": tuple(record["mean"]),
            "std": tuple(record["std"]),
            "crop_pct": 1.0,
            "num_classes": record.get("num_classes") or pretrained.get("num_classes"),
        }
