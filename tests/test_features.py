"""Feature extraction and timm's optimizer hooks on every built-in model.

Shapes are checked on the meta device for every built-in (no memory, no initialisation); values on real tensors
for the smallest variant of each family. timm's own ``feature_take_indices`` and ``create_optimizer_v2`` are the
references for the index rule and the parameter groups.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from timm.models import group_parameters
from timm.models._features import feature_take_indices as timm_take_indices
from timm.optim import create_optimizer_v2
from torchvision.models.feature_extraction import create_feature_extractor

import zoo
from zoo import plugin_manager, registry
from zoo.features import feature_take_indices
from zoo.transfer import classifier_name

BUILTIN = [n for n in zoo.list_models() if registry.get_spec(n).plugin in plugin_manager.BUILTIN_PLUGINS]
ONE_PER_FAMILY = [min(zoo.list_models(family=f), key=lambda n: zoo.info(n).num_params) for f in
                  sorted({registry.get_spec(n).family for n in BUILTIN})]  # fmt: skip
SIZE = 32


def _meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return zoo.create(name, in_chans=3, img_size=SIZE, **kwargs).eval()


def _check_map(name: str, fmap: torch.Tensor, info: dict) -> None:
    """A feature map has the channels ``info`` declares and the size its reduction implies (a valid convolution
    may trim a few pixels, so the side lies in (SIZE / 2r, ceil(SIZE / r)]); an MLP's is a vector."""
    assert fmap.shape[1] == info["num_chs"], f"{name} {info['module']}: {fmap.shape[1]} channels, not {info}"
    if fmap.ndim == 2:
        assert info["reduction"] == SIZE, f"{name}: a vector feature covers the whole image"
        return
    for side in fmap.shape[2:]:
        assert SIZE / (2 * info["reduction"]) < side <= math.ceil(SIZE / info["reduction"]), (name, info, fmap.shape)


def test_take_indices_follow_timm():
    for n in (1, 3, 5):
        for indices in (None, 1, n, [0], [-1], [0, -1], list(range(n)), [-n]):
            assert feature_take_indices(n, indices) == timm_take_indices(n, indices), (n, indices)


@pytest.mark.parametrize("indices", [0, 6, [5], [-6]])
def test_take_indices_out_of_range_is_one_line(indices):
    with pytest.raises(ValueError, match="out of range; accepted"):
        feature_take_indices(5, indices)


@pytest.mark.parametrize("name", BUILTIN)
def test_feature_info_matches_the_maps(name):
    model = _meta_model(name)
    x = torch.empty(2, 3, SIZE, SIZE, device="meta")
    final, maps = model.forward_intermediates(x)
    assert len(maps) == len(model.feature_info) >= 2
    reductions = [fi["reduction"] for fi in model.feature_info]
    assert reductions == sorted(reductions), f"{name}: reductions must not decrease: {reductions}"
    for fmap, info in zip(maps, model.feature_info, strict=True):
        _check_map(name, fmap, info)
    assert model.forward_head(final).shape == (2, model.num_classes)
    assert model.get_submodule(model.feature_info[-1]["module"]) is not None


@pytest.mark.parametrize("name", BUILTIN)
def test_features_only(name):
    with torch.device("meta"):
        net = zoo.create(name, in_chans=3, img_size=SIZE, features_only=True, out_indices=(0, -1))
    n = len(net.model.feature_info)
    assert net.out_indices == (0, n - 1)
    maps = net(torch.empty(1, 3, SIZE, SIZE, device="meta"))
    assert [m.shape[1] for m in maps] == net.feature_info.channels()
    for fmap, info in zip(maps, net.feature_info.get_dicts(), strict=True):
        _check_map(name, fmap, info)
    assert net.feature_info.reduction() == [net.feature_info[0]["reduction"], net.feature_info[n - 1]["reduction"]]
    assert classifier_name(net.model) is not None and not isinstance(net.model.get_classifier(), nn.Linear)


@pytest.mark.filterwarnings("ignore:NOTE. The nodes obtained by tracing")  # EfficientNet's stochastic depth
@pytest.mark.parametrize(
    "name", [n if n in ONE_PER_FAMILY else pytest.param(n, marks=pytest.mark.slow) for n in BUILTIN]
)
def test_create_feature_extractor_traces(name):
    """torchvision's create_feature_extractor (torch.fx) on every built-in, at its feature modules (the larger
    variants of a family are marked slow: they trace the same code)."""
    model = _meta_model(name)
    nodes = {fi["module"]: str(i) for i, fi in enumerate(model.feature_info)}
    out = create_feature_extractor(model, nodes)(torch.empty(1, 3, SIZE, SIZE, device="meta"))
    assert list(out) == list(nodes.values())


