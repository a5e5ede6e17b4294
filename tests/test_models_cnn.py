"""AlexNet, GoogLeNet and DenseNet: parameter counts and logits against torchvision, any input size, the
small-input stems, clear errors for too-small inputs, GoogLeNet's auxiliary heads.

Reference figures come from torchvision at test time. Parameter counts are taken on the meta device; logits
are compared at 64 px, the smallest size at which zoo uses the ImageNet stem.
"""

from __future__ import annotations

import re

import pytest
import torch
import torchvision

import zoo
from zoo import registry
from zoo.models import alexnet as zoo_alexnet
from zoo.models import densenet as zoo_densenet
from zoo.models import googlenet as zoo_googlenet

TV = torchvision.models
SIZES = ((1, 28), (3, 32), (3, 224))  # (in_chans, img_size); batch 2 everywhere


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _outputs(out) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, tuple) else (out,)


# ---------------------------------------------------------------------------------------------------------
# Parameter counts equal torchvision's
# ---------------------------------------------------------------------------------------------------------

TV_TWINS = [
    ("alexnet", {}, lambda: TV.alexnet()),
    ("googlenet", {}, lambda: TV.googlenet(aux_logits=False, init_weights=True)),
    ("googlenet", {"aux_logits": True}, lambda: TV.googlenet(aux_logits=True, init_weights=True)),
    ("densenet121", {}, lambda: TV.densenet121()),
    ("densenet161", {}, lambda: TV.densenet161()),
    ("densenet169", {}, lambda: TV.densenet169()),
    ("densenet201", {}, lambda: TV.densenet201()),
]

TWIN_IDS = ["alexnet", "googlenet", "googlenet-aux", "densenet121", "densenet161", "densenet169", "densenet201"]


@pytest.mark.parametrize(("name", "kwargs", "tv_builder"), TV_TWINS, ids=TWIN_IDS)
def test_param_count_equals_torchvision(name, kwargs, tv_builder):
    with torch.device("meta"):
        ours, theirs = zoo.create(name, **kwargs), tv_builder()
    assert _count(ours) == _count(theirs)
    # the same layers, not just the same total: every parameter and buffer has torchvision's shape
    tv_state, own = theirs.state_dict(), ours.state_dict()
    if tv_state.keys() != own.keys():  # as zoo.create(weights=...) does
        tv_state = registry.get_spec(name).convert_weights(tv_state)
    assert {k: v.shape for k, v in tv_state.items()} == {k: v.shape for k, v in own.items()}
    if not kwargs:
        assert registry.count_params(name) == _count(theirs)  # what zoo.info reports


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


# ---------------------------------------------------------------------------------------------------------
# Any input size; gradients everywhere
# ---------------------------------------------------------------------------------------------------------


MODELS = ["alexnet", "googlenet", "googlenet_aux", "densenet121", "densenet161", "densenet169", "densenet201"]
FORWARD_CASES = [(n, c, s) for n in [*MODELS, "densenet_bc_100_k12"] for c, s in SIZES]


@pytest.mark.parametrize(("name", "chans", "size"), FORWARD_CASES, ids=[f"{n}-{c}x{s}" for n, c, s in FORWARD_CASES])
def test_forward_backward(name, chans, size):
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


# ---------------------------------------------------------------------------------------------------------
# Too-small inputs
# ---------------------------------------------------------------------------------------------------------

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


def test_torchvision_min_sizes_agree():
    """The ImageNet layouts accept what torchvision's weights metadata says they accept."""
    assert zoo_alexnet.MIN_SIZE[False] == TV.AlexNet_Weights.DEFAULT.meta["min_size"][0]
    assert zoo_googlenet.MIN_SIZE[False] == TV.GoogLeNet_Weights.DEFAULT.meta["min_size"][0]
    assert zoo_densenet.min_img_size(4, False) == TV.DenseNet121_Weights.DEFAULT.meta["min_size"][0]


# ---------------------------------------------------------------------------------------------------------
# torchvision weights give torchvision's logits
# ---------------------------------------------------------------------------------------------------------

