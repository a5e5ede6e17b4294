"""``zoo.fit``: one training loop for a 2-core laptop and for many GPUs, over any data.

``fit`` reads as: set-up (``zoo.train.setup.Run``: everything decided once, before the first step) -> the training
state (``zoo.train.resume.TrainState``: everything that changes, what ``last.pt`` holds) -> ``for epoch``, ``for
batch`` around one step -> evaluation -> ``History``. The loop reads only the ``Batches`` contract and does no
host-device synchronisation per step: loss and metrics accumulate on the device and are read a few times per epoch,
so the framework costs next to nothing over a hand-written loop (``benchmarks/bench_fit.py``).

Model selection (``best.pt``, the best epoch, EarlyStopping) looks at validation data only: ``val=``, a held-out
``val_fraction``, or by default 10% of a zoo Dataset's training split. A zoo Dataset's test split is scored once,
at the end, into ``history.test``. After ``fit`` the model carries its input record (``model.zoo_config["inputs"]``:
input size, normalisation, class names, task), which checkpoints keep, so ``zoo.load`` + ``zoo.predict`` work in a
fresh process.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import signal
import sys
import time
import warnings
from typing import Any

import torch
import torch.nn as nn

from zoo.files import RunDirLock, atomic_write, claim_run_dir, clean_orphans
from zoo.memory import reuse_freed_memory
from zoo.modelfile import model_file, unwrap
from zoo.threads import use_threads
from zoo.train.callbacks import History, step_callbacks
from zoo.train.config import check_config, config_from_options, options_doc, signature
from zoo.train.devices import all_reduce, setup_distributed
from zoo.train.evaluate import run_eval
from zoo.train.optim import OPTIMIZERS, check_scheduler, make_optimizer
from zoo.train.precise_bn import batch_norms, recompute, young
from zoo.train.preemption import SignalWatch, Stopped, skip
from zoo.train.progress import Progress, model_name, progress_enabled
from zoo.train.resume import EpochSums, TrainState, new_state, resume, set_rng_state
from zoo.train.setup import Run, prepare, wrap
from zoo.train.tasks import logits_of

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
    the run and returned bare. With ``ema=`` the model is left holding the averaged weights.

    Raises:
        TypeError: an unknown option (the message names the nearest valid one) or data of an unknown kind.
        ValueError: a bad option value, a model that does not fit the data or targets that do not fit the loss
            (checked on one batch before training), or ``precision="fp16"`` off CUDA.
        FloatingPointError: the loss became NaN or infinite (the message names the epoch and step; the last
            checkpoint written before it is kept).
    """
    cfg = config_from_options(options)
    check_config(cfg)
    model = unwrap(model)  # unwraps DDP and torch.compile wrappers
    if isinstance(cfg.optimizer, str) and cfg.optimizer.lower() not in OPTIMIZERS:
        make_optimizer(cfg.optimizer, model, 0.0, 0.0)  # raises with the valid names
    check_scheduler(cfg.scheduler)
    dist, device = setup_distributed(cfg.device)
    owner = cfg.checkpoint_dir is not None and dist.rank == 0
    ok = False
    try:
        with RunDirLock(cfg.checkpoint_dir, "zoo.fit") if owner else contextlib.nullcontext(), SignalWatch() as sig:
            if owner:  # under the lock: nothing of a run still writing there is touched
                claim_run_dir(cfg.checkpoint_dir, resume=cfg.resume, overwrite=cfg.overwrite)
                clean_orphans(cfg.checkpoint_dir)  # what a write killed half-way left
            history, stopped = _fit(model, data, val, cfg, dist, device, sig)
        ok = True
    finally:
        _end_distributed(dist, ok)
    if stopped is not None and stopped.signum == signal.SIGTERM:
        raise SystemExit(128 + signal.SIGTERM)  # what a scheduler's SIGTERM means: the process ends
    return history


fit.__signature__ = signature(  # type: ignore[attr-defined]
    inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="nn.Module"),
    inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("val", inspect.Parameter.KEYWORD_ONLY, default=None),
)


