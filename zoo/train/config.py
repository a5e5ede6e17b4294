"""``TrainConfig``: every option of ``zoo.fit``, declared once.

``fit``'s keyword arguments, its signature (``inspect.signature(zoo.fit)``), the check of misspelt options, and the
training flags of the ``zoo`` command (``--batch-size``, ``--lr``, ...) are all derived from the fields below; each
field's ``help`` is its documentation.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.files import plain
from zoo.suggest import suggest

__all__ = ["TrainConfig", "config_from_options", "cli_fields"]


def option(default: Any, help: str, *, cli: type | None = None) -> Any:
    """A ``TrainConfig`` field with its documentation; ``cli`` is the type of its ``zoo`` flag, when it has one."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, "cli": cli})
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass
class TrainConfig:
    """Every option of ``zoo.fit``; ``history.config`` records the one a run used.

    The defaults are a measured recipe, not torch's: AdamW with a one-cycle schedule spanning the run, peak
    learning rate 1e-2 at batch 256 and light label smoothing take LeNet-5 over 90% on Fashion-MNIST in five
    epochs (``docs/benchmarks/fit.md``).
    """

    epochs: int = option(5, "passes over the training data", cli=int)
    batch_size: int | None = option(
        None,
        "samples per optimizer step, per process (under torchrun the global batch is x world size); None -> 256, "
        "halved down to 32 while an epoch would have fewer than 40 steps; a DataLoader keeps its own",
        cli=int,
    )
    optimizer: Any = option(
        "adamw",
        "'adamw', 'adam', 'sgd' (momentum 0.9, Nesterov), 'rmsprop', an Optimizer, or a function params -> Optimizer",
        cli=str,
    )
    lr: float | None = option(
        None,
        "peak learning rate of a named optimizer; None -> 1e-2 with a schedule, 1e-3 with scheduler=None, or the "
        "model's own default_lr attribute when lower (AlexNet and ViT train at 1e-3); an optimizer you build keeps "
        "its groups' own lrs (each group's peak for one-cycle)",
        cli=float,
    )
    weight_decay: float = option(
        5e-4, "decoupled for AdamW; applied to weight matrices and kernels only, not to biases or norms", cli=float
    )
    scheduler: Any = option(
        "onecycle",
        "'onecycle' (lr is the peak), 'cosine' (lr is the start), None, or a function (optimizer, total_steps) -> "
        "scheduler",
        cli=str,
    )
    loss: Any = option(
        None,
        "'cross_entropy' (classes), 'bce' (binary or multi-label, on logits), 'mse', 'l1', 'smooth_l1', an "
        "nn.Module or a function (output, target) -> loss; None -> cross_entropy for integer class targets",
        cli=str,
    )
    metrics: dict[str, Any] = option(
        {},
        "extra metrics reported as val_<name>: {name: function (output, target) -> number} (averaged over samples) "
        "or an object with update/compute/reset such as a torchmetrics.Metric (computed over the whole split)",
    )
    label_smoothing: float = option(0.1, "cross-entropy label smoothing, in [0, 1)", cli=float)
    val_fraction: float | None = option(
        None,
        "share of the training data held out (seeded, stratified) to validate on; None -> 0.1 for a zoo Dataset "
        "(model selection never looks at its test split), none otherwise; 0 -> no validation",
        cli=float,
    )
    device: Any = option("auto", "'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:N', 'mps'", cli=str)
    precision: str = option(
        "auto", "'auto' (bf16 on CUDA with bf16 support, else fp32), 'fp32', 'bf16', 'fp16' (CUDA only)", cli=str
    )
    grad_accum: int = option(1, "micro-batches per optimizer step (effective batch = batch_size x grad_accum)", cli=int)
    clip_grad: float | None = option(None, "max global L2 norm of the gradients; None = no clipping", cli=float)
    augment: bool = option(
        False,
        "random crop (pad img_size // 8) and, where the dataset allows it, horizontal flips (uint8 images)",
        cli=bool,
    )
    precise_bn: bool | None = option(
        None,
        "recompute BatchNorm statistics with the current weights before evaluating; None -> only while the running "
        "averages are young for their momentum (a short run), True -> always, False -> never",
    )
    channels_last: bool | None = option(
        None, "NHWC memory format; None -> per model on CPU (zoo.train.layout)", cli=bool
    )
    compile: bool = option(False, "torch.compile the model (slow first step; pays off on long GPU runs)", cli=bool)
    seed: int | None = option(
        None, "seeds torch, python and the data order; None -> a random seed, recorded in history", cli=int
    )
    checkpoint_dir: str | None = option(
        None, "where last.pt and best.pt (by validation score) go; the folder is locked while fit writes"
    )
    checkpoint_every: int | None = option(
        None,
        "also write last.pt every N optimizer steps, mid-epoch (resume continues from that exact batch); "
        "None -> at epoch ends only",
        cli=int,
    )
    resume: bool = option(
        False,
        "continue from checkpoint_dir/last.pt if it exists; epochs, lr and weight_decay may change (the schedule is "
        "re-planned), batch_size, grad_accum, optimizer, scheduler, loss and precision may not",
    )
    progress: bool | None = option(
        True, "progress bar when stderr is a terminal; False or the environment's ZOO_PROGRESS=0 silence it"
    )
    eval_batch_size: int | None = option(None, "validation batch size; None -> 2 x batch_size")
    num_workers: int | None = option(
        None, "DataLoader workers for a torch Dataset zoo wraps; None -> chosen for the device (0 on a small CPU)"
    )
    pin_memory: bool | None = option(None, "pinned host memory for a torch Dataset zoo wraps; None -> on CUDA")
    threads: int | None = option(
        None,
        "CPU intra-op threads; None -> chosen for the cores other work leaves free and the step's size "
        "(zoo.threads), kept on resume; $ZOO_THREADS, $OMP_NUM_THREADS or your own torch.set_num_threads win",
        cli=int,
    )
    ema: float | None = option(
        None,
        "decay of an exponential moving average of the weights, updated every optimizer step (e.g. 0.999; timm's "
        "ModelEmaV3); validation, the test score, best.pt and the model fit leaves use the average; None -> off",
        cli=float,
    )
    freeze: Any = option(
        None,
        "parameters that do not train: 'backbone' (all but model.get_classifier()), module-name prefixes (a list, "
        "or one string, comma-separated), or N (the first N groups of model.group_matcher(coarse=True), stem "
        "first); None -> everything trains",
        cli=str,
    )
    unfreeze_at: int | None = option(
        None, "epoch (1-based) from which the frozen parameters train too; None -> frozen for the whole run", cli=int
    )
    freeze_bn: bool | None = option(
        None, "BatchNorm layers of the frozen part keep their statistics (eval mode) while frozen; None -> True"
    )
    layer_lr_decay: float | None = option(
        None,
        "discriminative lrs for a named optimizer: each group of model.group_matcher() trains at lr x decay^k, k "
        "groups below the head (timm's layer_decay, e.g. 0.75); None -> one lr",
        cli=float,
    )
    callbacks: Sequence[Any] = option(
        (), "Callback objects, called at fit start, each epoch's start and end, fit end, and per step when they ask"
    )
    # -- run folders, streams, resume (helper "runs") --
    overwrite: bool = option(
        False,
        "replace the run already in checkpoint_dir (its last.pt, best.pt, history.json, model.safetensors, removed "
        "under the folder's lock); without it (or resume=True) a folder holding another run is refused",
    )
    steps_per_epoch: int | None = option(
        None,
        "optimizer steps per epoch: an epoch ends after this many (an IterableDataset that never ends needs it; "
        "each epoch iterates the data afresh); None -> one pass over the data",
        cli=int,
    )
    resume_new_data: bool = option(
        False,
        "resume=True even though the training data differs from the run's (last.pt records a fingerprint of it: "
        "its size, labels and a few samples); without it such a resume is refused",
    )
    # -- MixUp / CutMix (zoo.train.mixing; the flags are timm's) --
    mixup: float | None = option(
        None, "MixUp: alpha of the Beta distribution of the mixing weight (e.g. 0.2 or 0.8); None -> off", cli=float
    )
    cutmix: float | None = option(None, "CutMix: alpha of the Beta distribution (e.g. 1.0); None -> off", cli=float)
    mixup_prob: float = option(1.0, "probability that a training batch is mixed when mixup or cutmix is on", cli=float)
    mixup_switch_prob: float = option(
        0.5, "with mixup and cutmix both on, the probability that a mixed batch uses CutMix", cli=float
    )

    def to_dict(self) -> dict[str, Any]:
        """A JSON- and ``weights_only``-safe dict: objects and functions become their ``repr``."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def config_from_options(options: dict[str, Any], what: str = "fit") -> TrainConfig:
    """A ``TrainConfig`` from keyword options; a misspelt one is a one-line ``TypeError`` naming the nearest."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in options:
        if key not in names:
            raise TypeError(
                f"{what}() got an unknown option '{key}'; accepted: {', '.join(names)}{suggest(key, names)}"
            )
    if "checkpoint_dir" in options and options["checkpoint_dir"] is not None:
        options = {**options, "checkpoint_dir": str(options["checkpoint_dir"])}
    if "callbacks" in options:
        options = {**options, "callbacks": tuple(options["callbacks"] or ())}
    return TrainConfig(**options)


