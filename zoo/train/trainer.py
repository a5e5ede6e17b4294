"""``zoo.fit``: one training loop for a 2-core laptop and for many GPUs, over any data.

Decided once, before the first step (nanoGPT style): the device (CUDA, then MPS, then CPU), the autocast context and
gradient scaler, the process group under ``torchrun``, the batches (``zoo.data.make_batches``: zoo's whole uint8
splits normalised per batch on the device, or any torch DataLoader / Dataset), the task and loss
(``zoo.train.tasks``). The loop reads only the ``Batches`` contract and does no host-device synchronisation per
step: loss and metrics accumulate on the device and are read a few times per epoch, so the framework costs next to
nothing over a hand-written loop (``benchmarks/bench_fit.py``).

Model selection (``best.pt``, the best epoch, EarlyStopping) looks at validation data only: ``val=``, a held-out
``val_fraction``, or by default 10% of a zoo Dataset's training split. A zoo Dataset's test split is scored once,
at the end, into ``history.test``. After ``fit`` the model carries its data record (``model.zoo_config["data"]``:
input size, normalisation, class names, task), which checkpoints keep, so ``zoo.load`` + ``zoo.predict`` work in a
fresh process.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import math
import random
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from zoo.data.loaders import make_batches, source_len
from zoo.data.types import is_split
from zoo.train.callbacks import History
from zoo.train.config import TrainConfig, check_config, config_from_options, options_doc, signature
from zoo.train.devices import all_reduce, autocast_context, resolve_precision, setup_distributed
from zoo.train.evaluate import check_labels, check_model_fits, run_eval
from zoo.train.inputs import fit_parts, record_data
from zoo.train.optim import OPTIMIZERS, check_scheduler, make_optimizer, make_scheduler
from zoo.train.precise_bn import batch_norms, recompute, young
from zoo.train.preemption import SignalWatch, Stopped, skip
from zoo.train.progress import Progress, progress_enabled
from zoo.train.resume import Checkpointing
from zoo.train.rundir import RunDirLock, clean_orphans
from zoo.train.state import (
    CheckpointError,
    read_checkpoint,
    rng_state,
    set_rng_state,
    unwrap,
)
from zoo.train.tasks import MONITOR, logits_of, resolve_task

__all__ = ["fit"]

_SYNC_EVERY = 25  # steps between reads of the on-device metrics while a progress bar is shown


def fit(model: nn.Module, data: Any, *, val: Any = None, **options: Any) -> History:
    """Train ``model`` on ``data`` in place and return its ``History``.

    ``data`` is any of: a ``zoo.load_dataset`` Dataset (trains on its training split less a held-out 10% that
    validates each epoch; scores the test split once at the end into ``history.test``); a ``Split``; an
    ``(inputs, targets)`` pair of tensors or numpy arrays (uint8 N x C x H x W images are normalised per batch,
    float inputs such as N x F tables are used as they are); a map-style ``torch.utils.data.Dataset`` (wrapped in a
    DataLoader: batch size, shuffling, workers and pinned memory chosen for the device); an ``IterableDataset``; a
    ``DataLoader``, used as given. ``val`` is validation data of any of these kinds (or use ``val_fraction=``).

    Every option is a field of ``TrainConfig`` (listed below, with its default); the defaults are a measured
    recipe (AdamW, one-cycle to a peak lr of 1e-2, batch 256, label smoothing 0.1). The model, the batches and the
    optimizer state are put on the device; under ``torchrun`` the model is wrapped in DistributedDataParallel for
    the run and returned bare.

    Raises:
        TypeError: an unknown option (the message names the nearest valid one) or data of an unknown kind.
        ValueError: a bad option value, a model that does not fit the data or targets that do not fit the loss
            (checked on one batch before training), or ``precision="fp16"`` off CUDA.
        FloatingPointError: the loss became NaN or infinite (the message names the epoch and step; the last
            checkpoint written before it is kept).
    """
    cfg = config_from_options(options)
    return _Trainer(model, data, val, cfg).run()


fit.__signature__ = signature(  # type: ignore[attr-defined]
    inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="nn.Module"),
    inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("val", inspect.Parameter.KEYWORD_ONLY, default=None),
)


fit.__doc__ = (fit.__doc__ or "") + options_doc()


class _Trainer(Checkpointing):
    """One ``fit`` call: everything decided up front, then the loop."""

    def __init__(self, model: nn.Module, data: Any, val: Any, cfg: TrainConfig) -> None:
        check_config(cfg)
        self.model = unwrap(model)  # unwraps DDP and torch.compile wrappers
        self.cfg = cfg
        if isinstance(cfg.optimizer, str) and cfg.optimizer.lower() not in OPTIMIZERS:
            make_optimizer(cfg.optimizer, self.model, 0.0, 0.0)  # raises with the valid names
        check_scheduler(cfg.scheduler)
        self.train_src, self.val_src, self.test_src, self.info = fit_parts(data, val, cfg)
        loader_bs = getattr(self.train_src, "batch_size", None)
        if isinstance(self.train_src, torch.utils.data.DataLoader) and cfg.batch_size not in (None, loader_bs):
            raise ValueError(
                f"batch_size={cfg.batch_size} but the DataLoader batches {self.train_src.batch_size}: a "
                "DataLoader is used as given; drop batch_size= or pass the Dataset instead"
            )
        self.dist, self.device = setup_distributed(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.autocast = autocast_context(self.device, self.precision)
        self.channels_last = (self.device.type == "cpu") if cfg.channels_last is None else bool(cfg.channels_last)
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
        if seed is None and self.cfg.resume and self.ckpt_dir is not None and (self.ckpt_dir / "last.pt").is_file():
            # a resumed run keeps the data order of the run it resumes
            with contextlib.suppress(CheckpointError, KeyError, TypeError, ValueError, FileNotFoundError):
                seed = int(read_checkpoint(self.ckpt_dir / "last.pt")["history"]["config"]["seed"])
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            if self.dist.enabled:  # every rank must shuffle alike
                t = torch.tensor([seed if self.dist.rank == 0 else 0], dtype=torch.int64, device=self.device)
                seed = int(all_reduce(t, self.dist).item())
        torch.manual_seed(seed)
        random.seed(seed)
        self.history.config["seed"] = seed
        return seed

    def _batches(self, source: Any, batch_size: int, *, train: bool) -> Any:
        cfg = self.cfg
        norm = {}
        if not train and getattr(self, "train_batches", None) is not None:
            # validation and test images are normalised exactly as the training images
            norm = {"mean": getattr(self.train_batches, "mean", None), "std": getattr(self.train_batches, "std", None)}
        kw = dict(
            device=self.device,
            shuffle=train,
            augment=cfg.augment and train,
            channels_last=self.channels_last,
            seed=self.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            num_workers=cfg.num_workers,
            pin_memory=cfg.pin_memory,
            **norm,
        )
        batches = make_batches(source, batch_size, **kw)
        n = batches.num_samples
        if train and n and n % batch_size == 1 and n > 1 and not isinstance(source, torch.utils.data.DataLoader):
            # a last batch of one sample breaks BatchNorm in training mode ("Expected more than 1 value per
            # channel"): drop that one sample per epoch (the next epoch's shuffle picks another)
            batches = make_batches(source, batch_size, drop_last=True, **kw)
        return batches

    def _build(self) -> None:
        cfg, model = self.cfg, self.model
        n = source_len(self.train_src)
        if isinstance(self.train_src, torch.utils.data.DataLoader):
            bs = self.train_src.batch_size  # as given; None for a loader that yields ready-made batches
        elif cfg.batch_size is not None:
            bs = cfg.batch_size
        else:
            per_rank = (n if n is not None else 1 << 30) / self.dist.world_size
            bs = 256
            while bs > 32 and per_rank / bs < 40:
                bs //= 2
        self.batch_size = bs
        self.history.config["batch_size"] = bs
        self.seed = self._seed()
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.train_batches = None
        self.train_batches = self._batches(self.train_src, bs, train=True)
        out, y = check_model_fits(model, self.train_batches, "fit")
        self.task = resolve_task(cfg.loss, cfg.label_smoothing, out, y, "fit")
        k = self.info.num_classes
        if self.task.kind == "classification" and k and self.task.num_outputs < k:
            raise ValueError(
                f"fit: the model has {self.task.num_outputs} outputs but the data has {k} classes; create it with "
                f"num_classes={k}"
            )
        for src, what in ((self.train_src, "fit"), (self.val_src, "fit: val"), (self.test_src, "fit: test split")):
            if self.task.kind == "classification" and is_split(src) and len(src):
                check_labels(src.labels, self.task.num_outputs, what)
        self._record_data()
        self.history.task = self.task.kind
        self.history.fields = self._fields()
        eval_bs = cfg.eval_batch_size or 2 * (bs or 256)
        self.val_batches = None
        if self.val_src is not None and (source_len(self.val_src) or 0) != 0:
            self.val_batches = self._batches(self.val_src, eval_bs, train=False)
        self.steps_per_epoch = None
        n_batches = self.train_batches.num_batches
        if n_batches is not None and cfg.grad_accum > n_batches:
            raise ValueError(
                f"grad_accum={cfg.grad_accum} is more than the {n_batches} batches of an epoch (an optimizer step "
                f"would see fewer than it asks for); use grad_accum <= {n_batches} or a smaller batch_size"
            )
        if self.train_batches.num_batches is not None:
            self.steps_per_epoch = math.ceil(self.train_batches.num_batches / cfg.grad_accum)
        elif cfg.scheduler is not None and not callable(cfg.scheduler):
            raise ValueError(
                f"scheduler={cfg.scheduler!r} spans the whole run, but the data streams with no known length (an "
                "IterableDataset without __len__): pass scheduler=None, a function, or give the dataset a __len__"
            )
        self.optimizer = make_optimizer(cfg.optimizer, model, self.lr, cfg.weight_decay)
        total = (self.steps_per_epoch or 1) * cfg.epochs
        self.scheduler = make_scheduler(cfg.scheduler, self.optimizer, self.lr, total)
        # always present; a no-op unless fp16 (it scales the loss so small fp16 gradients do not vanish)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
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
        self.monitor, self.higher_is_better = MONITOR[self.task.kind]
        self.best_score: float | None = None

    def _record_data(self) -> None:
        """What the model needs to see new data as it saw this data: kept in checkpoints, read by predict."""
        loss = self.cfg.loss if isinstance(self.cfg.loss, str) else ("cross_entropy" if self.cfg.loss is None else None)
        record_data(self.model, self.info, self.train_batches, self.task, loss)

    def _fields(self) -> list[str]:
        train = [self.task.train_metric]
        val = {"classification": ["val_accuracy"], "multilabel": ["val_accuracy"], "regression": ["val_mae", "val_r2"]}
        extra = [f"val_{k}" for k in self.cfg.metrics]
        return ["epoch", "loss", *train, "val_loss", *val[self.task.kind], *extra, "lr", "seconds", "images_per_s"]

    # -- the loop ----------------------------------------------------------------------------------------

    def _train_epoch(self, epoch: int, partial: dict[str, Any] | None = None) -> tuple[float, float, int, float]:
        cfg, net, opt, sched, scaler, task = self.cfg, self.net, self.optimizer, self.scheduler, self.scaler, self.task
        batches = self.train_batches
        batches.set_epoch(epoch)
        n_batches = batches.num_batches
        net.train()
        if partial:  # resuming mid-epoch: the epoch's order from its start, then the state at the checkpoint
            start = int(partial["batch"])
            self.epoch_rng = partial["epoch_rng"]
            set_rng_state(self.epoch_rng, self.device)
            iterator = skip(iter(batches), start)
            set_rng_state(partial["rng"], self.device)
            losses = [t.to(self.device) for t in partial["losses"].unbind()] if len(partial["losses"]) else []
            stat = partial["stat"].to(self.device, torch.float64)
            sizes, counts = list(partial["sizes"]), list(partial["counts"])
        else:
            start = 0
            self.epoch_rng = rng_state(self.device)  # what a mid-epoch resume replays the order from
            iterator = iter(batches)
            losses = []  # per-batch loss on the device, read rarely
            stat = torch.zeros((), dtype=torch.float64, device=self.device)  # the task's training metric, summed
            sizes, counts = [], []
        accum, checked = cfg.grad_accum, len(losses)
        show = progress_enabled(cfg.progress, self.dist.rank)
        bar = Progress(show, n_batches, epoch, cfg.epochs)
        if start and bar.bar is not None:
            bar.bar.update(start)
        sync_every = _SYNC_EVERY if show else max(_SYNC_EVERY, n_batches or 1 << 30)
        clip, every = cfg.clip_grad, cfg.checkpoint_every
        metric = task.train_metric
        t0 = time.perf_counter()
        seen0 = sum(sizes)
        opt.zero_grad(set_to_none=True)
        i = start - 1
        for i, (x, y) in enumerate(iterator, start):
            y = task.target(y)
            last_micro = (i + 1) % accum == 0 or (n_batches is not None and i + 1 == n_batches)
            sync_ctx = net.no_sync() if self.dist.enabled and not last_micro else contextlib.nullcontext()
            with sync_ctx:
                with self.autocast:
                    out = logits_of(net(x))
                    loss = task.train_loss(out, y)
                scaler.scale(loss / accum if accum > 1 else loss).backward()
            if last_micro:
                self._step(opt, sched, scaler, clip)
            losses.append(loss.detach())
            stat += task.train_stat(out.detach(), y)
            sizes.append(int(y.shape[0]))
            counts.append(task.train_count(y))
            if (i + 1) % sync_every == 0:
                checked = self._check_finite(losses, checked, epoch)
                if show:
                    seen = sum(sizes) - seen0
                    bar.update(
                        i + 1 - bar.bar.n,
                        loss=f"{float(torch.stack(losses).mean()):.4f}",
                        **{metric[:3]: f"{float(stat) / sum(counts):.4f}"},
                        img_s=f"{seen / (time.perf_counter() - t0):,.0f}",
                    )
            if last_micro and (n_batches is None or i + 1 < n_batches):
                stop = self._signals.pending(self.dist, self.step, self.device)
                if stop or (every and self.step % every == 0):
                    self._check_finite(losses, checked, epoch)
                    state = {"epoch": epoch, "batch": i + 1, "epoch_rng": self.epoch_rng, "sizes": sizes,
                             "counts": counts, "stat": stat.detach().cpu(),
                             "losses": torch.stack(losses).detach().cpu()}  # fmt: skip
                    self._save("last.pt", epoch - 1, partial=state)
                if stop:
                    bar.close()
                    raise Stopped(stop, epoch, i + 1)
        if n_batches is None and (i + 1) % accum != 0 and i >= 0:
            self._step(opt, sched, scaler, clip)  # a stream's last partial accumulation
        if i < 0:
            raise ValueError(f"fit: the training data yielded no batch in epoch {epoch}")
        self._check_finite(losses, checked, epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        w = torch.tensor(sizes, dtype=torch.float32, device=self.device)
        packed = torch.stack(
            [(torch.stack(losses).float() * w).sum().double(), stat, w.sum().double(),
             torch.tensor(float(sum(counts)), dtype=torch.float64, device=self.device)]
        )  # fmt: skip
        packed = all_reduce(packed, self.dist).cpu()
        n = float(packed[2])
        rate = (sum(sizes) - seen0) * self.dist.world_size / max(seconds, 1e-9)
        loss_mean, metric_mean = float(packed[0]) / n, float(packed[1]) / float(packed[3])
        bar.close(loss=f"{loss_mean:.4f}", **{metric[:3]: f"{metric_mean:.4f}"}, img_s=f"{rate:,.0f}")
        return loss_mean, metric_mean, (sum(sizes) - seen0) * self.dist.world_size, seconds

    def _step(self, opt: Any, sched: Any, scaler: Any, clip: float | None) -> None:
        if clip is not None:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if sched is not None:
            if scaler.is_enabled():
                # the scaler skips steps whose gradients overflowed (often the first few at fp16); the schedule
                # still advances, as in torch's AMP recipe, without torch's warning about it
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
                    sched.step()
            else:
                sched.step()
        self.step += 1

    def _check_finite(self, losses: list[torch.Tensor], start: int, epoch: int) -> int:
        end = len(losses)
        if end <= start:
            return start
        chunk = torch.stack(losses[start:end])
        bad = (~torch.isfinite(chunk)).nonzero()
        if bad.numel():
            i = start + int(bad[0, 0])
            of = f" of {self.train_batches.num_batches}" if self.train_batches.num_batches else ""
            raise _NonFiniteLoss(
                f"the loss became {float(losses[i])} at epoch {epoch}, step {i + 1}{of} "
                f"(optimizer step {self.step}); try a lower lr (now {self.lr:g}), clip_grad=1.0 or precision='fp32'"
                + ("; the last good checkpoint is kept in " + str(self.ckpt_dir) if self.ckpt_dir else "")
            )
        return end

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _stop_requested(self) -> str | None:
        flag = torch.tensor([1.0 if self.history.stop_reason else 0.0])
        if self.dist.enabled:
            flag = all_reduce(flag.to(self.device), self.dist, op="max").cpu()
        if float(flag) > 0:
            return self.history.stop_reason or "stopped by a callback on another rank"
        return None

    def _evaluate(self, batches: Any) -> dict[str, Any]:
        model = self.model if not self.dist.enabled else self.net.module
        self._precise_bn(model)
        return run_eval(model, batches, self.task, self.autocast, self.device, self.dist, self.cfg.metrics)

    def _precise_bn(self, model: nn.Module) -> None:
        """BatchNorm statistics of the current weights before an evaluation, when they are young (``precise_bn``)."""
        norms = batch_norms(model)
        forwards = self.step * self.cfg.grad_accum
        if not norms or self.cfg.precise_bn is False or getattr(self, "_bn_step", None) == self.step:
            return
        if self.cfg.precise_bn is None and not young(norms, forwards):
            return
        if getattr(self, "_bn_batches", None) is None:
            self._bn_batches = self._batches(self.train_src, self.batch_size or 256, train=False)
        used = recompute(model, self._bn_batches, self.autocast)
        self._bn_step = self.step
        note = "BatchNorm statistics recomputed with the current weights before evaluating (precise_bn)"
        if used and note not in self.history.notes:
            self.history.notes.append(note)

    def _epoch(self, epoch: int, partial: dict[str, Any] | None = None) -> dict[str, Any]:
        t0 = time.perf_counter()
        loss, metric, n, train_s = self._train_epoch(epoch, partial)
        record: dict[str, Any] = {"epoch": epoch, "loss": loss, self.task.train_metric: metric}
        for key in self.history.fields:
            if key.startswith("val_"):
                record[key] = None
        if self.val_batches is not None:
            m = self._evaluate(self.val_batches)
            for key in self.history.fields:
                if key.startswith("val_"):
                    record[key] = m.get(key[4:])
        record["lr"] = self._current_lr()
        record["seconds"] = time.perf_counter() - t0
        record["images_per_s"] = n / train_s if train_s > 0 else 0.0
        return record

    def run(self) -> History:
        owner = self.ckpt_dir is not None and self.dist.rank == 0
        with RunDirLock(self.ckpt_dir, "zoo.fit") if owner else contextlib.nullcontext(), SignalWatch() as signals:
            self._signals = signals
            if owner:
                clean_orphans(self.ckpt_dir)  # what a write killed half-way left; we hold the lock
            return self._run()

    def _run(self) -> History:
        cfg, history = self.cfg, self.history
        ok = False
        try:
            self._build()
            self.partial = None
            if cfg.resume:
                self._resume()
            for cb in cfg.callbacks:
                cb.model = self.model
                cb.on_fit_start(history)
            epoch = self.start_epoch - 1
            stopped: Stopped | None = None
            try:
                for epoch in range(self.start_epoch, cfg.epochs + 1):
                    for cb in cfg.callbacks:
                        cb.on_epoch_start(history, epoch)
                    record = self._epoch(epoch, self.partial)
                    self.partial = None
                    history.epochs.append(record)
                    score = record.get(self.monitor)
                    better = score is not None and (
                        self.best_score is None
                        or (score > self.best_score if self.higher_is_better else score < self.best_score)
                    )
                    if better:  # before last.pt is written, so that last.pt records the score it has beaten
                        self.best_score = score
                    self._save("last.pt", epoch)
                    if better:
                        self._save("best.pt", epoch)
                    for cb in cfg.callbacks:
                        cb.on_epoch_end(history, record)
                    reason = self._stop_requested()
                    if reason:
                        history.stop_reason = reason
                        if epoch < cfg.epochs:
                            history.notes.append(f"stopped after epoch {epoch}: {reason}")
                        break
                    signum = self._signals.pending(self.dist, None, self.device)
                    if signum and epoch < cfg.epochs:  # came in during the epoch's last step or its validation
                        raise Stopped(signum, epoch, None)
            except Stopped as exc:
                stopped = exc
                history.interrupted = True
                history.notes.append(exc.note(self.ckpt_dir))
            except KeyboardInterrupt:  # a second Ctrl-C, or fit running outside the main thread
                history.interrupted = True
                done = len(history.epochs)
                note = f"interrupted during epoch {done + 1}"
                if self.ckpt_dir is not None:
                    note += f"; resume=True continues from {self.ckpt_dir / 'last.pt'} (after epoch {done})"
                history.notes.append(note)
            except _NonFiniteLoss as exc:
                raise FloatingPointError(str(exc)) from None
            if history.interrupted and self.dist.rank == 0:
                print(f"zoo.fit: {history.notes[-1]}", file=sys.stderr)
            if self.test_src is not None and not history.interrupted and len(self.test_src):
                m = self._evaluate(
                    self._batches(self.test_src, cfg.eval_batch_size or 2 * (self.batch_size or 256), train=False)
                )
                history.test = {k: v for k, v in m.items() if not isinstance(v, list)}
            for cb in cfg.callbacks:
                cb.on_fit_end(history)
            ok = True
            if stopped is not None and stopped.signum == signal.SIGTERM:
                raise SystemExit(128 + signal.SIGTERM)  # what a scheduler's SIGTERM means: the process ends
            return history
        finally:
            self._teardown(ok)

    def _teardown(self, ok: bool) -> None:
        # Release the DDP wrapper (and its reducer) before the process group goes: a gloo DDP module alive at
        # interpreter exit aborted 4 runs in 24 here; releasing it first, none in 16.
        net = self.__dict__.pop("net", None)
        is_ddp = self.dist.enabled
        del net
        for name in ("optimizer", "scheduler", "train_batches", "val_batches", "_bn_batches"):
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


class _NonFiniteLoss(FloatingPointError):
    pass
