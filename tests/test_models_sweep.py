"""Checks generated from the registry for every built-in model: shapes, gradients, the uniform keywords, the
model card, clear errors for too-small inputs, and the timm-style head interface.

Cost control: each model is built once per input size (1x28x28, 3x32x32, 3x224x224), and the keyword and
head-interface checks ride on those builds; too-small inputs are probed on the meta device (no memory, no
initialisation), falling back to the CPU only for a model whose construction needs real tensors.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn

import zoo
from zoo import registry

BUILTIN = [n for n in zoo.list_models() if registry.get_spec(n).plugin in registry.BUILTIN_PLUGINS]

# (in_chans, img_size, num_classes or None for the model's default); batch 2 everywhere
SIZES = ((1, 28, 7), (3, 32, 10), (3, 224, None))
MIN_SIZE_RE = re.compile(r"img_size\s*>=\s*(\d+)")


def _logits(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _total(out) -> torch.Tensor:
    """Sum every output (auxiliary heads included) so backward reaches every branch that trains."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum(o.float().sum() for o in outs if isinstance(o, torch.Tensor))


def test_registry_has_builtins():
    assert {"mlp", "lenet5", "vit_tiny_patch16"} <= set(BUILTIN)


def test_builtin_plugins_load_cleanly():
    """A family file that fails to import or register would silently drop out of this sweep: fail here instead."""
    broken = [f"{p.name}: {p.errors}" for p in zoo.plugins() if p.name in registry.BUILTIN_PLUGINS and p.errors]
    assert not broken, "; ".join(broken)


@pytest.mark.parametrize("name", BUILTIN)
def test_card_and_docstring(name):
    spec = registry.get_spec(name)
    assert (spec.builder.__doc__ or "").strip(), f"{name}: builder has no docstring"
    card = zoo.info(name)
    for field in ("family", "paper", "year", "input_size", "num_classes", "num_params"):
        assert getattr(card, field) not in (None, "", ()), f"{name}: zoo.info(...).{field} is empty"
    assert len(card.input_size) == 3 and card.num_params > 0


@pytest.mark.parametrize("name", BUILTIN)
def test_forward_backward_sizes(name):
    """(a) forward + backward at 1x28x28, 3x32x32, 3x224x224, batch 2; (b) num_classes and in_chans honoured;
    (e) forward_features / forward_head / get_classifier / reset_classifier, on the cheapest build."""
    default_classes = registry.get_spec(name).num_classes
    for chans, size, classes in SIZES:
        classes = classes or default_classes
        kw = {"num_classes": classes, "in_chans": chans, "img_size": size}
        model = zoo.create(name, **kw).train()
        x = torch.randn(2, chans, size, size)
        out = model(x)
        logits = _logits(out)
        assert tuple(logits.shape) == (2, classes), f"{name} {kw}: output {tuple(logits.shape)}"
        assert torch.isfinite(logits).all(), f"{name} {kw}: non-finite logits"
        _total(out).backward()
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not no_grad, f"{name} {kw}: no gradient for {len(no_grad)} parameters, e.g. {no_grad[:3]}"
        if size == 28:
            _check_head_interface(name, model.eval(), x)
        del model, out, logits


def _check_head_interface(name: str, model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        full = _logits(model(x))
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
        pre = model.forward_head(feats, pre_logits=True)
        assert torch.allclose(logits, full, atol=1e-5), f"{name}: forward_head(forward_features(x)) != forward(x)"
        assert pre.shape[0] == 2 and pre.ndim == 2, f"{name}: pre_logits shape {tuple(pre.shape)}"
        assert isinstance(model.get_classifier(), nn.Module)
        model.reset_classifier(5)
        assert tuple(_logits(model(x)).shape) == (2, 5), f"{name}: reset_classifier(5) not honoured"
        assert model.get_classifier() is not None


def _probe(name: str, size: int) -> tuple[str, object]:
    """("error", message) when creation refuses ``size`` with a ValueError, else ("ok", the logits' shape).

    Built on the meta device first (shapes only, no memory); a model whose construction or forward needs real
    tensors is redone on the CPU, where an error in forward is a failure, not a refusal.
    """
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                model = zoo.create(name, in_chans=3, img_size=size).eval()
        except ValueError as exc:
            return "error", str(exc)
        except Exception:
            if device == "meta":
                continue
            raise
        try:
            with torch.no_grad():
                return "ok", tuple(_logits(model(torch.randn(1, 3, size, size, device=device))).shape)
        except Exception:
            if device == "meta":
                continue
            raise
    raise AssertionError("unreachable")


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("size", [2, 8])
def test_too_small_input(name, size):
    """(d) a too-small img_size fails at creation with a ValueError naming the smallest accepted size (which
    then works, and one pixel less does not); a model that accepts the size must really run at it."""
    classes = registry.get_spec(name).num_classes
    kind, result = _probe(name, size)
    if kind == "ok":
        assert result == (1, classes), f"{name} accepted img_size={size} but gives output {result}"
        return
    found = MIN_SIZE_RE.search(result)
    assert found, f"{name}: the error for img_size={size} does not name the smallest size ('img_size >= N'): {result}"
    smallest = int(found.group(1))
    assert smallest > size, f"{name}: refuses img_size={size} but says img_size >= {smallest} is accepted"
    kind, out = _probe(name, smallest)
    assert kind == "ok" and out == (1, classes), f"{name}: the smallest size it names ({smallest}) fails: {out}"
    kind, _ = _probe(name, smallest - 1)
    assert kind == "error", f"{name}: says img_size >= {smallest} but {smallest - 1} is accepted too"
