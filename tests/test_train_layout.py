"""The memory layout fit picks when ``channels_last`` is left to it (``zoo.train.layout``), and that it is recorded."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.train.layout import default_channels_last

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


class TinyConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


class TinyConvContiguous(TinyConv):
    prefers_channels_last = False


def test_a_convnet_trains_channels_last_on_the_cpu_and_a_model_without_convolutions_does_not():
    assert default_channels_last(TinyConv(), CPU) is True
    assert default_channels_last(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), CPU) is False
    assert default_channels_last(TinyConv(), CUDA) is False  # GPUs keep fit's contiguous default


def test_a_model_class_states_its_preference():
    assert default_channels_last(TinyConvContiguous(), CPU) is False


@pytest.mark.parametrize("name", ["lenet5", "mlp", "mobilenet_v2", "efficientnet_b0", "vit_tiny_patch16"])
def test_every_builtin_family_has_a_decided_layout(name):
    model = zoo.create(name, num_classes=3, img_size=32)
    expected = getattr(type(model), "prefers_channels_last", None)
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    assert default_channels_last(model, CPU) is (expected if expected is not None else has_conv)


@pytest.mark.parametrize("asked", [None, True, False])
def test_fit_records_the_layout_it_trained_in(asked):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 3, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)
    for model in (TinyConv(), TinyConvContiguous()):
        history = zoo.fit(model, (x, y), epochs=1, batch_size=8, channels_last=asked, device="cpu", seed=0)
        expected = default_channels_last(model, CPU) if asked is None else asked
        assert history.config["channels_last"] is expected
        assert model.conv.weight.is_contiguous(memory_format=torch.channels_last) is expected
