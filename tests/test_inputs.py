"""The input record (zoo/inputs.py), its timm and torchvision translations, 0.1.0 checkpoints, zoo.embed, and the
Batches contract's options (zoo/data/batching.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import zoo
from zoo.data.batching import BatchOptions
from zoo.data.loaders import make_batches
from zoo.data.torchloader import TorchLoader
from zoo.data.types import Split
from zoo.inputs import InputRecord, read_zoo_config


def test_dict_round_trip_and_unknown_keys():
    record = InputRecord(
        input_size=(3, 16, 16), input_dtype="uint8", mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2), resize_size=18,
        crop_size=(16, 16), classes=["a", "b"], num_classes=2, task="classification", loss="cross_entropy",
        dataset="x", hflip=True,
    )  # fmt: skip
    d = record.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON
    assert InputRecord.from_dict({**d, "from_the_future": 1}) == record
    assert InputRecord(crop_size=16, resize_size=[18]).crop_size == (
        16,
        16,
    )  # torchvision's CenterCrop(16), Resize([18])
    with pytest.raises(ValueError, match="malformed input record") as exc:
        InputRecord.from_dict({"input_size": ["three"]})
    assert "\n" not in str(exc.value)


def test_timm_cfg_round_trip_resolves_as_timm_does():
    timm = pytest.importorskip("timm")
    record = InputRecord(
        input_size=(3, 24, 24), input_dtype="uint8", mean=(0.1, 0.2, 0.3), std=(0.3, 0.2, 0.1),
        interpolation="bicubic", resize_size=27, crop_size=(24, 24), classes=["a", "b", "c"], num_classes=3,
        task="classification",
    )  # fmt: skip
    cfg = record.to_timm_cfg()
    assert InputRecord.from_timm_cfg(cfg) == record
    model = nn.Linear(1, 1)
    model.pretrained_cfg = cfg
    data = timm.data.resolve_data_config({}, model=model)
    assert tuple(data["input_size"]) == (3, 24, 24) and data["interpolation"] == "bicubic"
    assert math.floor(24 / data["crop_pct"]) == 27  # timm's own resize gives the record's back


def test_torchvision_weights_record():
    tv = pytest.importorskip("torchvision")
    member = tv.models.get_model_weights("mobilenet_v2").DEFAULT
    t = member.transforms()
    record = InputRecord.from_torchvision(member)
    assert record.input_size == (3, t.crop_size[0], t.crop_size[0]) and record.resize_size == t.resize_size[0]
    assert record.mean == tuple(t.mean) and record.std == tuple(t.std)
    assert record.interpolation == t.interpolation.value and record.classes == member.meta["categories"]


def test_of_reads_record_then_weights_cfg_then_guesses():
    model = zoo.create("lenet5", num_classes=3, in_chans=1, img_size=20)
    guessed = InputRecord.of(model)
    assert InputRecord.of(model, guess=False) is None
    assert guessed.input_size == (1, 20, 20) and guessed.mean is None  # the card's size, not normalised
    model.pretrained_cfg = {**model.pretrained_cfg, "weights": "W", "mean": (0.3,), "std": (0.2,)}
    assert InputRecord.of(model).mean == (0.3,)
    model.zoo_config["inputs"] = InputRecord(input_size=(1, 20, 20), mean=(0.7,), std=(0.1,)).to_dict()
    assert InputRecord.of(model).mean == (0.7,)


def _old_zoo_config(model, record):
    """0.1.0's layout: the data record under "data", with "resize"/"crop"/"name" keys."""
    return {**model.zoo_config, "data": record}


OLD_RECORD = {
    "input_size": [3, 16, 16], "input_dtype": "uint8", "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3],
    "num_classes": 3, "classes": ["r", "g", "b"], "name": "colours", "task": "classification", "loss": "cross_entropy",
    "resize": 18, "crop": [16, 16],
}  # fmt: skip


def test_read_zoo_config_of_the_old_layout():
    config = read_zoo_config(
        {"format": "zoo.checkpoint", "model": {}, "model_config": {"name": "m", "data": OLD_RECORD}}
    )
    assert "data" not in config and config["name"] == "m"
    record = InputRecord.from_dict(config["inputs"])
    assert record.resize_size == 18 and record.crop_size == (16, 16) and record.dataset == "colours"
    assert record.classes == ["r", "g", "b"] and record.loss == "cross_entropy"
    assert read_zoo_config(None) == {} and read_zoo_config(config) == config  # today's layout passes as it is


def _by_hand(model, im, mean, std):
    """Resize (short side 18, bilinear) + CenterCrop(16) + ToTensor + Normalize, as torchvision would."""
    w, h = im.size
    im = im.resize((18, int(18 * h / w)) if w <= h else (int(18 * w / h), 18), Image.Resampling.BILINEAR)
    w, h = im.size
    top, left = int(round((h - 16) / 2)), int(round((w - 16) / 2))
    x = torch.from_numpy(np.array(im.crop((left, top, left + 16, top + 16)))).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return torch.softmax(model.eval()(x), 1)[0]