fit.__doc__ = (fit.__doc__ or "") + options_doc()


def _fit(model: nn.Module, data: Any, val: Any, cfg: Any, dist: Any, device: Any, sig: Any) -> tuple[History, Any]:
    run = prepare(model, data, val, cfg, dist, device, sig)
    state = new_state(model, run)
    try:
        run.net = wrap(model, run)
        if run.cfg.resume:
            resume(state, run)
        with use_threads(run.cfg.threads), reuse_freed_memory():
            stopped = _train(run, state)
            history = state.history
            if stopped is None and not history.interrupted:
                stopped = _score_test(run, state)
        if state.ema is not None and not history.interrupted:
            model.load_state_dict(state.ema.module.state_dict())  # the deliverable is the average (as Keras does)
        for cb in run.cfg.callbacks:
            cb.on_fit_end(history)
        return history, stopped
    finally:
        run.freezer.release()
        # Release the DDP wrapper (and its reducer) before the process group goes: a gloo DDP module alive at
        # interpreter exit aborted 4 runs in 24 here; releasing it first, none in 16.
        vars(run).clear()
        vars(state).clear()
        if dist.enabled:
            gc.collect()


def _score_test(run: Run, state: TrainState) -> Stopped | None:
    """The test split, scored once at the end. A signal that came meanwhile (or since the last epoch closed) stops
    the run as one during training does: the score is dropped, last.pt holds the finished training, and a resumed
    run scores the test split."""
    history = state.history
    if run.test_src is not None and len(run.test_src):
        m = _evaluate(run, state, _until_signal(run.eval_batches(run.test_src), run.signals))
        history.test = {k: v for k, v in m.items() if not isinstance(v, list)}
    signum = run.signals.pending(run.dist, None, run.device)
    if not signum:
        return None
    stopped = Stopped(signum, state.epoch, None, during="the test scoring" if history.test else None)
    history.test, history.interrupted = None, True
    history.notes.append(stopped.note(run.ckpt_dir))
    _say(run, history)
    return stopped


def _until_signal(batches: Any, signals: Any) -> Any:
    """``batches``, cut short once a signal has come (after the first: a score cut short is dropped anyway, and
    a scheduler's grace period is better spent exiting). Under torchrun each rank still all-reduces once."""
    for k, batch in enumerate(batches):
        if k and signals.received is not None:
            return
        yield batch


def _end_distributed(dist: Any, ok: bool) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        if tdist.is_initialized():
            if ok:
                tdist.barrier()
            if dist.created_group:
                tdist.destroy_process_group()


# -- epochs --------------------------------------------------------------------------------------------------


def _train(run: Run, state: TrainState) -> Stopped | None:
    """The epochs, from the one a resumed run stopped in; an interruption ends them with a note, not an error."""
    history = state.history
    for cb in run.cfg.callbacks:
        cb.model = state.model
        cb.on_fit_start(history)
    try:
        for epoch in range(state.epoch + 1, run.cfg.epochs + 1):
            for cb in run.cfg.callbacks:
                cb.on_epoch_start(history, epoch)
            record = _epoch(run, state, epoch)
            _close_epoch(run, state, record)
            if _stop_after(run, state, epoch):
                break
    except Stopped as exc:
        history.interrupted = True
        history.notes.append(exc.note(run.ckpt_dir))
        _say(run, history)
        return exc
    except KeyboardInterrupt:  # a second Ctrl-C, or fit running outside the main thread
        history.interrupted = True
        note = f"interrupted during epoch {len(history.epochs) + 1}"
        if run.ckpt_dir is not None:
            note += f"; resume=True continues from {run.ckpt_dir / 'last.pt'} (after epoch {len(history.epochs)})"
        history.notes.append(note)
        _say(run, history)
    except _NonFiniteLoss as exc:
        raise FloatingPointError(str(exc)) from None
    return None


def _say(run: Run, history: History) -> None:
    if run.dist.rank == 0:
        print(f"zoo.fit: {history.notes[-1]}", file=sys.stderr)


