"""ViT and MLP: parameter counts and logits against torchvision/timm, small-input patches, errors, keywords.

Shapes, gradients and the head interface at 28/32/224 px are checked for every model in test_models_sweep.py;
this file checks what is particular to these two families.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn as nn
import torchvision
from torchvision.models.vision_transformer import VisionTransformer as TVVisionTransformer

import zoo
from zoo.models import vit as zvit


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------------
# ViT
# ---------------------------------------------------------------------------------------------------------

TWINS = [
    ("vit_base_patch16", lambda: torchvision.models.vit_b_16()),
    ("vit_base_patch32", lambda: torchvision.models.vit_b_32()),
    ("vit_large_patch16", lambda: torchvision.models.vit_l_16()),
    ("vit_tiny_patch16", lambda: timm.create_model("vit_tiny_patch16_224")),
    ("vit_small_patch16", lambda: timm.create_model("vit_small_patch16_224")),
]


@pytest.mark.parametrize("name,reference", TWINS, ids=[t[0] for t in TWINS])
def test_vit_param_count_equals_reference(name, reference):
    with torch.device("meta"):
        ours, ref = zoo.create(name), reference()
    assert n_params(ours) == n_params(ref)
    assert zoo.info(name).num_params == n_params(ref)


def _small_tv_vit() -> TVVisionTransformer:
    return TVVisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128, num_classes=10
    ).eval()


SMALL_ZOO_CFG = dict(img_size=32, patch_size=8, depth=2, num_heads=2, embed_dim=64, mlp_ratio=2.0, num_classes=10)


def test_vit_loads_torchvision_weights_and_matches_logits():
    ref = _small_tv_vit()
    with torch.no_grad():  # give the zero-initialised head and biases some values so the comparison means something
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model = zoo.create("vit_base_patch16", weights=ref.state_dict(), **SMALL_ZOO_CFG).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert got.abs().max() > 1e-3
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_vit_loads_timm_weights_as_they_are():
    ref = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10).eval()
    with torch.no_grad():
        ref.head.weight.normal_()
    model = zoo.create("vit_tiny_patch16", img_size=32, patch_size=8, depth=2, num_classes=10).eval()
    assert set(model.state_dict()) == set(ref.state_dict())
    model.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-5)


def test_convert_weights_refuses_pre_logits():
    state = {"heads.pre_logits.weight": torch.zeros(1), "heads.head.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="pre_logits"):
        zvit.convert_weights(state)


@pytest.mark.parametrize("img_size,patch,tokens", [(28, 4, 49), (32, 4, 64), (64, 16, 16), (224, 16, 196)])
def test_vit_patch_size_follows_img_size(img_size, patch, tokens):
    with torch.device("meta"):
        model = zoo.create("vit_tiny_patch16", img_size=img_size, num_classes=10)
        feats = model.forward_features(torch.empty(1, 3, img_size, img_size))
    assert model.patch_size == patch
    assert tuple(feats.shape) == (1, tokens + 1, 192)
    assert tuple(model.pos_embed.shape) == (1, tokens + 1, 192)


def test_vit_explicit_patch_size_wins():
    with torch.device("meta"):
        model = zoo.create("vit_tiny_patch16", img_size=28, patch_size=7, in_chans=1, num_classes=10)
    assert model.patch_embed.num_patches == 16


def test_vit_indivisible_img_size_fails_at_creation_with_nearest_sizes():
    with pytest.raises(ValueError, match=r"img_size 100 is not a multiple of patch_size=16; use img_size 96 or 112"):
        zoo.create("vit_base_patch16", img_size=100)
    with pytest.raises(ValueError, match=r"patch_size=4 \(the patch used below 64 px"):
        zoo.create("vit_tiny_patch16", img_size=30)


def test_vit_wrong_input_size_says_which_img_size_to_use():
    model = zoo.create("vit_tiny_patch16", img_size=16, depth=1)
    with pytest.raises(ValueError, match=r"built for 16x16 images, got 32x32; create it with img_size=32"):
        model(torch.randn(1, 3, 32, 32))


def test_vit_too_small_names_minimum():
    with pytest.raises(ValueError, match=r"needs img_size >= 16"):
        zoo.create("vit_tiny_patch16", img_size=8, patch_size=16)


def test_vit_unknown_keyword_suggests():
    with pytest.raises(TypeError, match="did you mean 'depth'"):
        zoo.create("vit_tiny_patch16", dept=2)


def test_vit_overrides_and_dropouts_build_and_train():
    model = zoo.create(
        "vit_tiny_patch16",
        img_size=16,
        patch_size=4,
        depth=2,
        embed_dim=32,
        num_heads=4,
        mlp_ratio=2.0,
        num_classes=3,
        drop_rate=0.1,
        proj_drop_rate=0.1,
        attn_drop_rate=0.1,
        drop_path_rate=0.1,
    )
    assert len(model.blocks) == 2 and model.embed_dim == 32
    assert model.blocks[0].mlp.fc1.out_features == 64
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        loss = nn.functional.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_vit_head_starts_at_zero():
    model = zoo.create("vit_tiny_patch16", img_size=16, depth=1, num_classes=4)
    assert torch.count_nonzero(model.head.weight) == 0
    with torch.no_grad():
        assert torch.count_nonzero(model(torch.randn(1, 3, 16, 16))) == 0


def test_vit_reset_classifier_to_features():
    model = zoo.create("vit_tiny_patch16", img_size=16, depth=1).eval()
    model.reset_classifier(0)
    with torch.no_grad():
        assert tuple(model(torch.randn(2, 3, 16, 16)).shape) == (2, 192)


# ---------------------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------------------


def test_mlp_defaults():
    model = zoo.create("mlp")
    ref = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    assert n_params(model) == n_params(ref)
    assert tuple(model(torch.randn(2, 1, 28, 28)).shape) == (2, 10)


def test_mlp_course_network_10_5_1_sigmoid():
    model = zoo.create("mlp", in_features=10, hidden_sizes=(5,), num_classes=1, out_activation="sigmoid")
    ref = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 1), nn.Sigmoid())
    assert n_params(model) == n_params(ref)
    linear1, linear2 = model.features[1], model.fc
    ref.load_state_dict(
        {"0.weight": linear1.weight, "0.bias": linear1.bias, "2.weight": linear2.weight, "2.bias": linear2.bias}
    )
    x = torch.randn(4, 10)
    out = model(x)
    assert tuple(out.shape) == (4, 1) and ((out > 0) & (out < 1)).all()
    torch.testing.assert_close(out, ref(x))


def test_mlp_learns_a_separable_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 10)
    y = (x[:, 0] + x[:, 1] > 0).float().unsqueeze(1)
    model = zoo.create("mlp", in_features=10, hidden_sizes=(5,), num_classes=1, out_activation="sigmoid")
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = nn.functional.binary_cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert ((model(x) > 0.5).float() == y).float().mean() > 0.9


def test_mlp_options():
    linear = zoo.create("mlp", hidden_sizes=(), img_size=8)
    assert n_params(linear) == 64 * 10 + 10
    bn = zoo.create("mlp", hidden_sizes=(16, 8), batch_norm=True, drop_rate=0.2, activation="tanh", img_size=8)
    kinds = [type(m) for m in bn.features]
    assert kinds.count(nn.BatchNorm1d) == 2 and kinds.count(nn.Tanh) == 2 and kinds.count(nn.Dropout) == 2
    assert bn.features[1].bias is None  # BatchNorm's shift makes the Linear bias redundant
    rgb = zoo.create("mlp", in_chans=3, img_size=32)
    assert rgb.in_features == 3 * 32 * 32


def test_mlp_errors():
    with pytest.raises(ValueError, match="unknown activation 'relu7'"):
        zoo.create("mlp", activation="relu7")
    with pytest.raises(ValueError, match="hidden_sizes must be positive"):
        zoo.create("mlp", hidden_sizes=(16, 0))
    model = zoo.create("mlp")
    with pytest.raises(ValueError, match="built for 784 input features"):
        model(torch.randn(2, 3, 28, 28))
