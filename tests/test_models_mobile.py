"""MobileNet V1/V2/V3 and EfficientNet B0-B7: parameter counts against torchvision and timm (computed here, on the
meta device), forward and backward at 28, 32 and 224 px, the small-input layout, clear errors, and torchvision
state dicts giving the same logits."""

from __future__ import annotations

import pytest
import torch

import zoo

torchvision = pytest.importorskip("torchvision")

MOBILENETS = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"]
EFFICIENTNETS = [f"efficientnet_b{i}" for i in range(8)]
TORCHVISION_TWINS = MOBILENETS[1:] + EFFICIENTNETS
SIZES = ((1, 28), (3, 32), (3, 224))
# B4-B7 cost seconds each on a 2-core box: they run at 32 px only (the same code path as B0-B3 at all sizes)
HEAVY = {"efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7"}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _randomize(model: torch.nn.Module, size: int) -> None:
    """BatchNorm running statistics measured on random images (the defaults 0 and 1 let the signal fade to ~1e-9
    by the head, where any model gives the same logits) and random affine parameters, so a missed or misplaced
    BatchNorm, or a different eps, changes the logits; unit-scale Linear weights, so logits are not near zero."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batch
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
        elif isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=m.in_features**-0.5)
    with torch.no_grad():
        model.train()(torch.randn(8, 3, size, size))
    model.eval()


@pytest.mark.parametrize("name", TORCHVISION_TWINS)
def test_param_count_equals_torchvision(name):
    with torch.device("meta"):
        ours = _count(zoo.create(name))
        theirs = _count(getattr(torchvision.models, name)())
    assert ours == theirs, f"{name}: {ours:,} parameters, torchvision's has {theirs:,}"
    assert zoo.info(name).num_params == theirs


def test_mobilenet_v1_param_count_equals_timm():
    """timm's mobilenetv1_100 has the paper's layout (32-channel stem, 13 depthwise separable blocks, 1024)."""
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        ours = _count(zoo.create("mobilenet_v1"))
        theirs = _count(timm.create_model("mobilenetv1_100"))
    assert ours == theirs


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b7"])
def test_small_input_layout_keeps_parameters(name):
    with torch.device("meta"):
        counts = {s: _count(zoo.create(name, img_size=s)) for s in (16, 32, 224)}
        counts[8] = _count(zoo.create(name, img_size=32, output_stride=8))
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize("name", MOBILENETS + EFFICIENTNETS)
def test_forward_backward(name):
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


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_output_stride_8_keeps_4x4_at_32px(name):
    model = zoo.create(name, num_classes=10, img_size=32, output_stride=8).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 32, 32)).shape[-2:] == (4, 4)


def test_head_interface():
    model = zoo.create("mobilenet_v3_small", num_classes=7, img_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pre.shape == (2, model.num_features) == (2, 1024)
        assert torch.allclose(model.get_classifier()(pre), model(x))
        model.reset_classifier(3)
        assert model(x).shape == (2, 3)


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


def test_width_mult_scales_mobilenet_v3_like_torchvision():
    with torch.device("meta"):
        ours = _count(zoo.create("mobilenet_v3_large", width_mult=0.75))
        theirs = _count(torchvision.models.mobilenet_v3_large(width_mult=0.75))
        assert ours == theirs
        assert _count(zoo.create("mobilenet_v2", width_mult=1.4)) == _count(
            torchvision.models.mobilenet_v2(width_mult=1.4)
        )


@pytest.mark.parametrize(
    "name", ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b5"]
)
def test_torchvision_weights_give_the_same_logits(name):
    """B5 also covers the TensorFlow batch-norm settings that torchvision's B5-B7 keep (eps 1e-3)."""
    reference = getattr(torchvision.models, name)()
    _randomize(reference, 64)
    model = zoo.create(name, weights=reference.state_dict(), img_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = reference(x), model(x)
    # a test that could fail: the logits are not near zero and depend on the input
    assert expected.abs().max() > 0.1 and (expected[0] - expected[1]).abs().max() > 0.01
    assert (got - expected).abs().max().item() <= 1e-5
