"""A test kit for plugin authors: the checks every registered architecture should pass.

In a plugin's own test suite::

    import pytest
    import zoo
    from zoo.testing import check_architecture

    @pytest.mark.parametrize("name", ["resnet20", "resnet56"])
    def test_architecture(name):
        check_architecture(name)

Each check raises ``AssertionError`` with a message naming the model and what was wrong; on success a
``CheckReport`` lists what was verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from zoo import registry
from zoo.deadline import DEFAULT_BUILD_TIMEOUT, BuildTimeout, call_within

__all__ = ["CheckReport", "check_architecture", "smaller_size"]

CARD_FIELDS = ("family", "paper", "year", "input_size", "num_classes")


@dataclass
class CheckReport:
    """What ``check_architecture`` verified for one model."""

    name: str
    passed: list[str] = field(default_factory=list)
    num_params: int | None = None

    def __str__(self) -> str:
        return f"{self.name}: {len(self.passed)} checks passed\n" + "\n".join(f"  ok  {c}" for c in self.passed)


def smaller_size(size: int) -> int:
    """A different, cheaper input size to check that ``img_size`` is honoured: three quarters, rounded down to a
    multiple of 16 for ImageNet-sized inputs (so patch-16 and stride-32 models stay valid), of 4 below that."""
    target = size - size // 4
    step = 16 if size >= 64 else 4
    return max(step, target // step * step)


def _logits(name: str, out: object) -> torch.Tensor:
    """The logits of a model's output: the tensor itself, the first of a tuple (auxiliary heads in training mode,
    torchvision's ``GoogLeNetOutputs``), or a dict's ``"logits"``."""
    if isinstance(out, dict):
        if "logits" not in out:
            raise _fail(name, f"forward returns a dict without 'logits' (keys {sorted(map(str, out))[:5]})")
        out = out["logits"]
    elif isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise _fail(name, f"forward returns {type(out).__name__}, not a tensor, a tuple or a dict of tensors")
    return out


def _total(out: object) -> torch.Tensor:
    """The sum of every tensor a model returned, for backward to reach the auxiliary heads too."""
    if isinstance(out, torch.Tensor):
        return out.float().sum()
    values = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else ()
    return sum((_total(v) for v in values), torch.zeros(()))


def _forward(model: nn.Module, x: torch.Tensor, name: str = "model") -> torch.Tensor:
    return _logits(name, model(x))


def _fail(name: str, what: str) -> AssertionError:
    return AssertionError(f"{name}: {what}")


def _within(seconds: float | None, name: str, fn, *args, **kwargs) -> object:
    """``fn(*args, **kwargs)`` (a build) bounded in time: past ``seconds`` an ``AssertionError`` naming the model."""
    try:
        return call_within(seconds, f"{name}: the builder", fn, *args, **kwargs)
    except BuildTimeout as exc:
        raise _fail(name, f"the builder did not return within {seconds:g} s (build_timeout=)") from exc


def _create(name: str, seconds: float | None, **kwargs) -> nn.Module:
    return _within(seconds, name, registry.create, name, **kwargs)


def _create_default(name: str, meta: bool, seconds: float | None = None, **kwargs) -> object:
    """The model built with ``kwargs``; on the meta device when ``meta`` and the builder allows it."""
    if meta:
        try:
            with torch.device("meta"):
                return _create(name, seconds, **kwargs)
        except AssertionError:
            raise
        except Exception:
            pass
    return _create(name, seconds, **kwargs)


def check_architecture(
    name: str,
    *,
    batch_size: int = 2,
    input_size: Sequence[int] | None = None,
    check_img_size: bool = True,
    fast: bool = False,
    check_weights: bool = True,
    build_timeout: float | None = DEFAULT_BUILD_TIMEOUT,
) -> CheckReport:
    """Run the standard checks on a registered architecture.

    Args:
        name: the registry name.
        batch_size: the batch for forward and backward.
        input_size: ``(C, H, W)`` to check at instead of the declared input (for very large defaults).
        check_img_size: also build at a smaller ``img_size`` and check the output there.
        fast: build the default model for the parameter count on the meta device (shapes only, no memory and no
            initialisation; the CPU when construction needs real tensors). With a small ``input_size`` this keeps
            the check cheap for large ImageNet models.
        check_weights: also load every weights tag registered for the model (``register_weights``): the file is
            found offline and matches its sha256, its keys and shapes fit, and the logits are finite.
        build_timeout: seconds each build may take (``None``: no bound). A builder that does not return in time
            fails the check with an ``AssertionError`` instead of hanging the test suite, and is stopped
            (``zoo.deadline``: an exception raised in its thread; a daemon thread, which never keeps the process
            alive).

    Checks: the model card is complete and the builder documented; the model builds with defaults and is an
    ``nn.Module``; the declared parameter count (if any) holds; forward at the declared input gives
    ``(batch, num_classes)`` finite logits and backward reaches every trainable parameter; ``num_classes``,
    ``in_chans``, ``img_size`` and ``drop_rate`` are honoured; every registered weights tag loads (torchvision's
    own tags of a twin are torchvision's to check, and would need a download).
    """
    spec = registry.get_spec(name)
    report = CheckReport(name)

    missing = [f for f in CARD_FIELDS if getattr(spec, f) in (None, "", ())]
    if missing:
        raise _fail(name, f"model card incomplete: register it with {', '.join(missing)}")
    if not (spec.builder.__doc__ or "").strip():
        raise _fail(name, "the builder has no docstring (say which paper and year it follows)")
    report.passed.append("model card complete and builder documented")

    model = _create_default(name, fast, build_timeout)
    if not isinstance(model, nn.Module):
        raise _fail(name, f"builder returned {type(model).__name__}, not nn.Module")
    n_params = sum(p.numel() for p in model.parameters())
    report.num_params = n_params
    if spec.num_params is not None and spec.num_params != n_params:
        raise _fail(name, f"declared num_params={spec.num_params:,} but the model has {n_params:,}")
    counted = _within(build_timeout, name, registry.count_params, name)
    if counted is not None and counted != n_params:
        raise _fail(name, f"zoo.info reports {counted:,} parameters but the built model has {n_params:,}")
    report.passed.append(f"builds with defaults ({n_params:,} parameters)")

    c, h, w = input_size or spec.input_size
    classes = spec.num_classes
    if fast or (input_size is not None and tuple(input_size) != tuple(spec.input_size)):
        model = _create(name, build_timeout, in_chans=c, img_size=h)
    model.train()
    x = torch.randn(batch_size, c, h, w)
    raw = model(x)
    out = _logits(name, raw)
    if tuple(out.shape) != (batch_size, classes):
        raise _fail(
            name, f"output shape {tuple(out.shape)} at input {(batch_size, c, h, w)}; expected {(batch_size, classes)}"
        )
    if not torch.isfinite(out).all():
        raise _fail(name, "non-finite logits at the declared input")
    _total(raw).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if no_grad:
        raise _fail(name, f"backward reaches no gradient for {len(no_grad)} parameters, e.g. {no_grad[:3]}")
    report.passed.append(f"forward and backward at {c}x{h}x{w}")
    del model, out, raw

    other_classes = classes + 3
    model = _create(name, build_timeout, num_classes=other_classes, in_chans=c, img_size=h).eval()
    with torch.no_grad():
        out = _forward(model, torch.randn(1, c, h, w), name)
    if out.shape[-1] != other_classes:
        raise _fail(name, f"num_classes={other_classes} gives {out.shape[-1]} outputs")
    report.passed.append("honours num_classes")

    other_chans = 1 if c == 3 else 3
    model = _create(name, build_timeout, in_chans=other_chans, img_size=h).eval()
    with torch.no_grad():
        out = _forward(model, torch.randn(1, other_chans, h, w), name)
    if out.shape[-1] != classes:
        raise _fail(name, f"in_chans={other_chans} changes the output to {tuple(out.shape)}")
    report.passed.append("honours in_chans")

    if check_img_size:
        size = smaller_size(h)
        model = _create(name, build_timeout, in_chans=c, img_size=size).eval()
        with torch.no_grad():
            out = _forward(model, torch.randn(1, c, size, size), name)
        if tuple(out.shape) != (1, classes):
            raise _fail(name, f"img_size={size} gives output {tuple(out.shape)}")
        report.passed.append(f"honours img_size ({size})")

    model = _create_default(name, fast, build_timeout, drop_rate=0.1, in_chans=c, img_size=h)
    if not isinstance(model, nn.Module):
        raise _fail(name, "drop_rate=0.1 does not build")
    report.passed.append("accepts drop_rate")
    if check_weights:
        for record in registry.weights_of(name):
            if not record.torchvision:
                _check_tag(name, record, report)
    return report


def _check_tag(name: str, record, report: CheckReport) -> None:
    """The weights of ``record`` load into the model (found, hash-checked, keys and shapes) and give finite logits
    of the record's class count at the record's input size."""
    try:
        model = registry.create(record.name).eval()
    except Exception as exc:
        raise _fail(name, f"weights {record.name} do not load: {type(exc).__name__}: {exc}") from None
    size = tuple(int(v) for v in record.inputs["input_size"])
    with torch.no_grad():
        out = _forward(model, torch.randn(2, *size), name)
    classes = record.inputs.get("num_classes") or (len(record.classes) if record.classes else out.shape[-1])
    if tuple(out.shape) != (2, classes) or not torch.isfinite(out).all():
        raise _fail(name, f"weights {record.name} give output {tuple(out.shape)} (finite: "
                    f"{bool(torch.isfinite(out).all())}) at input {size}; expected (2, {classes}), finite")  # fmt: skip
    report.passed.append(f"weights {record.name} load (sha256, keys, shapes) and give finite logits")
