"""Files handed to zoo by a user: IDX sets whose images are not square, timm checkpoints through checkpoint_path=."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import torch

import zoo
from zoo.data.formats import DatasetFormatError
from zoo.weights import CheckpointError


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(directory, train_hw=(28, 28), test_hw=None, n=6):
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, hw in (("train", train_hw), ("t10k", test_hw or train_hw)):
        images = rng.integers(0, 256, (n, *hw), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, text
    return text


def test_idx_images_that_are_not_square_are_refused_without_img_size(tmp_path):
    write_idx_set(tmp_path / "d", train_hw=(28, 10))
    with pytest.raises(DatasetFormatError) as info:
        zoo.load_dataset("mnist", root=tmp_path / "d")
    text = one_line(info.value)
    assert "train-images-idx3-ubyte" in text and "28 x 10 pixels (H x W) are not square" in text
    assert "img_size=28" in text


def test_idx_images_that_are_not_square_are_stretched_with_a_word_when_img_size_asks(tmp_path):
    write_idx_set(tmp_path / "d", train_hw=(28, 10))
    with pytest.warns(UserWarning, match="28 x 10 pixels are stretched to 16 x 16"):
        data = zoo.load_dataset("mnist", root=tmp_path / "d", img_size=16)
    assert tuple(data.train.images.shape[1:]) == (1, 16, 16)


def test_idx_train_and_test_images_of_other_sizes_are_refused(tmp_path):
    write_idx_set(tmp_path / "d", train_hw=(28, 28), test_hw=(32, 32))
    for options in ({}, {"img_size": 28}):
        with pytest.raises(DatasetFormatError) as info:
            zoo.load_dataset("mnist", root=tmp_path / "d", **options)
        assert "test images are 32 x 32 pixels but the train images" in one_line(info.value)


def test_square_idx_images_load_without_a_word(tmp_path):
    write_idx_set(tmp_path / "d")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zoo.load_dataset("mnist", root=tmp_path / "d").img_size == 28


# ---------------------------------------------------------------------------------------------------------
# timm's checkpoint_path=
# ---------------------------------------------------------------------------------------------------------


class Evil:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.fixture(scope="module")
def timm_files(tmp_path_factory):
    timm = pytest.importorskip("timm")
    d = tmp_path_factory.mktemp("ckpt")
    model = timm.create_model("resnet10t", num_classes=3)
    torch.save({"x": Evil()}, d / "evil.pt")
    (d / "garbage.pt").write_bytes(b"hello")
    torch.save(["a"], d / "list.pt")
    torch.save({"fc.weight": torch.zeros(3, 3)}, d / "wrong.pt")
    torch.save(model.state_dict(), d / "good.pt")
    (d / "fake.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    return d, model


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("evil.pt", CheckpointError, "holds a pickled print"),
        ("garbage.pt", CheckpointError, "not a torch.save file"),
        ("list.pt", CheckpointError, "holds a list"),
        ("fake.safetensors", CheckpointError, "cannot read safetensors file"),
        (".", CheckpointError, "not a regular file"),
        ("missing.pt", FileNotFoundError, "checkpoint_path="),
        ("wrong.pt", CheckpointError, "does not fit the model: Missing key(s)"),
    ],
)
def test_timm_checkpoint_path_errors_are_one_line_and_never_advise_an_unsafe_load(
    timm_files, capsys, name, error, message
):
    d, _ = timm_files
    with pytest.raises(error) as info:
        zoo.create("timm/resnet10t", num_classes=3, checkpoint_path=str(d / name))
    text = one_line(info.value)
    assert text.startswith("timm/resnet10t: checkpoint_path") and message in text
    assert "weights_only=False" not in text and "trusted" not in text
    assert "this ran" not in capsys.readouterr().out
    if error is CheckpointError and name != "wrong.pt":
        assert "accepted: a .safetensors file" in text


def test_timm_checkpoint_path_still_loads_a_good_file(timm_files):
    d, model = timm_files
    loaded = zoo.create("timm/resnet10t", num_classes=3, checkpoint_path=str(d / "good.pt"))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