def cli_fields() -> list[dataclasses.Field]:
    """The options the ``zoo`` command exposes as flags (those declared with a ``cli`` type)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli")]


def signature(*leading: inspect.Parameter) -> inspect.Signature:
    """``leading`` parameters, then every option as a keyword-only parameter with its default: ``fit``'s signature."""
    params = list(leading)
    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=f.type))
    return inspect.Signature(params)


def options_doc() -> str:
    """The "Options" section of ``fit``'s docstring, written from the same fields as its signature."""
    lines = ["", "    Options (``TrainConfig``):"]
    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"        {f.name} (default {default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines) + "\n"


def _positive_int(value: Any, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _fraction(value: Any, name: str, example: str, upper_ok: bool = False) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (0 < value < 1 or (upper_ok and value == 1))
    ):
        bounds = "(0, 1]" if upper_ok else "(0, 1)"
        raise ValueError(f"{name} must be in {bounds}, {example}, or None; got {value!r}")


def check_config(cfg: TrainConfig) -> None:
    """Option values, checked before anything heavy happens: one line each, saying what is accepted."""
    _positive_int(cfg.epochs, "epochs")
    _positive_int(cfg.batch_size, "batch_size", allow_none=True)
    _positive_int(cfg.grad_accum, "grad_accum")
    _positive_int(cfg.eval_batch_size, "eval_batch_size", allow_none=True)
    _positive_int(cfg.threads, "threads", allow_none=True)
    if not isinstance(cfg.label_smoothing, (int, float)) or not 0.0 <= cfg.label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {cfg.label_smoothing!r}")
    if cfg.clip_grad is not None and not (isinstance(cfg.clip_grad, (int, float)) and cfg.clip_grad > 0):
        raise ValueError(f"clip_grad must be a positive number (max gradient norm) or None, got {cfg.clip_grad!r}")
    if not isinstance(cfg.weight_decay, (int, float)) or cfg.weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {cfg.weight_decay!r}")
    if cfg.lr is not None and not (isinstance(cfg.lr, (int, float)) and cfg.lr > 0):
        raise ValueError(f"lr must be a positive number or None, got {cfg.lr!r}")
    if cfg.val_fraction is not None and not (
        isinstance(cfg.val_fraction, (int, float)) and 0.0 <= cfg.val_fraction < 1.0
    ):
        raise ValueError(f"val_fraction must be in [0, 1) (0: no validation), got {cfg.val_fraction!r}")
    from zoo.train.metrics import check_metric_kinds  # here: this module stays torch-free for `zoo --help`

    check_metric_kinds(cfg.metrics)
    _fraction(cfg.ema, "ema", "a decay such as 0.999")
    _fraction(cfg.layer_lr_decay, "layer_lr_decay", "a factor such as 0.75", upper_ok=True)
    _positive_int(cfg.unfreeze_at, "unfreeze_at", allow_none=True)
    if cfg.unfreeze_at is not None and cfg.freeze is None:
        raise ValueError("unfreeze_at= needs freeze= (what to unfreeze)")
    if cfg.layer_lr_decay is not None and not isinstance(cfg.optimizer, str):
        raise ValueError("layer_lr_decay= applies to a named optimizer ('adamw', ...); give your own optimizer's "
                         "parameter groups their lr instead")  # fmt: skip
    if cfg.resume and not cfg.checkpoint_dir:
        raise ValueError("resume=True needs checkpoint_dir= (where last.pt is)")
    _check_run_options(cfg)
    _check_mixing(cfg)