def _epoch(run: Run, state: TrainState, epoch: int) -> dict[str, Any]:
    """Train one epoch, then validate: the epoch's record."""
    t0 = time.perf_counter()
    loss, metric, n, train_s, bar = _train_epoch(run, state, epoch)
    record: dict[str, Any] = {"epoch": epoch, "loss": loss, run.task.train_metric: metric}
    record.update({k: None for k in state.history.fields if k.startswith("val_")})
    if run.val is not None:
        m = _evaluate(run, state, run.val)
        record.update({k: m.get(k[4:]) for k in state.history.fields if k.startswith("val_")})
    record["lr"] = float(state.optimizer.param_groups[0]["lr"])
    record["seconds"] = time.perf_counter() - t0
    record["images_per_s"] = n / train_s if train_s > 0 else 0.0
    shown = {"val_loss": record.get("val_loss"), state.monitor: record.get(state.monitor)}
    bar.close(**{k: f"{v:.4f}" for k, v in shown.items() if v is not None})
    return record


def _close_epoch(run: Run, state: TrainState, record: dict[str, Any]) -> None:
    """Record the epoch, keep the best model, write last.pt, and tell the callbacks."""
    state.history.epochs.append(record)
    state.epoch, state.partial = record["epoch"], None
    score = record.get(state.monitor)
    higher = run.monitor[1]
    best = state.best_score
    better = score is not None and (best is None or (score > best if higher else score < best))
    if better:  # before last.pt is written, so that last.pt records the score it has beaten
        state.best_score = score
    _save_last(run, state)
    if better and run.ckpt_dir is not None and run.dist.rank == 0:
        deliverable = state.ema.module if state.ema is not None else state.model
        content = {**model_file(deliverable), "best": {"monitor": state.monitor, "score": score}}
        atomic_write(run.ckpt_dir / "best.pt", lambda f: torch.save(content, f))
    for cb in run.cfg.callbacks:
        cb.on_epoch_end(state.history, record)


def _save_last(run: Run, state: TrainState) -> None:
    if run.ckpt_dir is not None and run.dist.rank == 0:
        content = state.state_dict(run.device)
        atomic_write(run.ckpt_dir / "last.pt", lambda f: torch.save(content, f))


def _stop_after(run: Run, state: TrainState, epoch: int) -> bool:
    """Whether a callback (on any rank) asked to stop; a signal that came during the epoch's last step, its
    validation (precise BN included) or the save of its checkpoints stops the run here, the last epoch's too."""
    history = state.history
    flag = torch.tensor([1.0 if history.stop_reason else 0.0])
    if run.dist.enabled:
        flag = all_reduce(flag.to(run.device), run.dist, op="max").cpu()
    if float(flag) > 0:
        history.stop_reason = history.stop_reason or "stopped by a callback on another rank"
        if epoch < run.cfg.epochs:
            history.notes.append(f"stopped after epoch {epoch}: {history.stop_reason}")
        return True
    signum = run.signals.pending(run.dist, None, run.device)
    if signum:
        raise Stopped(signum, epoch, None)
    return False


# -- one epoch, one step -------------------------------------------------------------------------------------


