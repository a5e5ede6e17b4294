"""The small-input rule (``zoo.models.layers``) in every CNN family: forward and backward at 1x28x28, 3x32x32 and
3x224x224, what the small layout changes (the stem only, never the parameter count), and the exact smallest input
each layout accepts, named in a one-line error at creation.
"""

from __future__ import annotations

import re

import pytest
import torch

import zoo
from zoo.models import alexnet as zoo_alexnet, densenet as zoo_densenet, googlenet as zoo_googlenet

SIZES = ((1, 28), (3, 32), (3, 224))  # (in_chans, img_size); batch 2 everywhere
# B4-B7 cost seconds each on a 2-core box: they run at 32 px only (the same code path as B0-B3 at all sizes)
HEAVY = {"efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7"}
MOBILE = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"] + [
    f"efficientnet_b{i}" for i in range(8)
]


def _outputs(out) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, tuple) else (out,)


MODELS = ["alexnet", "googlenet", "googlenet_aux", "densenet121", "densenet161", "densenet169", "densenet201"]


FORWARD_CASES = [(n, c, s) for n in [*MODELS, "densenet_bc_100_k12"] for c, s in SIZES]


@pytest.mark.parametrize(("name", "chans", "size"), FORWARD_CASES, ids=[f"{n}-{c}x{s}" for n, c, s in FORWARD_CASES])
def test_stem_cnns_forward_backward(name, chans, size):
    kwargs = {"aux_logits": True} if name == "googlenet_aux" else {}
    name = name.removesuffix("_aux")
    model = zoo.create(name, num_classes=7, in_chans=chans, img_size=size, **kwargs).train()
    assert model.small_stem == (size < 64)
    out = _outputs(model(torch.randn(2, chans, size, size)))
    assert len(out) == (3 if kwargs else 1)
    for o in out:
        assert o.shape == (2, 7) and torch.isfinite(o).all()
    sum(o.sum() for o in out).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"{name}: no gradient for {no_grad[:3]}"


@pytest.mark.parametrize("name", MOBILE)
def test_mobile_cnns_forward_backward(name):
    for chans, size in SIZES:
        if name in HEAVY and size != 32:
            continue
        model = zoo.create(name, num_classes=10, in_chans=chans, img_size=size).train()
        x = torch.randn(2, chans, size, size)
        feats = model.forward_features(x)
        # ImageNet layout: 224 -> 7 x 7; small inputs keep 2 x 2 instead of collapsing to 1 x 1
        assert feats.shape[-1] == (7 if size == 224 else 2), f"{name} at {size} px: features {tuple(feats.shape)}"
        out = model.forward_head(feats)
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        out.sum().backward()
        no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not no_grad, f"{name} at {chans}x{size}x{size}: no gradient for {no_grad[:3]}"


def test_small_stem_changes_only_the_first_conv():
    """The small-input stem changes only the first conv's kernel; the 224 px model is torchvision's (above)."""
    for name in ("alexnet", "googlenet", "densenet121"):
        with torch.device("meta"):
            big = zoo.create(name).state_dict()
            small = zoo.create(name, img_size=32).state_dict()
            forced = zoo.create(name, img_size=224, small_stem=True).state_dict()
        first = next(k for k in big if k.endswith("weight"))
        assert {k: v.shape for k, v in small.items()} == {k: v.shape for k, v in forced.items()}
        assert big.keys() == small.keys()
        differ = [k for k in big if big[k].shape != small[k].shape]
        assert differ == [first], f"{name}: the small stem changes {differ}"
        assert small[first].shape[-2:] == (3, 3)


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b7"])
def test_small_input_layout_keeps_parameters(name):
    with torch.device("meta"):
        counts = {s: sum(p.numel() for p in zoo.create(name, img_size=s).parameters()) for s in (16, 32, 224)}
        counts[8] = sum(p.numel() for p in zoo.create(name, img_size=32, output_stride=8).parameters())
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_output_stride_8_keeps_4x4_at_32px(name):
    model = zoo.create(name, num_classes=10, img_size=32, output_stride=8).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 32, 32)).shape[-2:] == (4, 4)


MIN_SIZES = [
    ("alexnet", True, zoo_alexnet.MIN_SIZE[True]),
    ("alexnet", False, zoo_alexnet.MIN_SIZE[False]),
    ("googlenet", True, zoo_googlenet.MIN_SIZE[True]),
    ("googlenet", False, zoo_googlenet.MIN_SIZE[False]),
    ("densenet121", True, zoo_densenet.min_img_size(4, True)),
    ("densenet121", False, zoo_densenet.min_img_size(4, False)),
    ("densenet_bc_100_k12", True, zoo_densenet.min_img_size(3, True)),
    ("densenet_bc_100_k12", False, zoo_densenet.min_img_size(3, False)),
]


@pytest.mark.parametrize(("name", "small", "smallest"), MIN_SIZES)
def test_smallest_input(name, small, smallest):
    """The size the error names is exactly the smallest that runs: it works (checked on the meta device, shapes
    only) and one pixel less fails at creation with a ValueError naming it."""
    with torch.device("meta"):
        model = zoo.create(name, img_size=smallest, small_stem=small, num_classes=5).eval()
        assert model(torch.empty(1, 3, smallest, smallest)).shape == (1, 5)
        with pytest.raises(ValueError, match=re.escape(f"img_size >= {smallest} (got {smallest - 1})")):
            zoo.create(name, img_size=smallest - 1, small_stem=small)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0"])
def test_too_small_input_is_refused_at_creation(name):
    with torch.device("meta"):
        zoo.create(name, img_size=16)  # the smallest: one pixel at output stride 16
        with pytest.raises(ValueError, match=r"img_size >= 16 \(got 15\)"):
            zoo.create(name, img_size=15)
        with pytest.raises(ValueError, match=r"img_size >= 32 \(got 31\)"):
            zoo.create(name, img_size=31, output_stride=32)
        with pytest.raises(ValueError, match="output_stride must be one of 8, 16, 32, got 64; try 32"):
            zoo.create(name, output_stride=64)
        with pytest.raises(TypeError, match="did you mean 'width_mult'"):
            zoo.create(name, widthmult=0.5)
