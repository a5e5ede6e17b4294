"""Transfer learning at creation: ``zoo.create(name, weights=..., num_classes=N, in_chans=C, img_size=S)`` keeps
the backbone, trains a new head, adapts the stem and a ViT's position embeddings, and refuses the rest in one line.

The weights are zoo models and torchvision models built here with other settings; every reference (the summed
stem, timm's channel rule, the interpolated grid) is computed here from the source tensors.
"""

from __future__ import annotations

import math
import os
import warnings

import pytest
import timm.layers
import timm.models
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

import zoo
from zoo.registry import get_spec
from zoo.transfer import TransferWarning, adapt_state_dict


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


def _create(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = zoo.create(*args, **kwargs)
    notes = [str(w.message) for w in caught if issubclass(w.category, TransferWarning)]
    return model, notes


def _saved(model: torch.nn.Module, path) -> dict[str, torch.Tensor]:
    """Save ``model``'s state dict to ``path`` (.safetensors) and return it as read back."""
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return state


def test_new_head_and_grey_stem_keep_every_backbone_tensor(tmp_path):
    torch.manual_seed(0)
    source = _saved(zoo.create("lenet5", num_classes=5, in_chans=3), tmp_path / "lenet.safetensors")
    torch.manual_seed(1)
    fresh = zoo.create("lenet5", num_classes=10, in_chans=1)  # what the builder initialises with this seed
    torch.manual_seed(1)
    model, notes = _create("lenet5", weights=tmp_path / "lenet.safetensors", num_classes=10, in_chans=1)
    got = model.state_dict()
    stem, head = "features.0.weight", ("fc.weight", "fc.bias")
    for key, value in got.items():
        if key in head:
            assert value.shape == fresh.state_dict()[key].shape and torch.equal(value, fresh.state_dict()[key]), key
        elif key == stem:
            assert torch.equal(value, source[stem].sum(dim=1, keepdim=True))
        else:
            assert torch.equal(value, source[key]), key
    assert got["fc.weight"].shape == (10, 84)
    assert len(notes) == 1 and "fc.weight" in notes[0] and "from 3 to 1 input channels" in notes[0]
    assert sorted(model.zoo_config["transfer"]["dropped"]) == ["fc.bias", "fc.weight"]
    assert model.zoo_config["transfer"]["stem"] == [stem, 3, 1]


def test_the_transferred_model_trains(tmp_path):
    torch.manual_seed(0)
    source = zoo.create("lenet5", num_classes=5, in_chans=3).state_dict()
    model, _ = _create("lenet5", weights=source, num_classes=4, in_chans=1)
    backbone = model.features[0].weight.detach().clone()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 32, 32, generator=g), torch.randint(0, 4, (64,), generator=g)
    history = zoo.fit(model, (x, y), epochs=3, batch_size=16, lr=1e-2, progress=False, device="cpu")
    losses = history["loss"]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert not torch.equal(model.features[0].weight.detach(), backbone)  # fine-tuned, not frozen


def test_torchvision_twin_weights_into_a_new_head_and_one_channel():
    torch.manual_seed(0)
    tv = torchvision.models.mobilenet_v3_small()
    converted = get_spec("mobilenet_v3_small").convert_weights(tv.state_dict())  # as fit_weights converts them
    torch.manual_seed(2)
    fresh = zoo.create("mobilenet_v3_small", num_classes=10, in_chans=1).state_dict()
    torch.manual_seed(2)
    model, notes = _create("mobilenet_v3_small", weights=tv.state_dict(), num_classes=10, in_chans=1)
    head = {k for k in fresh if k.startswith(f"{classifier_name(model)}.")}
    assert head and notes
    for key, value in model.state_dict().items():
        if key in head:
            assert torch.equal(value, fresh[key]), key
        elif key == "features.0.0.weight":
            assert torch.equal(value, converted[key].sum(dim=1, keepdim=True))
        else:
            assert torch.equal(value, converted[key]), key
    assert model.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def classifier_name(model: torch.nn.Module) -> str:
    return next(n for n, m in model.named_modules() if m is model.get_classifier())


@pytest.mark.parametrize(("source_chans", "in_chans"), [(3, 1), (1, 3), (3, 2), (3, 5), (2, 4)])
def test_the_stem_follows_timms_channel_rule(source_chans, in_chans):
    torch.manual_seed(0)
    source = zoo.create("lenet5", in_chans=source_chans).state_dict()
    model, _ = _create("lenet5", weights=source, in_chans=in_chans)
    base = source["features.0.weight"]
    expected = timm.models.adapt_input_conv(in_chans, base.clone(), base_chans=source_chans)
    assert torch.equal(model.features[0].weight.detach(), expected)


def test_a_grey_image_repeated_over_the_channels_gives_the_same_output():
    """The rescaling's purpose: the adapted 3-channel stem sees a repeated grey image as the 1-channel one."""
    torch.manual_seed(0)
    grey = zoo.create("lenet5", in_chans=1).eval()
    model, _ = _create("lenet5", weights=grey.state_dict(), in_chans=3)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x.repeat(1, 3, 1, 1)), grey(x))


