"""weights=: state dicts, torchvision's weights from torch's hub cache (never downloaded in tests), the weights'
preprocessing recorded as ``pretrained_cfg`` and used by predict/evaluate, and GoogLeNet's ``transform_input``.

The "published" weights are torchvision models with random initialisation, saved where torch's hub cache keeps
torchvision's downloads (``$TORCH_HOME/hub/checkpoints/<file name of the enum's url>``); every reference figure and
setting is read from torchvision at test time.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import timm.data
import torch
import torchvision
from PIL import Image
from torchvision.models import AlexNet_Weights, GoogLeNet_Weights, get_model_weights

import zoo
from zoo import weights as zw

TV = torchvision.models
GOOGLENET = GoogLeNet_Weights.IMAGENET1K_V1


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """An empty torch hub cache under a temporary TORCH_HOME, where no download can happen."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    # random twins stand in for the published files under their names: the name's hash (tested in
    # tests/test_images_hostile.py) cannot match them
    monkeypatch.setattr(zoo.weights, "check_hub_hash", lambda path: None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _calibrated(model: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm statistics and He-scaled weights, so that logits are far from zero and input-dependent."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
        elif isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    with torch.no_grad():
        model.train()(torch.randn(4, 3, 64, 64))
    return model.eval()


@pytest.fixture(scope="module")
def tv_googlenet():
    """torchvision's GoogLeNet as its weights build it: auxiliary heads in the file, transform_input on."""
    torch.manual_seed(0)
    return _calibrated(TV.googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=True))


def _cache(hub_dir, member, state) -> str:
    path = hub_dir / os.path.basename(member.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("form", [GOOGLENET, "GoogLeNet_Weights.IMAGENET1K_V1", "IMAGENET1K_V1", "DEFAULT"])
def test_googlenet_weights_from_the_hub_cache_give_torchvisions_logits(hub, tv_googlenet, form):
    _cache(hub, GOOGLENET, tv_googlenet.state_dict())
    model = zoo.create("googlenet", weights=form).eval()
    assert model.zoo_config["kwargs"] == {"transform_input": True}  # as torchvision's builder sets it
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = tv_googlenet(x), model(x)
    assert expected.abs().max() > 1 and (expected[0] - expected[1]).abs().max() > 0.1
    assert (got - expected).abs().max().item() <= 1e-4


def test_a_googlenet_state_dict_needs_its_weights_settings(tv_googlenet):
    """The same weights without transform_input give other logits: what the state-dict test used to miss."""
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = tv_googlenet(x)
        right = zoo.create("googlenet", weights=tv_googlenet.state_dict(), transform_input=True).eval()(x)
        wrong = zoo.create("googlenet", weights=tv_googlenet.state_dict()).eval()(x)
    assert (right - expected).abs().max().item() <= 1e-4
    assert (wrong - expected).abs().max().item() > 1
    with pytest.raises(ValueError, match="in_chans=3"):
        zoo.create("googlenet", in_chans=1, transform_input=True)


def test_missing_weights_fail_in_one_line_saying_where_and_how(hub):
    with pytest.raises(FileNotFoundError) as exc:
        zoo.create("googlenet", weights="DEFAULT")
    message = str(exc.value)
    assert "\n" not in message
    assert str(hub / os.path.basename(GOOGLENET.url)) in message
    assert "download=True" in message and "torchvision.models.googlenet(weights='IMAGENET1K_V1')" in message


def test_download_only_when_asked(hub, monkeypatch, tv_googlenet):
    fetched = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        fetched.append((url, dst, hash_prefix))
        torch.save(tv_googlenet.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    zoo.create("googlenet", weights=GOOGLENET, download=True)
    target = str(hub / os.path.basename(GOOGLENET.url))
    assert fetched == [(GOOGLENET.url, target, os.path.basename(target).rsplit("-", 1)[1].split(".")[0])]
    zoo.create("googlenet", weights=GOOGLENET, download=True)  # in the cache now: not fetched again
    assert len(fetched) == 1
    with pytest.raises(ValueError, match="download=True fetches torchvision weights only"):
        zoo.create("lenet5", weights={}, download=True)


def test_weights_of_another_model_or_no_twin_are_refused(hub):
    with pytest.raises(ValueError, match="AlexNet_Weights.IMAGENET1K_V1 are not googlenet's"):
        zoo.create("googlenet", weights=AlexNet_Weights.IMAGENET1K_V1)
    with pytest.raises(ValueError, match="no member 'IMAGENET1K_V9'; accepted: DEFAULT, IMAGENET1K_V1"):
        zoo.create("googlenet", weights="IMAGENET1K_V9")
    with pytest.raises(ValueError, match="'lenet5' has no torchvision twin"):
        zoo.create("lenet5", weights="DEFAULT")
    with pytest.raises(FileNotFoundError, match="weights file 'nowhere.pt' does not exist"):
        zoo.create("lenet5", weights="nowhere.pt")


def test_torchvision_source_takes_its_weights_too(hub):
    member = get_model_weights("mobilenet_v3_small").DEFAULT
    torch.manual_seed(1)
    ref = _calibrated(TV.mobilenet_v3_small())
    _cache(hub, member, ref.state_dict())
    model = zoo.create("torchvision/mobilenet_v3_small", weights="DEFAULT").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)
    assert model.pretrained_cfg["weights"] == str(member)


def test_pretrained_cfg_follows_torchvisions_transforms_for_every_twin():
    twins = [zoo.registry.get_spec(n).twin for n in zoo.list_models() if zoo.registry.get_spec(n).twin]
    assert len(twins) == 20
    for twin in twins:
        member = get_model_weights(twin).DEFAULT
        t = member.transforms()
        cfg = zw.weights_cfg(member, twin)
        crop, resize = t.crop_size[0], t.resize_size[0]
        assert cfg["input_size"] == (3, crop, crop) and cfg["resize_size"] == resize
        assert cfg["mean"] == tuple(t.mean) and cfg["std"] == tuple(t.std)
        assert cfg["interpolation"] == t.interpolation.value
        # timm derives the resize from crop_pct: it must give torchvision's back (232 for MobileNetV2's weights)
        assert math.floor(crop / cfg["crop_pct"]) == resize
        assert list(cfg["label_names"]) == member.meta["categories"]


@pytest.mark.parametrize("name", zoo.list_models())
def test_timm_resolves_every_builtins_own_input(name):
    spec = zoo.registry.get_spec(name)
    with torch.device("meta"):
        model = zoo.create(name)
    data = timm.data.resolve_data_config({}, model=model)
    c = spec.input_size[0]
    assert tuple(data["input_size"]) == tuple(spec.input_size)
    assert len(data["mean"]) == len(data["std"]) == c


def test_timm_resolves_lenet5_at_its_created_size():
    model = zoo.create("lenet5", img_size=28)
    data = timm.data.resolve_data_config({}, model=model)
    assert tuple(data["input_size"]) == (1, 28, 28)
    assert data["mean"] == (0.5,) and data["std"] == (0.5,) and data["crop_pct"] == 1.0


def test_predict_and_evaluate_use_the_weights_preprocessing(hub, tv_googlenet, tmp_path):
    _cache(hub, GOOGLENET, tv_googlenet.state_dict())
    model = zoo.create("googlenet", weights="DEFAULT").eval()
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (180, 260, 3), dtype=np.uint8))
    with torch.no_grad():
        probs = torch.softmax(tv_googlenet(GOOGLENET.transforms()(photo)[None]), 1)[0]
    (got,) = zoo.predict(model, photo)
    assert got["label"] == GOOGLENET.meta["categories"][int(probs.argmax())]
    assert got["probability"] == pytest.approx(float(probs.max()), abs=1e-4)

    x = torch.from_numpy(rng.integers(0, 256, (4, 3, 64, 64), dtype=np.uint8))
    y = torch.tensor([0, 1, 2, 3])
    mean, std = torch.tensor(GOOGLENET.transforms().mean), torch.tensor(GOOGLENET.transforms().std)
    with torch.no_grad():
        logits = tv_googlenet((x.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    metrics = zoo.evaluate(model, (x, y), device="cpu")
    assert metrics["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-4)

    # a checkpoint keeps the weights' settings: zoo.load rebuilds with transform_input and the preprocessing
    path = zoo.save(model, tmp_path / "googlenet.safetensors")
    again = zoo.load(path)
    assert again.zoo_config["kwargs"] == {"transform_input": True}
    assert again.pretrained_cfg["weights"] == str(GOOGLENET)
    assert zoo.predict(again, photo)[0]["label"] == got["label"]


def test_a_twins_tag_is_torchvisions_weights_read_through_the_hub_cache(hub, tv_googlenet):
    _cache(hub, GOOGLENET, tv_googlenet.state_dict())
    model = zoo.create("googlenet.tv_in1k").eval()
    assert model.zoo_config["kwargs"] == {"transform_input": True}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - tv_googlenet(x)).abs().max().item() <= 1e-4
    transforms = GOOGLENET.transforms()
    inputs = model.zoo_config["inputs"]
    assert inputs["resize_size"] == transforms.resize_size[0] and inputs["mean"] == list(transforms.mean)
    assert inputs["classes"] == GOOGLENET.meta["categories"] and model.pretrained_cfg["weights"] == str(GOOGLENET)
