"""The training engine: ``fit``, ``evaluate``, ``load`` and ``save``.

One loop for a 2-core laptop and for many GPUs. Decided once, before the first step (nanoGPT style): the device
(CUDA, then MPS, then CPU), the autocast context and gradient scaler, the process group under ``torchrun``, and
the data loaders (whole uint8 splits on the device, normalised and augmented per batch by ``zoo.data``). The
step itself does no host-device synchronisation: loss and accuracy accumulate on the device and are read a few
times per epoch, so the framework costs next to nothing over a hand-written loop (``benchmarks/bench_fit.py``).

Checkpoints are written atomically (temporary file, fsync, rename) and hold only tensors, numbers, strings, lists
and dicts, so they load with ``torch.load(weights_only=True)``; they record how the model was created
(``model.zoo_config``) so ``zoo.load(path)`` rebuilds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.callbacks import EPOCH_FIELDS, Callback, CSVLogger, EarlyStopping, History, Metrics  # noqa: F401
from zoo.checkpoints import (  # noqa: F401  (re-exported: zoo.engine.save, zoo.engine.CheckpointError)
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    _atomic_save,
    _bare,
    _clean_state_dict,
    _load_weights,
    _model_config,
    _plain,
    _read_checkpoint,
    _rng_state,
    _set_rng_state,
    load,
    save,
)
from zoo.devices import (  # noqa: F401  (re-exported: zoo.engine.resolve_device, zoo.engine.resolve_precision)
    _all_reduce,
    _autocast,
    _Dist,
    _setup_distributed,
    resolve_device,
    resolve_precision,
)
from zoo.optim import OPTIMIZERS, _check_scheduler_name, _make_optimizer, _make_scheduler

__all__ = [
    "TrainConfig",
    "History",
    "Metrics",
    "Callback",
    "EarlyStopping",
    "CSVLogger",
    "CheckpointError",
    "fit",
    "evaluate",
    "load",
    "save",
    "resolve_device",
    "resolve_precision",
]

_SYNC_EVERY = 25  # steps between reads of the on-device metrics while a progress bar is shown


# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Every option of ``zoo.fit``; ``history.config`` records the one a run used.

    The defaults are a measured recipe, not torch's: AdamW with a one-cycle schedule spanning the run, peak
    learning rate 1e-2 at batch 256 and light label smoothing take LeNet-5 over 90% on Fashion-MNIST in five
    epochs (``docs/benchmarks/fit.md``).
    """

    epochs: int = 5  # passes over the training split
    # images per optimizer step, per process (under torchrun the global batch is x world size); None -> 256, halved
    # down to 32 while an epoch would have fewer than 40 steps (small sets such as digits need the steps)
    batch_size: int | None = None
    # "adamw", "adam", "sgd" (momentum 0.9, Nesterov), "rmsprop", an Optimizer, or a function params -> Optimizer
    optimizer: Any = "adamw"
    # peak learning rate; None -> 1e-2 with a schedule, 1e-3 with scheduler=None, or the model's own
    # ``default_lr`` attribute when lower (AlexNet and ViT train at 1e-3)
    lr: float | None = None
    weight_decay: float = 5e-4  # decoupled for AdamW; applied to weight matrices and kernels only, not biases/norms
    # "onecycle" (lr is the peak), "cosine" (lr is the start), None, or a function (optimizer, total_steps) -> sched
    scheduler: Any = "onecycle"
    device: Any = "auto"  # "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N", "mps" or a torch.device
    precision: str = "auto"  # "auto" (bf16 on CUDA with bf16 support, else fp32), "fp32", "bf16", "fp16" (CUDA only)
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = batch_size x grad_accum)
    clip_grad: float | None = None  # max global L2 norm of the gradients; None = no clipping
    label_smoothing: float = 0.1  # cross-entropy label smoothing, in [0, 1)
    augment: bool = False  # random crop (pad img_size // 8) and, where the dataset allows it, horizontal flips
    channels_last: bool | None = None  # NHWC memory format; None -> True on CPU (measured faster for convnets)
    compile: bool = False  # torch.compile the model (slow first step; pays off on long GPU runs)
    seed: int | None = None  # seeds torch, python and the data order; None -> a random seed, recorded in history
    checkpoint_dir: str | None = None  # where last.pt, best.pt (by val accuracy) and interrupted.pt go
    resume: bool = False  # continue from checkpoint_dir/last.pt if it exists
    progress: bool | None = True  # progress bar when stderr is a terminal; False or env ZOO_PROGRESS=0 silence it
    eval_batch_size: int | None = None  # validation batch size; None -> 2 x batch_size
    callbacks: Sequence[Any] = ()  # Callback objects, called at fit start, each epoch's end, and fit end

    def to_dict(self) -> dict[str, Any]:
        """A JSON- and ``weights_only``-safe dict: objects and functions become their ``repr``."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------


def _is_dataset(data: Any) -> bool:
    return hasattr(data, "train") and hasattr(data, "test") and hasattr(data, "num_classes")


def _is_split(data: Any) -> bool:
    return hasattr(data, "images") and hasattr(data, "labels")


def _as_split(data: Any, what: str) -> Any:
    if _is_split(data):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        from zoo.data import Split

        images, labels = data
        if images.ndim == 3:
            images = images.unsqueeze(1)  # N x H x W -> N x 1 x H x W
        if images.ndim != 4:
            raise ValueError(f"{what}: images must be N x C x H x W (or N x H x W), got shape {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            raise ValueError(f"{what}: images must be uint8 in [0, 255] (zoo normalises per batch); got {images.dtype}")
        return Split(images=images.contiguous(), labels=labels.long())
    raise TypeError(
        f"{what}: expected a zoo Dataset (zoo.load_dataset), a Split or an (images, labels) pair of tensors; "
        f"got {type(data).__name__}"
    )


def _data_parts(data: Any, what: str) -> tuple[Any, Any | None, dict[str, Any]]:
    """(train split, validation split or None, stats: mean, std, num_classes, in_chans, img_size, hflip)."""
    if _is_dataset(data):
        train, val = data.train, data.test
        stats = {
            "mean": tuple(data.mean),
            "std": tuple(data.std),
            "num_classes": int(data.num_classes),
            "in_chans": int(data.in_chans),
            "img_size": int(data.img_size),
            "name": getattr(data, "name", None),
        }
        return train, val, stats
    train = _as_split(data, what)
    c, h = int(train.images.shape[1]), int(train.images.shape[2])
    stats = {
        "mean": tuple(getattr(train, "mean", None) or (0.5,) * c),  # load_dataset's splits carry their own stats
        "std": tuple(getattr(train, "std", None) or (0.5,) * c),
        "num_classes": int(train.labels.max().item()) + 1 if len(train.labels) else 0,
        "in_chans": c,
        "img_size": h,
        "name": None,
    }
    return train, None, stats


def _loader(split: Any, batch_size: int, stats: dict[str, Any], device: torch.device, **kw: Any) -> Any:
    from zoo.data import BatchLoader

    return BatchLoader(split, batch_size, mean=stats["mean"], std=stats["std"], device=device, **kw)


# ---------------------------------------------------------------------------------------------------------
# Checks before the first step
# ---------------------------------------------------------------------------------------------------------


def _check_model_fits_data(model: nn.Module, split: Any, stats: dict[str, Any], device: torch.device) -> None:
    """One-sample forward in eval mode: a shape mismatch becomes one clear error before any training."""
    if len(split) == 0:
        raise ValueError("the training data is empty")
    c, h = stats["in_chans"], stats["img_size"]
    x = split.images[:1].to(device=device, dtype=torch.float32) / 255.0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError as exc:
        kw = (getattr(model, "zoo_config", None) or {}).get("kwargs", {})
        expects = ", ".join(f"{k}={kw[k]}" for k in ("in_chans", "img_size") if k in kw)
        expects = f"expects {expects}" if expects else "cannot take them"
        name = (getattr(model, "zoo_config", None) or {}).get("name", type(model).__name__)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"model '{name}' {expects} but the data has in_chans={c}, img_size={h}: create the model with "
            f"in_chans={c}, img_size={h} (or load the dataset with img_size= matching the model) [{first}]"
        ) from None
    finally:
        model.train(was_training)
    if out.ndim != 2:
        raise ValueError(
            f"the model returns shape {tuple(out.shape)} for one image; fit expects N x num_classes logits"
        )
    if out.shape[1] < stats["num_classes"]:
        raise ValueError(
            f"the model has {out.shape[1]} outputs but the data has {stats['num_classes']} classes; "
            f"create it with num_classes={stats['num_classes']}"
        )


# ---------------------------------------------------------------------------------------------------------
# Evaluate
# ---------------------------------------------------------------------------------------------------------


@torch.no_grad()
def _evaluate_loader(
    model: nn.Module, loader: Any, num_classes: int, autocast: Any, device: torch.device, dist_info: _Dist
) -> Metrics:
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    k = min(5, num_classes)
    try:
        for x, y in loader:
            with autocast:
                logits = model(x)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            pred = logits.argmax(1)
            confusion += torch.bincount(y * num_classes + pred.clamp_max(num_classes - 1), minlength=num_classes**2)
            if num_classes > 5:
                top5 += (logits.topk(k, 1).indices == y[:, None]).any(1).sum()
    finally:
        model.train(was_training)
    packed = torch.cat([loss_sum.view(1), top5.double().view(1), confusion.double()])
    packed = _all_reduce(packed, dist_info).cpu()
    cm = packed[2:].round().long().view(num_classes, num_classes)
    n = int(cm.sum())
    correct = int(cm.diag().sum())
    per_class_n = cm.sum(1)
    per_class = [
        None if int(per_class_n[i]) == 0 else float(cm[i, i]) / int(per_class_n[i]) for i in range(num_classes)
    ]
    top1 = correct / n if n else 0.0
    return Metrics(
        loss=float(packed[0]) / n if n else float("nan"),
        top1=top1,
        accuracy=top1,
        top5=(float(packed[1]) / n if n else 0.0) if num_classes > 5 else None,
        per_class_accuracy=per_class,
        confusion_matrix=cm.tolist(),
        num_samples=n,
    )


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 512,
    device: Any = None,
    precision: str = "auto",
) -> Metrics:
    """Score ``model`` on a Dataset's test split, a Split, or an ``(images, labels)`` pair.

    Args:
        batch_size: images per forward pass.
        device: None -> where the model's parameters are (after ``fit``, the training device); else as in ``fit``.
        precision: as in ``fit`` (the same autocast).

    Returns:
        ``Metrics``: ``loss``, ``top1`` (= ``accuracy``), ``top5`` (classes > 5), ``per_class_accuracy``,
        ``confusion_matrix`` (rows = true class), ``num_samples``. Under an initialised process group the split is
        sharded over the ranks and the results all-reduced.
    """
    if _is_dataset(data):
        split, stats = (
            data.test,
            {"mean": tuple(data.mean), "std": tuple(data.std), "num_classes": int(data.num_classes)},
        )
    else:
        split = _as_split(data, "evaluate")
        c = int(split.images.shape[1])
        stats = {
            "mean": tuple(getattr(split, "mean", None) or (0.5,) * c),
            "std": tuple(getattr(split, "std", None) or (0.5,) * c),
            "num_classes": int(split.labels.max().item()) + 1,
        }
    model = _bare(model)
    if device is None:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else resolve_device("auto")
    else:
        dev = resolve_device(device)
    model.to(dev)
    prec = resolve_precision(precision, dev)
    num_classes = stats["num_classes"]
    if len(split):  # the confusion matrix must have room for every class the model can predict
        was_training = model.training
        model.eval()
        with torch.no_grad():
            num_classes = max(num_classes, int(model(split.images[:1].to(dev, torch.float32) / 255.0).shape[1]))
        model.train(was_training)
    dist_info = _Dist()
    if os.environ.get("WORLD_SIZE", "1") != "1":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist_info = _Dist(dist.get_rank(), dist.get_world_size())
    loader = _loader(
        split,
        batch_size,
        stats,
        dev,
        shuffle=False,
        drop_last=False,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
    )
    return _evaluate_loader(model, loader, num_classes, _autocast(dev, prec), dev, dist_info)


# ---------------------------------------------------------------------------------------------------------
# Fit
# ---------------------------------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar updated every few steps (never per step: reading the metrics synchronises the device)."""

    def __init__(self, enabled: bool, total: int, epoch: int, epochs: int) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=True, dynamic_ncols=True)

    def update(self, n: int, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)

    def close(self, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix)
            self.bar.close()