CONVERT = [
    ("alexnet", {}, lambda: TV.alexnet()),
    ("googlenet", {}, lambda: TV.googlenet(aux_logits=True, init_weights=True)),  # aux heads dropped
    ("googlenet", {"aux_logits": True}, lambda: TV.googlenet(aux_logits=True, init_weights=True)),
    ("densenet121", {}, lambda: TV.densenet121()),
]


def _randomise_bn(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so that a mix-up of BN layers would show."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


@pytest.mark.parametrize(
    ("name", "kwargs", "tv_builder"),
    CONVERT,
    ids=["alexnet", "googlenet-tvaux", "googlenet-aux", "densenet121"],
)
def test_torchvision_weights_give_equal_logits(name, kwargs, tv_builder):
    torch.manual_seed(0)
    tv = tv_builder().eval()
    _randomise_bn(tv)
    size = 64 if name == "alexnet" else 32  # the ImageNet stem at small, cheap sizes
    model = zoo.create(name, img_size=size, small_stem=False, weights=tv.state_dict(), **kwargs).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        diff = (model(x) - tv(x)).abs().max().item()
    assert diff <= 1e-5, f"{name}: max abs logit difference {diff:.2e}"


def test_densenet_legacy_torchvision_keys():
    """torchvision's published DenseNet checkpoints use 'denselayer1.norm.1.weight'; they load too."""
    tv = TV.DenseNet(growth_rate=4, block_config=(2, 2, 2, 2), num_init_features=8, num_classes=3)
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v for k, v in tv.state_dict().items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    converted = zoo_densenet.convert_weights(legacy)
    assert converted.keys() == tv.state_dict().keys()
    model = zoo_densenet.DenseNet(4, (2, 2, 2, 2), 8, num_classes=3, img_size=64)
    model.load_state_dict(converted)  # strict: every key and shape fits


def test_convert_rejects_what_cannot_fit():
    """An aux-less torchvision state dict cannot fill auxiliary heads: a clear error, not a silent half-load."""
    tv = TV.googlenet(aux_logits=False, init_weights=False)
    with pytest.raises(ValueError, match="missing keys.*aux"):
        zoo.create("googlenet", aux_logits=True, weights=tv.state_dict())


# ---------------------------------------------------------------------------------------------------------
# GoogLeNet's auxiliary classifiers; DenseNet's checkpointing; the head interface
# ---------------------------------------------------------------------------------------------------------


def test_googlenet_aux_outputs_only_in_training():
    model = zoo.create("googlenet", aux_logits=True, num_classes=4, img_size=16)
    x = torch.randn(2, 3, 16, 16)
    out = model.train()(x)
    assert type(out).__name__ == "GoogLeNetOutputs" and out._fields == ("logits", "aux_logits2", "aux_logits1")
    assert all(o.shape == (2, 4) for o in out)
    with torch.no_grad():
        logits = model.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 4)
    model.reset_classifier(6)
    assert all(o.shape == (2, 6) for o in model.train()(x))
    with torch.device("meta"):
        assert zoo.create("googlenet").aux1 is None


def test_densenet_memory_efficient_same_gradients():
    torch.manual_seed(0)
    plain = zoo_densenet.DenseNet(4, (3, 3), 8, num_classes=3, img_size=8).train()
    efficient = zoo_densenet.DenseNet(4, (3, 3), 8, num_classes=3, img_size=8, memory_efficient=True).train()
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    plain(x).sum().backward()
    efficient(x).sum().backward()
    for (n, p), q in zip(plain.named_parameters(), efficient.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), n


@pytest.mark.parametrize("name", ["alexnet", "googlenet", "densenet_bc_100_k12"])
def test_head_interface(name):
    model = zoo.create(name, img_size=28, in_chans=1, num_classes=3, drop_rate=0.3).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.ndim == 4
        assert torch.allclose(model.forward_head(feats), model(x))
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
        assert model.get_classifier().out_features == 3
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)


def test_unknown_keyword_is_refused():
    with pytest.raises(TypeError, match="did you mean 'small_stem'"):
        zoo.create("densenet121", small_sten=True)