@pytest.mark.parametrize(("img_size", "grid"), [(48, 12), (16, 4), ((32, 48), (8, 12))])
def test_vit_position_embeddings_are_interpolated_on_the_grid(img_size, grid):
    torch.manual_seed(0)
    source = zoo.create("vit_tiny_patch16", img_size=32, depth=1, num_classes=3).state_dict()  # 4x4 patches
    model, notes = _create("vit_tiny_patch16", weights=source, img_size=img_size, depth=1, num_classes=3)
    grid = (grid, grid) if isinstance(grid, int) else grid
    old = source["pos_embed"]
    assert old.shape == (1, 1 + 8 * 8, 192)
    cells = old[:, 1:].reshape(1, 8, 8, 192).permute(0, 3, 1, 2)  # 1 x D x 8 x 8
    resized = F.interpolate(cells, size=grid, mode="bicubic", align_corners=False, antialias=True)
    expected = torch.cat([old[:, :1], resized.permute(0, 2, 3, 1).reshape(1, -1, 192)], dim=1)
    got = model.pos_embed.detach()
    assert torch.equal(got[:, :1], old[:, :1])  # the class token's embedding is kept
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    timm_ref = timm.layers.resample_abs_pos_embed(old, list(grid), old_size=[8, 8], num_prefix_tokens=1)
    torch.testing.assert_close(got, timm_ref, rtol=0, atol=1e-6)
    assert torch.equal(model.cls_token.detach(), source["cls_token"])
    assert torch.equal(model.blocks[0].attn.qkv.weight.detach(), source["blocks.0.attn.qkv.weight"])
    assert "patch grid" in notes[0]
    size = (img_size, img_size) if isinstance(img_size, int) else img_size
    assert model.eval()(torch.randn(1, 3, *size)).shape == (1, 3)


def test_lenets_size_dependent_head_layer_is_new_with_a_new_head():
    torch.manual_seed(0)
    source = zoo.create("lenet5", num_classes=5).state_dict()  # 32 px: head.1 is 400 -> 120
    model, notes = _create("lenet5", weights=source, img_size=64, num_classes=7)
    fresh = set(model.zoo_config["transfer"]["fresh"])
    assert fresh == {"head.1.weight", "head.1.bias", "fc.weight", "fc.bias"}
    for key, value in model.state_dict().items():
        if key not in fresh:
            assert torch.equal(value, source[key]), key
    assert model.eval()(torch.randn(1, 1, 64, 64)).shape == (1, 7)


def test_no_head_at_all_drops_the_classifier():
    torch.manual_seed(0)
    source = zoo.create("lenet5").state_dict()
    model, _ = _create("lenet5", weights=source, num_classes=0)
    assert model.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 84)
    assert sorted(model.zoo_config["transfer"]["dropped"]) == ["fc.bias", "fc.weight"]


def test_weights_that_fit_are_loaded_as_they_are_without_a_note():
    torch.manual_seed(0)
    source = zoo.create("lenet5", num_classes=5).state_dict()
    model, notes = _create("lenet5", weights=source, num_classes=5)
    assert notes == [] and "transfer" not in model.zoo_config
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())


# ---- refusals: one line, naming what to pass ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_kwargs", "kwargs", "message"),
    [
        # no num_classes: the classifier is not silently dropped
        ({"num_classes": 5}, {}, r"size mismatch for fc.weight: 5x84 in the weights, 10x84 here; .*num_classes=5"),
        # no in_chans: the stem is not silently adapted
        (
            {"in_chans": 3},
            {},
            r"size mismatch for features.0.weight: 6x3x5x5 in the weights, 6x1x5x5 here; .*in_chans=3",
        ),
        # the head's input changed with the image size, the head kept: pass num_classes or the weights' size
        (
            {},
            {"img_size": 64},
            r"size mismatch for head.1.weight: 120x400 in the weights, 120x2704 here; .*num_classes=.*img_size",
        ),
    ],
)
def test_lenet_refusals(source_kwargs, kwargs, message):
    source = zoo.create("lenet5", **source_kwargs).state_dict()
    with pytest.raises(ValueError, match=r"^weights do not fit 'lenet5': " + message) as err:
        zoo.create("lenet5", weights=source, **kwargs)
    one_line(err.value)


def test_vit_refusals_name_the_patch_and_the_image_size():
    source = zoo.create("vit_tiny_patch16", img_size=64, depth=1, num_classes=3).state_dict()  # 16x16 patches
    with pytest.raises(ValueError, match=r"patch_embed.proj.weight: .*pass patch_size=16$") as err:
        zoo.create("vit_tiny_patch16", weights=source, img_size=32, depth=1, num_classes=3)  # 4x4 patches here
    one_line(err.value)
    with pytest.raises(ValueError, match=r"pos_embed: 1x17x192 in the weights, 1x197x192 here; .*4x4 patch grid"):
        zoo.create("vit_tiny_patch16", weights=source, depth=1, num_classes=3)  # 224 px by default, not asked
    model, _ = _create("vit_tiny_patch16", weights=source, img_size=32, patch_size=16, depth=1, num_classes=3)
    assert model.zoo_config["transfer"]["pos_embed"] == ["pos_embed", [4, 4], [2, 2]]


