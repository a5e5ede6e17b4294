"""ViT: torchvision and timm weights, the patch size that follows the image size, clear size errors, overrides.

Parameter counts against torchvision and timm are in test_models_reference.py; shapes, gradients and the head
interface at 28/32 px for every model in test_models_sweep.py.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn as nn
from torchvision.models.vision_transformer import VisionTransformer as TVVisionTransformer

import zoo
from zoo.models import vit as zvit


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
