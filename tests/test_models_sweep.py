"""Checks generated from the registry for every built-in model and the out-of-tree plugin in ``plugins/``.

``zoo.testing.check_architecture`` (the plugin author's kit) runs on each: model card, builds, parameter count,
forward and backward, the uniform keywords. This file adds what the kit does not check: a 1x28x28 grey-scale
input, the timm-style head interface and feature extraction (``forward_intermediates``), and clear errors for
too-small inputs.

Cost control: the kit runs at 3x32x32 (or the declared input when smaller) with the default build on the meta
device (``fast=True``); too-small inputs are probed on the meta device too (no memory, no initialisation),
falling back to the CPU only for a model whose construction needs real tensors.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import zoo
from zoo import plugin_manager, registry
from zoo.testing import check_architecture

BUILTIN = [n for n in zoo.list_models() if registry.get_spec(n).plugin in plugin_manager.BUILTIN_PLUGINS]
PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "zoo-resnet"
PLUGIN_MODELS = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]

SMALL = 32  # the kit's input side for models whose declared input is larger
MIN_SIZE_RE = re.compile(r"img_size\s*>=\s*(\d+)")


def _logits(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _total(out) -> torch.Tensor:
    """Sum every output (auxiliary heads included) so backward reaches every branch that trains."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum(o.float().sum() for o in outs if isinstance(o, torch.Tensor))


@pytest.fixture(scope="module")
def resnet_plugin():
    """plugins/zoo-resnet imported from its source folder and registered like a third-party plugin."""
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import zoo_resnet

        zoo.register_plugin(zoo_resnet, name="zoo_resnet")
        yield zoo_resnet
        zoo.unregister_plugin("zoo_resnet")
    finally:
        sys.path.remove(str(PLUGIN_DIR))


def test_registry_has_builtins():
    assert {"mlp", "lenet5", "vit_tiny_patch16"} <= set(BUILTIN)


def test_builtin_plugins_load_cleanly():
    """A family file that fails to import or register would silently drop out of this sweep: fail here instead."""
    broken = [f"{p.name}: {p.errors}" for p in zoo.plugins() if p.name in plugin_manager.BUILTIN_PLUGINS and p.errors]
    assert not broken, "; ".join(broken)


def _kit(name: str) -> None:
    c, h, w = registry.get_spec(name).input_size
    size = (c, h, w) if max(h, w) <= SMALL else (c, SMALL, SMALL)
    report = check_architecture(name, input_size=size, fast=True)
    card = zoo.info(name)
    assert card.num_params == report.num_params > 0, f"{name}: zoo.info(...).num_params is {card.num_params}"
    assert len(card.input_size) == 3


@pytest.mark.parametrize("name", BUILTIN)
def test_check_architecture(name):
    _kit(name)


@pytest.mark.parametrize("name", PLUGIN_MODELS)
def test_check_architecture_on_the_plugin(resnet_plugin, name):
    assert registry.get_spec(name).plugin == "zoo_resnet"
    _kit(name)


@pytest.mark.parametrize("name", BUILTIN)
def test_grey_28px_and_head_interface(name):
    """Forward and backward at 1x28x28 with 7 classes, then forward_features / forward_head / get_classifier /
    reset_classifier on the same build."""
    model = zoo.create(name, num_classes=7, in_chans=1, img_size=28).train()
    x = torch.randn(2, 1, 28, 28)
    out = model(x)
    logits = _logits(out)
    assert tuple(logits.shape) == (2, 7), f"{name}: output {tuple(logits.shape)}"
    assert torch.isfinite(logits).all(), f"{name}: non-finite logits"
    _total(out).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"{name}: no gradient for {len(no_grad)} parameters, e.g. {no_grad[:3]}"
    _check_head_interface(name, model.eval(), x)


def _check_head_interface(name: str, model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        full = _logits(model(x))
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
        pre = model.forward_head(feats, pre_logits=True)
        assert torch.allclose(logits, full, atol=1e-5), f"{name}: forward_head(forward_features(x)) != forward(x)"
        assert pre.shape == (2, model.num_features), f"{name}: pre_logits shape {tuple(pre.shape)}"
        assert isinstance(model.get_classifier(), nn.Module)
        _check_intermediates(name, model, x, logits)
        model.reset_classifier(5)
        assert tuple(_logits(model(x)).shape) == (2, 5), f"{name}: reset_classifier(5) not honoured"
        assert model.get_classifier() is not None
        model.reset_classifier(0)  # timm's contract: no head, the model gives its pre-logits features
        assert torch.allclose(model(x), pre, atol=1e-5), f"{name}: reset_classifier(0) does not give pre-logits"


def _check_intermediates(name: str, model: nn.Module, x: torch.Tensor, logits: torch.Tensor) -> None:
    """forward_intermediates gives one map per feature_info entry with its channels, and final features that
    lead to the logits; the last n and an explicit index pick the same maps."""
    final, maps = model.forward_intermediates(x)
    assert torch.allclose(model.forward_head(final), logits, atol=1e-5), f"{name}: intermediates' final features"
    assert [m.shape[1] for m in maps] == [fi["num_chs"] for fi in model.feature_info], name
    last = model.forward_intermediates(x, indices=1, stop_early=True, intermediates_only=True)
    assert len(last) == 1 and torch.equal(last[0], maps[-1])
    first = model.forward_intermediates(x, indices=[-len(maps)], stop_early=True, intermediates_only=True)
    assert torch.equal(first[0], maps[0])


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
