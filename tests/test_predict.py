"""zoo.predict: a trained model classifies new images after a restart, prepared exactly as its training data was."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.data.images import read_images
from zoo.train.predict import predict

COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}


def write_png(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (16, 16), seed: int = 0) -> Path:
    """A noisy patch of one colour (``size`` is W x H, as PIL has it)."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = np.clip(np.array(rgb)[None, None] + rng.integers(-30, 31, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text, text
    return text


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """3 colours x 12 PNGs of 16 x 16; LeNet-5 trained on them and saved; new PNGs it has not seen."""
    tmp = tmp_path_factory.mktemp("predict")
    folder = tmp / "colours"
    for k, (name, rgb) in enumerate(COLOURS.items()):
        for i in range(12):
            write_png(folder / name / f"{i}.png", rgb, seed=100 * k + i)
    data = zoo.load_dataset(folder, img_size=16)
    torch.manual_seed(0)
    model = zoo.create("lenet5", num_classes=3, in_chans=3, img_size=16)
    zoo.fit(model, data, epochs=5, progress=False, seed=0)
    ckpt = zoo.save(model, tmp / "m.safetensors")
    new = tmp / "new"
    images = {
        name: write_png(new / f"{name}.png", rgb, size=(24, 20), seed=1000 + k)  # another size: resized
        for k, (name, rgb) in enumerate(COLOURS.items())
    }
    return {"tmp": tmp, "data": data, "model": model, "ckpt": ckpt, "new": new, "images": images}


def by_hand(model, data, paths: list[Path]) -> torch.Tensor:
    """The model's probabilities on images prepared as load_dataset and fit prepare them."""
    x = read_images(paths, 16, "RGB").float() / 255
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)
    model.eval()
    with torch.no_grad():
        return torch.softmax(model((x - mean) / std), dim=1)


def test_fit_leaves_a_record(trained):
    record = trained["model"].zoo_config["inputs"]
    assert record["classes"] == ["blue", "green", "red"] and record["input_size"] == [3, 16, 16]
    assert record["input_dtype"] == "uint8" and record["task"] == "classification"


