"""What ``fit`` trains, validates and tests on: the user's data split into its parts, never validating on test.

A zoo ``Dataset`` holds out a seeded, stratified ``DEFAULT_VAL_FRACTION`` of its training split (the same samples in
every run, whatever the training seed) and keeps its test split for one final score; any other data validates on
``val=`` or on a ``val_fraction`` held out of it.
"""

from __future__ import annotations

from typing import Any

from zoo.data.describe import as_source, source_record
from zoo.data.splitting import split_off
from zoo.data.types import is_dataset
from zoo.inputs import InputRecord
from zoo.train.config import TrainConfig

__all__ = ["fit_parts", "dataset_record", "record_data", "DEFAULT_VAL_FRACTION", "VAL_SPLIT_SEED"]

DEFAULT_VAL_FRACTION = 0.1  # of a zoo Dataset's training split, held out to validate on
VAL_SPLIT_SEED = 0  # the held-out samples are the same in every run, whatever the training seed


def dataset_record(data: Any) -> InputRecord:
    """What a zoo ``Dataset`` tells of its inputs; a cached or streamed image folder also how new images are to be
    resized and cropped."""
    own = data.train.input_record() if hasattr(data.train, "input_record") else InputRecord()
    return InputRecord(
        input_size=(int(data.in_chans), int(data.img_size), int(data.img_size)),
        input_dtype="uint8",
        mean=tuple(data.mean),
        std=tuple(data.std),
        resize_size=own.resize_size,
        crop_size=own.crop_size,
        num_classes=int(data.num_classes),
        classes=list(data.classes) if getattr(data, "classes", None) else None,
        dataset=getattr(data, "name", None),
        hflip=bool(getattr(data, "hflip", False)),
    )


def fit_parts(data: Any, val: Any, cfg: TrainConfig) -> tuple[Any, Any, Any, InputRecord]:
    """(train source, validation source or None, test source or None, what is known of the inputs)."""
    if val is not None and cfg.val_fraction:
        raise ValueError("pass val= or val_fraction=, not both")
    if is_dataset(data):
        train, test, record = data.train, data.test, dataset_record(data)
        fraction = DEFAULT_VAL_FRACTION if cfg.val_fraction is None else cfg.val_fraction
    else:
        train, test = as_source(data, "fit"), None
        record = source_record(train)
        fraction = cfg.val_fraction or 0.0
    if val is not None:
        return train, as_source(val.test if is_dataset(val) else val, "fit: val"), test, record
    if fraction > 0:
        train, held = split_off(train, fraction, VAL_SPLIT_SEED)
        return train, held, test, record
    return train, None, test, record


def record_data(model: Any, record: InputRecord, train_batches: Any, task: Any, loss: str | None) -> None:
    """Record on ``model`` how it wants its inputs, as it saw them in training (``model.zoo_config["inputs"]``:
    kept in checkpoints, read by ``zoo.predict`` and ``zoo.evaluate``), and point its timm-style
    ``pretrained_cfg`` at it (``InputRecord.attach``)."""
    if record.input_size is None:
        x, _ = train_batches.sample()
        record.input_size = tuple(int(v) for v in x.shape[1:])
        record.input_dtype = record.input_dtype or str(x.dtype).replace("torch.", "")
    norm = getattr(train_batches, "normalization", None)
    if norm is not None and record.input_dtype == "uint8":
        record.mean, record.std = norm
    if task.kind != "regression" and record.num_classes is None:
        record.num_classes = task.num_outputs
    record.task, record.loss = task.kind, loss
    record.attach(model)
