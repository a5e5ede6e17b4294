"""Checkpoints of a training run and resuming from them: what ``last.pt`` / ``best.pt`` hold, and how a resumed run
restores everything (weights, optimizer, schedule, scaler, step, data position, RNG, best score, history) or says
in one line which option may not change.

``Checkpointing`` is the part of the trainer that reads and writes them; the file format itself (atomic writes,
bounded reading, RNG state) lives in ``zoo.train.state``.
"""

from __future__ import annotations

import warnings
from typing import Any

from zoo.train.callbacks import History
from zoo.train.optim import make_scheduler
from zoo.train.state import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    atomic_save,
    clean_state_dict,
    load_weights,
    model_config,
    plain,
    read_checkpoint,
    rng_state,
    set_rng_state,
)

__all__ = ["Checkpointing", "FIXED_ON_RESUME"]

# options a resumed run must share with the run it resumes (the data order, the optimizer state and the
# checkpointed schedule depend on them); epochs, lr and weight_decay may change, the others freely
FIXED_ON_RESUME = ("batch_size", "grad_accum", "optimizer", "scheduler", "loss")


class Checkpointing:
    """The trainer's checkpoint writing and resuming (a mixin of ``zoo.train.trainer``'s trainer: it uses the
    trainer's model, optimizer, scheduler, scaler, step, history and checkpoint directory)."""

    def _checkpoint(self, epoch: int, partial: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "partial": partial,
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": {k: v.detach().cpu() for k, v in clean_state_dict(self.model.state_dict()).items()},
            "model_config": model_config(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "step": self.step,
            "best": {"monitor": self.monitor, "score": self.best_score},
            "rng": rng_state(self.device),
            "history": plain(self.history.to_dict()),
        }

    def _save(self, name: str, epoch: int, partial: dict[str, Any] | None = None) -> None:
        """Write ``name`` after ``epoch`` complete epochs (and, mid-epoch, the ``partial`` one's position)."""
        if self.ckpt_dir is not None and self.dist.rank == 0:
            atomic_save(self._checkpoint(epoch, partial), self.ckpt_dir / name)

    def _resume(self) -> None:
        path = self.ckpt_dir / "last.pt" if self.ckpt_dir else None
        if path is None or not path.exists():
            if path is not None:
                self.history.notes.append(f"resume=True but no {path}; started from scratch")
            return
        ckpt = read_checkpoint(path, map_location="cpu")
        if ckpt.get("format") != CHECKPOINT_FORMAT or "optimizer" not in ckpt:
            raise CheckpointError(f"'{path}' is not a zoo training checkpoint (no optimizer state to resume from)")
        old_history = ckpt.get("history") or {}
        old = old_history.get("config") or {}
        new = self.history.config
        fixed = [k for k in FIXED_ON_RESUME if k in old and plain(old[k]) != plain(new.get(k))]
        if old_history.get("precision") not in (None, self.precision):
            fixed.append("precision")
            old["precision"], new["precision"] = old_history["precision"], self.precision
        if fixed:
            what = ", ".join(f"{k} ({old.get(k)!r} -> {plain(new.get(k))!r})" for k in fixed)
            raise CheckpointError(
                f"cannot resume {path}: {what} differ from the run it holds, and they cannot change on resume "
                f"(epochs, lr and weight_decay can); resume with the same values or use another checkpoint_dir"
            )
        load_weights(self.model, ckpt["model"], path)
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
        set_rng_state(ckpt["rng"], self.device)
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.step = int(ckpt.get("step", 0))
        self.partial = ckpt.get("partial")
        if self.partial:
            self.partial["rng"] = ckpt["rng"]  # the generators at the stop, restored once the order is replayed
        best = ckpt.get("best") or {"monitor": "val_accuracy", "score": ckpt.get("best_val_accuracy")}
        self.best_score = best.get("score") if best.get("monitor") == self.monitor else None
        previous = History.from_dict(old_history)
        self.history.epochs = previous.epochs
        where = f"epoch {ckpt['epoch']}"
        if self.partial:
            where = f"batch {self.partial['batch']} of epoch {self.partial['epoch']}"
        self.history.notes = previous.notes + [f"resumed from {path} after {where}"]
        changed = [k for k in ("epochs", "lr", "weight_decay") if k in old and plain(old[k]) != plain(new.get(k))]
        if changed:
            self._replan(changed, old)

    def _replan(self, changed: list[str], old: dict[str, Any]) -> None:
        """Apply a new epochs / lr / weight_decay to a resumed run: the optimizer's groups take the new lr and weight
        decay, and the schedule is planned anew over the new total, then advanced to the step reached."""
        cfg = self.cfg
        named = isinstance(cfg.optimizer, str)
        for i, group in enumerate(self.optimizer.param_groups):
            for key in ("initial_lr", "max_lr", "min_lr"):
                group.pop(key, None)
            if named:  # zoo's groups: weights that decay first, biases and norms (no decay) second
                group["lr"] = self.lr
                if i == 0:
                    group["weight_decay"] = cfg.weight_decay
        total = (self.steps_per_epoch or 1) * cfg.epochs
        if self.scheduler is not None:
            if self.step > total:
                raise CheckpointError(
                    f"cannot resume with epochs={cfg.epochs}: the run has already taken {self.step} of its steps, "
                    f"more than {cfg.epochs} epochs hold ({total}); pass epochs >= {self.start_epoch - 1}"
                )
            self.scheduler = make_scheduler(cfg.scheduler, self.optimizer, self.lr, total)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
                for _ in range(self.step):
                    self.scheduler.step()
        what = ", ".join(f"{k} {old[k]} -> {self.history.config.get(k)}" for k in changed)
        plan = f"; the schedule re-planned over {cfg.epochs} epochs ({total} steps) from step {self.step}"
        self.history.notes.append(f"resumed with {what}" + (plan if self.scheduler is not None else ""))
