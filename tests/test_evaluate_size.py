"""evaluate uses the input size recorded with the model: data of another size is resized as predict resizes new
images, with one line saying so (the CLI's evaluate once ended in torch's "mat1 and mat2 shapes" error)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.cli import main
from zoo.data.types import Split

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained():
    data = zoo.load_dataset("digits", img_size=16)
    model = zoo.create("mlp", img_size=16, hidden_sizes=(32,))
    zoo.fit(model, data, epochs=1, batch_size=64, seed=0, progress=False)
    return model, data


def _bilinear(images: torch.Tensor, size: int) -> torch.Tensor:
    """The reference resize, written out: bilinear, antialiased when shrinking, rounded back to uint8."""
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                      antialias=size < images.shape[-1])  # fmt: skip
    return x.round().clamp(0, 255).to(torch.uint8)


def test_data_of_another_size_is_resized_to_the_recorded_size(trained):
    model, data = trained
    big = Split(_bilinear(data.test.images, 20), data.test.labels, mean=data.test.mean, std=data.test.std)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = zoo.evaluate(model, big)
    notes = [str(w.message) for w in caught if "resized" in str(w.message)]
    assert notes == [
        "evaluate: the data's images are 20x20 and the model was trained on 16x16 (its input record): resized to "
        "16x16, as predict does; load the data at img_size=16 to skip this"
    ]
    back = Split(_bilinear(big.images, 16), big.labels, mean=big.mean, std=big.std)
    expected = zoo.evaluate(model, back)
    assert got["top1"] == expected["top1"] and got["loss"] == pytest.approx(expected["loss"], rel=1e-6)


def test_the_command_line_resizes_and_says_so_in_one_line(trained, tmp_path, capsys):
    model, _ = trained
    path = zoo.save(model, tmp_path / "mlp16.safetensors")
    code = main(["evaluate", str(path), "--dataset", "digits", "--img-size", "20"])
    out, err = capsys.readouterr()
    assert code == 0 and "top1" in out
    assert err.strip().splitlines() == [
        "zoo: warning: evaluate: the data's images are 20x20 and the model was trained on 16x16 (its input record): "
        "resized to 16x16, as predict does; load the data at img_size=16 to skip this"
    ]