def test_old_checkpoint_loads_and_predicts(tmp_path):
    """A .pt checkpoint in 0.1.0's layout ("model_config", its "data" record) loads and predicts with its record."""
    torch.manual_seed(0)
    model = zoo.create("lenet5", num_classes=3, in_chans=3, img_size=16)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "old.pt"
    ckpt = {
        "format": "zoo.checkpoint",
        "version": 1,
        "model": state,
        "model_config": _old_zoo_config(model, OLD_RECORD),
    }
    torch.save(ckpt, path)
    loaded = zoo.load(path)
    assert InputRecord.of(loaded, guess=False).crop_size == (16, 16)
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))  # W 30 x H 20
    (got,) = zoo.predict(loaded, photo, topk=3)
    probs = _by_hand(model, photo, OLD_RECORD["mean"], OLD_RECORD["std"])
    assert got["label"] == OLD_RECORD["classes"][int(probs.argmax())]
    assert got["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
    # saved again, it is in today's layout and predicts the same
    again = zoo.load(zoo.save(loaded, tmp_path / "new.safetensors"))
    assert "data" not in again.zoo_config and again.zoo_config["inputs"]["resize_size"] == 18
    assert zoo.predict(again, photo, topk=3) == [got]


def test_embed_is_the_pre_logits_features(tmp_path):
    torch.manual_seed(0)
    model = zoo.create("lenet5", num_classes=3, in_chans=1, img_size=16).eval()
    model.zoo_config["inputs"] = InputRecord(input_size=(1, 16, 16), input_dtype="uint8", mean=(0.5,), std=(0.25,))
    model.zoo_config["inputs"] = model.zoo_config["inputs"].to_dict()
    x = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features((x.float() / 255 - 0.5) / 0.25), pre_logits=True)
    got = zoo.embed(model, x, batch_size=2)
    assert got.shape == expected.shape == (5, 84)
    assert torch.allclose(got, expected, atol=1e-5)
    # image files in a folder, in sorted order, as the same uint8 images
    for i in range(3):
        Image.fromarray(x[i, 0].numpy()).save(tmp_path / f"{i}.png")
    assert torch.allclose(zoo.embed(model, tmp_path), expected[:3], atol=1e-5)


class Pooled(nn.Module):
    """forward_features only (no forward_head): embed averages its feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.zoo_config = {"inputs": InputRecord(input_size=(3, 8, 8), input_dtype="uint8").to_dict()}

    def forward_features(self, x):
        return self.conv(x)


def test_embed_falls_back_to_average_pooling_and_refuses_models_without_features():
    model = Pooled()
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        expected = model.conv(x.float() / 255).mean(dim=(2, 3))
    assert torch.allclose(zoo.embed(model, x), expected, atol=1e-6)
    with pytest.raises(TypeError, match="forward_features"), pytest.warns(UserWarning, match="no record"):
        zoo.embed(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.zeros(1, 4))


# --------------------------------------------------------------------------------------------------------------------
# the Batches contract


def _split(n=10):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    return Split(images=images, labels=torch.arange(n) % 3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2))


def test_options_object_equals_keywords():
    split = _split()
    kw = dict(shuffle=True, seed=3, mean=(0.1, 0.2, 0.3), std=0.5, drop_last=True)
    a = make_batches(split, 4, BatchOptions(**kw))
    b = make_batches(split, 4, **kw)
    a.set_epoch(1)
    b.set_epoch(1)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert a.normalization == ((0.1, 0.2, 0.3), (0.5, 0.5, 0.5)) and not a.given and a.batch_size == 4
    assert a.num_samples == 8 and a.num_batches == 2 and torch.equal(a.labels, split.labels)
    with pytest.raises(TypeError, match="unknown option 'shufle'; did you mean 'shuffle'"):
        make_batches(split, 4, shufle=True)


def test_every_loader_honours_the_contract(tmp_path):
    from zoo.data.loaders import Batches

    split = _split()
    dataset = torch.utils.data.TensorDataset(torch.randn(6, 3), torch.arange(6))
    loaders = [make_batches(split, 4), make_batches(dataset, 4), make_batches(torch.utils.data.DataLoader(dataset))]
    folder = tmp_path / "f"
    for k in range(2):
        for i in range(3):
            (folder / str(k)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 20, 3), 60 * k + i, dtype=np.uint8)).save(folder / str(k) / f"{i}.png")
    cached = zoo.load_dataset(folder, img_size=16, cache=tmp_path / "cache", test_fraction=0.34, progress=False)
    loaders.append(make_batches(cached.train, 2, num_workers=0))
    for batches in loaders:
        assert isinstance(batches, Batches), type(batches).__name__
        assert isinstance(batches.inputs, InputRecord)
    assert torch.equal(loaders[-1].labels.cpu(), cached.train.labels)
    assert loaders[-1].normalization == (tuple(cached.mean), tuple(cached.std))


def test_a_users_loader_is_used_as_given():
    dataset = torch.utils.data.TensorDataset(torch.randn(10, 3), torch.arange(10))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    batches = make_batches(loader, 999)  # the loader's own batch size
    assert batches.given and batches.batch_size == 4 and batches.labels is None and batches.normalization is None
    with pytest.raises(ValueError, match="a DataLoader is used as given"):
        TorchLoader(loader, 8)
    built = make_batches(dataset, 4, shuffle=True, num_workers=0)  # a DataLoader zoo builds
    assert not built.given and built.batch_size == 4 and built.num_samples == 10