def _train_epoch(run: Run, state: TrainState, epoch: int) -> tuple[float, float, int, float, Progress]:
    """One pass over the training batches (from the resumed position, if any): loss, metric, samples, seconds."""
    sums, batches = _open_epoch(run, state, epoch)
    net, task, accum, n_batches = run.net, run.task, run.cfg.grad_accum, run.epoch_batches
    net.train()
    for m in run.freezer.held_norms(state.model):
        m.eval()
    show = progress_enabled(run.cfg.progress, run.dist.rank)
    bar = Progress(show, n_batches, epoch, run.cfg.epochs, done=sums.batch, name=model_name(state.model))
    sync_every = _SYNC_EVERY if show else max(_SYNC_EVERY, n_batches or 1 << 30)
    t0, seen0 = time.perf_counter(), sum(sums.sizes)
    state.optimizer.zero_grad(set_to_none=True)
    mixer, callbacks = run.mixer, run.cfg.callbacks
    starts, ends = step_callbacks(callbacks, "start"), step_callbacks(callbacks, "end")
    i = sums.batch - 1
    for i, (x, y) in enumerate(batches, sums.batch):
        y = hard = task.target(y)
        for cb in starts:
            cb.on_train_batch_start(state.history, {"epoch": epoch, "batch": i, "step": state.step})
        if mixer is not None:  # on the device; the training metric stays against the hard labels
            x, y = mixer(x, y)
        last_micro = (i + 1) % accum == 0 or (n_batches is not None and i + 1 == n_batches)
        with net.no_sync() if run.dist.enabled and not last_micro else contextlib.nullcontext():
            with run.autocast:
                out = logits_of(net(x))
                loss = task.train_loss(out, y)
            state.scaler.scale(loss / accum if accum > 1 else loss).backward()
        if last_micro:
            _step(run, state)
        sums.add(loss, task.train_stat(out.detach(), hard), int(y.shape[0]), task.train_count(hard))
        if ends:
            _batch_end(ends, state, {"epoch": epoch, "batch": i, "step": state.step, "loss": loss.detach(),
                                     "lr": state.optimizer.param_groups[0]["lr"], "stepped": last_micro})  # fmt: skip
        if (i + 1) % sync_every == 0:
            _check_finite(run, state, sums)
            _show(bar, sums, task.train_metric, seen0, t0)
        if last_micro and (n_batches is None or i + 1 < n_batches):
            _checkpoint_or_stop(run, state, sums, bar)
        if n_batches is not None and i + 1 >= n_batches:
            break  # steps_per_epoch reached (the data itself may go on: a stream)
    if (n_batches is None or i + 1 < n_batches) and (i + 1) % accum != 0 and i >= 0:
        _step(run, state)  # a stream's last partial accumulation (it ended before steps_per_epoch, if given)
    if i < 0:
        raise ValueError(f"fit: the training data yielded no batch in epoch {epoch}")
    _check_finite(run, state, sums)
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    seconds = time.perf_counter() - t0
    loss_mean, metric_mean = _epoch_means(run, sums)
    bar.finish(loss=f"{loss_mean:.4f}", **{task.train_metric[:3]: f"{metric_mean:.4f}"})
    return loss_mean, metric_mean, (sum(sums.sizes) - seen0) * run.dist.world_size, seconds, bar


def _batch_end(callbacks: list, state: TrainState, info: dict[str, Any]) -> None:
    """The per-step hook: ``loss`` is the batch's loss as a tensor on the device (``float()`` it to read it, at the
    cost of a synchronisation), ``step`` the optimizer steps taken, ``lr`` the first group's lr after the step."""
    for cb in callbacks:
        cb.on_train_batch_end(state.history, info)


def _open_epoch(run: Run, state: TrainState, epoch: int) -> tuple[EpochSums, Any]:
    """The epoch's sums and batches: fresh, or where a resumed run stopped (the epoch's order replayed from its
    start, then the generators as they were at the stop)."""
    run.freezer.start_epoch(epoch)
    run.train.set_epoch(epoch)
    sums = state.partial
    if sums is None or sums.epoch != epoch:
        state.partial = sums = EpochSums.start(epoch, run.device)
        return sums, iter(run.train)
    set_rng_state(sums.epoch_rng, run.device)
    batches = skip(iter(run.train), sums.batch, epoch)
    set_rng_state(sums.rng, run.device)
    return sums, batches


def _step(run: Run, state: TrainState) -> None:
    """One optimizer step (unscale and clip, step, schedule), then the EMA."""
    opt, scaler, sched = state.optimizer, state.scaler, state.scheduler
    if run.cfg.clip_grad is not None:
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(state.model.parameters(), run.cfg.clip_grad)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)
    if sched is not None:
        with warnings.catch_warnings():
            # the fp16 scaler skips steps whose gradients overflowed (often the first few); the schedule still
            # advances, as in torch's AMP recipe, without torch's warning about it
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            sched.step()
    state.step += 1
    if state.ema is not None:
        state.ema.update(state.model, state.step)


