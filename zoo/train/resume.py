"""The training state: everything a run changes as it trains (``TrainState``), what ``last.pt`` holds, and resuming.

``TrainState`` declares it all in one place (weights, optimizer, schedule, gradient scaler, the EMA of the weights
when on, epoch, step, the epoch under way with its partial sums, the best score, the history) with
``state_dict()`` and ``load_state_dict()`` side by side; the random generators are saved and restored with it.
``last.pt`` is that state, and resuming restores it exactly or says in one line which option may not change.
``best.pt`` and the model ``fit`` leaves are the deliverable instead: weights and the model's record
(``zoo.modelfile.model_file``, what ``zoo.save`` writes). A ``last.pt`` written before this layout (no ``ema``
entry) resumes as it is: the keys are the same.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from zoo.files import plain
from zoo.modelfile import CHECKPOINT_VERSION, cpu_state, load_weights, model_config
from zoo.train.callbacks import History
from zoo.train.ema import ModelEma
from zoo.train.fingerprint import fingerprint_changes
from zoo.train.optim import make_optimizer, make_scheduler, param_groups
from zoo.train.setup import Run
from zoo.weights import CHECKPOINT_FORMAT, CheckpointError, read_checkpoint

__all__ = ["TrainState", "EpochSums", "new_state", "resume", "FIXED_ON_RESUME"]

# options a resumed run must share with the run it resumes (the data order, the optimizer state and the
# checkpointed schedule depend on them); epochs, lr and weight_decay may change, the others freely
FIXED_ON_RESUME = ("batch_size", "grad_accum", "optimizer", "scheduler", "loss", "ema", "layer_lr_decay",
                   "steps_per_epoch")  # fmt: skip


def rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": plain(random.getstate())}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass(eq=False)
class EpochSums:
    """The epoch under way: how far it got and what its batches summed (on the device; read a few times per epoch)."""

    epoch: int
    epoch_rng: dict[str, Any]  # the generators at the epoch's start: a mid-epoch resume replays the order from them
    stat: torch.Tensor  # the task's training metric, summed (float64)
    losses: list[torch.Tensor] = field(default_factory=list)  # one per batch
    sizes: list[int] = field(default_factory=list)
    counts: list[float] = field(default_factory=list)
    batch: int = 0  # batches done
    rng: dict[str, Any] | None = None  # resumed: the generators at the stop, restored once the order is replayed
    checked: int = 0  # losses already checked to be finite

    @classmethod
    def start(cls, epoch: int, device: torch.device) -> EpochSums:
        return cls(epoch, rng_state(device), torch.zeros((), dtype=torch.float64, device=device))

    def add(self, loss: torch.Tensor, stat: torch.Tensor, size: int, count: float) -> None:
        self.losses.append(loss.detach())
        self.stat += stat
        self.sizes.append(size)
        self.counts.append(count)
        self.batch += 1

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "epoch_rng": self.epoch_rng, "sizes": list(self.sizes),
                "counts": list(self.counts), "stat": self.stat.detach().cpu(),
                "losses": torch.stack(self.losses).detach().cpu() if self.losses else torch.zeros(0)}  # fmt: skip

    @classmethod
    def from_state_dict(cls, d: dict[str, Any], device: torch.device, rng: dict[str, Any]) -> EpochSums:
        losses = [t.to(device) for t in d["losses"].unbind()] if len(d["losses"]) else []
        stat = d["stat"].to(device, torch.float64)
        return cls(int(d["epoch"]), d["epoch_rng"], stat, losses, list(d["sizes"]), list(d["counts"]),
                   int(d["batch"]), rng, checked=len(losses))  # fmt: skip


@dataclass(eq=False)
class TrainState:
    """Everything a training run changes, and so everything ``last.pt`` holds."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # an LRScheduler or None
    scaler: torch.amp.GradScaler  # always present; a no-op unless fp16
    history: History
    ema: ModelEma | None = None
    epoch: int = 0  # epochs complete
    step: int = 0  # optimizer steps taken
    monitor: str = "val_accuracy"  # what best_score scores
    best_score: float | None = None
    partial: EpochSums | None = None  # the epoch under way
    data: dict[str, Any] | None = None  # the training data's fingerprint (zoo.train.fingerprint)

    def state_dict(self, device: torch.device) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": cpu_state(self.model),
            "zoo_config": model_config(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "ema": cpu_state(self.ema.module) if self.ema is not None else None,
            "epoch": self.epoch,
            "step": self.step,
            "best": {"monitor": self.monitor, "score": self.best_score},
            "partial": self.partial.state_dict() if self.partial is not None else None,
            "rng": rng_state(device),
            "history": plain(self.history.to_dict()),
            "data": self.data,
        }

    def load_state_dict(self, ckpt: dict[str, Any], device: torch.device, path: Any = "the checkpoint") -> None:
        load_weights(self.model, ckpt["model"], path)
        if self.ema is not None:
            if ckpt.get("ema") is None:
                raise CheckpointError(f"cannot resume {path} with ema=: it holds no average of the weights")
            load_weights(self.ema.module, ckpt["ema"], path)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.scheduler is not None and ckpt.get("scheduler") is not None:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"'{path}' was written with another optimizer or schedule ({exc}); resume with the same options"
            ) from None
        set_rng_state(ckpt["rng"], device)
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt.get("step", 0))
        best = ckpt.get("best") or {}
        self.best_score = best.get("score") if best.get("monitor") == self.monitor else None
        partial = ckpt.get("partial")
        self.partial = EpochSums.from_state_dict(partial, device, ckpt["rng"]) if partial else None
        previous = History.from_dict(ckpt.get("history") or {})
        self.history.epochs, self.history.notes = previous.epochs, previous.notes