def _progress_enabled(progress: bool | None, rank: int) -> bool:
    if progress is False or rank != 0 or os.environ.get("ZOO_PROGRESS", "1").strip().lower() in ("0", "false", "no"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _NonFiniteLoss(FloatingPointError):
    pass


def fit(
    model: nn.Module,
    data: Any,
    *,
    epochs: int = 5,
    batch_size: int | None = None,
    optimizer: Any = "adamw",
    lr: float | None = None,
    weight_decay: float = 5e-4,
    scheduler: Any = "onecycle",
    device: Any = "auto",
    precision: str = "auto",
    grad_accum: int = 1,
    clip_grad: float | None = None,
    label_smoothing: float = 0.1,
    augment: bool = False,
    channels_last: bool | None = None,
    compile: bool = False,
    seed: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | None = True,
    eval_batch_size: int | None = None,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train ``model`` on ``data`` in place and return its ``History``.

    ``data`` is a ``zoo.load_dataset`` Dataset (trains on ``.train``, validates on ``.test`` after each epoch), a
    ``Split``, or an ``(images, labels)`` pair of tensors (uint8 N x C x H x W, int64 N; no validation). Every
    option is described on ``TrainConfig``; the defaults are a measured recipe (AdamW, one-cycle to a peak lr of
    1e-2, batch 256, label smoothing 0.1). The model, the batches and the optimizer state are put on the device;
    under ``torchrun`` the model is wrapped in DistributedDataParallel for the run and returned bare.

    Raises:
        ValueError: unknown option names (the message lists the valid ones), a model that does not fit the data
            (checked with one image before training), or ``precision="fp16"`` off CUDA.
        FloatingPointError: the loss became NaN or infinite (the message names the epoch and step; the last
            checkpoint written before it is kept).
    """
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        scheduler=scheduler,
        device=device,
        precision=precision,
        grad_accum=grad_accum,
        clip_grad=clip_grad,
        label_smoothing=label_smoothing,
        augment=augment,
        channels_last=channels_last,
        compile=compile,
        seed=seed,
        checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
        resume=resume,
        progress=progress,
        eval_batch_size=eval_batch_size,
        callbacks=tuple(callbacks),
    )
    return _Trainer(model, data, cfg).run()


class _Trainer:
    """One ``fit`` call: everything decided up front, then the loop."""

    def __init__(self, model: nn.Module, data: Any, cfg: TrainConfig) -> None:
        if cfg.epochs < 1 or (cfg.batch_size is not None and cfg.batch_size < 1) or cfg.grad_accum < 1:
            raise ValueError(
                f"epochs, batch_size and grad_accum must be >= 1 (got {cfg.epochs}, {cfg.batch_size}, {cfg.grad_accum})"
            )
        if not 0.0 <= cfg.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {cfg.label_smoothing}")
        self.model = _bare(model)  # unwraps DDP and torch.compile wrappers
        self.cfg = cfg
        # validate every name before anything heavy happens
        if isinstance(cfg.optimizer, str) and cfg.optimizer.lower() not in OPTIMIZERS:
            _make_optimizer(cfg.optimizer, self.model, 0.0, 0.0)  # raises with the valid names
        _check_scheduler_name(cfg.scheduler)
        self.train_split, self.val_split, self.stats = _data_parts(data, "fit")
        self.dist, self.device = _setup_distributed(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.autocast = _autocast(self.device, self.precision)
        self.channels_last = (self.device.type == "cpu") if cfg.channels_last is None else bool(cfg.channels_last)
        if cfg.resume and not cfg.checkpoint_dir:
            raise ValueError("resume=True needs checkpoint_dir= (where last.pt is)")
        self.ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
        base_lr = 1e-3 if cfg.scheduler is None else 1e-2
        # a model may ask for less (class attribute ``default_lr``), as AlexNet and ViT do; never for more
        self.lr = cfg.lr if cfg.lr is not None else min(base_lr, getattr(self.model, "default_lr", base_lr))
        self.history = History(cfg.to_dict())
        self.history.device = str(self.device)
        self.history.precision = self.precision
        self.history.world_size = self.dist.world_size
        self.history.rank = self.dist.rank
        self.history.config["lr"] = self.lr
        self.history.config["channels_last"] = self.channels_last

    # -- set-up ------------------------------------------------------------------------------------------

    def _seed(self) -> int:
        seed = self.cfg.seed
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            if self.dist.enabled:  # every rank must shuffle alike
                t = torch.tensor([seed if self.dist.rank == 0 else 0], dtype=torch.int64, device=self.device)
                t = _all_reduce(t, self.dist)
                seed = int(t.item())
        torch.manual_seed(seed)
        random.seed(seed)
        self.history.config["seed"] = seed
        return seed

    def _build(self) -> None:
        cfg, model = self.cfg, self.model
        if cfg.batch_size is None:
            per_rank = len(self.train_split) / self.dist.world_size
            bs = 256
            while bs > 32 and per_rank / bs < 40:
                bs //= 2
            cfg.batch_size = bs
            self.history.config["batch_size"] = bs
        self.seed = self._seed()
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        _check_model_fits_data(model, self.train_split, self.stats, self.device)
        train_kw = dict(
            shuffle=True,
            augment=cfg.augment,
            channels_last=self.channels_last,
            seed=self.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        self.train_loader = _loader(self.train_split, cfg.batch_size, self.stats, self.device, **train_kw)
        if self.train_loader.num_samples % cfg.batch_size == 1 and self.train_loader.num_samples > 1:
            # a last batch of one image breaks BatchNorm in training mode ("Expected more than 1 value per
            # channel"): drop that one image per epoch (the next epoch's shuffle picks another)
            train_kw["drop_last"] = True
            self.train_loader = _loader(self.train_split, cfg.batch_size, self.stats, self.device, **train_kw)
        self.val_loader = None
        if self.val_split is not None and len(self.val_split):
            self.val_loader = _loader(
                self.val_split,
                cfg.eval_batch_size or 2 * cfg.batch_size,
                self.stats,
                self.device,
                shuffle=False,
                channels_last=self.channels_last,
                drop_last=False,
                rank=self.dist.rank,
                world_size=self.dist.world_size,
            )
        self.steps_per_epoch = math.ceil(len(self.train_loader) / cfg.grad_accum)
        self.optimizer = _make_optimizer(cfg.optimizer, model, self.lr, cfg.weight_decay)
        self.scheduler = _make_scheduler(cfg.scheduler, self.optimizer, self.lr, self.steps_per_epoch * cfg.epochs)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        net: nn.Module = model
        if cfg.compile:
            net = torch.compile(net)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            from torch.nn.parallel import DistributedDataParallel  # imported only here: it is slow to import

            net = DistributedDataParallel(net, device_ids=ids)
        self.net = net
        self.start_epoch = 1
        self.step = 0
        self.best_val: float | None = None

    def _checkpoint(self, epoch: int) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": {k: v.detach().cpu() for k, v in _clean_state_dict(self.model.state_dict()).items()},
            "model_config": _model_config(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": epoch,
            "step": self.step,
            "best_val_accuracy": self.best_val,
            "rng": _rng_state(self.device),
            "history": _plain(self.history.to_dict()),
        }

    def _save(self, name: str, epoch: int) -> None:
        if self.ckpt_dir is not None and self.dist.rank == 0:
            _atomic_save(self._checkpoint(epoch), self.ckpt_dir / name)

    def _resume(self) -> None:
        path = self.ckpt_dir / "last.pt" if self.ckpt_dir else None
        if path is None or not path.exists():
            if path is not None:
                self.history.notes.append(f"resume=True but no {path}; started from scratch")
            return
        ckpt = _read_checkpoint(path, map_location="cpu")
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"'{path}' is not a zoo training checkpoint (no optimizer state to resume from)")
        _load_weights(self.model, ckpt["model"], path)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.scheduler is not None and ckpt.get("scheduler") is not None:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            if self.scaler is not None and ckpt.get("scaler") is not None:
                self.scaler.load_state_dict(ckpt["scaler"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"'{path}' was written with another optimizer or schedule ({exc}); resume with the same options"
            ) from None
        _set_rng_state(ckpt["rng"], self.device)
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.step = int(ckpt.get("step", 0))
        self.best_val = ckpt.get("best_val_accuracy")
        old = History.from_dict(ckpt.get("history") or {})
        self.history.epochs = old.epochs
        self.history.notes = old.notes + [f"resumed from {path} after epoch {ckpt['epoch']}"]

    # -- the loop ----------------------------------------------------------------------------------------

    def _train_epoch(self, epoch: int) -> tuple[float, float, int, float]:
        cfg, net, opt, sched, scaler = self.cfg, self.net, self.optimizer, self.scheduler, self.scaler
        loader = self.train_loader
        loader.set_epoch(epoch)
        n_batches = len(loader)
        net.train()
        losses = torch.zeros(n_batches, dtype=torch.float32, device=self.device)  # per-batch loss, read rarely
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        sizes: list[int] = []
        accum, checked = cfg.grad_accum, 0
        show = _progress_enabled(cfg.progress, self.dist.rank)
        bar = _Progress(show, n_batches, epoch, cfg.epochs)
        sync_every = _SYNC_EVERY if show else max(_SYNC_EVERY, n_batches)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(loader):
            last_micro = (i + 1) % accum == 0 or i + 1 == n_batches
            sync_ctx = net.no_sync() if self.dist.enabled and not last_micro else contextlib.nullcontext()
            with sync_ctx:
                with self.autocast:
                    logits = net(x)
                    loss = self.criterion(logits, y)
                if scaler is not None:
                    scaler.scale(loss / accum if accum > 1 else loss).backward()
                else:
                    (loss / accum if accum > 1 else loss).backward()
            if last_micro:
                if cfg.clip_grad is not None:
                    if scaler is not None:
                        scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                opt.zero_grad(set_to_none=True)
                if sched is not None and scaler is not None:
                    # the scaler skips steps whose gradients overflowed (often the first few at fp16); the
                    # schedule still advances, as in torch's AMP recipe, without torch's warning about it
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
                        sched.step()
                elif sched is not None:
                    sched.step()
                self.step += 1
            losses[i] = loss.detach()
            correct += (logits.detach().argmax(1) == y).sum()
            sizes.append(y.shape[0])
            if (i + 1) % sync_every == 0 or i + 1 == n_batches:
                checked = self._check_finite(losses, checked, i + 1, epoch)
                if show:
                    seen = sum(sizes)
                    bar.update(
                        i + 1 - bar.bar.n,
                        loss=f"{float(losses[: i + 1].mean()):.4f}",
                        acc=f"{int(correct) / seen:.4f}",
                        img_s=f"{seen / (time.perf_counter() - t0):,.0f}",
                    )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        w = torch.tensor(sizes, dtype=torch.float32, device=self.device)
        packed = torch.stack([(losses * w).sum().double(), correct.double(), w.sum().double()])
        packed = _all_reduce(packed, self.dist).cpu()
        n = float(packed[2])
        rate = n / max(seconds, 1e-9)
        bar.close(loss=f"{float(packed[0]) / n:.4f}", acc=f"{float(packed[1]) / n:.4f}", img_s=f"{rate:,.0f}")
        return float(packed[0]) / n, float(packed[1]) / n, int(n), seconds

    def _check_finite(self, losses: torch.Tensor, start: int, end: int, epoch: int) -> int:
        chunk = losses[start:end]
        bad = (~torch.isfinite(chunk)).nonzero()
        if bad.numel():
            i = start + int(bad[0, 0])
            raise _NonFiniteLoss(
                f"the loss became {float(losses[i])} at epoch {epoch}, step {i + 1} of {len(losses)} "
                f"(optimizer step {self.step}); try a lower lr (now {self.lr:g}), clip_grad=1.0 or precision='fp32'"
                + ("; the last good checkpoint is kept in " + str(self.ckpt_dir) if self.ckpt_dir else "")
            )
        return end

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _stop_requested(self) -> str | None:
        flag = torch.tensor([1.0 if self.history.stop_reason else 0.0])
        if self.dist.enabled:
            flag = _all_reduce(flag.to(self.device), self.dist, op="max").cpu()
        if float(flag) > 0:
            return self.history.stop_reason or "stopped by a callback on another rank"
        return None

    def run(self) -> History:
        cfg, history = self.cfg, self.history
        ok = False
        try:
            self._build()
            if cfg.resume:
                self._resume()
            for cb in cfg.callbacks:
                cb.model = self.model
                cb.on_fit_start(history)
            epoch = self.start_epoch - 1
            try:
                for epoch in range(self.start_epoch, cfg.epochs + 1):
                    for cb in cfg.callbacks:
                        cb.on_epoch_start(history, epoch)
                    t0 = time.perf_counter()
                    loss, acc, n, train_s = self._train_epoch(epoch)
                    record: dict[str, Any] = {"epoch": epoch, "loss": loss, "accuracy": acc}
                    record["val_loss"] = record["val_accuracy"] = None
                    if self.val_loader is not None:
                        m = _evaluate_loader(
                            self.model if not self.dist.enabled else self.net.module,
                            self.val_loader,
                            self.stats["num_classes"],
                            self.autocast,
                            self.device,
                            self.dist,
                        )
                        record["val_loss"], record["val_accuracy"] = m["loss"], m["top1"]
                    record["lr"] = self._current_lr()
                    record["seconds"] = time.perf_counter() - t0
                    record["images_per_s"] = n / train_s if train_s > 0 else 0.0
                    history.epochs.append(record)
                    self._save("last.pt", epoch)
                    score = record["val_accuracy"]
                    if score is not None and (self.best_val is None or score > self.best_val):
                        self.best_val = score
                        self._save("best.pt", epoch)
                    for cb in cfg.callbacks:
                        cb.on_epoch_end(history, record)
                    reason = self._stop_requested()
                    if reason:
                        history.stop_reason = reason
                        if epoch < cfg.epochs:
                            history.notes.append(f"stopped after epoch {epoch}: {reason}")
                        break
            except KeyboardInterrupt:
                history.interrupted = True
                where = f"during epoch {epoch + 1}" if len(history.epochs) < epoch + 1 else f"after epoch {epoch}"
                note = f"interrupted {where}"
                if self.ckpt_dir is not None:
                    self._save("interrupted.pt", len(history.epochs))
                    note += (
                        f"; weights at the interruption in {self.ckpt_dir / 'interrupted.pt'}, "
                        f"resume=True continues from last.pt (the last complete epoch)"
                    )
                history.notes.append(note)
                if self.dist.rank == 0:
                    print(f"zoo.fit: {note}", file=sys.stderr)
            except _NonFiniteLoss as exc:
                raise FloatingPointError(str(exc)) from None
            for cb in cfg.callbacks:
                cb.on_fit_end(history)
            ok = True
            return history
        finally:
            self._teardown(ok)

    def _teardown(self, ok: bool) -> None:
        # Release the DDP wrapper (and its reducer) before the process group goes: a gloo DDP module alive at
        # interpreter exit aborted 4 runs in 24 here; releasing it first, none in 16.
        net = self.__dict__.pop("net", None)
        is_ddp = self.dist.enabled
        del net
        for name in ("optimizer", "scheduler", "train_loader", "val_loader"):
            self.__dict__.pop(name, None)
        if is_ddp:
            gc.collect()
        if self.dist.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                if ok:
                    dist.barrier()
                if self.dist.created_group:
                    dist.destroy_process_group()