def _checkpoint_or_stop(run: Run, state: TrainState, sums: EpochSums, bar: Progress) -> None:
    """Mid-epoch, after an optimizer step: write last.pt every ``checkpoint_every`` steps, and when a signal came
    (then stop)."""
    stop = run.signals.pending(run.dist, state.step, run.device)
    every = run.cfg.checkpoint_every
    if stop or (every and state.step % every == 0):
        _check_finite(run, state, sums)
        _save_last(run, state)
    if stop:
        bar.close()
        raise Stopped(stop, sums.epoch, sums.batch)


def _epoch_means(run: Run, sums: EpochSums) -> tuple[float, float]:
    """The epoch's mean loss and training metric, over every rank."""
    w = torch.tensor(sums.sizes, dtype=torch.float32, device=run.device)
    packed = torch.stack(
        [(torch.stack(sums.losses).float() * w).sum().double(), sums.stat, w.sum().double(),
         torch.tensor(float(sum(sums.counts)), dtype=torch.float64, device=run.device)]
    )  # fmt: skip
    packed = all_reduce(packed, run.dist).cpu()
    return float(packed[0]) / float(packed[2]), float(packed[1]) / float(packed[3])


def _show(bar: Progress, sums: EpochSums, metric: str, seen0: int, t0: float) -> None:
    if bar.bar is not None:
        bar.update(
            sums.batch,
            loss=f"{float(torch.stack(sums.losses).mean()):.4f}",
            **{metric[:3]: f"{float(sums.stat) / sum(sums.counts):.4f}"},
            img_s=f"{(sum(sums.sizes) - seen0) / (time.perf_counter() - t0):,.0f}",
        )


def _check_finite(run: Run, state: TrainState, sums: EpochSums) -> None:
    """The losses since the last check are finite, or a one-line error naming the epoch and step."""
    losses, start = sums.losses, sums.checked
    if len(losses) <= start:
        return
    bad = (~torch.isfinite(torch.stack(losses[start:]))).nonzero()
    if bad.numel():
        i = start + int(bad[0, 0])
        of = f" of {run.train.num_batches}" if run.train.num_batches else ""
        raise _NonFiniteLoss(
            f"the loss became {float(losses[i])} at epoch {sums.epoch}, step {i + 1}{of} "
            f"(optimizer step {state.step}); try a lower lr (now {run.cfg.lr:g}), clip_grad=1.0 or precision='fp32'"
            + ("; the last good checkpoint is kept in " + str(run.ckpt_dir) if run.ckpt_dir else "")
        )
    sums.checked = len(losses)


# -- evaluation ----------------------------------------------------------------------------------------------


def _evaluate(run: Run, state: TrainState, batches: Any) -> dict[str, Any]:
    """Metrics of the model being delivered (the EMA when on) on ``batches``, after precise BN when due."""
    if state.ema is not None:
        model = state.ema.module
    else:
        model = state.model if not run.dist.enabled else run.net.module
    _precise_bn(run, state, model)
    return run_eval(model, batches, run.task, run.autocast, run.device, run.dist, run.cfg.metrics)


def _precise_bn(run: Run, state: TrainState, model: nn.Module) -> None:
    """BatchNorm statistics of the current weights before an evaluation, when they are young (``precise_bn``)."""
    held = run.freezer.held_norms(model)
    norms = [m for m in batch_norms(model) if all(m is not h for h in held)]
    if not norms or run.cfg.precise_bn is False or run.bn_step == state.step:
        return
    if run.cfg.precise_bn is None and not young(norms, state.step * run.cfg.grad_accum):
        return
    if run.bn_batches is None:
        run.bn_batches = run.batches(run.train_src, run.cfg.batch_size or 256, train=False)
    used = recompute(model, run.bn_batches, run.autocast, held=held)
    run.bn_step = state.step
    note = "BatchNorm statistics recomputed with the current weights before evaluating (precise_bn)"
    if used and note not in state.history.notes:
        state.history.notes.append(note)


class _NonFiniteLoss(FloatingPointError):
    pass