def used_options(cfg: Any, optimizer: torch.optim.Optimizer, task: Any) -> dict[str, Any]:
    """The options as the run used them, for ``history.config``: an optimizer the user built keeps its own lr and
    weight decay (zoo's defaults for them were not used), and only zoo's cross-entropy uses ``label_smoothing``."""
    used = cfg.to_dict()
    if not isinstance(cfg.optimizer, str):
        group = optimizer.param_groups[0]
        used["lr"], used["weight_decay"] = group.get("lr"), group.get("weight_decay")
    if not (isinstance(cfg.loss, str) or cfg.loss is None) or task.loss_name != "cross_entropy":
        used["label_smoothing"] = None
    return used


def new_state(model: nn.Module, run: Run) -> TrainState:
    """The state at step 0: zoo's optimizer (or the user's) and schedule, the scaler, the EMA when asked."""
    cfg = run.cfg
    optimizer = make_optimizer(cfg.optimizer, model, cfg.lr, cfg.weight_decay, cfg.layer_lr_decay)
    history = History(used_options(cfg, optimizer, run.task))  # before the schedule moves the optimizer's lr
    scheduler = make_scheduler(cfg.scheduler, optimizer, (run.steps_per_epoch or 1) * cfg.epochs)
    scaler = torch.amp.GradScaler(run.device.type, enabled=run.precision == "fp16")
    history.device, history.precision, history.task = str(run.device), run.precision, run.task.kind
    history.world_size, history.rank = run.dist.world_size, run.dist.rank
    val = {"classification": ["val_accuracy"], "multilabel": ["val_accuracy"], "regression": ["val_mae", "val_r2"]}
    history.fields = ["epoch", "loss", run.task.train_metric, "val_loss", *val[run.task.kind],
                      *(f"val_{k}" for k in cfg.metrics), "lr", "seconds", "images_per_s"]  # fmt: skip
    ema = ModelEma(model, cfg.ema) if cfg.ema is not None else None
    return TrainState(model, optimizer, scheduler, scaler, history, ema, monitor=run.monitor[0], data=run.data_fp)


def resume(state: TrainState, run: Run) -> None:
    """Continue from ``checkpoint_dir/last.pt`` (if it exists): everything restored, new epochs / lr / weight decay
    applied, any other changed option that cannot change named in one line."""
    path = run.ckpt_dir / "last.pt"
    if not path.exists():
        state.history.notes.append(f"resume=True but no {path}; started from scratch")
        return
    ckpt = read_checkpoint(path, map_location="cpu")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "optimizer" not in ckpt:
        raise CheckpointError(f"'{path}' is not a zoo training checkpoint (no optimizer state to resume from)")
    check_fields(ckpt, path)
    old_history = ckpt.get("history") or {}
    old, new = dict(old_history.get("config") or {}), state.history.config
    _check_unchanged(path, old, new, old_history.get("precision"), run.precision)
    changes = _check_data(path, ckpt, run)
    try:
        state.load_state_dict(ckpt, run.device, path)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"'{path}' cannot be resumed: a field of it is malformed ({_first_line(exc)})") from None
    state.data = run.data_fp
    where = f"epoch {state.epoch}"
    if state.partial is not None:
        where = f"batch {state.partial.batch} of epoch {state.partial.epoch}"
    state.history.notes.append(f"resumed from {path} after {where}")
    if changes:
        state.history.notes.append(f"resumed on other data than the run's ({'; '.join(changes)}): resume_new_data")
    changed = [k for k in ("epochs", "lr", "weight_decay") if k in old and plain(old[k]) != plain(new.get(k))]
    if changed:
        _replan(state, run, changed, old)


# what last.pt must hold to be resumed, and of which type (the other fields may be missing: older layouts)
_FIELDS = {"model": dict, "optimizer": dict, "rng": dict, "epoch": int, "step": int}
_OPTIONAL = {"scheduler": dict, "scaler": dict, "ema": dict, "best": dict, "partial": dict, "history": dict,
             "data": dict}  # fmt: skip
_PARTIAL = {"epoch": int, "batch": int, "epoch_rng": dict, "sizes": list, "counts": list, "stat": torch.Tensor,
            "losses": torch.Tensor}  # fmt: skip


