"""What one ``fit`` call decides before its first step and keeps for the whole run: ``Run``.

Decided once (nanoGPT style): the resolved options (lr, batch size, seed, memory format filled in, with
``dataclasses.replace``), the precision and autocast context, the batches (``zoo.data.make_batches``), the task and
loss (``zoo.train.tasks``), the steps per epoch, what is frozen and when, and the module the step calls (compiled,
DistributedDataParallel under ``torchrun``). What changes as the run trains is ``zoo.train.resume.TrainState``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from zoo.data.batching import BatchOptions
from zoo.data.describe import source_labels, source_len
from zoo.data.loaders import make_batches
from zoo.threads import choose_threads, step_flops
from zoo.train.config import TrainConfig
from zoo.train.devices import all_reduce, autocast_context, resolve_precision
from zoo.train.evaluate import check_labels, check_model_fits
from zoo.train.finetune import Freezer
from zoo.train.fingerprint import data_fingerprint
from zoo.train.inputs import fit_parts, record_data
from zoo.train.metrics import check_metrics
from zoo.train.mixing import make_mixer
from zoo.train.preemption import SignalWatch
from zoo.train.tasks import MONITOR, check_loss, resolve_task
from zoo.weights import CheckpointError, read_checkpoint

__all__ = ["Run", "prepare", "wrap"]


@dataclass(eq=False)
class Run:
    """The fixed parts of one ``fit`` call (see the module docstring)."""

    cfg: TrainConfig  # resolved: lr, batch_size, seed and channels_last are filled in
    dist: Any
    device: torch.device
    precision: str
    autocast: Any
    signals: SignalWatch
    ckpt_dir: Path | None
    train_src: Any
    val_src: Any
    test_src: Any
    train: Any = None  # the training Batches
    val: Any = None  # the validation Batches, or None
    task: Any = None
    steps_per_epoch: int | None = None
    freezer: Freezer | None = None
    net: nn.Module | None = None  # what the step calls: the model, compiled and/or DDP-wrapped
    bn_batches: Any = None  # training batches in evaluation order, for precise BN
    bn_step: int | None = None  # the optimizer step precise BN last ran at
    data_fp: dict[str, Any] | None = None  # the training data's fingerprint, recorded in last.pt
    mixer: Any = None  # MixUp/CutMix of the training batches (zoo.train.mixing.Mixer), or None

    @property
    def epoch_batches(self) -> int | None:
        """Training batches per epoch: ``steps_per_epoch`` x ``grad_accum`` when bounded, else a pass over the
        data (None for a stream)."""
        if self.cfg.steps_per_epoch is not None:
            return self.cfg.steps_per_epoch * self.cfg.grad_accum
        return self.train.num_batches

    @property
    def monitor(self) -> tuple[str, bool]:
        """The record key model selection watches, and whether higher is better."""
        return MONITOR[self.task.kind]

    def batches(self, source: Any, batch_size: int | None, *, train: bool) -> Any:
        """``source`` as Batches on the device; evaluation batches are normalised as the training ones."""
        cfg = self.cfg
        norm = None if train or self.train is None else self.train.normalization
        options = BatchOptions(
            device=self.device, shuffle=train, augment=cfg.augment and train, channels_last=cfg.channels_last,
            seed=cfg.seed, rank=self.dist.rank, world_size=self.dist.world_size, num_workers=cfg.num_workers,
            pin_memory=cfg.pin_memory, mean=norm[0] if norm else None, std=norm[1] if norm else None,
        )  # fmt: skip
        batches = make_batches(source, batch_size, options)
        n = batches.num_samples
        if train and not batches.given and n and n % batches.batch_size == 1 and n > 1:
            # a last batch of one sample breaks BatchNorm in training mode ("Expected more than 1 value per
            # channel"): drop that one sample per epoch (the next epoch's shuffle picks another)
            batches = make_batches(source, batch_size, dataclasses.replace(options, drop_last=True))
        return batches

    def eval_batches(self, source: Any) -> Any:
        return self.batches(source, self.cfg.eval_batch_size or 2 * (self.cfg.batch_size or 256), train=False)


def prepare(
    model: nn.Module, data: Any, val: Any, cfg: TrainConfig, dist: Any, device: torch.device, signals: SignalWatch
) -> Run:
    """Everything decided before the first step; ``model`` goes to the device and gets its data record."""
    train_src, val_src, test_src, info = fit_parts(data, val, cfg)
    asked = cfg.batch_size
    precision = resolve_precision(cfg.precision, device)
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    saved = _saved_config(cfg, ckpt_dir)  # the resumed run's options, read once
    cfg = _resolved(cfg, model, train_src, dist, device, saved)
    run = Run(cfg, dist, device, precision, autocast_context(device, precision), signals, ckpt_dir,
              train_src, val_src, test_src)  # fmt: skip
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    run.train = run.batches(train_src, cfg.batch_size, train=True)
    if run.train.given:  # a DataLoader is used as given: its batch size (None: it yields ready-made batches)
        if asked not in (None, run.train.batch_size):
            raise ValueError(
                f"batch_size={asked} but the DataLoader batches {run.train.batch_size}: a DataLoader is used as "
                "given; drop batch_size= or pass the Dataset instead"
            )
        run.cfg = cfg = dataclasses.replace(cfg, batch_size=run.train.batch_size)
    run.cfg = cfg = dataclasses.replace(cfg, threads=_threads(cfg, model, run, saved))
    run.task = _task(run, model, info.num_classes)
    loss = cfg.loss if isinstance(cfg.loss, str) else ("cross_entropy" if cfg.loss is None else None)
    record_data(model, info, run.train, run.task, loss)
    if val_src is not None and (source_len(val_src) or 0) != 0:
        run.val = run.eval_batches(val_src)
    run.steps_per_epoch = _steps_per_epoch(run)
    if ckpt_dir is not None:
        run.data_fp = data_fingerprint(train_src)
    run.freezer = Freezer(model, cfg.freeze, cfg.unfreeze_at, cfg.freeze_bn)
    return run


def _resolved(cfg: TrainConfig, model: nn.Module, source: Any, dist: Any, device: torch.device, saved: dict) -> Any:
    """``cfg`` with what it left to fit decided: batch size, seed (set here), lr and memory format."""
    if cfg.batch_size is not None:
        bs = cfg.batch_size
    else:  # (a DataLoader's own batch size replaces this once its Batches are made)
        n = source_len(source)
        per_rank = (n if n is not None else 1 << 30) / dist.world_size
        bs = 256
        while bs > 32 and per_rank / bs < 40:
            bs //= 2
    seed = _seed(cfg, dist, device, saved)
    base_lr = 1e-3 if cfg.scheduler is None else 1e-2
    # a model may ask for less (class attribute ``default_lr``), as AlexNet and ViT do; never for more
    lr = cfg.lr if cfg.lr is not None else min(base_lr, getattr(model, "default_lr", base_lr))
    channels_last = (device.type == "cpu") if cfg.channels_last is None else bool(cfg.channels_last)
    return dataclasses.replace(cfg, batch_size=bs, seed=seed, lr=lr, channels_last=channels_last)


def _saved_config(cfg: TrainConfig, ckpt_dir: Path | None) -> dict[str, Any]:
    """The options of the run a ``resume=True`` continues (``{}`` when there is none)."""
    if not (cfg.resume and ckpt_dir is not None and (ckpt_dir / "last.pt").is_file()):
        return {}
    with contextlib.suppress(CheckpointError, KeyError, TypeError, ValueError, FileNotFoundError):
        saved = read_checkpoint(ckpt_dir / "last.pt")["history"]["config"]
        return saved if isinstance(saved, dict) else {}
    return {}


def _threads(cfg: TrainConfig, model: nn.Module, run: Run, saved: dict[str, Any]) -> int:
    """The CPU threads of the run: the user's, the resumed run's (so that a resumed run computes as the
    interrupted one did), or chosen for the machine and the step (``zoo.threads``)."""
    threads = saved.get("threads") if cfg.threads is None else None
    if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        return threads
    x, _ = run.train.sample()
    return int(choose_threads(step_flops(model, x, cfg.batch_size), requested=cfg.threads, device=run.device))


def _seed(cfg: TrainConfig, dist: Any, device: torch.device, saved: dict[str, Any]) -> int:
    seed = None if cfg.seed is None else int(cfg.seed)  # a numpy integer too
    if seed is None:  # a resumed run keeps the data order of the run it resumes
        seed = saved.get("seed") if isinstance(saved.get("seed"), int) else None
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        if dist.enabled:  # every rank must shuffle alike
            t = torch.tensor([seed if dist.rank == 0 else 0], dtype=torch.int64, device=device)
            seed = int(all_reduce(t, dist).item())
    torch.manual_seed(seed)
    random.seed(seed)
    return seed


def _task(run: Run, model: nn.Module, num_classes: int | None) -> Any:
    """The task and loss, after one forward pass has shown that the model fits the data."""
    out, y = check_model_fits(model, run.train, "fit")
    task = resolve_task(run.cfg.loss, run.cfg.label_smoothing, out, y, "fit")
    if task.kind == "classification" and num_classes and task.num_outputs < num_classes:
        raise ValueError(
            f"fit: the model has {task.num_outputs} outputs but the data has {num_classes} classes; create it with "
            f"num_classes={num_classes}"
        )
    if task.kind == "classification":
        for src, what in ((run.train_src, "fit"), (run.val_src, "fit: val"), (run.test_src, "fit: test split")):
            check_labels(source_labels(src), task.num_outputs, what)
    _check_callables(run, task, out, task.target(y))
    return task


def _check_callables(run: Run, task: Any, out: torch.Tensor, y: torch.Tensor) -> None:
    """The loss (on mixed targets too, with MixUp/CutMix) and the metrics on the sample batch, before an epoch is
    spent; the mixer made once the inputs are known."""
    cfg = run.cfg
    x, _ = run.train.sample()
    run.mixer = make_mixer(cfg.mixup, cfg.cutmix, cfg.mixup_prob, cfg.mixup_switch_prob, task.kind, task.num_outputs, x)
    check_loss(task, out, y, "fit", soft=run.mixer.targets(y, 0.5) if run.mixer is not None else None)
    check_metrics(cfg.metrics, out, y, "fit")


def _steps_per_epoch(run: Run) -> int | None:
    cfg, n_batches = run.cfg, run.train.num_batches
    if n_batches is not None and cfg.grad_accum > n_batches:
        raise ValueError(
            f"grad_accum={cfg.grad_accum} is more than the {n_batches} batches of an epoch (an optimizer step "
            f"would see fewer than it asks for); use grad_accum <= {n_batches} or a smaller batch_size"
        )
    spe = cfg.steps_per_epoch
    if spe is not None and n_batches is not None and spe * cfg.grad_accum > n_batches:
        raise ValueError(
            f"steps_per_epoch={spe} needs {spe * cfg.grad_accum} batches per epoch, but an epoch of the data holds "
            f"{n_batches}; use steps_per_epoch <= {n_batches // cfg.grad_accum} or None (one pass)"
        )
    if spe is not None:
        return spe
    if n_batches is not None:
        return math.ceil(n_batches / cfg.grad_accum)
    if cfg.scheduler is not None and not callable(cfg.scheduler):
        raise ValueError(
            f"scheduler={cfg.scheduler!r} spans the whole run, but the data streams with no known length (an "
            "IterableDataset without __len__): pass steps_per_epoch=N, scheduler=None or a function, or give the "
            "dataset a __len__"
        )
    return None


def wrap(model: nn.Module, run: Run) -> nn.Module:
    """The module the training step calls: compiled when asked, DistributedDataParallel under torchrun."""
    net: nn.Module = model
    if run.cfg.compile:
        net = torch.compile(net)
    if run.dist.enabled:
        ids = [run.device.index] if run.device.type == "cuda" else None
        from torch.nn.parallel import DistributedDataParallel  # imported only here: it is slow to import

        # frozen parameters get no gradient while frozen: DDP must not wait for them
        unused = run.freezer is not None and bool(run.freezer.params)
        net = DistributedDataParallel(net, device_ids=ids, find_unused_parameters=unused)
    return net