def _check_mixing(cfg: TrainConfig) -> None:
    for name in ("mixup", "cutmix"):
        value = getattr(cfg, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise ValueError(
                f"{name} must be a positive Beta alpha (e.g. 0.2 for mixup, 1.0 for cutmix) or None, got {value!r}"
            )
    for name in ("mixup_prob", "mixup_switch_prob"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


_FLAGS = ("augment", "compile", "resume", "overwrite", "resume_new_data")  # True or False
_FLAGS_OR_NONE = ("precise_bn", "channels_last", "progress", "pin_memory", "freeze_bn")  # True, False or None
MAX_SEED = 2**32 - 1  # numpy's range, and what seed * 1_000_003 + epoch keeps inside a torch generator's 64 bits


def _check_run_options(cfg: TrainConfig) -> None:
    """The options of run folders, checkpoints, seeds and switches (helper "runs")."""
    for name in _FLAGS + _FLAGS_OR_NONE:
        value = getattr(cfg, name)
        if not isinstance(value, bool) and not (value is None and name in _FLAGS_OR_NONE):
            accepted = "True, False or None" if name in _FLAGS_OR_NONE else "True or False"
            raise TypeError(f"{name} must be {accepted}, got {value!r}")
    _positive_int(cfg.checkpoint_every, "checkpoint_every", allow_none=True)
    _positive_int(cfg.steps_per_epoch, "steps_per_epoch", allow_none=True)
    if cfg.seed is not None and (isinstance(cfg.seed, bool) or not isinstance(cfg.seed, numbers.Integral)
                                 or not 0 <= cfg.seed <= MAX_SEED):  # fmt: skip
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}] or None, got {cfg.seed!r}")
    if cfg.num_workers is not None and (isinstance(cfg.num_workers, bool) or not isinstance(cfg.num_workers, int)
                                        or cfg.num_workers < 0):  # fmt: skip
        raise ValueError(f"num_workers must be an integer >= 0 or None, got {cfg.num_workers!r}")
    if cfg.checkpoint_dir is not None and not str(cfg.checkpoint_dir).strip():
        raise ValueError("checkpoint_dir='' names no folder; pass a folder path, or None to write no checkpoints")
    if cfg.overwrite and cfg.resume:
        raise ValueError("resume=True continues the run in checkpoint_dir and overwrite=True replaces it: pass one")
    if cfg.overwrite and not cfg.checkpoint_dir:
        raise ValueError("overwrite=True needs checkpoint_dir= (the folder whose run it replaces)")