def check_fields(ckpt: dict[str, Any], path: Any) -> None:
    """The fields of a ``last.pt`` have the types ``TrainState.load_state_dict`` reads: one line naming the first
    that is missing or malformed (not a ``KeyError`` deep in the restore)."""
    rules = [(k, t, ckpt, True) for k, t in _FIELDS.items()] + [(k, t, ckpt, False) for k, t in _OPTIONAL.items()]
    if isinstance(ckpt.get("partial"), dict):
        rules += [(f"partial.{k}", t, ckpt["partial"], True) for k, t in _PARTIAL.items()]
    if isinstance(ckpt.get("rng"), dict):
        rules.append(("rng.torch", torch.Tensor, ckpt["rng"], True))
    for name, kind, holder, required in rules:
        key = name.rsplit(".", 1)[-1]
        value = holder.get(key)
        if value is None and not required:
            continue
        if value is None or not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 0)):
            what = "is missing" if key not in holder else f"is a {type(value).__name__}, not a {kind.__name__}"
            if kind is int and isinstance(value, int) and not isinstance(value, bool):
                what = f"is {value}, not a count"
            _damaged(path, f"its field '{name}' {what}")
    partial = ckpt.get("partial")
    if partial and not len(partial["losses"]) == len(partial["sizes"]) == len(partial["counts"]) == partial["batch"]:
        _damaged(path, "its partial epoch's losses, sizes and counts do not match its batch count")


def _damaged(path: Any, what: str) -> None:
    raise CheckpointError(
        f"'{path}' cannot be resumed: {what}; it is damaged or not written by zoo.fit (start anew with "
        "overwrite=True, or resume from a copy)"
    )


def _check_data(path: Path, ckpt: dict[str, Any], run: Run) -> list[str]:
    """The data is the run's (its fingerprint) unless ``resume_new_data``, and a run stopped mid-epoch can find
    its place in it; returns what differs (allowed)."""
    changes = fingerprint_changes(ckpt.get("data"), run.data_fp or {})
    if changes and not run.cfg.resume_new_data:
        raise CheckpointError(
            f"cannot resume {path}: the training data differs from the run's ({'; '.join(changes)}); resume with "
            "the data it was trained on, or pass resume_new_data=True to continue on this data"
        )
    partial, n_batches = ckpt.get("partial"), run.epoch_batches
    if partial and n_batches is not None and partial["batch"] >= n_batches:
        raise CheckpointError(
            f"cannot resume {path} after batch {partial['batch']} of epoch {partial['epoch']}: an epoch of this "
            f"data holds {n_batches} batches; resume with the data the run was trained on"
        )
    return changes


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_unchanged(path: Path, old: dict, new: dict, old_precision: str | None, precision: str) -> None:
    fixed = [k for k in FIXED_ON_RESUME if k in old and plain(old[k]) != plain(new.get(k))]
    what = [f"{k} ({old.get(k)!r} -> {plain(new.get(k))!r})" for k in fixed]
    if old_precision not in (None, precision):
        what.append(f"precision ({old_precision!r} -> {precision!r})")
    if what:
        raise CheckpointError(
            f"cannot resume {path}: {', '.join(what)} differ from the run it holds, and they cannot change on "
            f"resume (epochs, lr and weight_decay can); resume with the same values or use another checkpoint_dir"
        )


def _replan(state: TrainState, run: Run, changed: list[str], old: dict[str, Any]) -> None:
    """Apply a new epochs / lr / weight_decay to a resumed run: zoo's groups take the new lr and weight decay (a
    user's optimizer keeps its own), and the schedule is planned anew over the new total, then advanced to the step
    reached."""
    cfg, groups = run.cfg, state.optimizer.param_groups
    fresh = param_groups(state.model, cfg.weight_decay, cfg.layer_lr_decay) if isinstance(cfg.optimizer, str) else []
    if fresh and len(fresh) != len(groups):
        raise CheckpointError(f"cannot apply {', '.join(changed)}: the optimizer's groups differ from this model's")
    for i, group in enumerate(groups):
        peak = group.get("max_lr") or group.get("initial_lr") or group["lr"]  # the user's own lr
        for key in ("initial_lr", "max_lr", "min_lr"):
            group.pop(key, None)
        if fresh:
            peak = cfg.lr * fresh[i].get("lr_scale", 1.0)
            group["weight_decay"] = fresh[i]["weight_decay"]
        group["lr"] = peak
    total = (run.steps_per_epoch or 1) * cfg.epochs
    if state.scheduler is not None:
        if state.step > total:
            raise CheckpointError(
                f"cannot resume with epochs={cfg.epochs}: the run has already taken {state.step} of its steps, "
                f"more than {cfg.epochs} epochs hold ({total}); pass epochs >= {state.epoch}"
            )
        state.scheduler = make_scheduler(cfg.scheduler, state.optimizer, total)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            for _ in range(state.step):
                state.scheduler.step()
    what = ", ".join(f"{k} {old[k]} -> {state.history.config.get(k)}" for k in changed)
    plan = f"; the schedule re-planned over {cfg.epochs} epochs ({total} steps) from step {state.step}"
    state.history.notes.append(f"resumed with {what}" + (plan if state.scheduler is not None else ""))
