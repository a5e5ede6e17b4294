"""Parameter counts and logits equal to the reference implementations, for every family that has one.

References are built at test time: torchvision's twins (AlexNet, GoogLeNet, DenseNet-121/161/169/201,
MobileNetV2/V3, EfficientNet-B0..B7, ViT-B/16, B/32, L/16), timm's (MobileNetV1, ViT-Ti/16, S/16) and torchvision's
DenseNet class for the CIFAR DenseNet-BC. Parameter counts are taken on the meta device; logits are compared at 64
px, the smallest size at which every family uses its ImageNet layout, with BatchNorm statistics calibrated on random
images so that a missed or misplaced layer changes the logits.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

import zoo
from zoo import registry
from zoo.models import alexnet as zoo_alexnet, densenet as zoo_densenet, googlenet as zoo_googlenet

TV = torchvision.models


TWINS = [
    ("alexnet", {}, lambda: TV.alexnet()),
    ("googlenet", {}, lambda: TV.googlenet(aux_logits=False, init_weights=True)),
    ("googlenet", {"aux_logits": True}, lambda: TV.googlenet(aux_logits=True, init_weights=True)),
    ("densenet121", {}, lambda: TV.densenet121()),
    ("densenet161", {}, lambda: TV.densenet161()),
    ("densenet169", {}, lambda: TV.densenet169()),
    ("densenet201", {}, lambda: TV.densenet201()),
    *[(n, {}, lambda n=n: getattr(TV, n)()) for n in ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")],
    *[(f"efficientnet_b{i}", {}, lambda i=i: getattr(TV, f"efficientnet_b{i}")()) for i in range(8)],
    ("vit_base_patch16", {}, lambda: TV.vit_b_16()),
    ("vit_base_patch32", {}, lambda: TV.vit_b_32()),
    ("vit_large_patch16", {}, lambda: TV.vit_l_16()),
    ("vit_tiny_patch16", {}, lambda: timm.create_model("vit_tiny_patch16_224")),
    ("vit_small_patch16", {}, lambda: timm.create_model("vit_small_patch16_224")),
    ("mobilenet_v1", {}, lambda: timm.create_model("mobilenetv1_100")),  # the paper's layout
]
TWIN_IDS = [n + ("-aux" if kw else "") for n, kw, _ in TWINS]


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "kwargs", "reference"), TWINS, ids=TWIN_IDS)
def test_param_count_equals_the_reference(name, kwargs, reference):
    with torch.device("meta"):
        ours, theirs = zoo.create(name, **kwargs), reference()
    assert _count(ours) == _count(theirs), f"{name}: {_count(ours):,} parameters, the reference has {_count(theirs):,}"
    if not kwargs:
        assert registry.count_params(name) == _count(theirs)  # what zoo.info reports
    if name.startswith(("vit_tiny", "vit_small", "mobilenet_v1")):
        return  # timm's key names differ; the total is the check
    # the same layers, not just the same total: every parameter and buffer has the reference's shape
    ref_state, own = theirs.state_dict(), ours.state_dict()
    if ref_state.keys() != own.keys():  # as zoo.create(weights=...) does
        ref_state = registry.get_spec(name).convert_weights(ref_state)
    assert {k: v.shape for k, v in ref_state.items()} == {k: v.shape for k, v in own.items()}


def test_densenet_bc_is_torchvision_densenet_with_a_3x3_stem():
    """DenseNet-BC (L=100, k=12): torchvision's DenseNet class with k=12, three blocks of 16 layers and 24 stem
    channels has the same layers, except that zoo's stem conv is the paper's 3x3 instead of 7x7."""
    with torch.device("meta"):
        ours = zoo.create("densenet_bc_100_k12")
        theirs = TV.DenseNet(growth_rate=12, block_config=(16, 16, 16), num_init_features=24, num_classes=10)
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    tv_shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert ours_shapes.pop("features.conv0.weight") == (24, 3, 3, 3)
    assert tv_shapes.pop("features.conv0.weight") == (24, 3, 7, 7)
    assert ours_shapes == tv_shapes
    assert sum(m.numel() for m in ours.parameters()) < 800_000  # the paper's "0.8M"


def test_width_mult_scales_mobilenets_like_torchvision():
    with torch.device("meta"):
        assert _count(zoo.create("mobilenet_v3_large", width_mult=0.75)) == _count(
            TV.mobilenet_v3_large(width_mult=0.75)
        )
        assert _count(zoo.create("mobilenet_v2", width_mult=1.4)) == _count(TV.mobilenet_v2(width_mult=1.4))


def test_torchvision_min_sizes_agree():
    """The ImageNet layouts accept what torchvision's weights metadata says they accept."""
    assert zoo_alexnet.MIN_SIZE[False] == TV.AlexNet_Weights.DEFAULT.meta["min_size"][0]
    assert zoo_googlenet.MIN_SIZE[False] == TV.GoogLeNet_Weights.DEFAULT.meta["min_size"][0]
    assert zoo_densenet.min_img_size(4, False) == TV.DenseNet121_Weights.DEFAULT.meta["min_size"][0]


LOGIT_TWINS = [
    ("alexnet", {}, lambda: TV.alexnet()),
    ("googlenet", {}, lambda: TV.googlenet(aux_logits=True, init_weights=True)),  # aux heads dropped
    ("googlenet", {"aux_logits": True}, lambda: TV.googlenet(aux_logits=True, init_weights=True)),
    ("densenet121", {}, lambda: TV.densenet121()),
    *[(n, {}, lambda n=n: getattr(TV, n)()) for n in ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")],
    ("efficientnet_b0", {}, lambda: TV.efficientnet_b0()),
    ("efficientnet_b5", {}, lambda: TV.efficientnet_b5()),  # TensorFlow's batch-norm settings (eps 1e-3)
]


def _calibrate(model: torch.nn.Module, size: int) -> None:
    """BatchNorm running statistics measured on random images (the defaults 0 and 1 let the signal fade to ~1e-9
    by the head, where any model gives the same logits) and random affine parameters, so a missed or misplaced
    BatchNorm, or a different eps, changes the logits; He-scaled weights, so the logits of a model without
    BatchNorm (AlexNet) do not fade to near zero either."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batch
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
        elif isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    with torch.no_grad():
        model.train()(torch.randn(8, 3, size, size))
    model.eval()


@pytest.mark.parametrize(
    ("name", "kwargs", "reference"), LOGIT_TWINS, ids=[n + ("-aux" if kw else "") for n, kw, _ in LOGIT_TWINS]
)
def test_reference_weights_give_the_reference_logits(name, kwargs, reference):
    ref = reference()
    _calibrate(ref, 64)
    model = zoo.create(name, weights=ref.state_dict(), img_size=64, **kwargs).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    # a test that could fail: the logits are not near zero and depend on the input
    assert expected.abs().max() > 0.1 and (expected[0] - expected[1]).abs().max() > 0.01
    assert (got - expected).abs().max().item() <= 1e-5, f"{name}: max abs logit difference"