@pytest.mark.filterwarnings("ignore:NOTE. The nodes obtained by tracing")
@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_features_equal_the_models_own(name):
    """features_only, forward_intermediates and create_feature_extractor give the same tensors, and the final
    features lead to the model's logits."""
    torch.manual_seed(0)
    model = zoo.create(name, in_chans=3, img_size=SIZE).eval()
    torch.manual_seed(0)
    net = zoo.create(name, in_chans=3, img_size=SIZE, features_only=True, out_indices=(-2, -1)).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        assert torch.allclose(model.forward_head(final), model(x), atol=1e-6)
        picked = net(x)
        for a, b in zip(picked, maps[-2:], strict=True):
            assert torch.equal(a, b)
        nodes = {fi["module"]: str(i) for i, fi in enumerate(model.feature_info)}
        traced = create_feature_extractor(model, nodes)(x)
    for i, fmap in enumerate(maps):
        got = traced[str(i)]
        if got.ndim == 3:  # a ViT block's tokens: class token first, then the patches row by row
            got = got[:, 1:].transpose(1, 2).reshape(fmap.shape)
        assert torch.equal(got, fmap), f"{name}: feature {i} differs from the traced {model.feature_info[i]}"


def test_features_only_drops_what_the_features_do_not_need():
    full = zoo.create("alexnet", img_size=32)
    net = zoo.create("alexnet", img_size=32, features_only=True, out_indices=(1,))
    kept = sum(p.numel() for p in net.parameters())
    assert kept == sum(p.numel() for n, p in full.named_parameters() if n.startswith(("features.0.", "features.3.")))


def test_features_only_exports():
    """torch.export of a feature extractor gives the same maps (a CNN and a ViT)."""
    for name, kwargs in (("lenet5", {}), ("vit_tiny_patch16", {"depth": 2})):
        net = zoo.create(name, in_chans=3, img_size=32, features_only=True, **kwargs).eval()
        x = torch.randn(2, 3, 32, 32)
        exported = torch.export.export(net, (x,)).module()
        for a, b in zip(exported(x), net(x), strict=True):
            assert torch.allclose(a, b, atol=1e-6)


def test_out_indices_without_features_only_is_refused():
    with pytest.raises(ValueError, match="features_only=True"):
        zoo.create("lenet5", out_indices=(0,))


def test_vit_intermediates_nlc_and_norm():
    model = zoo.create("vit_tiny_patch16", img_size=32, depth=2).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        tokens = model.forward_intermediates(x, indices=[-1], output_fmt="NLC", intermediates_only=True)[0]
        normed = model.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)[0]
        assert torch.equal(model.norm(model.blocks(model.embed(x)))[:, 1:], normed.flatten(2).transpose(1, 2))
    assert tokens.shape == (1, 64, 192)


# ---------------------------------------------------------------------------------------------------------
# timm's optimizer hooks: group_matcher, no_weight_decay, the classifier's name
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN)
def test_layer_decay_gives_per_layer_groups(name):
    model = _meta_model(name)
    opt = create_optimizer_v2(model, "sgd", lr=1.0, weight_decay=0.05, layer_decay=0.75)
    scales = sorted({g["lr_scale"] for g in opt.param_groups})
    assert len(scales) > 2, f"{name}: layer_decay made {len(scales)} lr scales"
    layers = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    assert len(layers) == len(list(model.named_parameters()))
    head = classifier_name(model)
    assert head is not None and head in dict(model.named_modules())
    head_layers = {layers[f"{head}.weight"], layers[f"{head}.bias"]}
    assert head_layers == {max(layers.values())}, f"{name}: the classifier is not the last group"
    grouped = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each parameter in exactly one group


@pytest.mark.parametrize("name", BUILTIN)
def test_coarse_group_matcher_is_coarser(name):
    model = _meta_model(name)
    fine = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    coarse = group_parameters(model, model.group_matcher(coarse=True), reverse=True)
    assert 2 < len(set(coarse.values())) <= len(set(fine.values()))


@pytest.mark.parametrize("name", BUILTIN)
def test_no_weight_decay_names_are_not_decayed(name):
    model = _meta_model(name)
    skip = model.no_weight_decay()
    assert skip == ({"pos_embed", "cls_token"} if registry.get_spec(name).family == "vit" else set())
    params = dict(model.named_parameters())
    for layer_decay in (None, 0.75):
        opt = create_optimizer_v2(model, "adamw", lr=1.0, weight_decay=0.05, layer_decay=layer_decay)
        decay_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
        for n in skip:
            assert decay_of[id(params[n])] == 0.0, f"{name}: {n} is weight-decayed"
        assert any(decay_of[id(p)] > 0 for p in params.values() if p.ndim > 1)