def test_another_stem_layout_is_refused_naming_the_keyword():
    source = zoo.create("densenet_bc_100_k12", img_size=32).state_dict()  # the 3x3 CIFAR stem
    with pytest.raises(ValueError, match=r"features.conv0.weight: 24x3x3x3 .*24x3x7x7 here; .*small_stem=True$"):
        zoo.create("densenet_bc_100_k12", weights=source, img_size=64)
    model, notes = _create("densenet_bc_100_k12", weights=source, img_size=64, small_stem=True)
    assert notes == [] and all(torch.equal(v, source[k]) for k, v in model.state_dict().items())


def test_adapt_state_dict_reports_and_leaves_its_input_alone():
    torch.manual_seed(0)
    model = zoo.create("lenet5", num_classes=3, in_chans=2)
    state = zoo.create("lenet5").state_dict()
    before = {k: v.clone() for k, v in state.items()}
    adapted, report = adapt_state_dict(model, state, adapt={"num_classes", "in_chans"})
    assert report.fresh == ["fc.weight", "fc.bias"] and report.stem == ["features.0.weight", 1, 2]
    assert "fc.weight" not in adapted and adapted["features.0.weight"].shape == (6, 2, 5, 5)
    assert all(torch.equal(v, before[k]) for k, v in state.items())  # the caller's dict is not changed
    with pytest.raises(ValueError, match="pass in_chans=1"):
        adapt_state_dict(model, state, adapt={"num_classes"})


def test_published_weights_with_a_new_head_and_grey_inputs(monkeypatch, tmp_path):
    """The issue's first example: torchvision's weights (a random twin saved where torch's hub cache keeps them),
    num_classes=10, in_chans=1, img_size=28; the preprocessing recorded follows the model, not the weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(zoo.weights, "check_hub_hash", lambda path: None)  # a random twin under the real name
    member = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT
    path = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(member.url)
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    tv = torchvision.models.mobilenet_v3_small()
    torch.save(tv.state_dict(), path)
    model, notes = _create("mobilenet_v3_small", weights="DEFAULT", num_classes=10, in_chans=1, img_size=28)
    converted = get_spec("mobilenet_v3_small").convert_weights(tv.state_dict())
    fresh = set(model.zoo_config["transfer"]["fresh"])
    assert fresh == {f"{classifier_name(model)}.weight", f"{classifier_name(model)}.bias"}
    for key, value in model.state_dict().items():
        if key == "features.0.0.weight":
            assert torch.equal(value, converted[key].sum(dim=1, keepdim=True))
        elif key not in fresh:
            assert torch.equal(value, converted[key]), key
    cfg, t = model.pretrained_cfg, member.transforms()
    assert cfg["num_classes"] == 10 and cfg["label_names"] is None and cfg["weights"] == str(member)
    assert cfg["input_size"] == (1, 28, 28)
    assert cfg["mean"] == pytest.approx((sum(t.mean) / 3,)) and cfg["std"] == pytest.approx((sum(t.std) / 3,))
    assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert notes and "classifier" in notes[0]


def test_the_course_exercise_alexnet_on_cifar_sized_images():
    """torchvision's AlexNet weights into zoo's AlexNet for 10 classes: the ImageNet stem needs 63 px or more, so
    CIFAR images are upsampled to 64; at 32 px zoo's small stem cannot take the weights and says so."""
    torch.manual_seed(0)
    tv = torchvision.models.alexnet()
    converted = get_spec("alexnet").convert_weights(tv.state_dict())
    model, notes = _create("alexnet", weights=tv.state_dict(), num_classes=10, img_size=64)
    assert sorted(model.zoo_config["transfer"]["fresh"]) == ["fc.bias", "fc.weight"]
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, converted[key]), key
    with pytest.raises(ValueError, match=r"features.0.weight: 64x3x11x11 .* pass small_stem=False") as err:
        zoo.create("alexnet", weights=tv.state_dict(), num_classes=10, img_size=32)
    one_line(err.value)


def test_a_model_without_get_classifier_gets_a_new_last_layer():
    """torchvision's own MobileNetV3 (the torchvision/ source) has no get_classifier: its last layer is the head."""
    torch.manual_seed(0)
    source = torchvision.models.mobilenet_v3_small().state_dict()
    model, _ = _create("torchvision/mobilenet_v3_small", weights=source, num_classes=10)
    assert model.zoo_config["transfer"]["fresh"] == ["classifier.3.weight", "classifier.3.bias"]
    for key, value in model.state_dict().items():
        if not key.startswith("classifier.3."):
            assert torch.equal(value, source[key]), key
    assert model.classifier[3].weight.shape == (10, 1024)