@pytest.mark.slow
def test_fresh_process_load_predict_and_cli(trained):
    """The issue's "done when": a fresh process loads the checkpoint and classifies a new PNG; zoo predict prints it."""
    red = trained["images"]["red"]
    code = textwrap.dedent(
        f"""
        import json, sys
        import zoo
        from zoo.cli import main
        model = zoo.load({str(trained["ckpt"])!r})
        print(json.dumps(zoo.predict(model, {str(red)!r}, topk=3)))
        sys.stdout.flush()
        sys.exit(main(["predict", {str(trained["ckpt"])!r}, {str(red)!r}]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, line = proc.stdout.strip().splitlines()
    (record,) = json.loads(first)
    assert record["label"] == "red" and record["path"] == str(red)
    probs = by_hand(trained["model"], trained["data"], [red])[0]
    assert record["index"] == int(probs.argmax()) == 2
    assert record["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert [label for label, _ in record["topk"]][0] == "red" and len(record["topk"]) == 3
    assert line.startswith(f"{red}: red (p=") and line.endswith(")")
    assert proc.stderr == ""  # the record came back with the checkpoint: no warning


def test_every_new_image(trained):
    paths = [trained["images"][name] for name in COLOURS]
    records = predict(trained["model"], paths)
    assert [r["label"] for r in records] == list(COLOURS)
    probs = by_hand(trained["model"], trained["data"], paths)
    assert [r["index"] for r in records] == probs.argmax(1).tolist()
    assert [r["probability"] for r in records] == pytest.approx(probs.max(1).values.tolist(), abs=1e-5)


def test_folder_pil_and_list_inputs(trained):
    model, new = trained["model"], trained["new"]
    (new / "sub").mkdir(exist_ok=True)
    write_png(new / "sub" / "zz_green.png", COLOURS["green"], seed=7)
    (new / "notes.txt").write_text("not an image")  # not an image extension: skipped in a folder
    records = predict(model, new)
    assert [Path(r["path"]).name for r in records] == ["blue.png", "green.png", "red.png", "zz_green.png"]
    assert [r["label"] for r in records] == ["blue", "green", "red", "green"]
    with Image.open(trained["images"]["blue"]) as im:
        (pil,) = predict(model, im)
        mixed = predict(model, [im, trained["images"]["red"], str(new / "sub")])
    assert pil["label"] == "blue" and "path" not in pil
    assert [r["label"] for r in mixed] == ["blue", "red", "green"] and "path" in mixed[1]
    assert pil == {k: v for k, v in predict(model, trained["images"]["blue"])[0].items() if k != "path"}


def test_uint8_tensor_batch_equals_files(trained):
    model, data = trained["model"], trained["data"]
    folder = trained["tmp"] / "colours"
    paths = [folder / name / "3.png" for name in COLOURS]  # 16 x 16: no resizing on either path
    batch = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths])
    from_files = predict(model, paths, topk=3)
    from_tensor = predict(model, batch, topk=3)
    assert from_tensor == [{k: v for k, v in r.items() if k != "path"} for r in from_files]
    assert predict(model, batch[0]) == predict(model, batch[:1])  # one C x H x W image
    # a uint8 batch of another size is resized first; float input is used as given
    big = torch.nn.functional.interpolate(batch.float(), size=32, mode="nearest").to(torch.uint8)
    assert [r["label"] for r in predict(model, big)] == list(COLOURS)
    x = (batch.float() / 255 - torch.tensor(data.mean).view(1, 3, 1, 1)) / torch.tensor(data.std).view(1, 3, 1, 1)
    floats = predict(model, x)
    assert [r["index"] for r in floats] == [r["index"] for r in from_files]
    assert [r["probability"] for r in floats] == pytest.approx([r["probability"] for r in from_files], abs=1e-5)


def test_topk(trained):
    model, path = trained["model"], trained["images"]["green"]
    (one,) = predict(model, path)
    assert one["topk"] == [(one["label"], one["probability"])]
    (three,) = predict(model, path, topk=3)
    (many,) = predict(model, path, topk=10)  # at most the number of classes
    assert many == three and len(three["topk"]) == 3
    labels, probs = zip(*three["topk"])
    assert sorted(labels) == sorted(COLOURS) and list(probs) == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1.0, abs=1e-5) and labels[0] == three["label"] == "green"


def test_regression_outputs():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.3
    model = zoo.create("mlp", in_features=4, hidden_sizes=(8,), num_classes=1)
    zoo.fit(model, (x, y), loss="mse", epochs=3, batch_size=16, progress=False, seed=0)
    record = model.zoo_config["inputs"]
    assert record["task"] == "regression" and record["input_size"] == [4]
    records = predict(model, x[:5])
    model.eval()
    with torch.no_grad():
        expected = model(x[:5]).flatten().tolist()
    assert [r["output"] for r in records] == pytest.approx(expected, abs=1e-6)
    assert all(isinstance(r["output"], float) and set(r) == {"output"} for r in records)
    assert predict(model, x[0]) == records[:1]  # one sample of F features
    assert predict(model, x[:3].double())[0]["output"] == pytest.approx(expected[0], abs=1e-5)
    with pytest.raises(ValueError) as exc:
        predict(model, torch.randn(2, 5))
    assert "4 features" in one_line(exc)
    with pytest.raises(ValueError) as exc:
        predict(model, torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    assert "features" in one_line(exc)


def recorded_model(**record):
    """An untrained grey LeNet-5 with a hand-written data record."""
    model = zoo.create("lenet5", num_classes=4, in_chans=1, img_size=16)
    base = {"input_size": [1, 16, 16], "input_dtype": "uint8", "mean": [0.5], "std": [0.25], "num_classes": 4}
    model.zoo_config["inputs"] = {**base, "classes": None, "task": "classification", **record}
    return model.eval()


def test_grey_layouts_and_index_labels():
    model = recorded_model()
    x = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    as_batch = predict(model, x[:, None])  # N x 1 x H x W
    assert predict(model, x) == as_batch  # N x H x W for a grey model
    assert predict(model, x[0]) == as_batch[:1]  # H x W
    assert predict(model, x[:1]) == as_batch[:1]  # 1 x H x W
    assert isinstance(as_batch[0]["label"], int) and as_batch[0]["label"] == as_batch[0]["index"]
    with torch.no_grad():
        expected = torch.softmax(model((x[:, None].float() / 255 - 0.5) / 0.25), 1)
    assert [r["index"] for r in as_batch] == expected.argmax(1).tolist()
    # a colour PIL image is converted to "L", as the training images were
    rgb = Image.fromarray(np.full((16, 16, 3), 90, dtype=np.uint8))
    grey = torch.full((1, 16, 16), int(np.array(rgb.convert("L"))[0, 0]), dtype=torch.uint8)
    assert predict(model, rgb) == predict(model, grey)


def test_multilabel_records():
    model = recorded_model(task="multilabel", loss="bce", classes=["a", "b", "c", "d"])
    (record,) = predict(model, torch.zeros(16, 16, dtype=torch.uint8))
    assert set(record) == {"labels", "probabilities"} and list(record["probabilities"]) == ["a", "b", "c", "d"]
    assert record["labels"] == [k for k, p in record["probabilities"].items() if p > 0.5]
    assert all(0.0 < p < 1.0 for p in record["probabilities"].values())


def test_torchvision_resize_and_crop():
    """A record read from Resize(20) + CenterCrop(16) + ToTensor + Normalize: short side to 20, centre 16 x 16."""
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.3, 0.4]
    model = zoo.create("lenet5", num_classes=3, in_chans=3, img_size=16).eval()
    model.zoo_config["inputs"] = {
        "input_size": [3, 16, 16], "input_dtype": "float32", "mean": mean, "std": std, "num_classes": 3,
        "classes": ["x", "y", "z"], "task": "classification", "resize_size": 20, "crop_size": [16, 16],
    }  # fmt: skip
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (36, 24, 3), dtype=np.uint8))  # W 24 x H 36
    small = im.resize((20, 30), Image.Resampling.BILINEAR).crop((2, 7, 18, 23))  # 20 x 30, then the centre 16 x 16
    x = torch.from_numpy(np.array(small)).permute(2, 0, 1)[None].float().div(255)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)[0]
    (record,) = predict(model, im, topk=3)
    assert record["index"] == int(probs.argmax()) and record["probability"] == pytest.approx(float(probs.max()))


def test_no_record_warns_once():
    model = zoo.create("lenet5", num_classes=3, in_chans=3, img_size=16)
    image = Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8))  # resized to the model's img_size
    with pytest.warns(UserWarning, match="no record") as caught:
        (record,) = predict(model, image, topk=2)
    assert len(caught) == 1 and "resized to 16x16" in str(caught[0].message)
    assert isinstance(record["label"], int) and len(record["topk"]) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(model, image)  # the warning was given once for this model


def test_bad_inputs_one_line_errors(trained, tmp_path):
    model = trained["model"]
    with pytest.raises(FileNotFoundError) as exc:
        predict(model, tmp_path / "missing.png")
    assert "missing.png' does not exist" in one_line(exc) and "accepted:" in str(exc.value)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError) as exc:
        predict(model, [trained["images"]["red"], tmp_path / "notes.txt"])
    assert "notes.txt' is not an image file" in one_line(exc)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as exc:
        predict(model, tmp_path / "empty")
    assert "holds no image files" in one_line(exc)
    with pytest.raises(ValueError) as exc:
        predict(model, torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    assert "has 1 channels, the model takes 3-channel images" in one_line(exc)
    with pytest.raises(ValueError) as exc:
        predict(model, torch.zeros(2, 1, 16, 16))
    assert "3-channel images" in one_line(exc)
    with pytest.raises(ValueError) as exc:
        predict(model, torch.zeros(2, 3, 16, 16, dtype=torch.int64))
    assert "int64 tensor" in one_line(exc)
    with pytest.raises(ValueError) as exc:
        predict(model, [])
    assert "no inputs" in one_line(exc)
    with pytest.raises(TypeError) as exc:
        predict(model, 3.5)
    assert "cannot take a float" in one_line(exc)
    with pytest.raises(ValueError) as exc:
        predict(model, trained["images"]["red"], topk=0)
    assert "topk" in one_line(exc)
